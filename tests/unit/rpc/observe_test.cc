// Observing a gRPC inference call (rpc/observe.h) and counting calls in
// flight (rpc/in_flight.h): a call the observer does not want keeps its
// callback and is not counted; one it wants is logged with protocol "grpc"
// and counted until its record is handed over.
#include "rpc/observe.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "observability/logging.h"

namespace mm::rpc {
namespace {

namespace fs = std::filesystem;

InferRequest Request() {
  InferRequest r;
  r.model_name = "m";
  r.model_version = "1";
  r.id = "req-1";
  return r;
}

TEST(InFlightCallsTest, WaitIdleReturnsOnceTheLastCallIsDone) {
  InFlightCalls calls;
  calls.Add();
  calls.Add();
  std::atomic<bool> idle{false};
  std::thread waiter([&] {
    calls.WaitIdle();
    idle = true;
  });
  calls.Done();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(idle);  // one is still in flight
  calls.Done();
  waiter.join();
  EXPECT_TRUE(idle);
}

TEST(ObserveTest, AnUnwantedCallKeepsItsCallback) {
  RequestObserver observer(nullptr, nullptr);
  InFlightCalls in_flight;
  Tenant tenant;
  tenant.id = "a";
  int calls = 0;
  InferCallback done = Observe(observer, &in_flight, "", tenant, Request(), 0,
                               [&calls](StatusOr<std::unique_ptr<InferResponse>>) { ++calls; });
  done(Internal("x"));
  EXPECT_EQ(calls, 1);
  in_flight.WaitIdle();  // nothing was counted
}

TEST(ObserveTest, AWantedCallIsLoggedAsGrpcAndCountedUntilHandedOver) {
  const fs::path log =
      fs::temp_directory_path() / ("mm_rpc_observe_test_" + std::to_string(::getpid()) + ".log");
  fs::remove(log);
  auto access_log = AccessLog::Create(log.string(), LogFormat::kJson);
  ASSERT_TRUE(access_log.ok()) << access_log.status().message();
  RequestObserver observer(nullptr, access_log->get());
  InFlightCalls in_flight;
  Tenant tenant;
  tenant.id = "team-a";
  int calls = 0;
  InferCallback done =
      Observe(observer, &in_flight, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
              tenant, Request(), 1, [&calls](StatusOr<std::unique_ptr<InferResponse>> r) {
                EXPECT_TRUE(r.ok());
                ++calls;
              });
  auto response = std::make_unique<InferResponse>();
  response->model_name = "m";
  response->model_version = "1";
  response->id = "req-1";
  done(std::move(response));
  EXPECT_EQ(calls, 1);
  in_flight.WaitIdle();  // counted, and done
  (*access_log)->Flush();
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  const std::string line = text.str();
  EXPECT_NE(line.find("grpc"), std::string::npos) << line;
  EXPECT_NE(line.find("team-a"), std::string::npos) << line;
  EXPECT_NE(line.find("req-1"), std::string::npos) << line;
  access_log->reset();
  fs::remove(log);
}

}  // namespace
}  // namespace mm::rpc
