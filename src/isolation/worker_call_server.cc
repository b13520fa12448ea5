#include "isolation/worker_call_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace mm {

namespace {

std::span<const std::byte> AsBytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s));
}

// A response (or the error, or the final flag alone) as a message body; its
// tensors view the response's memory.
ResponseBody ToBody(const StatusOr<std::unique_ptr<InferResponse>>& response) {
  ResponseBody body;
  if (!response.ok()) {
    body.status = response.status();
    return body;
  }
  if (*response == nullptr) return body;
  body.has_response = true;
  for (const auto& [key, value] : (*response)->parameters) body.parameters.emplace_back(key, value);
  ToCallTensors((*response)->outputs, body.outputs);
  return body;
}

// A body back into a response whose outputs view `owner`'s bytes.
StatusOr<std::unique_ptr<InferResponse>> FromBody(ResponseBody& body,
                                                  const std::shared_ptr<const void>& owner) {
  if (!body.status.ok()) return std::move(body.status);
  if (!body.has_response) return std::unique_ptr<InferResponse>();
  auto response = std::make_unique<InferResponse>();
  for (auto& [key, value] : body.parameters) {
    response->parameters.insert_or_assign(std::move(key), std::move(value));
  }
  FromCallTensors(body.outputs, owner, response->outputs);
  return response;
}

}  // namespace

WorkerCallServer::WorkerCallServer(std::string label, std::string model,
                                   std::shared_ptr<ModelHost> host,
                                   std::function<void(const Status&)> on_cut)
    : label_(std::move(label)),
      model_(std::move(model)),
      host_(std::move(host)),
      on_cut_(std::move(on_cut)) {}

StatusOr<std::shared_ptr<WorkerCallServer>> WorkerCallServer::Open(
    CallHub& hub, int control_socket, uint32_t id, std::string label, std::string model,
    std::shared_ptr<ModelHost> host, std::function<void(const Status&)> on_cut) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return Internal(label + ": no call socket: " + std::strerror(errno));
  }
  OwnedFd ours(pair[0]), theirs(pair[1]);
  auto calls = std::make_shared<WorkerCallServer>(std::move(label), std::move(model),
                                                  std::move(host), std::move(on_cut));
  MM_ASSIGN_OR_RETURN(auto connection, hub.Add(std::move(ours), calls));
  calls->Attach(std::move(connection));
  Status sent =
      WriteWorkerFrameWithFd(control_socket, WorkerMessageType::kCalls, id, "", theirs.get());
  if (!sent.ok()) {
    calls->Shutdown(sent);
    return sent;
  }
  return calls;
}

WorkerCallServer::~WorkerCallServer() {
  std::shared_ptr<CallConnection> c;
  {
    MutexLock lock(mu_);
    c = std::move(connection_);
  }
  if (c != nullptr) c->Close();
}

void WorkerCallServer::Attach(std::shared_ptr<CallConnection> connection) {
  MutexLock lock(mu_);
  connection_ = std::move(connection);
}

std::shared_ptr<CallConnection> WorkerCallServer::connection() const {
  MutexLock lock(mu_);
  return connection_;
}

Status WorkerCallServer::NoHost() const {
  return Unavailable("model '" + model_ +
                     "': this server does not host BLS calls or custom metrics");
}

Status WorkerCallServer::Reply(uint32_t id, const Status& status, std::string body) {
  auto c = connection();
  if (c == nullptr) return OkStatus();
  CallReply reply{status, status.ok() ? std::move(body) : std::string()};
  (void)c->Send(WorkerMessageType::kCallReply, id, EncodeCallReply(reply));
  return OkStatus();  // a failed send cut the connection already
}

Status WorkerCallServer::OnFrame(const FrameHeader& header,
                                 std::shared_ptr<const std::string> payload) {
  const uint32_t id = header.request_id;
  const std::span<const std::byte> bytes = AsBytes(*payload);
  switch (header.type) {
    case WorkerMessageType::kInfer:
      return OnInfer(id, std::move(payload));
    case WorkerMessageType::kRespond:
      return OnRespond(std::move(payload));
    case WorkerMessageType::kIsCancelled: {
      MM_ASSIGN_OR_RETURN(RequestRef ref, DecodeRequestRef(bytes));
      std::shared_ptr<ResponseSender> sender;
      {
        MutexLock lock(mu_);
        if (ref.token > next_token_) {
          return InvalidArgument("IsCancelled for token " + std::to_string(ref.token) +
                                 ", which no Execute carried");
        }
        auto it = batches_.find(ref.token);
        if (it != batches_.end() && ref.index < it->second.senders.size()) {
          sender = it->second.senders[ref.index];
        }
      }
      // A request completed (or unknown to this batch) is not cancelled.
      return Reply(id, OkStatus(), EncodeBoolBody(sender != nullptr && sender->cancelled()));
    }
    case WorkerMessageType::kModelReady: {
      MM_ASSIGN_OR_RETURN(ModelReadyMessage m, DecodeModelReady(bytes));
      if (host_ == nullptr) return Reply(id, NoHost(), "");
      return Reply(id, OkStatus(), EncodeBoolBody(host_->ModelReady(m.name, m.version)));
    }
    case WorkerMessageType::kMetricCreate: {
      MM_ASSIGN_OR_RETURN(MetricSpec spec, DecodeMetricCreate(bytes));
      if (host_ == nullptr) return Reply(id, NoHost(), "");
      auto created = host_->CreateMetric(spec);
      if (!created.ok()) return Reply(id, created.status(), "");
      {
        MutexLock lock(mu_);
        metrics_.insert(*created);
      }
      return Reply(id, OkStatus(), EncodeU64Body(*created));
    }
    case WorkerMessageType::kMetricUpdate: {
      MM_ASSIGN_OR_RETURN(MetricUpdateMessage m, DecodeMetricUpdate(bytes));
      {
        MutexLock lock(mu_);
        if (metrics_.count(m.id) == 0) return OkStatus();  // not its own: ignored
      }
      // No reply: the worker checked what it could; the rest is logged.
      if (Status s = host_->UpdateMetric(m.id, m.op, m.value); !s.ok()) {
        spdlog::debug("{}: metric update refused: {}", label_, s.message());
      }
      return OkStatus();
    }
    case WorkerMessageType::kMetricValue: {
      MM_ASSIGN_OR_RETURN(uint64_t metric, DecodeMetricId(bytes, "MetricValue"));
      bool own;
      {
        MutexLock lock(mu_);
        own = metrics_.count(metric) > 0;
      }
      if (!own) {
        return Reply(id,
                     NotFound("model '" + model_ + "': metric " + std::to_string(metric) +
                              " is not one this model created"),
                     "");
      }
      auto value = host_->MetricValue(metric);
      if (!value.ok()) return Reply(id, value.status(), "");
      return Reply(id, OkStatus(), EncodeF64Body(*value));
    }
    case WorkerMessageType::kMetricRelease: {
      MM_ASSIGN_OR_RETURN(uint64_t metric, DecodeMetricId(bytes, "MetricRelease"));
      {
        MutexLock lock(mu_);
        if (metrics_.erase(metric) == 0) return OkStatus();
      }
      host_->ReleaseMetric(metric);
      return OkStatus();
    }
    default:
      // (CallHub lets only these types through.)
      return InvalidArgument("an unexpected " + std::string(WorkerMessageTypeName(header.type)) +
                             " frame on the call socket");
  }
}

Status WorkerCallServer::OnInfer(uint32_t id, std::shared_ptr<const std::string> payload) {
  MM_ASSIGN_OR_RETURN(InferCallMessage m, DecodeInferCall(AsBytes(*payload)));
  std::shared_ptr<CallConnection> c;
  {
    MutexLock lock(mu_);
    if (shut_) return OkStatus();
    if (calls_in_flight_ >= kMaxCallsInFlight) {
      return ResourceExhausted("more than " + std::to_string(kMaxCallsInFlight) +
                               " BLS calls in flight from one worker");
    }
    c = connection_;
    if (host_ != nullptr) ++calls_in_flight_;
  }
  if (host_ == nullptr) {
    WireParts parts;
    EncodeInferResponse({true, ResponseBody{NoHost(), false, {}, {}}}, parts);
    if (c != nullptr) (void)c->Send(WorkerMessageType::kInferResponse, id, std::move(parts));
    return OkStatus();
  }
  auto request = std::make_unique<InferRequest>();
  request->model_name = std::move(m.model_name);
  request->model_version = std::move(m.model_version);
  request->id = std::move(m.request_id);
  for (auto& [key, value] : m.parameters) {
    request->parameters.insert_or_assign(std::move(key), std::move(value));
  }
  // The inputs view the frame's buffer, which the request keeps (its body):
  // read once from the socket, never copied, never writable by the worker.
  FromCallTensors(m.inputs, nullptr, request->inputs);
  request->body = payload;
  request->outputs.resize(m.outputs.size());
  for (size_t i = 0; i < m.outputs.size(); ++i) request->outputs[i].name = std::move(m.outputs[i]);
  std::weak_ptr<CallConnection> weak_connection = c;
  std::weak_ptr<WorkerCallServer> weak_self = weak_from_this();
  host_->Infer(std::move(request), [weak_connection, weak_self, id](
                                       StatusOr<std::unique_ptr<InferResponse>> response,
                                       bool final) {
    // Counted done before the answer goes: the worker may call again at once.
    if (final) {
      if (auto self = weak_self.lock()) self->CallDone();
    }
    // The worker may be gone (died, restarted): then nothing is sent.
    if (auto connection = weak_connection.lock(); connection && !connection->closed()) {
      ResponseBody body = ToBody(response);
      if (Status fits = CheckResponseBodyFits(body); !fits.ok()) {
        body = ResponseBody{InvalidArgument("the response cannot go back to the calling model's "
                                            "worker: " +
                                            fits.message()),
                            false,
                            {},
                            {}};
      }
      WireParts parts;
      EncodeInferResponse({final, std::move(body)}, parts);
      // The response's tensors are written from its own memory (writev):
      // the frame holds the response until it is written.
      std::shared_ptr<const void> keep;
      if (response.ok() && *response != nullptr) {
        keep = std::shared_ptr<const InferResponse>(std::move(*response));
      }
      (void)connection->Send(WorkerMessageType::kInferResponse, id, std::move(parts),
                             std::move(keep));
    }
  });
  return OkStatus();
}

void WorkerCallServer::CallDone() {
  MutexLock lock(mu_);
  if (calls_in_flight_ > 0) --calls_in_flight_;
}

uint64_t WorkerCallServer::BeginDecoupled(
    std::span<const std::shared_ptr<ResponseSender>> senders) {
  MutexLock lock(mu_);
  if (shut_) return 0;
  const uint64_t token = ++next_token_;
  Batch& batch = batches_[token];
  batch.senders.assign(senders.begin(), senders.end());
  batch.open = senders.size();
  open_senders_ += senders.size();
  return token;
}

void WorkerCallServer::FailDecoupled(uint64_t token, const Status& why) {
  std::vector<std::shared_ptr<ResponseSender>> open;
  {
    MutexLock lock(mu_);
    auto it = batches_.find(token);
    if (it == batches_.end()) return;
    for (auto& sender : it->second.senders) {
      if (sender != nullptr) open.push_back(std::move(sender));
    }
    open_senders_ -= it->second.open;
    batches_.erase(it);
  }
  for (auto& sender : open) (void)sender->Send(why, true);
}

Status WorkerCallServer::OnRespond(std::shared_ptr<const std::string> held) {
  // The response's outputs view the frame's buffer, which they hold.
  MM_ASSIGN_OR_RETURN(RespondMessage m, DecodeRespond(AsBytes(*held)));
  std::shared_ptr<ResponseSender> sender;
  {
    MutexLock lock(mu_);
    if (m.token > next_token_) {
      return InvalidArgument("a Respond for token " + std::to_string(m.token) +
                             ", which no Execute carried");
    }
    auto it = batches_.find(m.token);
    // A batch already ended (its Execute failed): the response is dropped.
    if (it == batches_.end()) return OkStatus();
    Batch& batch = it->second;
    if (m.index >= batch.senders.size()) {
      return InvalidArgument("a Respond for request " + std::to_string(m.index) + " of token " +
                             std::to_string(m.token) + ", whose Execute had " +
                             std::to_string(batch.senders.size()) + " requests");
    }
    sender = batch.senders[m.index];
    if (sender == nullptr) {
      return InvalidArgument("a Respond for request " + std::to_string(m.index) + " of token " +
                             std::to_string(m.token) + " after its final response");
    }
    if (m.final) {
      batch.senders[m.index] = nullptr;
      --open_senders_;
      if (--batch.open == 0) batches_.erase(it);
    }
  }
  (void)sender->Send(FromBody(m.body, held), m.final);
  return OkStatus();
}

void WorkerCallServer::OnClosed(const Status& why) {
  std::optional<Status> gone;
  {
    MutexLock lock(mu_);
    ended_ = true;
    gone = gone_;
  }
  if (gone) {
    Shutdown(*gone);  // the dead worker's last words are read: now its requests end
    return;
  }
  if (on_cut_) on_cut_(why);
}

void WorkerCallServer::WorkerGone(const Status& why) {
  bool ended;
  {
    MutexLock lock(mu_);
    if (shut_ || gone_) return;
    gone_ = why;
    ended = ended_ || connection_ == nullptr || connection_->closed();
  }
  if (ended) Shutdown(why);
}

void WorkerCallServer::Shutdown(const Status& why) {
  std::shared_ptr<CallConnection> c;
  std::map<uint64_t, Batch> batches;
  std::set<uint64_t> metrics;
  {
    MutexLock lock(mu_);
    if (shut_) return;
    shut_ = true;
    c = std::move(connection_);
    batches.swap(batches_);
    metrics.swap(metrics_);
    open_senders_ = 0;
  }
  if (c != nullptr) c->Close();
  for (auto& [token, batch] : batches) {
    for (auto& sender : batch.senders) {
      if (sender != nullptr) (void)sender->Send(why, true);
    }
  }
  if (host_ != nullptr) {
    for (uint64_t id : metrics) host_->ReleaseMetric(id);
  }
}

size_t WorkerCallServer::calls_in_flight() const {
  MutexLock lock(mu_);
  return calls_in_flight_;
}

size_t WorkerCallServer::open_senders() const {
  MutexLock lock(mu_);
  return open_senders_;
}

}  // namespace mm
