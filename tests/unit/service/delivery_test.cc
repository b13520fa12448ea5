// DeliveryReceipt, and how the service uses it: a success's output bytes are
// billed, and its concurrency slot freed, only once the transport settles the
// response's receipt (usage bills bytes actually sent; quotas count unsent work).
#include "core/delivery.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <optional>

#include "backends/onnxruntime/onnxruntime_backend.h"
#include "grpc_service.pb.h"
#include "http/grpc_calls.h"
#include "lifecycle/model_manager.h"
#include "local_repositories.h"
#include "scheduler/execution_slots.h"
#include "service/inference_service.h"
#include "source_dir.h"
#include "tenancy/quota.h"
#include "tenancy/tenant_registry.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

class Recorder final : public DeliveryReceipt::Settler {
 public:
  void Settle(bool delivered) override {
    ++calls;
    last = delivered;
  }
  int calls = 0;
  bool last = false;
};

TEST(DeliveryReceiptTest, SettlesOnceAndAnUnsettledOneAsNotDelivered) {
  Recorder r;
  {
    DeliveryReceipt receipt(&r);
    EXPECT_TRUE(receipt.pending());
    receipt.Settle(true);
    EXPECT_FALSE(receipt.pending());
    receipt.Settle(false);  // nothing left to settle
  }
  EXPECT_EQ(r.calls, 1);
  EXPECT_TRUE(r.last);

  Recorder dropped;
  { DeliveryReceipt receipt(&dropped); }
  EXPECT_EQ(dropped.calls, 1);
  EXPECT_FALSE(dropped.last);
}

TEST(DeliveryReceiptTest, MovesCarryItAndOverwritingSettlesTheOldOne) {
  Recorder a, b;
  DeliveryReceipt first(&a);
  DeliveryReceipt moved(std::move(first));
  EXPECT_FALSE(first.pending());  // NOLINT(bugprone-use-after-move): the contract says so
  EXPECT_EQ(a.calls, 0);
  moved = DeliveryReceipt(&b);  // a's receipt is dropped: not delivered
  EXPECT_EQ(a.calls, 1);
  EXPECT_FALSE(a.last);
  moved.Settle(true);
  EXPECT_EQ(b.calls, 1);
  EXPECT_TRUE(b.last);
  DeliveryReceipt empty;
  empty.Settle(true);  // the empty receipt settles nothing
}

// The service with add_sub, a tenant with {max_concurrency: 1}, and a real
// ONNX Runtime backend.
class ServiceDeliveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = fs::temp_directory_path() /
            ("delivery_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(repo_);
    fs::create_directories(repo_);
    fs::copy(fs::path(MMSERVE_SOURCE_DIR) / "examples" / "models" / "add_sub", repo_ / "add_sub",
             fs::copy_options::recursive);
    ASSERT_TRUE(RegisterOnnxRuntimeBackend(backends_).ok());
    ModelManager::Options mo;
    mo.repositories = LocalRepositories({repo_});
    mo.slots = &slots_;
    mo.backends = &backends_;
    auto manager = ModelManager::Create(std::move(mo));
    ASSERT_TRUE(manager.ok()) << manager.status().ToString();
    manager_ = std::move(*manager);
    static_cast<void>(manager_->Start());  // a failed start-up load is in the index

    Tenant t;
    t.id = "t";
    t.repositories = {repo_.string()};
    t.quotas.max_concurrency = 1;
    registry_ = TenantRegistry::FromConfig({{t}});
    tenant_ = &registry_->config()->tenants[0];
    InferenceService::Options so;
    so.models = manager_.get();
    so.tenants = registry_.get();
    service_ = std::move(*InferenceService::Create(so));
  }
  void TearDown() override {
    service_.reset();
    manager_.reset();
    slots_.Shutdown();
    fs::remove_all(repo_);
  }

  StatusOr<std::unique_ptr<InferResponse>> InferSync() {
    auto request = std::make_unique<InferRequest>();
    request->model_name = "add_sub";
    auto values = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4});
    for (const char* name : {"INPUT0", "INPUT1"}) {
      Tensor t;
      t.name = name;
      t.dtype = DataType::kFp32;
      t.shape = {4};
      t.data = std::as_bytes(std::span<const float>(*values));
      t.owner = values;
      request->inputs.push_back(std::move(t));
    }
    std::promise<StatusOr<std::unique_ptr<InferResponse>>> answered;
    service_->Infer(*tenant_, std::move(request), [&](StatusOr<std::unique_ptr<InferResponse>> r) {
      answered.set_value(std::move(r));
    });
    return answered.get_future().get();
  }

  UsageFigures Usage() const {
    for (const auto& [name, figures] : tenant_->usage->Models()) {
      if (name == "add_sub") return figures;
    }
    return {};
  }

  fs::path repo_;
  ExecutionSlots slots_{ExecutionSlotsOptions{.slots = 1}};
  BackendRegistry backends_;
  std::unique_ptr<ModelManager> manager_;
  std::unique_ptr<TenantRegistry> registry_;
  const Tenant* tenant_ = nullptr;
  std::unique_ptr<InferenceService> service_;
};

TEST_F(ServiceDeliveryTest, AnUnsentResponseHoldsItsSlotAndIsBilledOnlyWhenDelivered) {
  auto first = InferSync();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE((*first)->receipt.pending());
  // Answered but not written: counted, its input billed, not its output,
  // and it still holds the tenant's one slot.
  EXPECT_EQ(Usage().requests, 1u);
  EXPECT_EQ(Usage().bytes_in, 32u);
  EXPECT_EQ(Usage().bytes_out, 0u);
  EXPECT_EQ(tenant_->quota->in_flight(), 1);
  auto refused = InferSync();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("max_concurrency"), std::string::npos);

  (*first)->receipt.Settle(true);  // the transport wrote it
  EXPECT_EQ(Usage().bytes_out, 32u);
  EXPECT_EQ(tenant_->quota->in_flight(), 0);

  // A response that never reaches its client frees the slot, unbilled.
  auto second = InferSync();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  (*second)->receipt.Settle(false);
  EXPECT_EQ(Usage().bytes_out, 32u);
  EXPECT_EQ(tenant_->quota->in_flight(), 0);

  // So does one its transport drops without a word.
  auto third = InferSync();
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ(tenant_->quota->in_flight(), 1);
  third->reset();
  EXPECT_EQ(tenant_->quota->in_flight(), 0);
  EXPECT_EQ(Usage().bytes_out, 32u);
  EXPECT_EQ(Usage().requests, 3u);
  EXPECT_EQ(tenant_->usage->refused(), 1u);
}

// The native gRPC transport's ModelInfer lends the service a room for the
// request's bill (http/grpc_calls.cc). The call belongs to its stream, which
// a client's reset drops while the request runs: the call then keeps itself,
// through its reply, until the receipt that settles into its room is gone.
TEST_F(ServiceDeliveryTest, AGrpcCallOutlivesItsStreamUntilItsReceiptSettles) {
  inference::ModelInferRequest message;
  message.set_model_name("add_sub");
  const float values[4] = {1, 2, 3, 4};
  for (const char* name : {"INPUT0", "INPUT1"}) {
    auto* input = message.add_inputs();
    input->set_name(name);
    input->set_datatype("FP32");
    input->add_shape(4);
    message.add_raw_input_contents(
        std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  }
  for (const bool delivered : {false, true}) {
    std::weak_ptr<GrpcUnaryCall> weak;
    std::promise<GrpcReply> answered;
    {
      std::shared_ptr<GrpcUnaryCall> call = GrpcUnaryCall::Create(rpc::Method::kModelInfer);
      ASSERT_TRUE(call->ParseOwned(message.SerializeAsString()).ok());
      weak = call;
      GrpcCallEnv env;
      env.service = service_.get();
      call->Run(env, std::shared_ptr<const Tenant>(std::shared_ptr<const void>(), tenant_),
                GrpcCallMeta{}, [&](GrpcReply r) { answered.set_value(std::move(r)); });
    }  // its stream is gone
    std::optional<GrpcReply> reply = answered.get_future().get();
    ASSERT_TRUE(reply->status.ok()) << reply->status.ToString();
    EXPECT_FALSE(reply->message.empty());
    ASSERT_TRUE(reply->receipt.pending());
    EXPECT_FALSE(weak.expired());                // its reply keeps it
    EXPECT_EQ(tenant_->quota->in_flight(), 1);   // the bill, in the call's room, holds the slot
    if (delivered) reply->receipt.Settle(true);  // written
    reply.reset();                               // (else dropped unwritten)
    EXPECT_EQ(tenant_->quota->in_flight(), 0);
    EXPECT_TRUE(weak.expired());
    EXPECT_EQ(Usage().bytes_out, delivered ? 32u : 0u);
  }
}

}  // namespace
}  // namespace mm
