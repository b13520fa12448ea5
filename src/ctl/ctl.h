// `mmserve ctl`: the command-line client of a running mmserve, over its HTTP
// API (KServe v2 with Triton's extensions, and the console's overview).
//
//   mmserve ctl [--url URL] [--api-key KEY] [--timeout S] [--cacert FILE]
//               [--insecure] COMMAND ...
//   commands: models, load, unload, stats, usage, infer, top
//
// Exit status: 0 on success, 1 when a request failed (the server's message
// is printed as "error: <message>" on stderr), 2 for a usage error.
#pragma once

namespace mm {

// argv[0] is the binary, argv[1] "ctl", then the command and its arguments.
int CtlMain(int argc, char** argv);

}  // namespace mm
