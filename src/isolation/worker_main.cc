#include "isolation/worker_main.h"

#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <optional>

#include "core/memory.h"
#include "isolation/mailbox.h"
#include "isolation/memory_limit.h"
#include "isolation/shared_region.h"
#include "isolation/worker_channel.h"
#include "isolation/worker_protocol.h"

namespace mm {

namespace {

constexpr uint64_t kOutputAlignment = 64;

uint64_t AlignUp(uint64_t v) {
  return (v + kOutputAlignment - 1) / kOutputAlignment * kOutputAlignment;
}

[[noreturn]] void OutOfMemory() {
  static const char kMessage[] = "mmserve worker: out of memory (a memory limit?)\n";
  ssize_t ignored = ::write(2, kMessage, sizeof(kMessage) - 1);
  (void)ignored;
  ::_exit(kWorkerExitOutOfMemory);
}

// The address space in use now (VmSize), in bytes; 0 if unknown.
uint64_t AddressSpaceBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0;
  if (!(statm >> pages)) return 0;
  return pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

class Worker {
 public:
  Worker(int socket, const std::map<std::string, Backend*, std::less<>>& backends)
      : socket_(socket), reader_(socket), backends_(backends) {}

  int Run() {
    // Until the server hands over a mailbox, requests come on the socket.
    while (!mailbox_) {
      auto frame = reader_.Read();
      if (!frame.ok()) {
        if (reader_.closed()) return 0;  // the server is done with this worker
        return Fail(frame.status());
      }
      const uint32_t id = frame->header.request_id;
      auto reply = Handle(frame->header.type, AsBytes(frame->payload), frame->fd);
      if (!reply.ok()) return Fail(reply.status());
      if (*reply) {
        Status s = WriteWorkerFrame(socket_, WorkerMessageType::kReply, id, **reply);
        if (!s.ok()) return Fail(s);
      }
    }
    for (;;) {
      auto request = mailbox_->AwaitRequest();
      if (!request.ok()) {
        // UNAVAILABLE: the server closed the mailbox, done with this worker.
        if (request.status().code() == StatusCode::kUnavailable) return 0;
        return Fail(request.status());
      }
      Status s = Serve(*request);
      if (!s.ok()) return Fail(s);
    }
  }

 private:
  static std::span<const std::byte> AsBytes(const std::string& s) {
    return std::as_bytes(std::span<const char>(s));
  }

  int Fail(const Status& status) {
    std::fprintf(stderr, "mmserve worker (model '%s'): %s\n", model_name_.c_str(),
                 status.message().c_str());
    return kWorkerExitProtocolError;
  }

  // A request from the mailbox: first the frames the server wrote to the
  // socket before it (regions to map, or the message itself), then the
  // request, then its reply (in the reply slot if it fits).
  Status Serve(const Mailbox::Request& request) {
    if (request.on_socket && request.socket_frames == 0) {
      return InvalidArgument("worker mailbox: a request on the socket, but no frame announced");
    }
    const uint32_t before = request.socket_frames - (request.on_socket ? 1 : 0);
    for (uint32_t i = 0; i < before; ++i) {
      MM_ASSIGN_OR_RETURN(WorkerFrame frame, reader_.Read());
      if (frame.header.type != WorkerMessageType::kRegion) {
        return InvalidArgument("worker mailbox: a " +
                               std::string(WorkerMessageTypeName(frame.header.type)) +
                               " frame on the socket where a Region was announced");
      }
      MM_RETURN_IF_ERROR(Handle(frame.header.type, AsBytes(frame.payload), frame.fd).status());
    }
    WorkerFrame frame;
    std::span<const std::byte> payload = request.payload;
    if (request.on_socket) {
      MM_ASSIGN_OR_RETURN(frame, reader_.Read());
      if (frame.header.type != request.type || frame.header.request_id != request.request_id) {
        return InvalidArgument("worker mailbox: a " +
                               std::string(WorkerMessageTypeName(frame.header.type)) +
                               " frame on the socket where the request itself was announced");
      }
      payload = AsBytes(frame.payload);
    }
    MM_ASSIGN_OR_RETURN(auto reply, Handle(request.type, payload, frame.fd));
    if (!reply) {
      return InvalidArgument("worker mailbox: a " +
                             std::string(WorkerMessageTypeName(request.type)) +
                             " request, which has no reply");
    }
    const bool fits = reply->size() <= mailbox_->slot_payload_bytes();
    if (!fits) {
      MM_RETURN_IF_ERROR(
          WriteWorkerFrame(socket_, WorkerMessageType::kReply, request.request_id, *reply));
    }
    mailbox_->Reply(request.request_id, !fits, fits ? std::string_view(*reply) : "");
    return OkStatus();
  }

  // Handles one request; its reply payload, or none (Region).
  StatusOr<std::optional<std::string>> Handle(WorkerMessageType type,
                                              std::span<const std::byte> bytes, OwnedFd& fd) {
    switch (type) {
      case WorkerMessageType::kRegion: {
        MM_ASSIGN_OR_RETURN(RegionMessage message, DecodeRegion(bytes));
        MM_ASSIGN_OR_RETURN(regions_[message.id], SharedRegion::Adopt(fd.release(), message.bytes));
        region_sizes_[message.id] = message.bytes;
        return std::nullopt;
      }
      case WorkerMessageType::kMailbox: {
        MM_ASSIGN_OR_RETURN(uint64_t size, DecodeMailbox(bytes));
        if (mailbox_) return InvalidArgument("a second mailbox for this worker");
        MM_ASSIGN_OR_RETURN(mailbox_, Mailbox::Adopt(fd.release(), size));
        return EncodeStatusReply({OkStatus()});
      }
      case WorkerMessageType::kLoad: {
        MM_ASSIGN_OR_RETURN(LoadRequest load, DecodeLoad(bytes));
        return EncodeLoadReply(Load(load));
      }
      case WorkerMessageType::kExecute: {
        MM_ASSIGN_OR_RETURN(ExecuteRequest execute, DecodeExecute(bytes, region_sizes_));
        return EncodeExecuteReply(Execute(std::move(execute)));
      }
      case WorkerMessageType::kHealth:
        return EncodeStatusReply({OkStatus()});
      case WorkerMessageType::kStats: {
        StatsReply reply;
        reply.stats.resident_bytes = ProcessResidentBytes();
        reply.stats.executions = executions_;
        return EncodeStatsReply(reply);
      }
      case WorkerMessageType::kUnload:
        instance_ = nullptr;
        model_.reset();
        ReleaseFreeMemory();
        return EncodeStatusReply({OkStatus()});
      case WorkerMessageType::kReply:
        break;
    }
    return InvalidArgument("unexpected " + std::string(WorkerMessageTypeName(type)) +
                           " message from the server");
  }

  LoadReply Load(const LoadRequest& load) {
    model_name_ = load.model_name;
    if (model_) return {FailedPrecondition("this worker has a model loaded already"), ""};
    auto it = backends_.find(load.platform);
    if (it == backends_.end()) {
      return {InvalidArgument("platform '" + load.platform + "' is not supported by this server"),
              ""};
    }
    LoadSpec spec;
    spec.model_name = load.model_name;
    spec.version = load.version;
    spec.model_dir = load.model_dir;
    spec.version_dir = spec.model_dir / std::to_string(load.version);
    spec.has_config = load.has_config;
    if (!spec.config.ParseFromString(load.config)) {
      return {InvalidArgument("the model config sent to the worker does not parse"), ""};
    }
    // One instance per worker: the server starts one worker per instance.
    spec.config.clear_instance_group();
    spec.config.add_instance_group()->set_count(1);
    if (load.memory_limit_bytes > 0) {
      const uint64_t now = AddressSpaceBytes();
      rlimit limit{};
      limit.rlim_cur = limit.rlim_max = LimitAbove(now, load.memory_limit_bytes);
      if (::setrlimit(RLIMIT_AS, &limit) != 0) {
        return {Internal(std::string("cannot set the memory limit (RLIMIT_AS): ") +
                         std::strerror(errno)),
                ""};
      }
    }
    auto loaded = it->second->Load(spec);
    if (!loaded.ok()) return {loaded.status(), ""};
    model_ = std::move(*loaded);
    if (model_->instances.empty()) {
      model_.reset();
      return {Internal("the backend loaded no instance"), ""};
    }
    instance_ = model_->instances.front().get();
    std::string config;
    model_->config.SerializeToString(&config);
    return {OkStatus(), std::move(config)};
  }

  ExecuteReply Execute(ExecuteRequest execute) {
    ExecuteReply reply;
    if (instance_ == nullptr) {
      reply.status = FailedPrecondition("no model is loaded in this worker");
      return reply;
    }
    const std::span<std::byte> region = regions_[execute.region]->bytes();
    InferRequest request;
    request.model_name = model_name_;
    request.inputs.reserve(execute.inputs.size());
    for (ShmTensor& in : execute.inputs) {
      Tensor t;
      t.name = std::move(in.name);
      t.dtype = in.dtype;
      t.shape = std::move(in.shape);
      t.data = region.subspan(in.offset, in.bytes);
      request.inputs.push_back(std::move(t));
    }
    request.outputs.reserve(execute.outputs.size());
    for (std::string& name : execute.outputs) request.outputs.push_back({std::move(name), {}});
    InferResponse response;
    reply.status = instance_->Execute(request, response);
    ++executions_;
    if (!reply.status.ok()) return reply;
    // Lay the outputs out after output_offset, each 64-byte aligned.
    uint64_t end = execute.output_offset;
    reply.outputs.reserve(response.outputs.size());
    for (const Tensor& out : response.outputs) {
      const uint64_t at = AlignUp(end);
      reply.outputs.push_back({out.name, out.dtype, out.shape, at, out.data.size()});
      end = at + out.data.size();
    }
    if (end > region.size()) {
      ExecuteReply grow;
      grow.status = ResourceExhausted("the outputs need " + std::to_string(end) +
                                      " bytes of shared memory, the region has " +
                                      std::to_string(region.size()));
      grow.region_bytes_needed = end;
      return grow;
    }
    for (size_t i = 0; i < response.outputs.size(); ++i) {
      const auto& data = response.outputs[i].data;
      if (!data.empty())
        std::memcpy(region.data() + reply.outputs[i].offset, data.data(), data.size());
    }
    return reply;
  }

  const int socket_;
  FrameReader reader_;
  const std::map<std::string, Backend*, std::less<>>& backends_;
  std::string model_name_;
  std::unique_ptr<Mailbox> mailbox_;  // once the server has sent one
  std::array<std::unique_ptr<SharedRegion>, kMaxRegions> regions_;
  std::array<uint64_t, kMaxRegions> region_sizes_{};  // 0: not mapped
  std::unique_ptr<LoadedModel> model_;
  ModelInstance* instance_ = nullptr;
  uint64_t executions_ = 0;
};

}  // namespace

int RunWorker(int socket, const std::map<std::string, Backend*, std::less<>>& backends) {
  std::set_new_handler(OutOfMemory);
  return Worker(socket, backends).Run();
}

}  // namespace mm
