// InferenceService, the core's front door, over a real ModelManager whose
// repositories are temporary folders and whose backend is the fake one:
// authentication, tenants and their namespaces (another tenant's model
// answers exactly as an unknown one), model lookup, the request's limits and
// validation, health, readiness, server and model metadata, and the
// repository and usage views a tenant gets.
#include "service/inference_service.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "fake_backend.h"
#include "local_repositories.h"
#include "scheduler/execution_slots.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

Tenant MakeTenant(const std::string& id, const std::string& key,
                  std::vector<std::string> repositories, TenantRole role = TenantRole::kUser) {
  Tenant t;
  t.id = id;
  t.api_keys.push_back(*ParseApiKeyHash(*HashApiKey(key)));
  t.repositories = std::move(repositories);
  t.role = role;
  return t;
}

// FP32 [4] input "x" of `values`, kept alive by the request.
std::unique_ptr<InferRequest> Request(const std::string& model, std::vector<float> values,
                                      std::string version = "") {
  auto r = std::make_unique<InferRequest>();
  r->model_name = model;
  r->model_version = std::move(version);
  r->id = "req-1";
  auto data = std::make_shared<std::vector<float>>(std::move(values));
  Tensor x;
  x.name = "x";
  x.dtype = DataType::kFp32;
  x.shape = {static_cast<int64_t>(data->size())};
  x.data = std::as_bytes(std::span<const float>(*data));
  r->inputs.push_back(std::move(x));
  r->body = data;
  return r;
}

// Tenants "a" and "b" each own a repository; "root" is an admin without one.
//   a: m (versions 1, 2), shared
//   b: shared, secret
class InferenceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("mm_service_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    repo_a_ = root_ / "a";
    repo_b_ = root_ / "b";
    fakes::WriteFakeModel(repo_a_, "m", {1, 2}, "version_policy: { all {} }\n");
    fakes::WriteFakeModel(repo_a_, "shared", {1});
    fakes::WriteFakeModel(repo_b_, "shared", {1});
    fakes::WriteFakeModel(repo_b_, "secret", {1});

    tenants_ =
        TenantRegistry::FromConfig({{MakeTenant("a", "key-a", {repo_a_.string()}),
                                     MakeTenant("b", "key-b", {repo_b_.string()}),
                                     MakeTenant("root", "key-root", {}, TenantRole::kAdmin)}});

    ModelManager::Options mo;
    mo.repositories = LocalRepositories({repo_a_, repo_b_});
    mo.mode = ModelControlMode::kNone;  // every model loads at Start()
    mo.slots = &slots_;
    ASSERT_TRUE(fakes::RegisterFakeBackend(backends_, &backend_).ok());
    mo.backends = &backends_;
    mo.owner_of = [this](std::string_view repository) {
      auto owner = tenants_->OwnerOf(repository);
      return owner != nullptr ? ModelOwner{owner->id} : ModelOwner{};
    };
    auto manager = ModelManager::Create(std::move(mo));
    ASSERT_TRUE(manager.ok()) << manager.status().message();
    manager_ = std::move(*manager);
    static_cast<void>(manager_->Start());  // a failed start-up load is in the index

    InferenceService::Options so;
    so.models = manager_.get();
    so.server_version = "9.9";
    so.tenants = tenants_.get();
    so.max_tensors_per_request = 4;
    so.max_elements_per_tensor = 1000;
    auto service = InferenceService::Create(std::move(so));
    ASSERT_TRUE(service.ok()) << service.status().message();
    service_ = std::move(*service);
  }
  void TearDown() override {
    service_.reset();
    manager_.reset();
    slots_.Shutdown();
    fs::remove_all(root_);
  }

  std::shared_ptr<const Tenant> As(const std::string& key) {
    auto tenant = service_->Authenticate("Bearer " + key);
    EXPECT_TRUE(tenant.ok()) << tenant.status().message();
    return tenant.ok() ? *tenant : nullptr;
  }

  // `room`: lent to the service for the request's bill (CallRoom).
  StatusOr<std::unique_ptr<InferResponse>> Infer(const Tenant& tenant,
                                                 std::unique_ptr<InferRequest> request,
                                                 InferenceService::CallRoom* room = nullptr) {
    std::promise<StatusOr<std::unique_ptr<InferResponse>>> answer;
    auto future = answer.get_future();
    service_->Infer(
        tenant, std::move(request),
        [&answer](StatusOr<std::unique_ptr<InferResponse>> r) {
          answer.set_value(std::move(r));  // a second call would throw
        },
        room);
    return future.get();
  }

  // The status of a request for `model` that cannot be served, with the
  // model's name written as "<M>" so that two models' answers compare.
  std::pair<StatusCode, std::string> Refusal(const Tenant& tenant, const std::string& model) {
    auto r = Infer(tenant, Request(model, {1, 2, 3, 4}));
    EXPECT_FALSE(r.ok()) << model;
    if (r.ok()) return {StatusCode::kOk, ""};
    std::string message = r.status().message();
    for (size_t at; (at = message.find(model)) != std::string::npos;) {
      message.replace(at, model.size(), "<M>");
    }
    return {r.status().code(), message};
  }

  fs::path root_, repo_a_, repo_b_;
  fakes::FakeBackend backend_;
  BackendRegistry backends_;
  ExecutionSlots slots_{ExecutionSlotsOptions{.slots = 2}};
  std::unique_ptr<TenantRegistry> tenants_;
  std::unique_ptr<ModelManager> manager_;
  std::unique_ptr<InferenceService> service_;
};

TEST(InferenceServiceCreateTest, NeedsAModelManager) {
  auto service = InferenceService::Create({});
  ASSERT_FALSE(service.ok());
  EXPECT_EQ(service.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(service.status().message().find("ModelManager"), std::string::npos);
}

TEST_F(InferenceServiceTest, HealthReadinessAndServerMetadata) {
  EXPECT_TRUE(service_->Live());
  EXPECT_FALSE(service_->Ready());  // until startup loading has finished
  service_->SetReady(true);
  EXPECT_TRUE(service_->Ready());
  service_->SetReady(false);  // shutdown begins
  EXPECT_FALSE(service_->Ready());
  EXPECT_TRUE(service_->Live());
  const ServerMetadata& md = service_->Metadata();
  EXPECT_EQ(md.name, "mmserve");
  EXPECT_EQ(md.version, "9.9");
  EXPECT_EQ(md.extensions,
            (std::vector<std::string>{"binary_tensor_data", "system_shared_memory"}));
}

TEST_F(InferenceServiceTest, AuthenticationNamesTheTenantOrSaysWhatIsExpected) {
  EXPECT_EQ(As("key-a")->id, "a");
  EXPECT_EQ(As("key-b")->id, "b");
  EXPECT_EQ(As("key-root")->role, TenantRole::kAdmin);
  for (std::string_view bad : {"", "Bearer", "Bearer nope", "Basic a2V5LWE=", "key-a"}) {
    auto tenant = service_->Authenticate(bad);
    ASSERT_FALSE(tenant.ok()) << bad;
    EXPECT_EQ(tenant.status().code(), StatusCode::kUnauthenticated) << bad;
    EXPECT_FALSE(tenant.status().message().empty());
  }
  // With a connection's memo the same answer, the second time from the memo.
  TenantRegistry::Memo memo;
  EXPECT_EQ((*service_->Authenticate("Bearer key-b", &memo))->id, "b");
  EXPECT_EQ((*service_->Authenticate("Bearer key-b", &memo))->id, "b");
  EXPECT_FALSE(service_->Authenticate("Bearer nope", &memo).ok());
}

TEST_F(InferenceServiceTest, OpenServerTakesEveryoneAsTheDefaultAdmin) {
  auto open = InferenceService::Create({.models = manager_.get()});
  ASSERT_TRUE(open.ok());
  for (std::string_view auth : {"", "Bearer anything"}) {
    auto tenant = (*open)->Authenticate(auth);
    ASSERT_TRUE(tenant.ok());
    EXPECT_EQ((*tenant)->id, kDefaultTenantId);
    EXPECT_EQ((*tenant)->role, TenantRole::kAdmin);
  }
}

TEST_F(InferenceServiceTest, InferRunsTheNewestReadyVersionOrTheOneAskedFor) {
  auto a = As("key-a");
  auto r = Infer(*a, Request("m", {1, 2, 3, 4}));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->model_name, "m");
  EXPECT_EQ((*r)->model_version, "2");
  EXPECT_EQ((*r)->id, "req-1");
  ASSERT_EQ((*r)->outputs.size(), 1u);
  EXPECT_EQ((*r)->outputs[0].name, "y");
  auto y = (*r)->outputs[0].as<float>();  // x + version
  EXPECT_EQ(std::vector<float>(y.begin(), y.end()), (std::vector<float>{3, 4, 5, 6}));

  r = Infer(*a, Request("m", {1, 2, 3, 4}, "1"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->model_version, "1");
  EXPECT_EQ((*r)->outputs[0].as<float>()[0], 2);

  r = Infer(*a, Request("m", {1, 2, 3, 4}, "7"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().message();
}

// A lent room holds the request's bill until its response's receipt is
// settled: taken while the response is out, free again once delivered, and
// the usage is billed the same as with an allocated bill.
TEST_F(InferenceServiceTest, ALentRoomHoldsTheBillUntilTheReceiptIsSettled) {
  auto a = As("key-a");
  InferenceService::CallRoom room;
  for (int round = 0; round < 2; ++round) {
    auto r = Infer(*a, Request("m", {1, 2, 3, 4}), &room);
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_TRUE((*r)->receipt.pending());
    // In use: the service would not put another bill there.
    EXPECT_EQ(room.Take(), nullptr);
    (*r)->receipt.Settle(true);
    void* bytes = room.Take();  // free again
    ASSERT_NE(bytes, nullptr);
    room.Return();
  }
  // While the room is taken (a transport's slip), a request still succeeds:
  // its bill is allocated instead.
  ASSERT_NE(room.Take(), nullptr);
  auto r = Infer(*a, Request("m", {1, 2, 3, 4}), &room);
  ASSERT_TRUE(r.ok()) << r.status().message();
  (*r)->receipt.Settle(true);
  room.Return();
  // An error answer frees the room at once (it holds no slot while written).
  EXPECT_FALSE(Infer(*a, Request("m", {1, 2, 3}), &room).ok());  // the wrong shape
  EXPECT_NE(room.Take(), nullptr);
  room.Return();
  auto usage = service_->Usage(*a);
  ASSERT_EQ(usage.size(), 1u);
  ASSERT_EQ(usage[0].models.size(), 1u);
  EXPECT_EQ(usage[0].models[0].second.requests, 4u);
  EXPECT_EQ(usage[0].models[0].second.failures, 1u);
  EXPECT_EQ(usage[0].models[0].second.bytes_out, 3u * 16u);  // three delivered answers
}

TEST_F(InferenceServiceTest, AnotherTenantsModelAnswersAsAnUnknownOne) {
  auto a = As("key-a");
  // b's "secret" exists and is READY; for a it is exactly as "nope".
  const auto unknown = Refusal(*a, "nope");
  EXPECT_EQ(unknown.first, StatusCode::kNotFound) << unknown.second;
  EXPECT_EQ(Refusal(*a, "secret"), unknown);
  // Everything else a might ask says the same.
  auto secret = service_->GetModel(*a, "secret", "");
  auto nope = service_->GetModel(*a, "nope", "");
  ASSERT_FALSE(secret.ok());
  EXPECT_EQ(secret.status().code(), nope.status().code());
  EXPECT_FALSE(service_->ModelReady(*a, "secret", ""));
  EXPECT_EQ(service_->GetModelMetadata(*a, "secret", "").status().code(), nope.status().code());
  EXPECT_EQ(service_->ModelStatistics(*a, "secret", "").status().code(), StatusCode::kNotFound);
  // b's own path names never show in a's answers.
  EXPECT_EQ(secret.status().message().find(repo_b_.string()), std::string::npos);
  // b sees it.
  auto b = As("key-b");
  EXPECT_TRUE(service_->ModelReady(*b, "secret", ""));
  EXPECT_TRUE(Infer(*b, Request("secret", {0, 0, 0, 0})).ok());
}

TEST_F(InferenceServiceTest, TwoTenantsModelsOfOneNameAreServedApart) {
  auto a = As("key-a");
  auto b = As("key-b");
  auto from_a = service_->GetModel(*a, "shared", "");
  auto from_b = service_->GetModel(*b, "shared", "");
  ASSERT_TRUE(from_a.ok() && from_b.ok());
  EXPECT_NE((*from_a)->repository, (*from_b)->repository);
  // An admin sees both: the plain name is ambiguous, naming both repositories.
  auto root = As("key-root");
  auto ambiguous = service_->GetModel(*root, "shared", "");
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_EQ(ambiguous.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(ambiguous.status().message().find((*from_a)->repository), std::string::npos)
      << ambiguous.status().message();
  EXPECT_NE(ambiguous.status().message().find((*from_b)->repository), std::string::npos);
  // And every model of a single repository.
  EXPECT_TRUE(service_->ModelReady(*root, "secret", ""));
  EXPECT_TRUE(service_->ModelReady(*root, "m", "1"));
}

TEST_F(InferenceServiceTest, RepositoryIndexShowsOnlyTheTenantsModels) {
  auto names = [&](const Tenant& tenant) {
    std::vector<std::string> out;
    for (const auto& s : service_->RepositoryIndex(tenant, /*ready_only=*/true)) {
      out.push_back(s.name + "/" + std::to_string(s.version));
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(names(*As("key-a")), (std::vector<std::string>{"m/1", "m/2", "shared/1"}));
  EXPECT_EQ(names(*As("key-b")), (std::vector<std::string>{"secret/1", "shared/1"}));
  EXPECT_EQ(names(*As("key-root")).size(), 5u);
}

TEST_F(InferenceServiceTest, ModelMetadataDescribesTheModel) {
  auto md = service_->GetModelMetadata(*As("key-a"), "m", "");
  ASSERT_TRUE(md.ok()) << md.status().message();
  EXPECT_EQ(md->name, "m");
  EXPECT_EQ(md->platform, fakes::kFakePlatform);
  EXPECT_EQ(md->versions, (std::vector<std::string>{"1", "2"}));
  ASSERT_EQ(md->inputs.size(), 1u);
  EXPECT_EQ(md->inputs[0].name, "x");
  EXPECT_EQ(md->inputs[0].dtype, DataType::kFp32);
  EXPECT_EQ(md->inputs[0].shape, (Shape{4}));  // no batch dim: max_batch_size 0
  ASSERT_EQ(md->outputs.size(), 1u);
  EXPECT_EQ(md->outputs[0].name, "y");

  auto one = service_->GetModelMetadata(*As("key-a"), "m", "1");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->versions, (std::vector<std::string>{"1"}));
}

TEST_F(InferenceServiceTest, ABadRequestIsRefusedNamingWhatIsWrong) {
  auto a = As("key-a");
  auto expect_invalid = [&](std::unique_ptr<InferRequest> request, const std::string& words) {
    auto r = Infer(*a, std::move(request));
    ASSERT_FALSE(r.ok()) << words;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().message();
    EXPECT_NE(r.status().message().find(words), std::string::npos) << r.status().message();
  };
  // Shape and datatype against the model's config.
  expect_invalid(Request("m", {1, 2, 3}), "input 'x'");
  auto wrong_type = Request("m", {1, 2, 3, 4});
  wrong_type->inputs[0].dtype = DataType::kInt32;
  expect_invalid(std::move(wrong_type), "input 'x'");
  auto unknown_input = Request("m", {1, 2, 3, 4});
  unknown_input->inputs[0].name = "z";
  expect_invalid(std::move(unknown_input), "unknown input 'z'");
  auto unknown_output = Request("m", {1, 2, 3, 4});
  unknown_output->outputs.push_back({"w", {}});
  expect_invalid(std::move(unknown_output), "unknown output 'w'");
  // The server's limits, before the model is looked at.
  auto many = Request("nope", {1, 2, 3, 4});
  for (int i = 0; i < 4; ++i) many->outputs.push_back({"y" + std::to_string(i), {}});
  expect_invalid(std::move(many), "--max-tensors-per-request");
  auto huge = Request("nope", {1, 2, 3, 4});
  huge->inputs[0].shape = {1000, 2};
  expect_invalid(std::move(huge), "--max-elements-per-tensor");
}

TEST_F(InferenceServiceTest, RefusedRequestsAreCountedForTheirTenantOnly) {
  auto a = As("key-a");
  EXPECT_FALSE(Infer(*a, Request("nope", {1, 2, 3, 4})).ok());
  EXPECT_FALSE(Infer(*a, Request("secret", {1, 2, 3, 4})).ok());
  ASSERT_TRUE(Infer(*a, Request("m", {1, 2, 3, 4})).ok());
  auto usage = service_->Usage(*a);
  ASSERT_EQ(usage.size(), 1u);  // a user sees its own
  EXPECT_EQ(usage[0].tenant, "a");
  EXPECT_EQ(usage[0].refused, 2u);
  auto all = service_->Usage(*As("key-root"));
  EXPECT_EQ(all.size(), 3u);  // an admin sees every tenant's
}

TEST_F(InferenceServiceTest, StatisticsFollowTheTenantsView) {
  auto a = As("key-a");
  ASSERT_TRUE(Infer(*a, Request("m", {1, 2, 3, 4})).ok());
  auto stats = service_->ModelStatistics(*a, "m", "2");
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  ASSERT_EQ(stats->size(), 1u);
  EXPECT_EQ((*stats)[0].inference_count, 1u);
  EXPECT_EQ(service_->ModelStatistics(*a, "m", "x").status().code(), StatusCode::kInvalidArgument);
  // Without a name: a's models only.
  auto mine = service_->ModelStatistics(*a, "", "");
  ASSERT_TRUE(mine.ok());
  for (const auto& s : *mine) EXPECT_NE(s.model, "secret");
}

TEST_F(InferenceServiceTest, AUserMayNotOverrideTheMmserveBlock) {
  std::promise<Status> done;
  service_->LoadModel(*As("key-a"), "m", std::string(R"({"mmserve": {"pinned": true}})"),
                      [&](Status s) { done.set_value(std::move(s)); });
  Status s = done.get_future().get();
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.message();
  EXPECT_NE(s.message().find("tenant 'a' may not set"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace mm
