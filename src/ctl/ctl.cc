// `mmserve ctl`: the flags of every command (CLI11) and the dispatch to
// commands.h. Usage errors (bad flags, a malformed --input) exit 2 before any
// request; a failed command prints "error: <message>" and exits 1.
#include "ctl/ctl.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "ctl/commands.h"
#include "ctl/ctl_flags.h"

namespace mm {

namespace {

constexpr double kListingTimeoutS = 30;
constexpr double kTopPollTimeoutS = 10;

const char* Env(const char* name) { return std::getenv(name); }

int Report(const Status& status) {
  if (status.ok()) return 0;
  std::fflush(stdout);
  std::fprintf(stderr, "error: %s\n", status.message().c_str());
  return 1;
}

}  // namespace

int CtlMain(int argc, char** argv) {
  CLI::App app{"Talks to a running mmserve over its HTTP API.", "mmserve ctl"};
  app.require_subcommand(1, 1);
  CtlFlags flags;
  AddCtlFlags(app, flags);
  std::function<Status(const CtlFlags&)> run;

  bool models_json = false;
  auto* models = app.add_subcommand("models", "List the repository's models and their states");
  models->add_flag("--json", models_json, "Print the server's JSON");
  models->callback([&] {
    run = [&](const CtlFlags& f) {
      return RunModels(ResolveClientOptions(f, Env, kListingTimeoutS), models_json);
    };
  });

  std::string load_model, load_config;
  auto* load = app.add_subcommand("load", "Load a model (returns when it is loaded)");
  load->add_option("MODEL", load_model, "Model name")->required();
  load->add_option("--config", load_config,
                   "Model configuration as JSON, or @FILE to read it from a file");
  load->callback([&] {
    run = [&](const CtlFlags& f) {
      return RunLoad(ResolveClientOptions(f, Env, 0), load_model, load_config);
    };
  });

  std::string unload_model;
  auto* unload = app.add_subcommand("unload", "Unload a model (returns when it is unloaded)");
  unload->add_option("MODEL", unload_model, "Model name")->required();
  unload->callback([&] {
    run = [&](const CtlFlags& f) {
      return RunUnload(ResolveClientOptions(f, Env, 0), unload_model);
    };
  });

  std::string stats_model, stats_version;
  bool stats_json = false;
  auto* stats = app.add_subcommand("stats", "A model's statistics, per version");
  stats->add_option("MODEL", stats_model, "Model name")->required();
  stats->add_option("--version", stats_version, "One version only");
  stats->add_flag("--json", stats_json, "Print the server's JSON");
  stats->callback([&] {
    run = [&](const CtlFlags& f) {
      return RunStats(ResolveClientOptions(f, Env, kListingTimeoutS), stats_model, stats_version,
                      stats_json);
    };
  });

  bool usage_json = false;
  auto* usage = app.add_subcommand("usage", "Usage per tenant and model (an admin sees all)");
  usage->add_flag("--json", usage_json, "Print the server's JSON");
  usage->callback([&] {
    run = [&](const CtlFlags& f) {
      return RunUsage(ResolveClientOptions(f, Env, kListingTimeoutS), usage_json);
    };
  });

  InferArgs infer_args;
  std::vector<std::string> input_args;
  auto* infer = app.add_subcommand("infer", "Run one inference and print its outputs");
  infer->add_option("MODEL", infer_args.model, "Model name")->required();
  infer->add_option("--version", infer_args.version, "Model version (default: the server's)");
  infer
      ->add_option("--input", input_args,
                   "An input: NAME=FILE.npy (sent as binary data), NAME=@FILE.json, or "
                   "NAME=<JSON array> such as x=[[1,2,3,4]] (typed from the model's metadata); "
                   "repeat for each input")
      ->required()
      ->allow_extra_args(false);
  infer
      ->add_option("--output", infer_args.outputs,
                   "Outputs to ask for (repeat, or separate with commas; default: all)")
      ->allow_extra_args(false)
      ->delimiter(',');
  infer->add_flag("--json", infer_args.json, "Print the server's JSON response");
  infer->callback([&] {
    run = [&](const CtlFlags& f) { return RunInfer(ResolveClientOptions(f, Env, 0), infer_args); };
  });

  TopArgs top_args;
  auto* top = app.add_subcommand("top", "A live per-model view (needs an admin key with tenants)");
  top->add_option("--interval", top_args.interval_s, "Seconds between refreshes (default: 1)")
      ->check(CLI::Range(0.05, 3600.0));
  top->add_flag("--once", top_args.once,
                "Print one frame (two polls an interval apart) without escapes, then exit");
  top->callback([&] {
    run = [&](const CtlFlags& f) {
      return RunTop(ResolveClientOptions(f, Env, kTopPollTimeoutS), top_args);
    };
  });

  // The connection flags are also taken after the command ("models --url U").
  for (CLI::App* sub : {models, load, unload, stats, usage, infer, top}) sub->fallthrough();

  try {
    app.parse(argc > 1 ? argc - 1 : argc, argc > 1 ? argv + 1 : argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  for (const std::string& arg : input_args) {
    auto spec = ParseInputSpec(arg);
    if (!spec.ok()) {
      std::fprintf(stderr, "error: %s\n", spec.status().message().c_str());
      return 2;
    }
    infer_args.inputs.push_back(std::move(*spec));
  }
  if (!run) return 2;  // (require_subcommand makes this unreachable)
  return Report(run(flags));
}

}  // namespace mm
