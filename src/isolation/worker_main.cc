#include "isolation/worker_main.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>

#include "core/memory.h"
#include "isolation/instance_placement.h"
#include "isolation/mailbox.h"
#include "isolation/memory_limit.h"
#include "isolation/shared_region.h"
#include "isolation/worker_channel.h"
#include "isolation/worker_model_host.h"
#include "isolation/worker_protocol.h"
#include "isolation/worker_response_sender.h"

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
  Worker(int socket, BackendRegistry& backends)
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
      auto replies = Handle(frame->header.type, AsBytes(frame->payload), frame->fd, reply_);
      if (!replies.ok()) return Fail(replies.status());
      if (*replies) {
        Status s = WriteWorkerFrame(socket_, WorkerMessageType::kReply, id, reply_);
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
      MM_RETURN_IF_ERROR(
          Handle(frame.header.type, AsBytes(frame.payload), frame.fd, reply_).status());
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
    MM_ASSIGN_OR_RETURN(bool replies, Handle(request.type, payload, frame.fd, reply_));
    if (!replies) {
      return InvalidArgument("worker mailbox: a " +
                             std::string(WorkerMessageTypeName(request.type)) +
                             " request, which has no reply");
    }
    const bool fits = reply_.size() <= mailbox_->slot_payload_bytes();
    if (!fits) {
      MM_RETURN_IF_ERROR(
          WriteWorkerFrame(socket_, WorkerMessageType::kReply, request.request_id, reply_));
    }
    mailbox_->Reply(request.request_id, !fits, fits ? std::string_view(reply_) : "");
    return OkStatus();
  }

  // Handles one request; whether it has a reply (all but Region do), and
  // then its payload in `out`.
  StatusOr<bool> Handle(WorkerMessageType type, std::span<const std::byte> bytes, OwnedFd& fd,
                        std::string& out) {
    switch (type) {
      case WorkerMessageType::kRegion: {
        MM_ASSIGN_OR_RETURN(RegionMessage message, DecodeRegion(bytes));
        MM_ASSIGN_OR_RETURN(regions_[message.id], SharedRegion::Adopt(fd.release(), message.bytes));
        region_sizes_[message.id] = message.bytes;
        return false;
      }
      case WorkerMessageType::kMailbox: {
        MM_ASSIGN_OR_RETURN(uint64_t size, DecodeMailbox(bytes));
        if (mailbox_) return InvalidArgument("a second mailbox for this worker");
        MM_ASSIGN_OR_RETURN(mailbox_, Mailbox::Adopt(fd.release(), size));
        out = EncodeStatusReply({OkStatus()});
        return true;
      }
      case WorkerMessageType::kCalls: {
        // The call socket (v4): what the model asks of the server goes there.
        if (host_) return InvalidArgument("a second call socket for this worker");
        host_ = std::make_shared<WorkerModelHost>(std::move(fd),
                                                  "worker " + std::to_string(::getpid()));
        out = EncodeStatusReply({OkStatus()});
        return true;
      }
      case WorkerMessageType::kLoad: {
        MM_ASSIGN_OR_RETURN(LoadRequest load, DecodeLoad(bytes));
        out = EncodeLoadReply(Load(load));
        return true;
      }
      case WorkerMessageType::kExecute: {
        MM_RETURN_IF_ERROR(DecodeExecuteInto(bytes, region_sizes_, execute_));
        Execute();
        EncodeExecuteReplyTo(execute_reply_, out);
        return true;
      }
      case WorkerMessageType::kHealth:
        out = EncodeStatusReply({OkStatus()});
        return true;
      case WorkerMessageType::kStats: {
        StatsReply reply;
        reply.stats.resident_bytes = ProcessResidentBytes();
        reply.stats.executions = executions_;
        out = EncodeStatsReply(reply);
        return true;
      }
      case WorkerMessageType::kUnload:
        instance_ = nullptr;
        model_.reset();
        ReleaseFreeMemory();
        out = EncodeStatusReply({OkStatus()});
        return true;
      default:
        break;
    }
    return InvalidArgument("unexpected " + std::string(WorkerMessageTypeName(type)) +
                           " message from the server");
  }

  LoadReply Load(const LoadRequest& load) {
    model_name_ = load.model_name;
    if (model_) return {FailedPrecondition("this worker has a model loaded already"), "", false};
    // The backend is created now, before the memory limit below.
    auto backend = backends_.Find(load.platform);
    if (!backend.ok()) return {backend.status(), "", false};
    LoadSpec spec;
    spec.model_name = load.model_name;
    spec.version = load.version;
    spec.model_dir = load.model_dir;
    spec.version_dir = spec.model_dir / std::to_string(load.version);
    spec.has_config = load.has_config;
    spec.host = host_;  // null when the server sent no call socket
    if (!spec.config.ParseFromString(load.config)) {
      return {InvalidArgument("the model config sent to the worker does not parse"), "", false};
    }
    // One instance per worker: the server starts one worker per instance;
    // it keeps its name among the model's (Triton's <group>_<index>).
    // Its group's kind and, for KIND_GPU, its one GPU (instance_placement.h).
    WorkerPlacement placement =
        PlaceWorkerInstance(spec.config, load.model_name, load.instance_index);
    spec.instance_names.push_back(std::move(placement.name));
    spec.config.clear_instance_group();
    *spec.config.add_instance_group() = std::move(placement.group);
    if (load.memory_limit_bytes > 0) {
      const uint64_t now = AddressSpaceBytes();
      rlimit limit{};
      limit.rlim_cur = limit.rlim_max = LimitAbove(now, load.memory_limit_bytes);
      if (::setrlimit(RLIMIT_AS, &limit) != 0) {
        return {Internal(std::string("cannot set the memory limit (RLIMIT_AS): ") +
                         std::strerror(errno)),
                "", false};
      }
    }
    auto loaded = backend->backend->Load(spec);
    if (!loaded.ok()) return {loaded.status(), "", false};
    model_ = std::move(*loaded);
    if (model_->instances.empty()) {
      model_.reset();
      return {Internal("the backend loaded no instance"), "", false};
    }
    instance_ = model_->instances.front().get();
    std::string config;
    model_->config.SerializeToString(&config);
    LoadReply reply{OkStatus(), std::move(config), model_->batch_as_list};
    if (Status fits = CheckLoadReplyFits(reply); !fits.ok()) {
      instance_ = nullptr;
      model_.reset();
      return {fits, "", false};
    }
    return reply;
  }

  // Runs execute_ into execute_reply_: one request through Execute, several
  // (a model that batches as a list) through ExecuteList, each answered
  // with its own outputs or error. execute_, execute_reply_ and the request
  // and response lists keep their buffers from batch to batch.
  void Execute() {
    const auto begin = std::chrono::steady_clock::now();
    ExecuteReply& reply = execute_reply_;
    reply.status = OkStatus();
    reply.region_bytes_needed = 0;
    reply.input_ns = reply.output_ns = 0;
    if (instance_ == nullptr) {
      reply.results.clear();
      reply.status = FailedPrecondition("no model is loaded in this worker");
      return;
    }
    const ExecuteRequest& execute = execute_;
    const size_t n = execute.requests.size();
    const std::span<std::byte> region = regions_[execute.region]->bytes();
    if (requests_.size() < n) {
      requests_.resize(n);
      responses_.resize(n);
    }
    request_ptrs_.resize(n);
    response_ptrs_.resize(n);
    statuses_.resize(n);
    for (size_t r = 0; r < n; ++r) {
      const ExecuteItem& item = execute.requests[r];
      InferRequest& request = requests_[r];
      request.model_name = model_name_;
      request.id.assign(item.id);
      request.parameters.clear();
      for (const auto& [key, value] : item.parameters) request.parameters.emplace(key, value);
      request.inputs.resize(item.inputs.size());
      for (size_t i = 0; i < item.inputs.size(); ++i) {
        const ShmTensor& in = item.inputs[i];
        Tensor& t = request.inputs[i];
        t.name.assign(in.name);
        t.dtype = in.dtype;
        t.shape.assign(in.shape.begin(), in.shape.end());
        t.data = region.subspan(in.offset, in.bytes);
      }
      request.outputs.resize(item.outputs.size());
      for (size_t i = 0; i < item.outputs.size(); ++i) {
        request.outputs[i].name.assign(item.outputs[i]);
      }
      responses_[r].outputs.clear();
      responses_[r].timing = {};
      request_ptrs_[r] = &request;
      response_ptrs_[r] = &responses_[r];
    }
    if (execute.decoupled_token != 0) {
      ExecuteDecoupled(n);
      return;
    }
    const auto run = std::chrono::steady_clock::now();
    if (n == 1) {
      statuses_[0] = instance_->Execute(requests_[0], responses_[0]);
    } else {
      for (Status& st : statuses_) st = OkStatus();
      reply.status = instance_->ExecuteList(request_ptrs_, response_ptrs_, statuses_);
    }
    const auto ran = std::chrono::steady_clock::now();
    ++executions_;
    if (!reply.status.ok()) {
      reply.results.clear();
      return;
    }
    // Lay each request's outputs out after output_offset, each 64-byte aligned.
    uint64_t end = execute.output_offset;
    reply.results.resize(n);
    for (size_t r = 0; r < n; ++r) {
      ExecuteResult& result = reply.results[r];
      result.status = std::move(statuses_[r]);
      result.outputs.clear();
      if (!result.status.ok()) continue;
      const InferResponse& response = responses_[r];
      result.outputs.resize(response.outputs.size());
      const uint64_t first = end;
      for (size_t i = 0; i < response.outputs.size(); ++i) {
        const Tensor& out = response.outputs[i];
        ShmTensor& t = result.outputs[i];
        const uint64_t at = AlignUp(end);
        t.name.assign(out.name);
        t.dtype = out.dtype;
        t.shape.assign(out.shape.begin(), out.shape.end());
        t.offset = at;
        t.bytes = out.data.size();
        end = at + out.data.size();
      }
      if (Status fits = CheckExecuteResultFits(result); !fits.ok()) {
        // Never a reply the server would refuse (it would take it for a
        // broken channel and restart this worker): the request fails, saying why.
        result.outputs.clear();
        result.status = Internal("model '" + model_name_ + "': " + fits.message());
        end = first;
      }
    }
    if (end > region.size()) {
      reply.results.clear();
      reply.status = ResourceExhausted("the outputs need " + std::to_string(end) +
                                       " bytes of shared memory, the region has " +
                                       std::to_string(region.size()));
      reply.region_bytes_needed = end;
      return;
    }
    for (size_t r = 0; r < n; ++r) {
      const ExecuteResult& result = reply.results[r];
      for (size_t i = 0; i < result.outputs.size(); ++i) {
        const auto& data = responses_[r].outputs[i].data;
        if (!data.empty()) {
          std::memcpy(region.data() + result.outputs[i].offset, data.data(), data.size());
        }
      }
      responses_[r].outputs.clear();  // what the backend lent is given back now
    }
    // Stage times: the worker's own preparation and copying out, plus what
    // the backend told apart within its run (the first request's, for a list).
    auto ns = [](auto d) {
      return static_cast<uint64_t>(
          std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
    };
    const ExecutionTiming& backend = responses_[0].timing;
    reply.input_ns =
        ns(run - begin) + static_cast<uint64_t>(std::max<int64_t>(0, backend.input_ns));
    reply.output_ns = ns(std::chrono::steady_clock::now() - ran) +
                      static_cast<uint64_t>(std::max<int64_t>(0, backend.output_ns));
  }

  // A decoupled model's batch (requests_[0..n)): each request answered
  // through a WorkerResponseSender (Respond messages on the call socket);
  // the reply, with no outputs, once the model's execute returned.
  void ExecuteDecoupled(size_t n) {
    ExecuteReply& reply = execute_reply_;
    reply.results.clear();
    if (!host_) {
      reply.status = FailedPrecondition(
          "a decoupled batch, but this worker has no call socket to answer it on");
      return;
    }
    std::vector<std::shared_ptr<ResponseSender>> senders(n);
    std::vector<WorkerResponseSender*> own(n);
    for (size_t r = 0; r < n; ++r) {
      auto sender = std::make_shared<WorkerResponseSender>(
          host_, model_name_, execute_.decoupled_token, static_cast<uint32_t>(r),
          WorkerResponseSender::OwnedRequest(model_name_, requests_[r]));
      own[r] = sender.get();
      senders[r] = std::move(sender);
    }
    Status s = instance_->ExecuteDecoupled(senders);
    ++executions_;
    if (!s.ok()) {
      // The server completes the requests still open with this error.
      for (WorkerResponseSender* sender : own) sender->Abandon();
      reply.status = std::move(s);
      return;
    }
    reply.results.resize(n);
    for (ExecuteResult& result : reply.results) {
      result.status = OkStatus();
      result.outputs.clear();
    }
    // Senders the model did not keep complete now (INTERNAL, as backend.h says).
  }

  const int socket_;
  FrameReader reader_;
  BackendRegistry& backends_;
  std::string model_name_;
  std::unique_ptr<Mailbox> mailbox_;  // once the server has sent one
  // Over the call socket, once the server has sent one (before Load). Held
  // by the model too; it outlives the model here (destroyed after it).
  std::shared_ptr<WorkerModelHost> host_;
  // Reused from request to request (their buffers keep their capacity).
  ExecuteRequest execute_;
  std::vector<InferRequest> requests_;  // grown to the largest batch so far
  std::vector<InferResponse> responses_;
  std::vector<const InferRequest*> request_ptrs_;
  std::vector<InferResponse*> response_ptrs_;
  std::vector<Status> statuses_;
  ExecuteReply execute_reply_;
  std::string reply_;  // the payload of the reply to send
  std::array<std::unique_ptr<SharedRegion>, kMaxRegions> regions_;
  std::array<uint64_t, kMaxRegions> region_sizes_{};  // 0: not mapped
  std::unique_ptr<LoadedModel> model_;
  ModelInstance* instance_ = nullptr;
  uint64_t executions_ = 0;
};

}  // namespace

int RunWorker(int socket, BackendRegistry& backends) {
  std::set_new_handler(OutOfMemory);
  return Worker(socket, backends).Run();
}

}  // namespace mm
