// The service's side of decoupled models: a caller that does not stream
// (no InferRequest::stream: HTTP /infer, gRPC ModelInfer) is refused, naming
// the model and the endpoints that carry several responses; a streaming
// caller reaches the model; a stream attached to a request for an ordinary
// model changes nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>

#include "fake_backend.h"
#include "local_repositories.h"
#include "scheduler/execution_slots.h"
#include "service/inference_service.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

struct NullStream : ResponseStream {
  void Send(const InferRequest&, StatusOr<std::unique_ptr<InferResponse>>) override {}
};

class DecoupledServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("mm_decoupled_service_test_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fakes::WriteFakeModel(root_, "dec", {1}, "model_transaction_policy { decoupled: true }\n");
    fakes::WriteFakeModel(root_, "plain", {1});
    ModelManager::Options mo;
    mo.repositories = LocalRepositories({root_});
    mo.mode = ModelControlMode::kNone;
    mo.slots = &slots_;
    ASSERT_TRUE(fakes::RegisterFakeBackend(backends_, &backend_).ok());
    mo.backends = &backends_;
    manager_ = std::move(*ModelManager::Create(std::move(mo)));
    static_cast<void>(manager_->Start());  // a failed start-up load is in the index
    InferenceService::Options so;
    so.models = manager_.get();
    service_ = std::move(*InferenceService::Create(std::move(so)));
    tenant_ = *service_->Authenticate("");
  }
  void TearDown() override {
    service_.reset();
    manager_.reset();
    slots_.Shutdown();
    fs::remove_all(root_);
  }

  StatusOr<std::unique_ptr<InferResponse>> Infer(const std::string& model, bool stream) {
    auto r = std::make_unique<InferRequest>();
    r->model_name = model;
    auto data = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4});
    Tensor x;
    x.name = "x";
    x.dtype = DataType::kFp32;
    x.shape = {4};
    x.data = std::as_bytes(std::span<const float>(*data));
    r->inputs.push_back(std::move(x));
    r->body = data;
    if (stream) r->stream = std::make_shared<NullStream>();
    std::promise<StatusOr<std::unique_ptr<InferResponse>>> answer;
    auto future = answer.get_future();
    service_->Infer(*tenant_, std::move(r), [&answer](StatusOr<std::unique_ptr<InferResponse>> a) {
      answer.set_value(std::move(a));
    });
    return future.get();
  }

  fs::path root_;
  fakes::FakeBackend backend_;
  BackendRegistry backends_;
  ExecutionSlots slots_{ExecutionSlotsOptions{.slots = 1}};
  std::unique_ptr<ModelManager> manager_;
  std::unique_ptr<InferenceService> service_;
  std::shared_ptr<const Tenant> tenant_;
};

TEST_F(DecoupledServiceTest, AOneResponseCallerIsRefusedNamingTheWayThatWorks) {
  auto r = Infer("dec", false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("'dec'"), std::string::npos) << m;
  EXPECT_NE(m.find("ModelStreamInfer"), std::string::npos) << m;
  EXPECT_NE(m.find("/v2/models/dec/generate_stream"), std::string::npos) << m;
}

TEST_F(DecoupledServiceTest, AStreamingCallerReachesTheModel) {
  // The fake backend has no decoupled support: the scheduler's refusal, not the service's.
  auto r = Infer("dec", true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented) << r.status().message();
}

TEST_F(DecoupledServiceTest, AStreamOnAnOrdinaryModelChangesNothing) {
  auto with = Infer("plain", true);
  auto without = Infer("plain", false);
  ASSERT_TRUE(with.ok() && without.ok());
  EXPECT_EQ((*with)->outputs[0].as<float>()[0], (*without)->outputs[0].as<float>()[0]);
  EXPECT_FALSE((*with)->complete_only);
}

}  // namespace
}  // namespace mm
