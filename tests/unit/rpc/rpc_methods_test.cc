// The KServe v2 gRPC methods apart from any transport (rpc/rpc_methods.h):
// the method table a :path resolves in, who may call what, and the methods
// that answer at once, over a real InferenceService whose ModelManager loads
// fake models (explicit control) from a temporary folder, with a tenants
// registry so that tenants see only their own models.
#include "rpc/rpc_methods.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "fake_backend.h"
#include "local_repositories.h"
#include "scheduler/execution_slots.h"

namespace mm::rpc {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kPrefix = "/inference.GRPCInferenceService/";

// Every method, as the service (grpc_service.proto) names it, in its order.
const std::vector<std::pair<std::string, Method>>& AllMethods() {
  static const auto* all = new std::vector<std::pair<std::string, Method>>{
      {"ServerLive", Method::kServerLive},
      {"ServerReady", Method::kServerReady},
      {"ModelReady", Method::kModelReady},
      {"ServerMetadata", Method::kServerMetadata},
      {"ModelMetadata", Method::kModelMetadata},
      {"ModelInfer", Method::kModelInfer},
      {"ModelStreamInfer", Method::kModelStreamInfer},
      {"ModelConfig", Method::kModelConfig},
      {"ModelStatistics", Method::kModelStatistics},
      {"RepositoryIndex", Method::kRepositoryIndex},
      {"RepositoryModelLoad", Method::kRepositoryModelLoad},
      {"RepositoryModelUnload", Method::kRepositoryModelUnload},
      {"SystemSharedMemoryStatus", Method::kSystemSharedMemoryStatus},
      {"SystemSharedMemoryRegister", Method::kSystemSharedMemoryRegister},
      {"SystemSharedMemoryUnregister", Method::kSystemSharedMemoryUnregister},
      {"CudaSharedMemoryStatus", Method::kCudaSharedMemoryStatus},
      {"CudaSharedMemoryRegister", Method::kCudaSharedMemoryRegister},
      {"CudaSharedMemoryUnregister", Method::kCudaSharedMemoryUnregister},
      {"TraceSetting", Method::kTraceSetting},
      {"LogSettings", Method::kLogSettings},
  };
  return *all;
}

TEST(MethodFromPathTest, NamesEveryMethodOfTheService) {
  ASSERT_EQ(AllMethods().size(), kMethodCount);
  for (size_t i = 0; i < AllMethods().size(); ++i) {
    const auto& [name, method] = AllMethods()[i];
    EXPECT_EQ(static_cast<size_t>(method), i) << name;  // the service's order
    auto found = MethodFromPath(std::string(kPrefix) + name);
    ASSERT_TRUE(found.has_value()) << name;
    EXPECT_EQ(*found, method) << name;
    EXPECT_EQ(MethodName(method), name);
  }
}

// The table follows the service's own descriptor (grpc_service.proto), in its order.
TEST(MethodFromPathTest, AgreesWithTheServiceDescriptor) {
  const auto* service =
      inference::ServerLiveRequest::descriptor()->file()->FindServiceByName("GRPCInferenceService");
  ASSERT_NE(service, nullptr);
  ASSERT_EQ(static_cast<size_t>(service->method_count()), kMethodCount);
  for (int i = 0; i < service->method_count(); ++i) {
    const std::string path = "/" + service->full_name() + "/" + service->method(i)->name();
    auto found = MethodFromPath(path);
    ASSERT_TRUE(found.has_value()) << path;
    EXPECT_EQ(static_cast<int>(*found), i) << path;
  }
}

TEST(MethodFromPathTest, AnyOtherPathIsNone) {
  for (std::string_view path : {
           "",
           "/",
           "ModelInfer",
           "/ModelInfer",
           "/inference.GRPCInferenceService/",
           "/inference.GRPCInferenceService",
           "inference.GRPCInferenceService/ModelInfer",       // no leading slash
           "/inference.GRPCInferenceService/ModelInfer/",     // suffix
           "/inference.GRPCInferenceService/ModelInferX",     // suffix
           "/inference.GRPCInferenceService/XModelInfer",     // prefix
           "/inference.GRPCInferenceService/modelinfer",      // case
           "/inference.GRPCInferenceService/ModelInfer?x=1",  // query
           "/inference.GRPCInferenceService//ModelInfer",     // doubled slash
           "/inference.OtherService/ModelInfer",              // wrong service
           "/grpc.health.v1.Health/Check",                    // another service
           "/xinference.GRPCInferenceService/ModelInfer",     // prefix garbage
           "//inference.GRPCInferenceService/ModelInfer",     // prefix garbage
           "/inference.GRPCInferenceServiceX/ModelInfer",     // service suffix
           " /inference.GRPCInferenceService/ModelInfer",     // leading space
           "/inference.GRPCInferenceService/ModelInfer ",     // trailing space
       }) {
    EXPECT_FALSE(MethodFromPath(path).has_value()) << path;
  }
  // An embedded NUL is not a name.
  using namespace std::string_view_literals;
  EXPECT_FALSE(MethodFromPath("/inference.GRPCInferenceService/ServerLive\0"sv).has_value());
}

TEST(OpenToAnyoneTest, OnlyTheHealthChecks) {
  for (const auto& [name, method] : AllMethods()) {
    EXPECT_EQ(OpenToAnyone(method), method == Method::kServerLive || method == Method::kServerReady)
        << name;
  }
}

Tenant MakeTenant(const std::string& id, const std::string& key,
                  std::vector<std::string> repositories) {
  Tenant t;
  t.id = id;
  t.api_keys.push_back(*ParseApiKeyHash(*HashApiKey(key)));
  t.repositories = std::move(repositories);
  return t;
}

// Tenant "a" owns a repository with model m (versions 1, 2); tenant "b" owns
// one with model other. Explicit control: nothing is loaded at start.
class RpcMethodsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("mm_rpc_methods_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fakes::WriteFakeModel(root_ / "a", "m", {1, 2}, "version_policy: { all {} }\n");
    fakes::WriteFakeModel(root_ / "b", "other", {1});
    tenants_ = TenantRegistry::FromConfig({{MakeTenant("a", "key-a", {(root_ / "a").string()}),
                                            MakeTenant("b", "key-b", {(root_ / "b").string()})}});

    ModelManager::Options mo;
    mo.repositories = LocalRepositories({root_ / "a", root_ / "b"});
    mo.mode = ModelControlMode::kExplicit;
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
    ASSERT_TRUE(manager_->Start().ok());

    InferenceService::Options so;
    so.models = manager_.get();
    so.server_version = "9.9";
    so.tenants = tenants_.get();
    auto service = InferenceService::Create(std::move(so));
    ASSERT_TRUE(service.ok()) << service.status().message();
    service_ = std::move(*service);
    a_ = *service_->Authenticate("Bearer key-a");
    b_ = *service_->Authenticate("Bearer key-b");
  }
  void TearDown() override {
    service_.reset();
    manager_.reset();
    slots_.Shutdown();
    fs::remove_all(root_);
  }

  Status Load(const inference::RepositoryModelLoadRequest& in, const Tenant& tenant) {
    std::promise<Status> answer;
    auto future = answer.get_future();
    RepositoryModelLoad(*service_, tenant, in,
                        [&answer](Status s) { answer.set_value(std::move(s)); });
    return future.get();
  }
  Status LoadM() {
    inference::RepositoryModelLoadRequest in;
    in.set_model_name("m");
    return Load(in, *a_);
  }
  Status Unload(const inference::RepositoryModelUnloadRequest& in, const Tenant& tenant) {
    std::promise<Status> answer;
    auto future = answer.get_future();
    RepositoryModelUnload(*service_, tenant, in,
                          [&answer](Status s) { answer.set_value(std::move(s)); });
    return future.get();
  }

  fs::path root_;
  fakes::FakeBackend backend_;
  BackendRegistry backends_;
  ExecutionSlots slots_{ExecutionSlotsOptions{.slots = 2}};
  std::unique_ptr<TenantRegistry> tenants_;
  std::unique_ptr<ModelManager> manager_;
  std::unique_ptr<InferenceService> service_;
  std::shared_ptr<const Tenant> a_, b_;
};

TEST_F(RpcMethodsTest, HealthChecksNeedNoTenant) {
  inference::ServerLiveResponse live;
  ASSERT_TRUE(ServerLive(*service_, nullptr, {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(ServerReady(*service_, nullptr, {}, &ready).ok());
  EXPECT_FALSE(ready.ready());  // until startup is over
  service_->SetReady(true);
  ASSERT_TRUE(ServerReady(*service_, nullptr, {}, &ready).ok());
  EXPECT_TRUE(ready.ready());
}

TEST_F(RpcMethodsTest, ServerMetadataNamesTheServer) {
  inference::ServerMetadataResponse out;
  ASSERT_TRUE(ServerMetadata(*service_, a_.get(), {}, &out).ok());
  EXPECT_EQ(out.name(), "mmserve");
  EXPECT_EQ(out.version(), "9.9");
  std::vector<std::string> extensions(out.extensions().begin(), out.extensions().end());
  EXPECT_EQ(extensions, service_->Metadata().extensions);
  EXPECT_FALSE(extensions.empty());
}

TEST_F(RpcMethodsTest, LoadedModelIsReadyDescribedConfiguredAndIndexed) {
  inference::ModelReadyRequest ready_in;
  ready_in.set_name("m");
  inference::ModelReadyResponse ready;
  ASSERT_TRUE(ModelReady(*service_, a_.get(), ready_in, &ready).ok());
  EXPECT_FALSE(ready.ready());

  ASSERT_TRUE(LoadM().ok());
  ASSERT_TRUE(ModelReady(*service_, a_.get(), ready_in, &ready).ok());
  EXPECT_TRUE(ready.ready());
  // Another tenant does not see it.
  ASSERT_TRUE(ModelReady(*service_, b_.get(), ready_in, &ready).ok());
  EXPECT_FALSE(ready.ready());

  inference::ModelMetadataRequest md_in;
  md_in.set_name("m");
  inference::ModelMetadataResponse md;
  ASSERT_TRUE(ModelMetadata(*service_, a_.get(), md_in, &md).ok());
  EXPECT_EQ(md.name(), "m");
  EXPECT_EQ(md.platform(), fakes::kFakePlatform);
  ASSERT_EQ(md.versions_size(), 2);
  EXPECT_EQ(md.versions(0), "1");
  EXPECT_EQ(md.versions(1), "2");
  ASSERT_EQ(md.inputs_size(), 1);
  EXPECT_EQ(md.inputs(0).name(), "x");
  EXPECT_EQ(md.inputs(0).datatype(), "FP32");
  ASSERT_EQ(md.inputs(0).shape_size(), 1);
  EXPECT_EQ(md.inputs(0).shape(0), 4);
  ASSERT_EQ(md.outputs_size(), 1);
  EXPECT_EQ(md.outputs(0).name(), "y");
  inference::ModelMetadataResponse hidden;
  Status not_seen = ModelMetadata(*service_, b_.get(), md_in, &hidden);
  EXPECT_EQ(not_seen.code(), StatusCode::kNotFound) << not_seen.message();

  inference::ModelConfigRequest config_in;
  config_in.set_name("m");
  config_in.set_version("2");
  inference::ModelConfigResponse config;
  ASSERT_TRUE(ModelConfig(*service_, a_.get(), config_in, &config).ok());
  EXPECT_EQ(config.config().name(), "m");
  EXPECT_EQ(config.config().input_size(), 1);

  inference::RepositoryIndexRequest index_in;
  index_in.set_ready(true);
  inference::RepositoryIndexResponse index;
  ASSERT_TRUE(RepositoryIndex(*service_, a_.get(), index_in, &index).ok());
  ASSERT_EQ(index.models_size(), 2);
  for (const auto& m : index.models()) {
    EXPECT_EQ(m.name(), "m");
    EXPECT_EQ(m.state(), "READY");
  }
  inference::RepositoryIndexResponse b_index;
  ASSERT_TRUE(RepositoryIndex(*service_, b_.get(), index_in, &b_index).ok());
  EXPECT_EQ(b_index.models_size(), 0);

  inference::ModelStatisticsRequest stats_in;
  stats_in.set_name("m");
  inference::ModelStatisticsResponse stats;
  ASSERT_TRUE(ModelStatistics(*service_, a_.get(), stats_in, &stats).ok());
  ASSERT_EQ(stats.model_stats_size(), 2);
  EXPECT_EQ(stats.model_stats(0).name(), "m");
  EXPECT_EQ(stats.model_stats(0).inference_count(), 0u);

  inference::RepositoryModelUnloadRequest unload_in;
  unload_in.set_model_name("m");
  ASSERT_TRUE(Unload(unload_in, *a_).ok());
  ASSERT_TRUE(ModelReady(*service_, a_.get(), ready_in, &ready).ok());
  EXPECT_FALSE(ready.ready());
}

TEST_F(RpcMethodsTest, UnknownModelIsNotFound) {
  inference::ModelConfigRequest in;
  in.set_name("nope");
  inference::ModelConfigResponse out;
  EXPECT_EQ(ModelConfig(*service_, a_.get(), in, &out).code(), StatusCode::kNotFound);
  inference::ModelStatisticsRequest stats_in;
  stats_in.set_name("nope");
  inference::ModelStatisticsResponse stats;
  EXPECT_EQ(ModelStatistics(*service_, a_.get(), stats_in, &stats).code(), StatusCode::kNotFound);
}

TEST_F(RpcMethodsTest, RepositoryIndexRefusesARepositoryName) {
  inference::RepositoryIndexRequest in;
  in.set_repository_name("models");
  inference::RepositoryIndexResponse out;
  Status s = RepositoryIndex(*service_, a_.get(), in, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "repository_name is not supported: mmserve lists every repository it serves; leave "
            "it empty");
}

TEST_F(RpcMethodsTest, LoadRefusesARepositoryNameABadConfigAndFiles) {
  inference::RepositoryModelLoadRequest named;
  named.set_model_name("m");
  named.set_repository_name("models");
  Status s = Load(named, *a_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("repository_name is not supported"), std::string::npos);

  inference::RepositoryModelLoadRequest bad_config;
  bad_config.set_model_name("m");
  (*bad_config.mutable_parameters())["config"].set_bool_param(true);
  s = Load(bad_config, *a_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "model load request: parameter 'config' must be a string_param holding the model "
            "configuration as JSON");

  inference::RepositoryModelLoadRequest file;
  file.set_model_name("m");
  (*file.mutable_parameters())["file:1/model.bin"].set_bytes_param("weights");
  s = Load(file, *a_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "model load request: parameter 'file:1/model.bin': mmserve does not take model files "
            "in a load request; put them in the model repository");
  EXPECT_EQ(backend_.loads(), 0);  // refused before anything loaded

  // Another tenant's model loads as one that does not exist.
  inference::RepositoryModelLoadRequest others;
  others.set_model_name("other");
  EXPECT_FALSE(Load(others, *a_).ok());
}

TEST_F(RpcMethodsTest, UnloadRefusesARepositoryName) {
  inference::RepositoryModelUnloadRequest in;
  in.set_model_name("m");
  in.set_repository_name("models");
  Status s = Unload(in, *a_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "repository_name is not supported: mmserve unloads a model from whichever repository "
            "holds it; leave it empty");
}

TEST_F(RpcMethodsTest, SystemSharedMemoryIsTheTenantsOwn) {
  inference::SystemSharedMemoryStatusResponse status;
  ASSERT_TRUE(SystemSharedMemoryStatus(*service_, a_.get(), {}, &status).ok());
  EXPECT_EQ(status.regions_size(), 0);
  inference::SystemSharedMemoryStatusRequest named;
  named.set_name("nope");
  EXPECT_EQ(SystemSharedMemoryStatus(*service_, a_.get(), named, &status).code(),
            StatusCode::kNotFound);

  inference::SystemSharedMemoryRegisterRequest reg;
  reg.set_name("r");
  reg.set_key("/mm_rpc_methods_test_no_such_object");
  reg.set_byte_size(16);
  inference::SystemSharedMemoryRegisterResponse reg_out;
  EXPECT_FALSE(SystemSharedMemoryRegister(*service_, a_.get(), reg, &reg_out).ok());

  inference::SystemSharedMemoryUnregisterResponse unreg_out;
  EXPECT_TRUE(SystemSharedMemoryUnregister(*service_, a_.get(), {}, &unreg_out).ok());  // all
  inference::SystemSharedMemoryUnregisterRequest unreg;
  unreg.set_name("nope");
  EXPECT_FALSE(SystemSharedMemoryUnregister(*service_, a_.get(), unreg, &unreg_out).ok());
}

TEST_F(RpcMethodsTest, CudaSharedMemoryTraceAndLogSettingsAreUnimplemented) {
  auto expect = [](const Status& s, const std::string& message) {
    EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << message;
    EXPECT_EQ(GrpcCodeFor(s.code()), 12);
    EXPECT_EQ(s.message(), message);
  };
  const std::string cuda = "CUDA shared memory is not supported by mmserve";
  inference::CudaSharedMemoryStatusResponse status;
  expect(CudaSharedMemoryStatus(*service_, a_.get(), {}, &status), cuda);
  inference::CudaSharedMemoryRegisterResponse reg;
  expect(CudaSharedMemoryRegister(*service_, a_.get(), {}, &reg), cuda);
  inference::CudaSharedMemoryUnregisterResponse unreg;
  expect(CudaSharedMemoryUnregister(*service_, a_.get(), {}, &unreg), cuda);
  inference::TraceSettingResponse trace;
  expect(TraceSetting(*service_, a_.get(), {}, &trace),
         "trace settings is not supported by mmserve");
  inference::LogSettingsResponse log;
  expect(LogSettings(*service_, a_.get(), {}, &log), "log settings is not supported by mmserve");
}

}  // namespace
}  // namespace mm::rpc
