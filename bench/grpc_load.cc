// bench_grpc_load: a light closed-loop gRPC load generator for ModelInfer.
// Keeps CONCURRENCY calls in flight over CONNECTIONS channels for SECONDS,
// reissuing each call as it completes (grpc++ callback API, no thread per
// call), then prints "p50_us p99_us rps errors".
//
//   bench_grpc_load HOST:PORT REQUEST_FILE CONCURRENCY CONNECTIONS SECONDS
// REQUEST_FILE holds a serialized inference.ModelInferRequest.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <vector>

#include "grpc_service.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Shared {
  inference::ModelInferRequest request;
  Clock::time_point end;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<double> latencies_us;  // guarded by mu
  long errors = 0;                   // guarded by mu
  int active = 0;                    // guarded by mu
};

// One in-flight call slot: issues a call, and on completion records it and
// issues the next until the deadline.
class Caller {
 public:
  Caller(inference::GRPCInferenceService::Stub* stub, Shared* shared)
      : stub_(stub), shared_(shared) {}

  void Issue() {
    context_ = std::make_unique<grpc::ClientContext>();
    response_.Clear();
    start_ = Clock::now();
    stub_->async()->ModelInfer(context_.get(), &shared_->request, &response_,
                               [this](grpc::Status status) { OnDone(status); });
  }

 private:
  void OnDone(const grpc::Status& status) {
    const auto now = Clock::now();
    const double us = std::chrono::duration<double, std::micro>(now - start_).count();
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      if (status.ok()) {
        shared_->latencies_us.push_back(us);
      } else {
        ++shared_->errors;
      }
      if (now >= shared_->end) {
        --shared_->active;
        shared_->cv.notify_all();
        return;
      }
    }
    Issue();
  }

  inference::GRPCInferenceService::Stub* stub_;
  Shared* shared_;
  std::unique_ptr<grpc::ClientContext> context_;
  inference::ModelInferResponse response_;
  Clock::time_point start_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s HOST:PORT REQUEST_FILE CONCURRENCY CONNECTIONS SECONDS\n",
                 argv[0]);
    return 2;
  }
  Shared shared;
  std::ifstream in(argv[2], std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!shared.request.ParseFromString(bytes)) {
    std::fprintf(stderr, "%s is not a serialized ModelInferRequest\n", argv[2]);
    return 2;
  }
  const int concurrency = std::max(1, std::atoi(argv[3]));
  const int connections = std::clamp(std::atoi(argv[4]), 1, concurrency);
  const double seconds = std::atof(argv[5]);

  std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>> stubs;
  for (int i = 0; i < connections; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);  // distinct channels, distinct connections
    stubs.push_back(inference::GRPCInferenceService::NewStub(
        grpc::CreateCustomChannel(argv[1], grpc::InsecureChannelCredentials(), args)));
  }
  std::vector<std::unique_ptr<Caller>> callers;
  for (int i = 0; i < concurrency; ++i) {
    callers.push_back(std::make_unique<Caller>(stubs[i % connections].get(), &shared));
  }
  shared.end = Clock::now() +
               std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  const auto start = Clock::now();
  shared.active = concurrency;
  for (auto& c : callers) c->Issue();
  std::unique_lock<std::mutex> lock(shared.mu);
  shared.cv.wait(lock, [&] { return shared.active == 0; });
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  auto& l = shared.latencies_us;
  if (l.empty()) {
    std::printf("0 0 0 %ld\n", shared.errors);
    return 1;
  }
  std::sort(l.begin(), l.end());
  std::printf("%.0f %.0f %.0f %ld\n", l[l.size() / 2], l[l.size() * 99 / 100],
              static_cast<double>(l.size()) / elapsed, shared.errors);
  return 0;
}
