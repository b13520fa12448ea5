#include "isolation/worker_instance.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/blocking_wait.h"
#include "core/memory.h"
#include "isolation/region_pool.h"
#include "isolation/shared_region.h"
#include "isolation/worker_call_server.h"
#include "isolation/worker_channel.h"
#include "isolation/worker_core_util.h"
#include "isolation/worker_main.h"
#include "isolation/worker_process.h"
#include "isolation/worker_supervisor.h"

namespace mm::isolation_internal {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long an unloading model may take to finalize in its worker.
constexpr milliseconds kUnloadGrace{5000};

}  // namespace

// One worker process and what the server keeps for it; shared with the
// supervisor's callbacks through weak references.
class WorkerCore : public std::enable_shared_from_this<WorkerCore> {
 public:
  WorkerCore(std::shared_ptr<WorkerSupervisor> supervisor, std::shared_ptr<WorkerGroup> group,
             std::shared_ptr<const WorkerSettings> settings, size_t index)
      : supervisor_(std::move(supervisor)),
        group_(std::move(group)),
        settings_(std::move(settings)),
        index_(index),
        regions_(settings_->load.model_name, settings_->initial_region_bytes, settings_->label) {}

  // Starts the worker and loads the model in it; returns the worker's
  // LoadReply (the complete config, serialized). Blocks for the load. Called while the worker is
  // down.
  StatusOr<LoadReply> Start() {
    const WorkerSettings& s = *settings_;
    MM_ASSIGN_OR_RETURN(auto process, supervisor_->Spawn(s.argv, s.load_nice));
    const uint64_t generation = ++starts_;  // names this worker process in callbacks
    // The start-up (the worker's health, its model's load, its mailbox) has
    // a deadline: a worker that hangs in it is killed, and the start fails.
    const Clock::time_point deadline = Clock::now() + s.start_timeout;
    std::unique_ptr<CgroupGroup> cgroup;
    uint64_t watchdog = 0;
    if (s.memory_limit > 0 && s.limit_kind == MemoryLimitKind::kCgroupV2) {
      auto g =
          CgroupGroup::Create("mmserve-worker-" + std::to_string(process->pid()), s.memory_limit);
      if (g.ok() && (*g)->AddProcess(process->pid()).ok()) {
        cgroup = std::move(*g);
      } else {
        spdlog::warn("{}: no cgroup for the worker, the memory limit falls back to the {}", s.label,
                     MemoryLimitKindName(MemoryLimitKind::kResidentWatchdog));
        watchdog = s.memory_limit;
      }
    } else if (s.memory_limit > 0 && s.limit_kind == MemoryLimitKind::kResidentWatchdog) {
      watchdog = s.memory_limit;
    }
    // A new worker maps no region yet: each is sent before the first batch
    // that uses it. (Regions a response still holds stay alive with it.)
    regions_.Clear();
    uint64_t baseline = 0;
    reader_ = std::make_unique<FrameReader>(process->socket());
    socket_frames_ = 0;
    std::unique_ptr<Mailbox> mailbox;
    std::shared_ptr<WorkerCallServer> calls;
    auto config =
        Handshake(*process, generation, cgroup.get(), &baseline, &mailbox, &calls, deadline);
    if (!config.ok() && calls != nullptr) calls->Shutdown(config.status());
    if (!config.ok()) {
      // Say how it ended if it did (it is not watched yet: reap it here).
      process->Kill(SIGKILL);
      const WorkerExit exit = process->Wait();
      if (const std::string stopping = supervisor_->shutdown_reason(); !stopping.empty()) {
        return Unavailable(s.label + ": worker not started: the server is " + stopping);
      }
      if (config.status().code() == StatusCode::kDeadlineExceeded) {
        return DeadlineExceeded(s.label + ": the worker did not finish starting (loading the " +
                                "model) within the start timeout of " + Seconds(s.start_timeout) +
                                " (--worker-start-timeout-secs), and was killed");
      }
      const std::string cause = Classify(exit, cgroup.get(), /*killed_for=*/"");
      if (config.status().code() == StatusCode::kUnavailable) {
        return Unavailable(s.label + " " + cause + " while loading");
      }
      return config.status();
    }
    if (s.serve_nice != s.load_nice) ServeAt(process->pid(), s.serve_nice, s.label);
    // From now on a reply that takes longer than the execution timeout is a
    // hung worker (AwaitReply says so, and Read for a reply on the socket);
    // without one, the socket waits as long as the batch runs.
    SetSocketTimeouts(process->socket(), s.execution_timeout, milliseconds(0));
    WorkerSupervisor::Watch watch;
    watch.pidfd = process->pidfd();
    watch.pid = process->pid();
    std::weak_ptr<WorkerCore> weak = weak_from_this();
    const int pidfd = process->pidfd();
    watch.on_exit = [weak, pidfd] {
      if (auto core = weak.lock()) core->OnExit(pidfd);
    };
    watch.rss_limit_bytes = watchdog > 0 ? LimitAbove(baseline, watchdog) : 0;
    watch.on_over_limit = [weak, pidfd, baseline](uint64_t rss) {
      if (auto core = weak.lock()) core->OnOverLimit(pidfd, rss, baseline);
    };
    MutexLock lock(mu_);
    if (stopped_) {
      if (calls != nullptr) calls->Shutdown(Unavailable(s.label + " is unloading"));
      return Unavailable(s.label + " is unloading");
    }
    calls_ = std::move(calls);
    generation_ = generation;
    process_ = std::move(process);
    mailbox_ = std::move(mailbox);
    cgroup_ = std::move(cgroup);
    watch_ = supervisor_->Add(std::move(watch));
    up_ = true;
    started_ = Clock::now();
    return config;
  }

  Status ExecuteDecoupled(std::span<const std::shared_ptr<ResponseSender>> senders) {
    std::shared_ptr<WorkerCallServer> calls;
    {
      MutexLock lock(mu_);
      calls = calls_;
    }
    const uint64_t token = calls != nullptr ? calls->BeginDecoupled(senders) : 0;
    if (token == 0) {
      return Unavailable(settings_->label + ": the worker has no call channel (a decoupled model " +
                         "answers on it); it is down or restarting");
    }
    const size_t n = senders.size();
    std::vector<const InferRequest*> requests(n);
    std::vector<InferResponse> responses(n);
    std::vector<InferResponse*> response_ptrs(n);
    std::vector<Status> results(n);
    for (size_t i = 0; i < n; ++i) {
      requests[i] = &senders[i]->request();
      response_ptrs[i] = &responses[i];
    }
    // (The requests are read until the Execute is posted; the worker's first
    // Respond, which may complete one, comes after.)
    Status s = ExecuteList(requests, response_ptrs, results, token);
    // The worker lost (died, hung, unloading): its call server completes the
    // requests still open with the cause, after their last responses.
    if (s.code() == StatusCode::kUnavailable) return OkStatus();
    if (!s.ok()) calls->FailDecoupled(token, s);
    return s;
  }

  Status ExecuteList(std::span<const InferRequest* const> requests,
                     std::span<InferResponse* const> responses, std::span<Status> results,
                     uint64_t decoupled_token = 0) {
    WorkerProcess* process;
    Mailbox* mailbox;
    {
      MutexLock lock(mu_);
      if (!up_ || stopped_) {
        return Unavailable(settings_->label + " " +
                           (stopped_ ? std::string("is unloading") : down_cause_));
      }
      executing_ = true;
      process = process_.get();
      mailbox = mailbox_.get();
    }
    Status s;
    {
      // The batch waits on the worker: a stalled one may hold this thread,
      // but the thread's execution slot goes to other work (BlockingWait).
      BlockingWait waiting_on_worker;
      s = ExecuteOn(*process, *mailbox, requests, responses, results, decoupled_token);
    }
    {
      MutexLock lock(mu_);
      executing_ = false;
    }
    cv_.NotifyAll();
    return s;
  }

  uint64_t ResidentBytes() {
    MutexLock lock(mu_);
    return process_ ? ResidentBytesOf(process_->pid()) : 0;
  }

  // Ends the worker for good (unload).
  void Stop() {
    std::unique_ptr<WorkerProcess> process;
    WorkerSupervisor::WatchId watch = 0;
    std::shared_ptr<WorkerCallServer> calls;
    Mailbox* mailbox = nullptr;
    {
      MutexLock lock(mu_);
      stopped_ = true;
      while (executing_) cv_.Wait(lock);
      if (up_) mailbox = mailbox_.get();  // (no batch or restart uses it from now on)
      process = std::move(process_);
      watch = watch_;
      watch_ = 0;
      calls = std::move(calls_);
    }
    // The model unloads in the worker first (a Python model's finalize runs),
    // within a bound; its call channel serves it meanwhile.
    if (mailbox != nullptr && process != nullptr) UnloadModel(*mailbox);
    if (calls != nullptr) calls->Shutdown(Unavailable(settings_->label + " is unloading"));
    if (watch != 0) supervisor_->Remove(watch);
    process.reset();  // SIGKILL and reap: the model's memory goes at once
  }

 private:
  // Health (the worker has started up: its resident memory then is the
  // baseline a memory limit counts from), then Load, then the mailbox the
  // worker takes its requests from after that; the load's reply config.
  // Every step within `deadline` (DEADLINE_EXCEEDED past it).
  StatusOr<LoadReply> Handshake(WorkerProcess& process, uint64_t generation, CgroupGroup* cgroup,
                                uint64_t* baseline, std::unique_ptr<Mailbox>* mailbox,
                                std::shared_ptr<WorkerCallServer>* calls,
                                Clock::time_point deadline) {
    const int socket = process.socket();
    const auto in_time = [&]() -> Status {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return DeadlineExceeded(settings_->label + ": worker start timed out");
      SetSocketTimeouts(socket, left, left);
      return OkStatus();
    };
    uint32_t id = ++next_id_;
    MM_RETURN_IF_ERROR(in_time());
    MM_RETURN_IF_ERROR(WriteWorkerFrame(socket, WorkerMessageType::kHealth, id, ""));
    MM_RETURN_IF_ERROR(in_time());
    MM_ASSIGN_OR_RETURN(WorkerFrame health, ReadReply(socket, id));
    MM_ASSIGN_OR_RETURN(StatusReply healthy, DecodeStatusReply(AsBytes(health.payload)));
    MM_RETURN_IF_ERROR(healthy.status);
    *baseline = ResidentBytesOf(process.pid());
    if (cgroup != nullptr)
      MM_RETURN_IF_ERROR(cgroup->SetLimit(LimitAbove(*baseline, settings_->memory_limit)));
    if (settings_->hub != nullptr) {
      // The call socket, before Load: a model may create metrics as it loads.
      MM_RETURN_IF_ERROR(in_time());
      MM_ASSIGN_OR_RETURN(*calls, OpenCalls(process, generation, ++next_id_));
      MM_RETURN_IF_ERROR(in_time());
      MM_ASSIGN_OR_RETURN(WorkerFrame ack, ReadReply(socket, next_id_));
      MM_ASSIGN_OR_RETURN(StatusReply adopted, DecodeStatusReply(AsBytes(ack.payload)));
      MM_RETURN_IF_ERROR(adopted.status);
    }
    id = ++next_id_;
    MM_RETURN_IF_ERROR(in_time());
    MM_RETURN_IF_ERROR(
        WriteWorkerFrame(socket, WorkerMessageType::kLoad, id, EncodeLoad(LoadFor(index_))));
    MM_RETURN_IF_ERROR(in_time());
    MM_ASSIGN_OR_RETURN(WorkerFrame frame, ReadReply(socket, id));
    MM_ASSIGN_OR_RETURN(LoadReply reply, DecodeLoadReply(AsBytes(frame.payload)));
    MM_RETURN_IF_ERROR(reply.status);
    auto created =
        Mailbox::Create(settings_->load.model_name + "-mailbox", settings_->mailbox_bytes);
    if (!created.ok()) {
      return ResourceExhausted(settings_->label + ": no shared memory for the worker's mailbox: " +
                               created.status().message());
    }
    id = ++next_id_;
    MM_RETURN_IF_ERROR(in_time());
    MM_RETURN_IF_ERROR(WriteWorkerFrameWithFd(socket, WorkerMessageType::kMailbox, id,
                                              EncodeMailbox((*created)->size()), (*created)->fd()));
    MM_RETURN_IF_ERROR(in_time());
    MM_ASSIGN_OR_RETURN(WorkerFrame ack, ReadReply(socket, id));
    MM_ASSIGN_OR_RETURN(StatusReply adopted, DecodeStatusReply(AsBytes(ack.payload)));
    MM_RETURN_IF_ERROR(adopted.status);
    *mailbox = std::move(*created);
    return reply;
  }

  // A call socket for `process`: the server's end served by the hub, the
  // worker's sent in a Calls frame (request `id`; the caller reads the reply).
  // A call socket for `process`, announced in Calls request `id` (the
  // caller reads the reply).
  StatusOr<std::shared_ptr<WorkerCallServer>> OpenCalls(WorkerProcess& process, uint64_t generation,
                                                        uint32_t id) {
    std::weak_ptr<WorkerCore> weak = weak_from_this();
    return WorkerCallServer::Open(*settings_->hub, process.socket(), id, settings_->label,
                                  settings_->load.model_name, settings_->host,
                                  [weak, generation](const Status& why) {
                                    if (auto core = weak.lock()) core->OnCallsCut(generation, why);
                                  });
  }

  // The worker's call channel ended other than by our Shutdown: a worker
  // that broke its protocol is killed now (its model restarts); one that
  // closed it may be dying (its exit says why), else it is killed shortly.
  void OnCallsCut(uint64_t generation, const Status& why) {
    if (why.code() == StatusCode::kUnavailable) {
      std::weak_ptr<WorkerCore> weak = weak_from_this();
      supervisor_->After(milliseconds(1000), [weak, generation] {
        if (auto core = weak.lock())
          core->KillFor(generation, "killed: it closed its call channel");
      });
      return;
    }
    KillFor(generation, "killed: broken protocol on its call channel (" + why.message() + ")");
  }

  // Kills worker process `generation` (unless it is gone, or being killed).
  void KillFor(uint64_t generation, const std::string& reason) {
    MutexLock lock(mu_);
    if (!up_ || !process_ || generation_ != generation || !killed_for_.empty()) return;
    spdlog::error("{}: worker {}", settings_->label, reason);
    killed_for_ = reason;
    process_->Kill(SIGKILL);
  }

  // The Load of instance `index` (its own instance_index).
  LoadRequest LoadFor(size_t index) const {
    LoadRequest load = settings_->load;
    load.instance_index = static_cast<uint32_t>(index);
    return load;
  }

  // Unload, answered within kUnloadGrace (else the worker is killed anyway).
  void UnloadModel(Mailbox& mailbox) {
    const uint32_t id = ++next_id_;
    if (!mailbox.Post(WorkerMessageType::kUnload, id, socket_frames_, false, "").ok()) return;
    socket_frames_ = 0;
    bool on_socket = false;
    std::string reply;
    if (Status s = mailbox.AwaitReply(kUnloadGrace, &on_socket, reply); !s.ok()) {
      spdlog::warn("{}: the worker did not unload its model within {} ({}); it is killed",
                   settings_->label, Seconds(kUnloadGrace), s.message());
    }
  }

  static std::span<const std::byte> AsBytes(const std::string& s) {
    return std::as_bytes(std::span<const char>(s));
  }

  StatusOr<WorkerFrame> ReadReply(int socket, uint32_t id) {
    MM_ASSIGN_OR_RETURN(WorkerFrame frame, reader_->Read());
    if (frame.header.type != WorkerMessageType::kReply || frame.header.request_id != id) {
      return InvalidArgument("worker answered a " +
                             std::string(WorkerMessageTypeName(frame.header.type)) +
                             " for request " + std::to_string(frame.header.request_id) +
                             ", expected the reply to " + std::to_string(id));
    }
    return frame;
  }

  // One Execute: every request's inputs in one region, a result per request.
  Status ExecuteOn(WorkerProcess& process, Mailbox& mailbox,
                   std::span<const InferRequest* const> requests,
                   std::span<InferResponse* const> responses, std::span<Status> results,
                   uint64_t decoupled_token) {
    // The stages' times (ExecutionTiming): input until the request is
    // posted, output from the reply on; the worker's part is the infer.
    const auto begin = std::chrono::steady_clock::now();
    // execute_ and payload_ keep their capacity from batch to batch.
    ExecuteRequest& execute = execute_;
    const size_t n = requests.size();
    const uint64_t end = DescribeBatch(requests, execute);
    execute.decoupled_token = decoupled_token;
    // What the server took in its own process but the protocol cannot carry
    // is refused here, the worker untouched (it would refuse the message by
    // ending the conversation: a restart for a bad request).
    if (Status fits = CheckExecuteFits(execute); !fits.ok()) {
      return InvalidArgument(settings_->label + ": " + fits.message());
    }
    // Room for the inputs and, at first guess, outputs as large again.
    auto region_id = regions_.Take(
        process.socket(), execute.output_offset + std::max<uint64_t>(end, 4096), &socket_frames_);
    if (!region_id.ok()) return Failed(region_id.status());
    execute.region = *region_id;
    CopyInputs(requests, execute, regions_.at(execute.region)->bytes());
    EncodeExecuteTo(execute, payload_);
    const std::string& payload = payload_;
    if (payload.size() > kMaxPayloadBytes) {  // (for one request within the limits it never is)
      return InvalidArgument(
          settings_->label + ": the batch's description takes " + std::to_string(payload.size()) +
          " bytes; a model in a worker process takes at most " + std::to_string(kMaxPayloadBytes));
    }
    const bool on_socket = payload.size() > mailbox.slot_payload_bytes();
    const auto posting = std::chrono::steady_clock::now();
    const int64_t input_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(posting - begin).count();
    for (int attempt = 0;; ++attempt) {
      const uint32_t id = ++next_id_;
      if (on_socket) {
        Status s = WriteWorkerFrame(process.socket(), WorkerMessageType::kExecute, id, payload);
        if (!s.ok()) return Lost(s);
        ++socket_frames_;
      }
      Status s = mailbox.Post(WorkerMessageType::kExecute, id, socket_frames_, on_socket, payload);
      socket_frames_ = 0;
      if (!s.ok()) return Lost(s);
      bool reply_on_socket = false;
      s = mailbox.AwaitReply(settings_->execution_timeout, &reply_on_socket, reply_);
      if (!s.ok()) {
        if (s.code() == StatusCode::kDeadlineExceeded) KillHung(process);
        return Lost(s);
      }
      const auto replied = std::chrono::steady_clock::now();
      std::span<const std::byte> reply_bytes = AsBytes(reply_);
      WorkerFrame frame;
      if (reply_on_socket) {
        auto read = ReadReply(process.socket(), id);
        if (!read.ok()) {
          if (read.status().code() == StatusCode::kDeadlineExceeded) KillHung(process);
          return Lost(read.status());
        }
        frame = std::move(*read);
        reply_bytes = AsBytes(frame.payload);
      }
      const std::shared_ptr<SharedRegion>& region = regions_.at(execute.region);
      ExecuteReply* reply = &execute_reply_;
      s = DecodeExecuteReplyInto(reply_bytes, region->size(), *reply);
      if (!s.ok()) return Lost(s);
      if (!reply->status.ok()) {
        if (reply->region_bytes_needed > region->size() && attempt == 0) {
          // The outputs did not fit: a larger region (inputs copied over), once more.
          const std::shared_ptr<SharedRegion> old = region;
          s = regions_.Grow(process.socket(), execute.region, reply->region_bytes_needed,
                            &socket_frames_);
          if (!s.ok()) return Failed(s);
          std::memcpy(regions_.at(execute.region)->bytes().data(), old->bytes().data(),
                      execute.output_offset);
          continue;
        }
        return reply->status;
      }
      if (reply->results.size() != n) {
        return Lost(InvalidArgument(
            "worker message Execute reply: " + std::to_string(reply->results.size()) +
            " results for " + std::to_string(n) + " requests, expected one per request"));
      }
      // The outputs stay where the worker wrote them (each response tensor
      // holds the region, which no batch reuses while it is held). The
      // worker's stages join the host's; the rest of the wait is the infer.
      const int64_t output_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::steady_clock::now() - replied)
                                    .count() +
                                static_cast<int64_t>(reply->output_ns);
      TakeOutputs(*reply, region, input_ns, output_ns, responses, results);
      return OkStatus();
    }
  }

  // The reply did not come within the execution timeout: the worker is hung.
  void KillHung(WorkerProcess& process) {
    {
      MutexLock lock(mu_);
      killed_for_ = "killed: execution exceeded the timeout of " +
                    std::to_string(settings_->execution_timeout.count()) + " ms";
    }
    process.Kill(SIGKILL);
  }

  // A failure around a batch: the server's own (no memory for a region) fails
  // the batch alone; anything else is the channel's (Lost).
  Status Failed(const Status& s) {
    return s.code() == StatusCode::kResourceExhausted ? s : Lost(s);
  }

  // The channel failed: the worker is dying or dead (or talks nonsense, and
  // is killed). Waits for the reaper to say why, and answers that.
  Status Lost(const Status& what) {
    MutexLock lock(mu_);
    if (up_ && process_) {
      // Dead already (then this changes nothing), or broken: it goes either way.
      if (what.code() != StatusCode::kUnavailable && killed_for_.empty()) {
        killed_for_ = "killed: broken protocol (" + what.message() + ")";
      }
      process_->Kill(SIGKILL);
    }
    const auto give_up = Clock::now() + std::chrono::seconds(10);
    while (up_ && !stopped_ && cv_.WaitUntil(lock, give_up)) {
    }
    if (up_) return Unavailable(settings_->label + " worker: " + what.message());
    return Unavailable(settings_->label + " " + down_cause_);
  }

  void OnOverLimit(int pidfd, uint64_t rss, uint64_t baseline) {
    MutexLock lock(mu_);
    if (!process_ || process_->pidfd() != pidfd || !killed_for_.empty()) return;
    killed_for_ = "killed: memory limit " + FormatBytes(settings_->memory_limit) + " (the model " +
                  "used " + FormatBytes(rss - baseline) + " above the worker's start-up " +
                  FormatBytes(baseline) + "; " +
                  std::string(MemoryLimitKindName(MemoryLimitKind::kResidentWatchdog)) + ")";
    process_->Kill(SIGKILL);
  }

  std::string Classify(const WorkerExit& exit, const CgroupGroup* cgroup,
                       const std::string& killed_for) const {
    return DescribeExit(exit, cgroup, killed_for, settings_->memory_limit);
  }

  void OnExit(int pidfd) {
    milliseconds delay;
    std::string cause;
    int restart;
    const std::string stopping = supervisor_->shutdown_reason();
    std::shared_ptr<WorkerCallServer> calls;
    {
      MutexLock lock(mu_);
      if (stopped_ || !process_ || process_->pidfd() != pidfd) return;
      auto exit = process_->TryWait();
      if (!exit) return;
      cause = Classify(*exit, cgroup_.get(), killed_for_);
      killed_for_.clear();
      if (mailbox_) mailbox_->MarkGone();  // wakes a batch waiting for its reply
      up_ = false;
      watch_ = 0;
      calls = std::move(calls_);
      if (!stopping.empty()) {
        // Killed by the server's shutdown: nothing restarts.
        down_cause_ = "worker stopped: the server is " + stopping;
        const std::string why = settings_->label + " " + down_cause_;
        cv_.NotifyAll();
        lock.Unlock();
        if (calls != nullptr) calls->Shutdown(Unavailable(why));
        return;
      }
      if (Clock::now() - started_ > settings_->max_backoff) streak_ = 0;
      delay = Backoff();
      restart = ++restarts_;
      down_cause_ = cause + "; restart " + std::to_string(restart) + " in " + Seconds(delay);
    }
    // Down before the batch waiting in Lost is woken: a client that got its
    // request's UNAVAILABLE then finds the model not ready, never still READY.
    group_->Down(index_, cause + "; restart " + std::to_string(restart) + " in " + Seconds(delay));
    cv_.NotifyAll();
    // Decoupled requests still open end with the cause, once what the
    // worker wrote before it died is read (bounded: a descendant holding its
    // socket open does not hold them); BLS calls in flight find it gone.
    if (calls != nullptr) {
      const Status why = Unavailable(settings_->label + " " + cause);
      calls->WorkerGone(why);
      supervisor_->After(milliseconds(2000), [calls, why] { calls->Shutdown(why); });
    }
    spdlog::error("{} {}; restarting it in {} (restart {})", settings_->label, cause,
                  Seconds(delay), restart);
    ScheduleRestart(delay);
  }

  milliseconds Backoff() MM_REQUIRES(mu_) {
    milliseconds d = settings_->backoff;
    for (int i = 0; i < streak_ && d < settings_->max_backoff; ++i) d *= 2;
    ++streak_;
    return std::min(d, settings_->max_backoff);
  }

  void ScheduleRestart(milliseconds delay) {
    std::weak_ptr<WorkerCore> weak = weak_from_this();
    supervisor_->After(delay, [weak] {
      if (auto core = weak.lock()) core->Restart();
    });
  }

  void Restart() {
    std::unique_ptr<WorkerProcess> old;
    std::unique_ptr<CgroupGroup> old_cgroup;
    {
      MutexLock lock(mu_);
      while (executing_) cv_.Wait(lock);
      if (stopped_ || up_) return;
      old = std::move(process_);
      old_cgroup = std::move(cgroup_);
    }
    old.reset();
    old_cgroup.reset();
    auto started = Start();
    if (started.ok()) {
      spdlog::info("{}: worker {} restarted", settings_->label, index_);
      group_->Up(index_);
      return;
    }
    milliseconds delay;
    int restart;
    // The cause, without the model's label when it starts with it.
    std::string why = started.status().message();
    if (why.starts_with(settings_->label)) {
      why.erase(0, settings_->label.size());
      if (why.starts_with(": ") || why.starts_with(" ")) why.erase(0, why[0] == ':' ? 2 : 1);
    }
    std::string cause = "worker failed to restart: " + why;
    {
      MutexLock lock(mu_);
      if (stopped_) return;
      if (!supervisor_->shutdown_reason().empty()) return;  // stopping: no more tries
      delay = Backoff();
      restart = ++restarts_;
      cause += "; restart " + std::to_string(restart) + " in " + Seconds(delay);
      down_cause_ = cause;
    }
    spdlog::error("{} {}", settings_->label, cause);
    group_->Down(index_, cause);
    ScheduleRestart(delay);
  }

  const std::shared_ptr<WorkerSupervisor> supervisor_;
  const std::shared_ptr<WorkerGroup> group_;
  const std::shared_ptr<const WorkerSettings> settings_;
  const size_t index_;

  // Used by the one thread that has the worker: the loader or restarter
  // while it is down, the executing thread while it is up (executing_).
  RegionPool regions_;
  std::unique_ptr<FrameReader> reader_;  // the worker's replies
  uint32_t next_id_ = 0;
  uint32_t socket_frames_ = 0;  // written to the socket since the last request posted
  ExecuteRequest execute_;      // the batch being sent
  std::string payload_;         // execute_ encoded
  std::string reply_;           // the last reply's payload, copied out of the mailbox
  ExecuteReply execute_reply_;  // reply_ decoded

  Mutex mu_;
  CondVar cv_;
  std::unique_ptr<WorkerProcess> process_ MM_GUARDED_BY(mu_);
  // Replaced only while no batch runs; MarkGone may run under mu_ at any time.
  std::unique_ptr<Mailbox> mailbox_ MM_GUARDED_BY(mu_);
  std::unique_ptr<CgroupGroup> cgroup_ MM_GUARDED_BY(mu_);
  std::shared_ptr<WorkerCallServer> calls_ MM_GUARDED_BY(mu_);  // while up
  std::atomic<uint64_t> starts_{0};
  uint64_t generation_ MM_GUARDED_BY(mu_) = 0;  // process_'s start
  WorkerSupervisor::WatchId watch_ MM_GUARDED_BY(mu_) = 0;
  bool up_ MM_GUARDED_BY(mu_) = false;
  bool executing_ MM_GUARDED_BY(mu_) = false;
  bool stopped_ MM_GUARDED_BY(mu_) = false;
  std::string killed_for_ MM_GUARDED_BY(mu_);  // why the server killed it
  std::string down_cause_ MM_GUARDED_BY(mu_) = "worker not started";
  int streak_ MM_GUARDED_BY(mu_) = 0;  // failures in a row
  int restarts_ MM_GUARDED_BY(mu_) = 0;
  Clock::time_point started_ MM_GUARDED_BY(mu_);
};

WorkerInstance::WorkerInstance(std::shared_ptr<WorkerSupervisor> supervisor,
                               std::shared_ptr<WorkerGroup> group,
                               std::shared_ptr<const WorkerSettings> settings, size_t index)
    : core_(std::make_shared<WorkerCore>(std::move(supervisor), std::move(group),
                                         std::move(settings), index)) {}

WorkerInstance::~WorkerInstance() { core_->Stop(); }

StatusOr<LoadReply> WorkerInstance::Start() { return core_->Start(); }

Status WorkerInstance::Execute(const InferRequest& request, InferResponse& response) {
  const InferRequest* const one_request = &request;  // a list of one, no allocation
  InferResponse* const one_response = &response;
  Status result;
  Status s = core_->ExecuteList({&one_request, 1}, {&one_response, 1}, {&result, 1});
  return s.ok() ? result : s;
}

Status WorkerInstance::ExecuteList(std::span<const InferRequest* const> requests,
                                   std::span<InferResponse* const> responses,
                                   std::span<Status> results) {
  return core_->ExecuteList(requests, responses, results);
}

Status WorkerInstance::ExecuteDecoupled(std::span<const std::shared_ptr<ResponseSender>> senders) {
  return core_->ExecuteDecoupled(senders);
}

uint64_t WorkerInstance::ResidentBytes() { return core_->ResidentBytes(); }

}  // namespace mm::isolation_internal
