// The web console's static files (assets/: index.html, console.css,
// console.js), embedded in the binary by the build (embed_assets.cmake), so
// the console works offline with nothing installed beside the server.
//
// Development aid: when the environment variable MMSERVE_CONSOLE_DIR names a
// folder at the first lookup, the three files are read from it once instead
// (a restart picks up an edit without a rebuild). A file missing there is an
// asset missing, logged once.
//
// Thread-safety: FindConsoleAsset may be called concurrently; the assets are
// fixed after the first call.
#pragma once

#include <span>
#include <string_view>

namespace mm {

struct ConsoleAsset {
  std::string_view name;          // "index.html"
  std::string_view content_type;  // "text/html; charset=utf-8"
  std::string_view body;
};

// The asset named `name`, or null. Its views live as long as the process.
const ConsoleAsset* FindConsoleAsset(std::string_view name);

// The copies the build embedded (console_assets_data.cc, generated).
std::span<const ConsoleAsset> EmbeddedConsoleAssets();

}  // namespace mm
