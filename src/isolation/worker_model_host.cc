#include "isolation/worker_model_host.h"

#include <pthread.h>
#include <sys/socket.h>

#include <cmath>

namespace mm {

namespace {

std::span<const std::byte> AsBytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s));
}

std::string_view OpName(MetricOp op) {
  switch (op) {
    case MetricOp::kIncrement:
      return "increment";
    case MetricOp::kSet:
      return "set";
    case MetricOp::kObserve:
      return "observe";
  }
  return "unknown";
}

std::string_view KindName(MetricKind kind) {
  switch (kind) {
    case MetricKind::kCounter:
      return "counter";
    case MetricKind::kGauge:
      return "gauge";
    case MetricKind::kHistogram:
      return "histogram";
  }
  return "unknown";
}

}  // namespace

WorkerModelHost::WorkerModelHost(OwnedFd socket, std::string label)
    : socket_(std::move(socket)), label_(std::move(label)) {
  reader_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "mm-calls");
    ReadLoop();
  });
}

WorkerModelHost::~WorkerModelHost() {
  Close();
  if (reader_.joinable()) {
    if (reader_.get_id() == std::this_thread::get_id()) {
      reader_.detach();  // (a callback dropped the last reference: never in practice)
    } else {
      reader_.join();
    }
  }
}

void WorkerModelHost::Close() {
  ::shutdown(socket_.get(), SHUT_RDWR);  // the reader wakes and fails what is pending
  Fail(Unavailable(label_ + ": the worker's call channel is closed"));
}

Status WorkerModelHost::GoneLocked() const {
  return Unavailable(label_ + ": the server's call channel is gone (" + closed_why_ + ")");
}

Status WorkerModelHost::Gone() const {
  MutexLock lock(mu_);
  return GoneLocked();
}

bool WorkerModelHost::IsCancelled(uint64_t token, uint32_t index) {
  auto body = Call(WorkerMessageType::kIsCancelled, EncodeRequestRef({token, index}));
  if (!body.ok()) return false;
  auto cancelled = DecodeBoolBody(*body);
  return cancelled.ok() && *cancelled;
}
Status WorkerModelHost::Write(WorkerMessageType type, uint32_t id, const WireParts& parts) {
  MutexLock lock(write_mu_);
  return WriteWorkerFrameParts(socket_.get(), type, id, parts);
}

StatusOr<uint32_t> WorkerModelHost::Begin(Pending pending) {
  MutexLock lock(mu_);
  if (closed_) return GoneLocked();
  if (pending_.size() >= kMaxCallsInFlight) {
    return ResourceExhausted(label_ + ": " + std::to_string(kMaxCallsInFlight) +
                             " calls to the server are in flight already (BLS requests, "
                             "metric calls); wait for some to finish");
  }
  uint32_t id = ++next_id_;
  while (id == 0 || pending_.count(id) > 0) id = ++next_id_;
  pending_.emplace(id, std::move(pending));
  return id;
}

std::optional<WorkerModelHost::Pending> WorkerModelHost::Take(uint32_t id, bool final) {
  MutexLock lock(mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return std::nullopt;
  Pending p = it->second;
  if (final) pending_.erase(it);
  return p;
}

void WorkerModelHost::Fail(const Status& why) {
  std::map<uint32_t, Pending> pending;
  {
    MutexLock lock(mu_);
    if (!closed_) {
      closed_ = true;
      closed_why_ = why.message();
    }
    pending.swap(pending_);
  }
  const Status gone =
      Unavailable(label_ + ": the server's call channel is gone (" + why.message() + ")");
  for (auto& [id, p] : pending) {
    if (auto* waiter = std::get_if<Waiter>(&p)) {
      (*waiter)->set_value(CallReply{gone, ""});
    } else {
      std::get<HostInferCallback>(p)(gone, true);
    }
  }
}

StatusOr<std::string> WorkerModelHost::Call(WorkerMessageType type, std::string payload) {
  auto waiter = std::make_shared<std::promise<CallReply>>();
  auto reply = waiter->get_future();
  MM_ASSIGN_OR_RETURN(uint32_t id, Begin(waiter));
  WireParts parts;
  parts.bytes = std::move(payload);
  if (Status s = Write(type, id, parts); !s.ok()) {
    Fail(s);  // a broken socket: the channel is done
  }
  CallReply r = reply.get();
  MM_RETURN_IF_ERROR(r.status);
  return std::move(r.body);
}

void WorkerModelHost::Infer(std::unique_ptr<InferRequest> request, HostInferCallback on_response) {
  InferCallMessage m;
  m.model_name = request->model_name;
  m.model_version = request->model_version;
  m.request_id = request->id;
  for (const auto& [key, value] : request->parameters) m.parameters.emplace_back(key, value);
  ToCallTensors(request->inputs, m.inputs);
  for (const RequestedOutput& out : request->outputs) m.outputs.push_back(out.name);
  if (Status fits = CheckInferCallFits(m); !fits.ok()) {
    on_response(InvalidArgument(label_ + ": a BLS request to model '" + request->model_name +
                                "': " + fits.message()),
                true);
    return;
  }
  auto id = Begin(on_response);
  if (!id.ok()) {
    on_response(id.status(), true);
    return;
  }
  WireParts parts;
  EncodeInferCall(m, parts);
  // The request's tensors are written before this returns: nothing to keep.
  if (Status s = Write(WorkerMessageType::kInfer, *id, parts); !s.ok()) Fail(s);
}

bool WorkerModelHost::ModelReady(std::string_view name, std::string_view version) {
  auto body = Call(WorkerMessageType::kModelReady,
                   EncodeModelReady({std::string(name), std::string(version)}));
  if (!body.ok()) return false;
  auto ready = DecodeBoolBody(*body);
  return ready.ok() && *ready;
}

StatusOr<uint64_t> WorkerModelHost::CreateMetric(const MetricSpec& spec) {
  if (Status fits = CheckMetricSpecFits(spec); !fits.ok()) {
    return InvalidArgument(label_ + ": " + fits.message());
  }
  MM_ASSIGN_OR_RETURN(std::string body,
                      Call(WorkerMessageType::kMetricCreate, EncodeMetricCreate(spec)));
  auto id = DecodeU64Body(body);
  if (!id.ok()) {
    Fail(id.status());
    return Gone();
  }
  MutexLock lock(mu_);
  metrics_[*id] = spec.kind;
  return *id;
}

Status WorkerModelHost::UpdateMetric(uint64_t id, MetricOp op, double value) {
  {
    MutexLock lock(mu_);
    if (closed_) return GoneLocked();
    auto it = metrics_.find(id);
    if (it == metrics_.end()) {
      return NotFound(label_ + ": metric " + std::to_string(id) +
                      " is not one this model created (or it was released)");
    }
    const MetricKind kind = it->second;
    const bool takes =
        (kind == MetricKind::kCounter && op == MetricOp::kIncrement) ||
        (kind == MetricKind::kGauge && (op == MetricOp::kIncrement || op == MetricOp::kSet)) ||
        (kind == MetricKind::kHistogram && op == MetricOp::kObserve);
    if (!takes) {
      return InvalidArgument(label_ + ": a " + std::string(KindName(kind)) + " metric takes no " +
                             std::string(OpName(op)) +
                             " (counters increment, gauges increment "
                             "or set, histograms observe)");
    }
    if (kind == MetricKind::kCounter && (value < 0 || std::isnan(value))) {
      return InvalidArgument(label_ + ": a counter increments by a value >= 0, got " +
                             std::to_string(value));
    }
  }
  WireParts parts;
  parts.bytes = EncodeMetricUpdate({id, op, value});
  Status s = Write(WorkerMessageType::kMetricUpdate, 0, parts);
  if (!s.ok()) {
    Fail(s);
    return Gone();
  }
  return OkStatus();
}

StatusOr<double> WorkerModelHost::MetricValue(uint64_t id) {
  {
    MutexLock lock(mu_);
    if (!closed_ && metrics_.count(id) == 0) {
      return NotFound(label_ + ": metric " + std::to_string(id) +
                      " is not one this model created (or it was released)");
    }
  }
  MM_ASSIGN_OR_RETURN(std::string body, Call(WorkerMessageType::kMetricValue, EncodeMetricId(id)));
  auto value = DecodeF64Body(body);
  if (!value.ok()) {
    Fail(value.status());
    return Gone();
  }
  return *value;
}

void WorkerModelHost::ReleaseMetric(uint64_t id) {
  {
    MutexLock lock(mu_);
    if (closed_ || metrics_.erase(id) == 0) return;
  }
  WireParts parts;
  parts.bytes = EncodeMetricId(id);
  if (Status s = Write(WorkerMessageType::kMetricRelease, 0, parts); !s.ok()) Fail(s);
}

Status WorkerModelHost::Respond(uint64_t token, uint32_t index, bool final,
                                const StatusOr<std::unique_ptr<InferResponse>>& response) {
  {
    MutexLock lock(mu_);
    if (closed_) return GoneLocked();
  }
  RespondMessage m;
  m.token = token;
  m.index = index;
  m.final = final;
  if (!response.ok()) {
    m.body.status = response.status();
  } else if (*response != nullptr) {
    m.body.has_response = true;
    for (const auto& [key, value] : (*response)->parameters) {
      m.body.parameters.emplace_back(key, value);
    }
    ToCallTensors((*response)->outputs, m.body.outputs);
    if (Status fits = CheckResponseBodyFits(m.body); !fits.ok()) {
      return InvalidArgument(label_ + ": a response the server cannot take: " + fits.message());
    }
  } else if (!final) {
    return InvalidArgument(label_ + ": a response of nothing without the final flag");
  }
  WireParts parts;
  EncodeRespond(m, parts);
  Status s = Write(WorkerMessageType::kRespond, 0, parts);
  if (!s.ok()) {
    Fail(s);
    return Gone();
  }
  return OkStatus();
}

void WorkerModelHost::ReadLoop() {
  FrameReader reader(socket_.get());
  for (;;) {
    auto frame = reader.Read();
    if (!frame.ok()) {
      Fail(reader.closed() ? Unavailable("the server closed it") : frame.status());
      return;
    }
    if (Status s = Dispatch(std::move(*frame)); !s.ok()) {
      Fail(s);
      ::shutdown(socket_.get(), SHUT_RDWR);
      return;
    }
  }
}

Status WorkerModelHost::Dispatch(WorkerFrame frame) {
  const uint32_t id = frame.header.request_id;
  switch (frame.header.type) {
    case WorkerMessageType::kCallReply: {
      MM_ASSIGN_OR_RETURN(CallReply reply, DecodeCallReply(AsBytes(frame.payload)));
      auto pending = Take(id, true);
      if (!pending || !std::holds_alternative<Waiter>(*pending)) {
        return InvalidArgument("a CallReply for call " + std::to_string(id) +
                               ", which waits for none");
      }
      std::get<Waiter>(*pending)->set_value(std::move(reply));
      return OkStatus();
    }
    case WorkerMessageType::kInferResponse: {
      // The outputs view the frame's payload, held by the response.
      auto payload = std::make_shared<std::string>(std::move(frame.payload));
      MM_ASSIGN_OR_RETURN(InferResponseMessage m, DecodeInferResponse(AsBytes(*payload)));
      auto pending = Take(id, m.final);
      if (!pending || !std::holds_alternative<HostInferCallback>(*pending)) {
        return InvalidArgument("an InferResponse for call " + std::to_string(id) +
                               ", which is no Infer in flight");
      }
      auto& callback = std::get<HostInferCallback>(*pending);
      if (!m.body.status.ok()) {
        callback(std::move(m.body.status), m.final);
        return OkStatus();
      }
      if (!m.body.has_response) {
        callback(std::unique_ptr<InferResponse>(), m.final);
        return OkStatus();
      }
      auto response = std::make_unique<InferResponse>();
      for (auto& [key, value] : m.body.parameters) {
        response->parameters.insert_or_assign(std::move(key), std::move(value));
      }
      FromCallTensors(m.body.outputs, payload, response->outputs);
      callback(std::move(response), m.final);
      return OkStatus();
    }
    default:
      return InvalidArgument("a " + std::string(WorkerMessageTypeName(frame.header.type)) +
                             " frame on the call socket, which the server does not send");
  }
}

}  // namespace mm
