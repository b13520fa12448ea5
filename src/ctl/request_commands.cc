// The one-request commands: `ctl models`, `load`, `unload`, `stats`, `usage`.
#include <simdjson.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/json_string.h"
#include "ctl/commands.h"
#include "ctl/files.h"
#include "ctl/format.h"
#include "ctl/json_read.h"
#include "ctl/listings.h"
#include "ctl/progress.h"
#include "ctl/terminal.h"
#include "ctl/url_path.h"

namespace mm {

namespace {

namespace dom = simdjson::dom;

void PrintJson(const std::string& body) {
  std::fwrite(body.data(), 1, body.size(), stdout);
  if (body.empty() || body.back() != '\n') std::fputc('\n', stdout);
}

// The state of `model`'s versions in a repository index: "READY",
// "v1 READY, v2 LOADING", or "" when it is not listed.
std::string ModelStateIn(std::string_view index_json, std::string_view model) {
  dom::parser parser;
  dom::element doc;
  if (!ParseJson(parser, index_json, "the index", doc).ok()) return "";
  dom::array entries;
  if (doc.get(entries)) return "";
  std::vector<std::pair<std::string, std::string>> found;  // version, state
  for (dom::element e : entries) {
    if (JsonString(e, "name") != model) continue;
    found.emplace_back(std::string(JsonString(e, "version")), std::string(JsonString(e, "state")));
  }
  if (found.size() == 1) return found[0].second;
  std::string out;
  for (const auto& [version, state] : found) {
    if (!out.empty()) out += ", ";
    out += "v" + version + " " + state;
  }
  return out;
}

// Runs the load/unload POST, with the progress line when stderr is a terminal.
Status LoadOrUnload(const HttpClientOptions& options, const std::string& model,
                    const std::string& action, const std::string& body) {
  MM_ASSIGN_OR_RETURN(std::unique_ptr<HttpClient> client, HttpClient::Create(options));
  std::unique_ptr<ProgressLine> progress;
  if (IsTerminal(STDERR_FILENO)) {
    HttpClientOptions poll_options = options;
    poll_options.timeout_s = 5;
    MM_ASSIGN_OR_RETURN(std::shared_ptr<HttpClient> poller, HttpClient::Create(poll_options));
    const std::string verb = action == "load" ? "loading" : "unloading";
    progress = std::make_unique<ProgressLine>(verb + " '" + model + "'", [poller, model] {
      auto r = poller->PostChecked("/v2/repository/index", "{}");
      if (!r.ok()) return std::string("(state unknown)");
      const std::string state = ModelStateIn(r->body, model);
      return state.empty() ? std::string("(not listed)") : state;
    });
  }
  const auto start = std::chrono::steady_clock::now();
  auto reply = client->PostChecked(RepositoryModelPath(model, action), body);
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (progress) progress->Stop();
  if (!reply.ok()) return reply.status();
  std::printf("model '%s' %s (%s s)\n", model.c_str(), action == "load" ? "loaded" : "unloaded",
              FormatFixed(elapsed, 1).c_str());
  return OkStatus();
}

}  // namespace

Status RunModels(const HttpClientOptions& options, bool json) {
  MM_ASSIGN_OR_RETURN(std::unique_ptr<HttpClient> client, HttpClient::Create(options));
  MM_ASSIGN_OR_RETURN(HttpResponse r, client->PostChecked("/v2/repository/index", "{}"));
  if (json) {
    PrintJson(r.body);
    return OkStatus();
  }
  // Long reasons are cut to a terminal's width (80 when it does not say);
  // piped output is whole.
  size_t width = 0;
  if (IsTerminal(STDOUT_FILENO)) {
    width = GetTerminalSize(STDOUT_FILENO).columns;
    if (width == 0) width = 80;
  }
  MM_ASSIGN_OR_RETURN(std::string table, FormatModelsTable(r.body, width));
  std::fputs(table.c_str(), stdout);
  return OkStatus();
}

Status RunLoad(const HttpClientOptions& options, const std::string& model,
               const std::string& config) {
  std::string body = "{}";
  if (!config.empty()) {
    std::string text = config;
    if (config.front() == '@') {
      MM_ASSIGN_OR_RETURN(text, ReadFile(config.substr(1)));
    }
    dom::parser parser;
    dom::element doc;
    MM_RETURN_IF_ERROR(ParseJson(parser, text, "--config", doc));
    if (!doc.is_object()) return InvalidArgument("--config must be a JSON object");
    body = "{\"parameters\":{\"config\":";
    AppendJsonString(body, text);
    body += "}}";
  }
  return LoadOrUnload(options, model, "load", body);
}

Status RunUnload(const HttpClientOptions& options, const std::string& model) {
  return LoadOrUnload(options, model, "unload", "{}");
}

Status RunStats(const HttpClientOptions& options, const std::string& model,
                const std::string& version, bool json) {
  MM_ASSIGN_OR_RETURN(std::unique_ptr<HttpClient> client, HttpClient::Create(options));
  MM_ASSIGN_OR_RETURN(HttpResponse r, client->GetChecked(ModelPath(model, version, "stats")));
  if (json) {
    PrintJson(r.body);
    return OkStatus();
  }
  MM_ASSIGN_OR_RETURN(std::string table, FormatStatsTable(r.body));
  std::fputs(table.c_str(), stdout);
  return OkStatus();
}

Status RunUsage(const HttpClientOptions& options, bool json) {
  MM_ASSIGN_OR_RETURN(std::unique_ptr<HttpClient> client, HttpClient::Create(options));
  MM_ASSIGN_OR_RETURN(HttpResponse r, client->GetChecked("/v2/usage"));
  if (json) {
    PrintJson(r.body);
    return OkStatus();
  }
  MM_ASSIGN_OR_RETURN(std::string table, FormatUsageTable(r.body));
  std::fputs(table.c_str(), stdout);
  return OkStatus();
}

}  // namespace mm
