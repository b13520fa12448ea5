#include "isolation/process_backend.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/memory.h"
#include "isolation/call_hub.h"
#include "isolation/instance_placement.h"
#include "isolation/isolation_flags.h"
#include "isolation/mailbox.h"
#include "isolation/memory_limit.h"
#include "isolation/worker_instance.h"
#include "isolation/worker_protocol.h"
#include "isolation/worker_supervisor.h"

namespace mm {

using isolation_internal::WorkerGroup;
using isolation_internal::WorkerInstance;
using isolation_internal::WorkerSettings;
using std::chrono::milliseconds;

static_assert(ProcessBackend::kMinMailboxBytes == Mailbox::kMinBytes &&
              ProcessBackend::kMaxMailboxBytes == Mailbox::kMaxBytes);

StatusOr<std::unique_ptr<ProcessBackend>> ProcessBackend::Create(Options options) {
  MM_RETURN_IF_ERROR(ValidateProcessBackendOptions(options));
  MM_ASSIGN_OR_RETURN(std::unique_ptr<WorkerSupervisor> supervisor, WorkerSupervisor::Create());
  MM_ASSIGN_OR_RETURN(std::shared_ptr<CallHub> hub, CallHub::Create());
  return std::unique_ptr<ProcessBackend>(
      new ProcessBackend(std::move(options), std::move(supervisor), std::move(hub)));
}

ProcessBackend::ProcessBackend(Options options, std::shared_ptr<WorkerSupervisor> supervisor,
                               std::shared_ptr<CallHub> hub)
    : options_(std::move(options)), supervisor_(std::move(supervisor)), hub_(std::move(hub)) {}

ProcessBackend::~ProcessBackend() = default;

void ProcessBackend::Shutdown(const std::string& reason) { supervisor_->Shutdown(reason); }

StatusOr<std::unique_ptr<LoadedModel>> ProcessBackend::Load(const LoadSpec& spec) {
  auto settings = std::make_shared<WorkerSettings>();
  settings->label = "model '" + spec.model_name + "' version " + std::to_string(spec.version);
  const auto own = options_.worker_commands.find(spec.platform);
  settings->argv = own != options_.worker_commands.end() ? own->second : options_.worker_command;
  settings->argv.push_back(spec.model_name);
  const auto& mm_options = spec.config.mmserve();
  settings->memory_limit = mm_options.memory_limit_bytes();
  settings->limit_kind = ChooseMemoryLimitKind();
  settings->execution_timeout = mm_options.execution_timeout_ms() > 0
                                    ? milliseconds(mm_options.execution_timeout_ms())
                                    : options_.execution_timeout;
  settings->start_timeout = options_.start_timeout;
  settings->backoff = options_.restart_backoff;
  settings->max_backoff = options_.max_restart_backoff;
  settings->initial_region_bytes = std::max<uint64_t>(options_.initial_region_bytes, 4096);
  settings->mailbox_bytes = options_.mailbox_bytes;
  settings->load_nice = options_.load_nice;
  settings->serve_nice = options_.serve_nice;
  settings->hub = hub_;
  settings->host = spec.host;
  LoadRequest& load = settings->load;
  load.model_name = spec.model_name;
  load.version = spec.version;
  load.model_dir = spec.model_dir.string();
  load.platform = spec.platform;
  load.has_config = spec.has_config;
  spec.config.SerializeToString(&load.config);
  if (settings->memory_limit > 0 && settings->limit_kind == MemoryLimitKind::kAddressSpace) {
    load.memory_limit_bytes = settings->memory_limit;
  }
  if (Status fits = CheckLoadFits(load); !fits.ok()) {
    return InvalidArgument(settings->label + ": " + fits.message());
  }
  if (settings->memory_limit > 0) {
    spdlog::info("{}: memory limit {} per worker, enforced by {}", settings->label,
                 FormatBytes(settings->memory_limit), MemoryLimitKindName(settings->limit_kind));
  }

  const auto count = static_cast<size_t>(InstanceCount(spec.config));

  auto group = std::make_shared<WorkerGroup>(count, spec.on_health);
  auto model = std::make_unique<LoadedModel>();
  std::vector<WorkerInstance*> instances;
  for (size_t i = 0; i < count; ++i) {
    // Destroying an instance stops its worker (as a failed start leaves it).
    auto instance = std::make_unique<WorkerInstance>(supervisor_, group, settings, i);
    auto config = instance->Start();
    if (!config.ok()) return config.status();
    if (i == 0) {
      if (!model->config.ParseFromString(config->config)) {
        return Internal(settings->label + ": the worker's config does not parse");
      }
      // What the worker's backend says of the model (a batch as a list).
      model->batch_as_list = config->batch_as_list;
      // The worker ran one instance; the model has the user's groups.
      if (spec.config.instance_group_size() > 0) {
        *model->config.mutable_instance_group() = spec.config.instance_group();
      }
    }
    instances.push_back(instance.get());
    model->instances.push_back(std::move(instance));
  }
  for (WorkerInstance* instance : instances) model->external_bytes += instance->ResidentBytes();
  // Never inline on a transport's thread, whatever the model in the worker
  // would say of itself in-process: a worker may stop or hang.
  model->inline_safe = false;
  return model;
}

}  // namespace mm
