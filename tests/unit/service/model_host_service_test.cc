// The server's ModelHost over a real ModelManager (fake backend) and
// InferenceService: the lifecycle hands each model version its host
// (LoadSpec::host through ModelManager::Options::host_factory); a BLS call
// runs as a client of the calling model's tenant (another tenant's model is
// NOT_FOUND exactly as an unknown one; usage is charged to the caller's
// tenant); a repository no tenant lists sees only itself; an open server's
// models see every repository; custom metrics carry the caller's labels and
// leave with its unload.
#include "service/model_host_service.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <future>
#include <map>

#include "core/thread_annotations.h"
#include "fake_backend.h"
#include "local_repositories.h"
#include "scheduler/execution_slots.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

Tenant MakeTenant(const std::string& id, const std::string& key,
                  std::vector<std::string> repositories) {
  Tenant t;
  t.id = id;
  t.api_keys.push_back(*ParseApiKeyHash(*HashApiKey(key)));
  t.repositories = std::move(repositories);
  return t;
}

std::unique_ptr<InferRequest> Request(const std::string& model, std::vector<float> values) {
  auto r = std::make_unique<InferRequest>();
  r->model_name = model;
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

struct Answer {
  std::vector<StatusOr<std::unique_ptr<InferResponse>>> responses;
  std::vector<bool> finals;
};

Answer Call(ModelHost& host, std::unique_ptr<InferRequest> request) {
  auto answer = std::make_shared<Answer>();
  std::promise<void> done;
  auto future = done.get_future();
  host.Infer(std::move(request),
             [answer, &done](StatusOr<std::unique_ptr<InferResponse>> r, bool final) {
               answer->responses.push_back(std::move(r));
               answer->finals.push_back(final);
               if (final) done.set_value();
             });
  future.get();
  return std::move(*answer);
}

std::vector<float> Floats(const Tensor& t) {
  std::vector<float> out(t.data.size() / sizeof(float));
  std::memcpy(out.data(), t.data.data(), t.data.size());
  return out;
}

// Tenants "a" and "b" own repositories a and b; repository c is nobody's.
//   a: caller, m (version 2)   b: secret   c: lonely
class ModelHostServiceTest : public ::testing::Test {
 protected:
  void Start(bool with_tenants) {
    root_ = fs::temp_directory_path() /
            ("mm_host_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fakes::WriteFakeModel(root_ / "a", "caller", {1});
    fakes::WriteFakeModel(root_ / "a", "m", {2});
    fakes::WriteFakeModel(root_ / "b", "secret", {1});
    fakes::WriteFakeModel(root_ / "c", "lonely", {1});
    if (with_tenants) {
      tenants_ = TenantRegistry::FromConfig({{MakeTenant("a", "key-a", {(root_ / "a").string()}),
                                              MakeTenant("b", "key-b", {(root_ / "b").string()})}});
    }
    ModelManager::Options mo;
    mo.repositories = LocalRepositories({root_ / "a", root_ / "b", root_ / "c"});
    mo.mode = ModelControlMode::kExplicit;
    mo.slots = &slots_;
    ASSERT_TRUE(fakes::RegisterFakeBackend(backends_, &backend_).ok());
    mo.backends = &backends_;
    if (tenants_) {
      mo.owner_of = [this](std::string_view repository) {
        auto owner = tenants_->OwnerOf(repository);
        return owner != nullptr ? ModelOwner{owner->id} : ModelOwner{};
      };
    }
    mo.host_factory = ModelHostFactory(hosted_, &metrics_);
    mo.startup_models = {"*"};
    manager_ = std::move(*ModelManager::Create(std::move(mo)));
    InferenceService::Options so;
    so.models = manager_.get();
    so.tenants = tenants_.get();
    service_ = std::move(*InferenceService::Create(std::move(so)));
    hosted_->Open(service_.get());
    static_cast<void>(manager_->Start());  // a failed start-up load is in the index
  }
  void TearDown() override {
    hosted_->Close();
    service_.reset();
    manager_.reset();
    slots_.Shutdown();
    fs::remove_all(root_);
  }

  // The host the lifecycle gave `model` (every fake instance sees its LoadSpec).
  std::shared_ptr<ModelHost> HostOf(const std::string& model) {
    MutexLock lock(mu_);
    auto it = hosts_.find(model);
    return it != hosts_.end() ? it->second : nullptr;
  }

  fs::path root_;
  Mutex mu_;
  std::map<std::string, std::shared_ptr<ModelHost>> hosts_ MM_GUARDED_BY(mu_);
  fakes::FakeBackend backend_{[this](const LoadSpec& spec, size_t) {
    {
      MutexLock lock(mu_);
      hosts_[spec.model_name] = spec.host;
    }
    fakes::FakeInstance::Options o;
    o.handler = fakes::AddToInput("y", static_cast<float>(spec.version));
    return std::make_unique<fakes::FakeInstance>(std::move(o));
  }};
  BackendRegistry backends_;
  ExecutionSlots slots_{ExecutionSlotsOptions{.slots = 2}};
  CustomMetrics metrics_;
  std::unique_ptr<TenantRegistry> tenants_;
  std::shared_ptr<HostedService> hosted_ = std::make_shared<HostedService>();
  std::unique_ptr<ModelManager> manager_;
  std::unique_ptr<InferenceService> service_;
};

TEST_F(ModelHostServiceTest, EveryLoadedVersionGetsAHostAndACallRunsThroughTheScheduler) {
  Start(/*with_tenants=*/true);
  auto host = HostOf("caller");
  ASSERT_NE(host, nullptr);
  Answer a = Call(*host, Request("m", {1, 2, 3, 4}));
  ASSERT_EQ(a.responses.size(), 1u);
  EXPECT_TRUE(a.finals[0]);
  ASSERT_TRUE(a.responses[0].ok()) << a.responses[0].status().message();
  EXPECT_EQ((*a.responses[0])->model_name, "m");
  EXPECT_EQ((*a.responses[0])->model_version, "2");
  ASSERT_EQ((*a.responses[0])->outputs.size(), 1u);
  EXPECT_EQ(Floats((*a.responses[0])->outputs[0]), (std::vector<float>{3, 4, 5, 6}));
  EXPECT_TRUE(host->ModelReady("m", ""));
  EXPECT_TRUE(host->ModelReady("m", "2"));
  EXPECT_FALSE(host->ModelReady("m", "1"));
  // Charged to the caller's tenant, as its own clients' requests.
  auto usage = service_->Usage(**service_->Authenticate("Bearer key-a"));
  ASSERT_EQ(usage.size(), 1u);
  bool found = false;
  for (const auto& [model, figures] : usage[0].models) {
    if (model == "m") {
      found = true;
      EXPECT_EQ(figures.requests, 1u);
      EXPECT_EQ(figures.bytes_out, 16u);  // settled as delivered
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(ModelHostServiceTest, AnotherTenantsModelIsNotFoundExactlyAsAnUnknownOne) {
  Start(/*with_tenants=*/true);
  auto host = HostOf("caller");
  ASSERT_NE(host, nullptr);
  Answer hidden = Call(*host, Request("secret", {1, 2, 3, 4}));
  Answer unknown = Call(*host, Request("nope", {1, 2, 3, 4}));
  ASSERT_FALSE(hidden.responses[0].ok());
  ASSERT_FALSE(unknown.responses[0].ok());
  EXPECT_EQ(hidden.responses[0].status().code(), StatusCode::kNotFound);
  EXPECT_EQ(unknown.responses[0].status().code(), StatusCode::kNotFound);
  std::string h = hidden.responses[0].status().message();
  std::string u = unknown.responses[0].status().message();
  h.replace(h.find("secret"), 6, "<M>");
  u.replace(u.find("nope"), 4, "<M>");
  EXPECT_EQ(h, u);
  EXPECT_FALSE(host->ModelReady("secret", ""));
  // The other tenant's model reaches its own.
  auto secret_host = HostOf("secret");
  ASSERT_NE(secret_host, nullptr);
  EXPECT_FALSE(secret_host->ModelReady("m", ""));
  EXPECT_TRUE(secret_host->ModelReady("secret", "1"));
  // A repository nobody lists sees itself only.
  auto lonely = HostOf("lonely");
  ASSERT_NE(lonely, nullptr);
  EXPECT_TRUE(lonely->ModelReady("lonely", ""));
  EXPECT_FALSE(lonely->ModelReady("m", ""));
  Answer from_lonely = Call(*lonely, Request("m", {1, 2, 3, 4}));
  EXPECT_EQ(from_lonely.responses[0].status().code(), StatusCode::kNotFound);
}

TEST_F(ModelHostServiceTest, AnOpenServersModelsSeeEveryRepository) {
  Start(/*with_tenants=*/false);
  auto host = HostOf("lonely");
  ASSERT_NE(host, nullptr);
  EXPECT_TRUE(host->ModelReady("secret", ""));
  Answer a = Call(*host, Request("m", {0, 0, 0, 0}));
  ASSERT_TRUE(a.responses[0].ok()) << a.responses[0].status().message();
  EXPECT_EQ(Floats((*a.responses[0])->outputs[0]), (std::vector<float>{2, 2, 2, 2}));
}

TEST_F(ModelHostServiceTest, ABadRequestIsAnErrorResponseAndTheTimeoutIsChecked) {
  Start(/*with_tenants=*/true);
  auto host = HostOf("caller");
  ASSERT_NE(host, nullptr);
  auto wrong = Request("m", {1, 2, 3});  // the config says [4]
  Answer a = Call(*host, std::move(wrong));
  ASSERT_FALSE(a.responses[0].ok());
  EXPECT_EQ(a.responses[0].status().code(), StatusCode::kInvalidArgument);
  // No shared memory regions through a BLS call (the tenant's clients' memory).
  auto shm = Request("m", {1, 2, 3, 4});
  shm->inputs[0].parameters["shared_memory_region"] = std::string("clients_region");
  Answer c = Call(*host, std::move(shm));
  ASSERT_FALSE(c.responses[0].ok());
  EXPECT_EQ(c.responses[0].status().code(), StatusCode::kInvalidArgument);
  auto shm_out = Request("m", {1, 2, 3, 4});
  shm_out->outputs.push_back({"y", {{"shared_memory_region", std::string("r")}}});
  Answer d = Call(*host, std::move(shm_out));
  ASSERT_FALSE(d.responses[0].ok());
  EXPECT_NE(d.responses[0].status().message().find("take no parameters"), std::string::npos);
  auto bad_timeout = Request("m", {1, 2, 3, 4});
  bad_timeout->parameters["timeout"] = int64_t{-5};
  Answer b = Call(*host, std::move(bad_timeout));
  ASSERT_FALSE(b.responses[0].ok());
  EXPECT_NE(b.responses[0].status().message().find("timeout"), std::string::npos);
}

TEST_F(ModelHostServiceTest, OnceTheServiceIsClosedACallIsUnavailable) {
  Start(/*with_tenants=*/true);
  auto host = HostOf("caller");
  ASSERT_NE(host, nullptr);
  hosted_->Close();
  Answer a = Call(*host, Request("m", {1, 2, 3, 4}));
  ASSERT_FALSE(a.responses[0].ok());
  EXPECT_EQ(a.responses[0].status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(host->ModelReady("m", ""));
  hosted_->Open(service_.get());
  EXPECT_TRUE(Call(*host, Request("m", {1, 2, 3, 4})).responses[0].ok());
}

TEST_F(ModelHostServiceTest, MetricsCarryTheCallersLabelsAndLeaveWithItsUnload) {
  Start(/*with_tenants=*/true);
  auto host = HostOf("caller");
  ASSERT_NE(host, nullptr);
  MetricSpec spec;
  spec.family = "bls_calls_total";
  spec.description = "calls";
  spec.kind = MetricKind::kCounter;
  spec.labels = {{"kind", "x"}};
  auto id = host->CreateMetric(spec);
  ASSERT_TRUE(id.ok()) << id.status().message();
  ASSERT_TRUE(host->UpdateMetric(*id, MetricOp::kIncrement, 3).ok());
  EXPECT_DOUBLE_EQ(*host->MetricValue(*id), 3);
  EXPECT_EQ(host->UpdateMetric(*id, MetricOp::kSet, 1).code(), StatusCode::kInvalidArgument);
  spec.labels = {{"model", "other"}};  // not the caller's name
  EXPECT_EQ(host->CreateMetric(spec).status().code(), StatusCode::kInvalidArgument);
  MetricFamilies out;
  metrics_.Collect(out);
  const std::string text = MetricsServer::Serialize(out);
  EXPECT_NE(text.find("bls_calls_total{kind=\"x\",model=\"caller\",version=\"1\"} 3"),
            std::string::npos)
      << text;
  // Unloaded: the lifecycle drops the version, its instances let go of the host.
  std::promise<Status> unloaded;
  service_->UnloadModel(**service_->Authenticate("Bearer key-a"), "caller",
                        [&unloaded](Status s) { unloaded.set_value(std::move(s)); });
  ASSERT_TRUE(unloaded.get_future().get().ok());
  {
    MutexLock lock(mu_);
    hosts_.erase("caller");
  }
  host.reset();
  EXPECT_EQ(metrics_.family_count(), 0u);
}

}  // namespace
}  // namespace mm
