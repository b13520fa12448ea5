// bench_grpc_floor: what grpc++ itself costs per ModelInfer call on this
// machine. A server with mmserve's gRPC set-up (completion-queue API, one
// queue polled by one thread, the same message-size limits) that answers
// every ModelInfer with a fixed add_sub-sized response: no decode, no
// inference. bench/grpc_vs_http.sh measures it beside mmserve, so the gRPC
// rows can be read against the library's own floor.
//
//   bench_grpc_floor PORT_FILE   (listens on a free 127.0.0.1 port, writes it
//                                 to PORT_FILE, serves until SIGTERM)
#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include "grpc_service.grpc.pb.h"

namespace {

using Service = inference::GRPCInferenceService::AsyncService;

class Call {
 public:
  Call(Service* service, grpc::ServerCompletionQueue* cq,
       const inference::ModelInferResponse* answer)
      : service_(service), cq_(cq), answer_(answer) {
    service_->RequestModelInfer(&ctx_, &request_, &responder_, cq_, cq_, this);
  }

  void Proceed(bool ok) {
    if (answered_ || !ok) {
      delete this;
      return;
    }
    answered_ = true;
    new Call(service_, cq_, answer_);
    responder_.Finish(*answer_, grpc::Status::OK, this);
  }

 private:
  Service* const service_;
  grpc::ServerCompletionQueue* const cq_;
  const inference::ModelInferResponse* const answer_;
  grpc::ServerContext ctx_;
  inference::ModelInferRequest request_;
  grpc::ServerAsyncResponseWriter<inference::ModelInferResponse> responder_{&ctx_};
  bool answered_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PORT_FILE\n", argv[0]);
    return 2;
  }
  // As mmserve does: Debian's abseil otherwise checks every mutex for lock cycles.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  inference::ModelInferResponse answer;
  answer.set_model_name("add_sub");
  answer.set_model_version("1");
  for (const char* name : {"OUTPUT0", "OUTPUT1"}) {
    auto* out = answer.add_outputs();
    out->set_name(name);
    out->set_datatype("FP32");
    out->add_shape(4);
    answer.add_raw_output_contents(std::string(16, '\0'));
  }
  Service service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  builder.RegisterService(&service);
  auto cq = builder.AddCompletionQueue();
  auto server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "cannot listen\n");
    return 1;
  }
  for (int i = 0; i < 4; ++i) new Call(&service, cq.get(), &answer);
  std::ofstream(argv[1]) << port << "\n";

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread poller([&] {
    void* tag;
    bool ok;
    while (cq->Next(&tag, &ok)) static_cast<Call*>(tag)->Proceed(ok);
  });
  int sig = 0;
  sigwait(&signals, &sig);
  server->Shutdown();
  cq->Shutdown();
  poller.join();
  return 0;
}
