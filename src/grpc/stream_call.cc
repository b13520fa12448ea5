// The ModelStreamInfer RPC of the gRPC server (grpc_call.h).
#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/cancellation.h"
#include "core/delivery.h"
#include "grpc/grpc_call.h"
#include "rpc/grpc_codec.h"
#include "rpc/observe.h"
#include "rpc/stream_responses.h"

namespace mm::grpc_internal {

namespace {

// ModelStreamInfer: requests are read one after another and run concurrently;
// each response (or error, with the request's id) is written as it completes.
// A failing request never ends the stream; the stream ends once the client has
// half-closed and every response is written. grpc allows one read and one
// write in flight: reads start on the queue's thread (or where a write's
// completion makes room), writes from whichever thread completes a request,
// both ordered by mu_. A stream its client cancels cancels its requests still
// queued (the done tag, as UnaryCall's). It deletes itself after both its
// Finish and its done tag came back.
//
// Backpressure: a stream holds at most `stream_max_pending` requests read but
// not yet answered plus responses answered but not yet written. At that bound
// it stops reading (HTTP/2 flow control then stops the client) until a write
// completes, so a client that sends and never reads costs a bounded amount of
// memory, and each response holds its tenant's concurrency slot until it is
// written (DeliveryReceipt), so quotas count unsent work too.
//
// Policy: every request read is authenticated again, cheaply (a
// TenantRegistry::Memo: one atomic load while the tenants file is unchanged),
// so a reload's quotas and namespaces apply to open streams. A reload that
// revoked the stream's key ends the stream: the requests already accepted are
// answered, then it finishes with UNAUTHENTICATED (tritonclient's stream
// callback gets that error), and nothing more is read.
//
// Decoupled models: the call is every request's ResponseStream (the core's
// sink for responses before the last), so a request costs no allocation for
// it. Responses are queued and written in the order they come, so a request's
// responses keep their order. A request with the parameter
// triton_enable_empty_final_response (Triton's) gets the response parameter
// triton_final_response on each of its responses (true on its last), and a
// final flag that came without a response is written as an empty response;
// without it, such a flag writes nothing. An error response (final or not)
// is written as error_message with the request's id, as Triton does
// (rpc/stream_responses.h).
class StreamCall final : public ResponseStream {
 public:
  static void Await(Shared* shared, Queue* queue) {
    if (queue->closing) return;
    auto* call = new StreamCall(shared, queue);
    call->ctx_.AsyncNotifyWhenDone(&call->done_);  // (only for a call that starts)
    shared->grpc_service.RequestModelStreamInfer(&call->ctx_, &call->stream_, queue->cq.get(),
                                                 queue->cq.get(), &call->arrived_);
  }

 private:
  // Each kind of operation has its own tag, so a completion says which it was.
  class Op final : public Tag {
   public:
    using Fn = void (StreamCall::*)(bool);
    Op(StreamCall* call, Fn fn) : call_(call), fn_(fn) {}
    void Proceed(bool ok) override { (call_->*fn_)(ok); }

   private:
    StreamCall* const call_;
    const Fn fn_;
  };

  // A response waiting to be written, and what its delivery settles.
  struct Outgoing {
    inference::ModelStreamInferResponse message;
    DeliveryReceipt receipt;
  };

  StreamCall(Shared* shared, Queue* queue)
      : shared_(shared),
        queue_(queue),
        max_pending_(std::max<size_t>(1, shared->stream_max_pending)) {}

  void OnArrived(bool ok) {
    if (!ok) {
      delete this;
      return;
    }
    Await(shared_, queue_);
    authorization_ = AuthorizationOf(ctx_);  // the metadata lives as long as ctx_
    auto tenant = shared_->service->Authenticate(authorization_, &memo_);
    if (!tenant.ok()) {
      MutexLock lock(mu_);
      finished_ = true;
      stream_.Finish(ToGrpc(tenant.status()), &finished_op_);
      return;
    }
    stream_.Read(&request_, &read_);
  }

  void OnRead(bool ok) {
    if (!ok) {
      MutexLock lock(mu_);
      reads_done_ = true;
      MaybeFinish();
      return;
    }
    // The decoded request views into its message: keep the message alive with it.
    auto message = std::make_shared<inference::ModelInferRequest>(std::move(request_));
    request_.Clear();
    // The tenants in force now (a reload may have changed or revoked the key).
    auto tenant = shared_->service->Authenticate(authorization_, &memo_);
    {
      MutexLock lock(mu_);
      if (!tenant.ok()) {
        // Revoked: answer what was accepted, then end the stream with the reason.
        reads_done_ = true;
        end_status_ = grpc::Status(
            grpc::StatusCode::UNAUTHENTICATED,
            tenant.status().message() +
                " (the key was revoked by a reload of the tenants file while this stream was "
                "open; open a new stream with a valid key)");
        MaybeFinish();
        return;
      }
      if (write_failed_) {  // nobody to answer: read on until the stream reports its end
        stream_.Read(&request_, &read_);
        return;
      }
      ++in_flight_;
    }
    const int64_t received_ns = SteadyNowNs();
    auto decoded = DecodeGrpcInferRequest(*message);
    if (!decoded.ok()) {
      Complete(message->id(), decoded.status(), nullptr, rpc::EmptyFinalWanted(*message));
    } else {
      auto request = std::make_unique<InferRequest>(std::move(*decoded));
      request->body = message;
      request->cancellation = std::make_shared<Cancellation>();
      request->received_ns = received_ns;
      // Not owned: the call outlives every request it answers (in_flight_).
      request->stream = std::shared_ptr<ResponseStream>(std::shared_ptr<void>(), this);
      {
        MutexLock lock(mu_);
        if (cancellations_.size() >= 64) {
          std::erase_if(cancellations_, [](const auto& c) { return c.expired(); });
        }
        cancellations_.push_back(request->cancellation);
      }
      rpc::InFlightCalls* in_flight = &shared_->in_flight;
      in_flight->Add();
      InferCallback done = [this, in_flight, message](StatusOr<std::unique_ptr<InferResponse>> r) {
        const bool final_flag = rpc::EmptyFinalWanted(*message);
        if (r.ok()) {
          Complete(message->id(), OkStatus(), r->get(), final_flag);
        } else {
          Complete(message->id(), r.status(), nullptr, final_flag);
        }
        in_flight->Done();
      };
      if (shared_->observer != nullptr) {
        done = rpc::Observe(*shared_->observer, in_flight, TraceparentOf(*shared_->observer, ctx_),
                            **tenant, *request, received_ns, std::move(done));
      }
      shared_->service->Infer(**tenant, std::move(request), std::move(done));
    }
    MutexLock lock(mu_);
    read_paused_ = true;
    MaybeResumeReading();
  }

  void OnWritten(bool ok) {
    MutexLock lock(mu_);
    writing_ = false;
    if (!ok) {
      // The client went away: drop what is queued (undelivered: not billed,
      // slots freed); finish when nothing runs and the reads have ended.
      write_failed_ = true;
      outgoing_.clear();
    } else {
      outgoing_.front().receipt.Settle(true);
      outgoing_.pop_front();
    }
    WriteNext();
    MaybeResumeReading();
    MaybeFinish();
  }

  void OnFinished(bool) {
    // Finish was started under mu_, maybe on another thread: wait until it is released.
    { MutexLock lock(mu_); }
    Release();
  }

  // The stream is over; if its client cancelled it, so are its queued requests.
  void OnDone(bool) {
    if (ctx_.IsCancelled()) {
      std::vector<std::shared_ptr<Cancellation>> live;
      {
        MutexLock lock(mu_);
        for (auto& weak : cancellations_) {
          if (auto c = weak.lock()) live.push_back(std::move(c));
        }
        cancellations_.clear();
      }
      for (auto& c : live) c->Cancel();  // answered through Complete, outside mu_
    }
    Release();
  }

  // Finish and done tags both come out of this call's queue: one thread counts.
  void Release() {
    if (--events_left_ == 0) delete this;
  }

  // One response of a decoupled request, before its last (ResponseStream).
  void Send(const InferRequest& request, StatusOr<std::unique_ptr<InferResponse>> r) override {
    Outgoing out;
    rpc::StreamPartial(request, r, &out.message);
    MutexLock lock(mu_);
    if (!write_failed_) outgoing_.push_back(std::move(out));
    WriteNext();
  }

  // A request's answer (its last response, for a decoupled model). `response`:
  // null for an error; its receipt is settled when it is written.
  // `final_flag`: the request asked for triton_final_response.
  void Complete(const std::string& id, const Status& status, InferResponse* response,
                bool final_flag) {
    Outgoing out;
    const bool write = rpc::StreamAnswer(id, status, response, final_flag, &out.message);
    if (status.ok()) out.receipt = std::move(response->receipt);
    if (!write) out.receipt.Settle(true);  // nothing to deliver
    MutexLock lock(mu_);
    --in_flight_;
    if (write && !write_failed_) outgoing_.push_back(std::move(out));  // (else settled)
    WriteNext();
    MaybeResumeReading();
    MaybeFinish();
  }

  void WriteNext() MM_REQUIRES(mu_) {
    if (writing_ || outgoing_.empty()) return;
    writing_ = true;
    stream_.Write(outgoing_.front().message, &written_);
  }

  // Starts the next read if reading paused at the bound and there is room
  // again (or the stream is broken, so the read reports its end).
  void MaybeResumeReading() MM_REQUIRES(mu_) {
    if (!read_paused_ || reads_done_) return;
    if (!write_failed_ && in_flight_ + outgoing_.size() >= max_pending_) return;
    read_paused_ = false;
    stream_.Read(&request_, &read_);
  }

  void MaybeFinish() MM_REQUIRES(mu_) {
    if (finished_ || !reads_done_ || in_flight_ > 0 || writing_ || !outgoing_.empty()) {
      return;
    }
    finished_ = true;
    stream_.Finish(end_status_, &finished_op_);
  }

  Shared* const shared_;
  Queue* const queue_;
  const size_t max_pending_;
  grpc::ServerContext ctx_;
  grpc::ServerAsyncReaderWriter<inference::ModelStreamInferResponse, inference::ModelInferRequest>
      stream_{&ctx_};
  Op arrived_{this, &StreamCall::OnArrived};
  Op read_{this, &StreamCall::OnRead};
  Op written_{this, &StreamCall::OnWritten};
  Op finished_op_{this, &StreamCall::OnFinished};
  Op done_{this, &StreamCall::OnDone};
  // The read in flight: written by grpc, then taken by OnRead before the next
  // read starts (one read at a time: read_paused_ and reads_done_ say when none is).
  inference::ModelInferRequest request_;
  std::string_view authorization_;  // the stream's Authorization metadata (in ctx_)
  TenantRegistry::Memo memo_;       // whom it named, as of which tenants file; OnRead only
  int events_left_ = 2;             // Finish and done, after arrival; the queue's thread only

  Mutex mu_;
  // Answered, not yet written; the front is being written while writing_.
  std::deque<Outgoing> outgoing_ MM_GUARDED_BY(mu_);
  size_t in_flight_ MM_GUARDED_BY(mu_) = 0;  // read, handed on, not answered
  bool writing_ MM_GUARDED_BY(mu_) = false;
  bool read_paused_ MM_GUARDED_BY(mu_) = false;  // no read outstanding: at the bound
  bool reads_done_ MM_GUARDED_BY(mu_) = false;   // no more reads (half-closed or revoked)
  bool write_failed_ MM_GUARDED_BY(mu_) = false;
  bool finished_ MM_GUARDED_BY(mu_) = false;
  grpc::Status end_status_ MM_GUARDED_BY(mu_);  // what Finish reports (OK unless revoked)
  // The requests' cancellations (expired ones pruned now and then).
  std::vector<std::weak_ptr<Cancellation>> cancellations_ MM_GUARDED_BY(mu_);
};

}  // namespace

void AwaitStreamCall(Shared* shared, Queue* queue) { StreamCall::Await(shared, queue); }

}  // namespace mm::grpc_internal
