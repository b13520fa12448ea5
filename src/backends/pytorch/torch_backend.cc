#include "backends/pytorch/torch_backend.h"

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>
#include <torch/headeronly/version.h>
#include <torch/script.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backends/pytorch/pytorch_backend.h"
#include "backends/pytorch/torch_archive.h"
#include "backends/pytorch/torch_device.h"
#include "backends/pytorch/torch_graph.h"
#include "backends/pytorch/torch_instance.h"
#include "backends/pytorch/torch_parameters.h"
#include "backends/pytorch/torch_sandbox.h"
#include "backends/pytorch/torch_signature.h"
#include "core/thread_annotations.h"
#include "repository/repository_file.h"

namespace mm {

namespace {

// INTER_OP_THREAD_COUNT: libtorch takes it once per process.
class InterOpThreads {
 public:
  // `wanted`: the model's value; nullopt: the model does not name it (then
  // only `forks` makes the default of 1 be set).
  void Apply(const std::string& label, std::optional<int> wanted, bool forks) {
    MutexLock lock(mu_);
    if (!wanted && !forks) return;
    if (in_force_ == 0) {
      const int value = wanted.value_or(1);
      try {
        at::set_num_interop_threads(value);
        in_force_ = value;
      } catch (const std::exception&) {
        in_force_ = at::get_num_interop_threads();  // libtorch had started its pool already
      }
      if (in_force_ == value && wanted) {
        spdlog::info("{}: PyTorch inter-op threads set to {} for the process", label, value);
        return;
      }
    }
    if (wanted && *wanted != in_force_) {
      spdlog::warn(
          "{}: INTER_OP_THREAD_COUNT {} is ignored: the process's inter-op thread count is set "
          "once, and {} is in force",
          label, *wanted, in_force_);
    }
  }

 private:
  Mutex mu_;
  int in_force_ MM_GUARDED_BY(mu_) = 0;  // 0: not set yet
};

InterOpThreads& InterOp() {
  static InterOpThreads* threads = new InterOpThreads();  // never destroyed
  return *threads;
}

// libtorch's reason, with a hint when the file is newer than this libtorch.
std::string LoadFailure(std::string what) {
  if (what.find("Attempted to read a PyTorch file with version") != std::string::npos) {
    what += " (the file comes from a newer PyTorch than this server's libtorch " TORCH_VERSION
            "; save it with PyTorch " TORCH_VERSION " or older)";
  }
  return what;
}

struct LoadContext {
  std::string label;  // "model 'm' version 1"
  std::filesystem::path path;
  TorchArchive archive;  // the file, open: every load reads it
};

// torch::jit::load on `device`; every exception becomes a Status.
StatusOr<std::shared_ptr<torch::jit::Module>> LoadModule(const LoadContext& ctx,
                                                         std::optional<c10::Device> device,
                                                         bool inference_mode) {
  std::string error;
  try {
    c10::InferenceMode guard(inference_mode);
    auto module = std::make_shared<torch::jit::Module>(torch::jit::load(ctx.archive, device));
    module->eval();
    return module;
  } catch (const c10::Error& e) {
    error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (std::optional<std::string> op = RemovedOperatorIn(error)) {
    return InvalidArgument(ctx.label + ": cannot load '" + ctx.path.string() +
                           "': its code calls " + *op + ", which " +
                           std::string(*OutsideReach(*op)) +
                           "; the PyTorch backend refuses modules that reach outside the model "
                           "(this server's libtorch has no such operator)");
  }
  return InvalidArgument(ctx.label + ": cannot load '" + ctx.path.string() +
                         "' as a TorchScript module: " + LoadFailure(std::move(error)));
}

StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const LoadSpec& spec) {
  LoadContext ctx;
  ctx.label = "model '" + spec.model_name + "' version " + std::to_string(spec.version);
  inference::ModelConfig config = spec.config;
  if (config.name().empty()) config.set_name(spec.model_name);

  // 1. The file.
  const std::string filename = config.default_model_filename().empty()
                                   ? std::string(kPytorchDefaultModelFile)
                                   : config.default_model_filename();
  const std::filesystem::path relative(filename);
  if (relative.is_absolute() ||
      std::find(relative.begin(), relative.end(), "..") != relative.end()) {
    return InvalidArgument(ctx.label + ": default_model_filename '" + filename +
                           "' must name a file inside the version directory");
  }
  ctx.path = spec.version_dir / relative;
  auto size = CheckRepositoryFile(ctx.path, RepositoryFileKind::kModel);
  if (!size.ok()) return size.status().WithContext(ctx.label);

  // 2. Parameters and places.
  auto parsed = ParseTorchParameters(config);
  if (!parsed.ok()) return parsed.status().WithContext(ctx.label);
  TorchParameters parameters = std::move(*parsed);
  for (const std::string& warning : parameters.warnings) spdlog::warn("{}: {}", ctx.label, warning);
  if (config.instance_group_size() == 0) {
    auto* group = config.add_instance_group();
    group->set_count(1);
    group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
  }
  std::vector<TorchPlacement> placements;
  for (const auto& group : config.instance_group()) {
    auto placed = PlaceInstances(group);
    if (!placed.ok()) return placed.status().WithContext(ctx.label);
    placements.insert(placements.end(), placed->begin(), placed->end());
  }
  if (placements.empty())
    return InvalidArgument(ctx.label + ": its instance groups make no instance");

  // 3. The module. Loading runs some of its code: what reaches outside the
  // model is gone from libtorch first (again: a KIND_GPU placement may have
  // just opened libtorch_cuda.so, which registers more).
  RemoveOutsideReachingOperators();
  auto archive = OpenArchive(ctx.path);
  if (!archive.ok()) return archive.status().WithContext(ctx.label);
  ctx.archive = std::move(*archive);
  if (Status code = CheckArchiveCode(ctx.archive); !code.ok()) {
    return InvalidArgument(ctx.label + ": cannot load '" + ctx.path.string() +
                           "' as a TorchScript module: " + LoadFailure(code.message()));
  }
  MM_ASSIGN_OR_RETURN(auto first,
                      LoadModule(ctx, placements.front().device, parameters.inference_mode));
  if (!first->find_method("forward")) {
    return InvalidArgument(ctx.label + ": '" + ctx.path.string() +
                           "' is a TorchScript module without a forward method");
  }
  const ForwardSignature signature =
      ReadForwardSignature(first->get_method("forward").function().getSchema());

  // 4. The config against forward.
  if (!spec.has_config) {
    return InvalidArgument(ctx.label +
                           " has no config.pbtxt; a TorchScript module carries no "
                           "shapes, so its config must list every input and output "
                           "(name, data_type, dims) for " +
                           signature.text);
  }
  auto io = MapTorchIo(config, signature);
  if (!io.ok()) return io.status().WithContext(ctx.label);
  for (const std::string& warning : io->warnings) spdlog::warn("{}: {}", ctx.label, warning);
  const ForwardGraphTraits traits = ScanForwardGraph(*first);
  if (!traits.forbidden_op.empty()) {
    return InvalidArgument(ctx.label + ": '" + ctx.path.string() + "' uses " + traits.forbidden_op +
                           ", which reaches outside the model (a file of the server's, or "
                           "another process); the PyTorch backend refuses such modules");
  }
  if (!traits.bounded) {
    spdlog::info("{}: never runs inline on an I/O thread: its forward uses {}", ctx.label,
                 traits.unbounded_why);
  }
  InterOp().Apply(ctx.label, parameters.inter_op_threads, traits.forks);
  spdlog::info("{}: {}; inputs {}, outputs {}", ctx.label, signature.text, io->input_convention,
               io->output_convention);

  // 5. Instances.
  if (config.platform().empty()) config.set_platform(std::string(kPytorchPlatform));
  if (config.backend().empty()) config.set_backend(std::string(kPytorchBackendName));
  auto model = std::make_unique<LoadedModel>();
  model->config = config;
  model->inline_safe = traits.bounded;
  // Modules by device, for ENABLE_WEIGHT_SHARING (KIND_MODEL: no device).
  std::map<std::string, std::shared_ptr<torch::jit::Module>> shared;
  auto key = [](const TorchPlacement& p) { return p.device ? p.device->str() : std::string(); };
  shared[key(placements.front())] = first;
  for (size_t i = 0; i < placements.size(); ++i) {
    std::shared_ptr<torch::jit::Module> module;
    if (i == 0) {
      module = first;
    } else if (auto it = shared.find(key(placements[i]));
               parameters.enable_weight_sharing && it != shared.end()) {
      module = it->second;
      spdlog::info("{}: instance {} shares the module on {}", ctx.label, i,
                   it->first.empty() ? "its saved devices" : it->first);
    } else {
      MM_ASSIGN_OR_RETURN(module, LoadModule(ctx, placements[i].device, parameters.inference_mode));
      shared.emplace(key(placements[i]), module);
    }
    model->instances.push_back(MakeTorchInstance({.model_name = spec.model_name,
                                                  .module = std::move(module),
                                                  .config = config,
                                                  .io = *io,
                                                  .parameters = parameters,
                                                  .placement = placements[i],
                                                  .unbounded = !traits.bounded,
                                                  .writes_inputs = traits.writes_inputs}));
  }
  return model;
}

}  // namespace

StatusOr<std::unique_ptr<Backend>> TorchBackend::Create(const BackendSettings& settings) {
  if (!settings.empty()) {
    std::string keys;
    for (const auto& [key, value] : settings) keys += (keys.empty() ? "'" : ", '") + key + "'";
    return InvalidArgument("the pytorch backend has no setting " + keys +
                           " (it takes none besides the server's 'plugin')");
  }
  const int removed = RemoveOutsideReachingOperators();
  if (removed > 0) {
    spdlog::info(
        "PyTorch backend: {} operators that reach outside a model (files, other "
        "processes) removed from libtorch",
        removed);
  }
  return std::unique_ptr<Backend>(new TorchBackend());
}

StatusOr<std::unique_ptr<LoadedModel>> TorchBackend::Load(const LoadSpec& spec) {
  try {
    return LoadModel(spec);
  } catch (const c10::Error& e) {
    return Internal("model '" + spec.model_name + "': PyTorch: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Internal("model '" + spec.model_name + "': PyTorch: " + e.what());
  } catch (...) {
    return Internal("model '" + spec.model_name + "': PyTorch: an unknown exception");
  }
}

}  // namespace mm
