// The ctl's commands, each one request-and-print over HttpClient (or, for
// top, a loop of them). The flags are parsed in ctl.cc; these run them.
//
// Every command writes its result on stdout and returns OK, or returns the
// failure (the server's message, a connection error, an unreadable input
// file) for ctl.cc to print as "error: <message>" with exit code 1.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "ctl/http_client.h"
#include "ctl/infer_request.h"

namespace mm {

// `models [--json]`: the repository index as a table, or the server's JSON.
Status RunModels(const HttpClientOptions& options, bool json);

// `load MODEL [--config JSON|@FILE]` / `unload MODEL`: the request returns
// when the load (unload) has finished; meanwhile, when stderr is a terminal,
// a progress line shows the model's state, polled from the index.
// `config`: empty, inline JSON, or "@path" to read it from a file.
Status RunLoad(const HttpClientOptions& options, const std::string& model,
               const std::string& config);
Status RunUnload(const HttpClientOptions& options, const std::string& model);

// `stats MODEL [--version V] [--json]`.
Status RunStats(const HttpClientOptions& options, const std::string& model,
                const std::string& version, bool json);

// `usage [--json]`.
Status RunUsage(const HttpClientOptions& options, bool json);

struct InferArgs {
  std::string model;
  std::string version;            // empty: the server's choice
  std::vector<InputSpec> inputs;  // parsed by ParseInputSpec
  std::vector<std::string> outputs;
  bool json = false;
};
Status RunInfer(const HttpClientOptions& options, const InferArgs& args);

struct TopArgs {
  double interval_s = 1;
  bool once = false;
};
// The live view until 'q' or SIGINT/SIGTERM (OK), or, with `once`, one frame
// from two snapshots `interval_s` apart, printed without escapes.
Status RunTop(const HttpClientOptions& options, const TopArgs& args);

}  // namespace mm
