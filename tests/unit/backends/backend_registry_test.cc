// The backend registry: names to backends, a model to its backend, test
// backends hidden until enabled, backends created once on first use.
#include "backends/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "backends/builtin_backends.h"
#include "tests/backends/chaos/chaos_backend.h"
#include "tests/backends/identity/identity_backend.h"

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Loads nothing; says which backend it is.
class FakeBackend final : public Backend {
 public:
  explicit FakeBackend(std::string tag) : tag_(std::move(tag)) {}
  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override {
    return Internal(tag_ + " loads " + spec.model_name);
  }
  const std::string& tag() const { return tag_; }

 private:
  const std::string tag_;
};

std::string TagOf(const ResolvedBackend& resolved) {
  return static_cast<FakeBackend*>(resolved.backend)->tag();
}

class BackendRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("backend_registry_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  BackendRegistration Fake(std::string name, std::vector<std::string> platforms,
                           std::string file = "") {
    BackendRegistration r;
    r.name = name;
    r.platforms = std::move(platforms);
    r.default_model_file = std::move(file);
    r.create = [this, name](const BackendSettings&) -> StatusOr<std::unique_ptr<Backend>> {
      ++created_;
      return std::unique_ptr<Backend>(new FakeBackend(name));
    };
    return r;
  }

  // Two backends as Triton names them: ONNX Runtime and PyTorch.
  void RegisterTwo() {
    ASSERT_TRUE(registry_.Register(Fake("onnxruntime", {"onnxruntime_onnx"}, "model.onnx")).ok());
    ASSERT_TRUE(registry_.Register(Fake("pytorch", {"pytorch_libtorch"}, "model.pt")).ok());
  }

  ModelSource Model(std::string backend, std::string platform) {
    ModelSource source;
    source.name = "m";
    source.dir = dir_ / "m";
    source.config.set_name("m");
    source.config.set_backend(std::move(backend));
    source.config.set_platform(std::move(platform));
    return source;
  }

  // A model whose config names neither, with these files in version 1.
  ModelSource WithFiles(std::vector<std::string> files) {
    ModelSource source = Model("", "");
    fs::remove_all(source.dir);
    fs::create_directories(source.dir / "1");
    for (const auto& f : files) std::ofstream(source.dir / "1" / f) << "fake";
    source.versions = {1};
    return source;
  }

  fs::path dir_;
  BackendRegistry registry_;
  std::atomic<int> created_{0};
};

TEST_F(BackendRegistryTest, ResolvesByBackendByPlatformAndByBothWhenTheyAgree) {
  RegisterTwo();
  auto by_backend = registry_.Resolve(Model("pytorch", ""));
  ASSERT_TRUE(by_backend.ok()) << by_backend.status().message();
  EXPECT_EQ(TagOf(*by_backend), "pytorch");
  EXPECT_EQ(by_backend->platform, "pytorch_libtorch");  // what a load carries
  EXPECT_EQ(by_backend->registration->name, "pytorch");

  auto by_platform = registry_.Resolve(Model("", "onnxruntime_onnx"));
  ASSERT_TRUE(by_platform.ok());
  EXPECT_EQ(TagOf(*by_platform), "onnxruntime");

  // Triton's own spelling of a TorchScript model: both names, agreeing.
  auto both = registry_.Resolve(Model("pytorch", "pytorch_libtorch"));
  ASSERT_TRUE(both.ok()) << both.status().message();
  EXPECT_EQ(TagOf(*both), "pytorch");
  EXPECT_EQ(both->backend, by_backend->backend);  // one backend, created once
  EXPECT_EQ(created_, 2);
}

TEST_F(BackendRegistryTest, ContradictoryBackendAndPlatformNameBoth) {
  RegisterTwo();
  auto r = registry_.Resolve(Model("onnxruntime", "pytorch_libtorch"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("backend 'onnxruntime' and platform "
                                              "'pytorch_libtorch' contradict"));
  EXPECT_THAT(r.status().message(), HasSubstr("served by backend 'pytorch'"));
  EXPECT_THAT(r.status().message(), HasSubstr("expected platform 'onnxruntime_onnx', or no "
                                              "platform, with backend 'onnxruntime'"));

  r = registry_.Resolve(Model("onnxruntime", "tensorflow_savedmodel"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("platform 'tensorflow_savedmodel' is not supported by this server"));
  EXPECT_THAT(r.status().message(), HasSubstr("backend 'onnxruntime'"));
  EXPECT_EQ(created_, 0);  // nothing created for a model that cannot load
}

TEST_F(BackendRegistryTest, UnknownNamesListTheBackendsThisServerHas) {
  RegisterTwo();
  auto r = registry_.Resolve(Model("", "tensorflow_savedmodel"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "platform 'tensorflow_savedmodel' is not supported by this server; its backends: "
            "onnxruntime (platform onnxruntime_onnx), pytorch (platform pytorch_libtorch)");
  r = registry_.Resolve(Model("python", ""));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("backend 'python' is not supported by this server; its backends: "
                        "onnxruntime"));
  // A backend name is not a platform, nor the reverse.
  EXPECT_FALSE(registry_.Resolve(Model("", "onnxruntime")).ok());
  EXPECT_FALSE(registry_.Resolve(Model("onnxruntime_onnx", "")).ok());
}

TEST_F(BackendRegistryTest, NeitherNamedPicksTheBackendWhoseFileIsThere) {
  RegisterTwo();
  auto onnx = registry_.Resolve(WithFiles({"model.onnx"}));
  ASSERT_TRUE(onnx.ok()) << onnx.status().message();
  EXPECT_EQ(TagOf(*onnx), "onnxruntime");
  auto torch = registry_.Resolve(WithFiles({"model.pt"}));
  ASSERT_TRUE(torch.ok());
  EXPECT_EQ(TagOf(*torch), "pytorch");

  auto both = registry_.Resolve(WithFiles({"model.onnx", "model.pt"}));
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(both.status().message(), HasSubstr("model.onnx for onnxruntime, model.pt for "
                                                 "pytorch"));
  EXPECT_THAT(both.status().message(), HasSubstr("set backend in config.pbtxt"));

  auto none = registry_.Resolve(WithFiles({"weights.bin"}));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().message(),
            "cannot tell the model's platform: set platform or backend in config.pbtxt, or put "
            "a model.onnx (onnxruntime) or a model.pt (pytorch) in a version folder");

  // default_model_filename: its extension says whose file it is.
  ModelSource custom = WithFiles({"net.pt"});
  custom.config.set_default_model_filename("net.pt");
  auto by_extension = registry_.Resolve(custom);
  ASSERT_TRUE(by_extension.ok()) << by_extension.status().message();
  EXPECT_EQ(TagOf(*by_extension), "pytorch");
}

TEST_F(BackendRegistryTest, WithOneFileBackendItsMessagesAreTodays) {
  ASSERT_TRUE(registry_.Register(Fake("onnxruntime", {"onnxruntime_onnx"}, "model.onnx")).ok());
  ASSERT_TRUE(registry_.Register(Fake("chaos", {"chaos"})).ok());  // needs no file
  auto none = registry_.Resolve(WithFiles({}));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().message(),
            "cannot tell the model's platform: set platform or backend in config.pbtxt, or put "
            "a model.onnx in a version folder");
  // Any default_model_filename is the one file backend's (as before the registry).
  ModelSource custom = WithFiles({"custom.bin"});
  auto missing = registry_.Resolve(custom);
  EXPECT_FALSE(missing.ok());
  custom.config.set_default_model_filename("custom.bin");
  auto found = registry_.Resolve(custom);
  ASSERT_TRUE(found.ok()) << found.status().message();
  EXPECT_EQ(TagOf(*found), "onnxruntime");
  custom.config.set_default_model_filename("other.bin");
  auto absent = registry_.Resolve(custom);
  ASSERT_FALSE(absent.ok());
  EXPECT_THAT(absent.status().message(), HasSubstr("default_model_filename 'other.bin'"));
}

TEST_F(BackendRegistryTest, RegisterRefusesTakenNamesAndIncompleteEntries) {
  RegisterTwo();
  Status s = registry_.Register(Fake("onnxruntime", {"onnx2"}));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'onnxruntime' is taken by backend 'onnxruntime'"));
  s = registry_.Register(Fake("torch2", {"pytorch_libtorch"}));
  EXPECT_THAT(s.message(), HasSubstr("'pytorch_libtorch' is taken by backend 'pytorch'"));
  // A name may not be another backend's platform either.
  EXPECT_FALSE(registry_.Register(Fake("onnxruntime_onnx", {})).ok());
  EXPECT_FALSE(registry_.Register(Fake("", {"x"})).ok());
  EXPECT_FALSE(registry_.Register(Fake("dup", {"p", "p"})).ok());
  BackendRegistration no_factory = Fake("nofactory", {});
  no_factory.create = nullptr;
  EXPECT_THAT(registry_.Register(std::move(no_factory)).message(), HasSubstr("without a factory"));
  // Its own name as one of its platforms is fine.
  EXPECT_TRUE(registry_.Register(Fake("same", {"same"})).ok());
}

TEST_F(BackendRegistryTest, TestBackendsAreHiddenUntilEnabled) {
  auto none = registry_.EnableTestBackends();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(none.status().message(), HasSubstr("MMSERVE_TEST_BACKENDS=ON"));

  RegisterTwo();
  BackendRegistration chaos = Fake("chaos", {"chaos"});
  chaos.test_only = true;
  chaos.summary = "platform 'chaos' crashes on command";
  ASSERT_TRUE(registry_.Register(std::move(chaos)).ok());
  auto hidden = registry_.Resolve(Model("", "chaos"));
  ASSERT_FALSE(hidden.ok());
  EXPECT_THAT(hidden.status().message(), HasSubstr("platform 'chaos' is not supported"));
  EXPECT_THAT(registry_.Available(), ::testing::Not(HasSubstr("chaos")));
  EXPECT_FALSE(registry_.Find("chaos").ok());
  ASSERT_TRUE(registry_.CreateAll().ok());
  EXPECT_EQ(created_, 2);  // not the hidden one

  auto enabled = registry_.EnableTestBackends();
  ASSERT_TRUE(enabled.ok());
  EXPECT_EQ(*enabled, "platform 'chaos' crashes on command");
  EXPECT_TRUE(registry_.Resolve(Model("", "chaos")).ok());
  EXPECT_THAT(registry_.Available(), HasSubstr("chaos (platform chaos)"));
}

TEST_F(BackendRegistryTest, ALazyBackendIsCreatedAtItsFirstUseNotByCreateAll) {
  BackendRegistration heavy = Fake("heavy", {"heavy_p"});
  heavy.lazy = true;
  ASSERT_TRUE(registry_.Register(std::move(heavy)).ok());
  ASSERT_TRUE(registry_.CreateAll().ok());
  EXPECT_EQ(created_, 0);
  EXPECT_THAT(registry_.Available(), HasSubstr("heavy (platform heavy_p)"));
  ASSERT_TRUE(registry_.Resolve(Model("", "heavy_p")).ok());
  EXPECT_EQ(created_, 1);
  ASSERT_TRUE(registry_.Find("heavy").ok());
  EXPECT_EQ(created_, 1);
}

TEST_F(BackendRegistryTest, FindTakesABackendOrAPlatformName) {
  RegisterTwo();
  auto by_platform = registry_.Find("pytorch_libtorch");
  auto by_name = registry_.Find("pytorch");
  ASSERT_TRUE(by_platform.ok() && by_name.ok());
  EXPECT_EQ(by_platform->backend, by_name->backend);
  auto unknown = registry_.Find("tensorflow_savedmodel");
  ASSERT_FALSE(unknown.ok());
  // A worker's words, as before the registry.
  EXPECT_THAT(unknown.status().message(),
              HasSubstr("platform 'tensorflow_savedmodel' is not supported by this server"));
}

TEST_F(BackendRegistryTest, ABackendIsCreatedOnceAndAFailedCreationIsRetried) {
  int calls = 0;
  BackendRegistration flaky = Fake("flaky", {});
  flaky.create = [&calls](const BackendSettings&) -> StatusOr<std::unique_ptr<Backend>> {
    if (++calls == 1) return Internal("runtime not ready");
    return std::unique_ptr<Backend>(new FakeBackend("flaky"));
  };
  ASSERT_TRUE(registry_.Register(std::move(flaky)).ok());
  auto first = registry_.Find("flaky");
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().message(), "backend 'flaky': runtime not ready");
  ASSERT_TRUE(registry_.CreateAll().ok());  // tries again
  auto found = registry_.Find("flaky");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->platform, "flaky");  // no platform: its name
  EXPECT_EQ(calls, 2);

  // Many loaders at once: still one backend.
  ASSERT_TRUE(registry_.Register(Fake("shared", {"shared_p"})).ok());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] { ok += registry_.Find("shared_p").ok(); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(created_, 1);
}

TEST_F(BackendRegistryTest, BorrowedBackendsForwardLoads) {
  FakeBackend owned("owned");
  BackendRegistration r;
  r.name = "borrowed";
  r.create = BorrowBackend(&owned);
  ASSERT_TRUE(registry_.Register(std::move(r)).ok());
  auto found = registry_.Find("borrowed");
  ASSERT_TRUE(found.ok());
  LoadSpec spec;
  spec.model_name = "m";
  auto loaded = found->backend->Load(spec);
  EXPECT_EQ(loaded.status().message(), "owned loads m");
}

// The test tree's backends, registered by the functions their one
// mmserve_backend() line makes the build call: hidden until enabled.
TEST_F(BackendRegistryTest, TestTreeBackendsAreHiddenUntilEnabled) {
  ASSERT_TRUE(RegisterIdentityBackend(registry_).ok());
  ASSERT_TRUE(RegisterChaosBackend(registry_).ok());
  EXPECT_FALSE(registry_.Find("mmserve_test_identity").ok());
  EXPECT_FALSE(registry_.Find("mmserve_chaos").ok());
  auto enabled = registry_.EnableTestBackends();
  ASSERT_TRUE(enabled.ok()) << enabled.status().message();
  auto identity = registry_.Resolve(Model("mmserve_test_identity", "mmserve_test_copy"));
  ASSERT_TRUE(identity.ok()) << identity.status().message();
  ASSERT_TRUE(identity->registration->auto_complete);
  EXPECT_TRUE(registry_.Find("mmserve_chaos").ok());
}

// The generated RegisterBuiltinBackends holds the test tree's backends
// exactly when the build says so (MMSERVE_TEST_BACKENDS).
TEST_F(BackendRegistryTest, BuiltinBackendsHoldTheTestTreesAsTheBuildSays) {
  ASSERT_TRUE(RegisterBuiltinBackends(registry_).ok());
  EXPECT_FALSE(registry_.Find("mmserve_test_identity").ok());
  auto enabled = registry_.EnableTestBackends();
#if MMSERVE_TEST_BACKENDS_BUILTIN
  ASSERT_TRUE(enabled.ok()) << enabled.status().message();
  EXPECT_TRUE(registry_.Find("mmserve_test_identity").ok());
  EXPECT_TRUE(registry_.Find("mmserve_chaos").ok());
#else
  EXPECT_EQ(enabled.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(enabled.status().message(), HasSubstr("-DMMSERVE_TEST_BACKENDS=ON"));
#endif
}

TEST(IdentityBackendTest, CompletesOutputsFromInputsAndNeedsAConfig) {
  LoadSpec spec;
  spec.model_name = "id";
  auto refused = CompleteIdentityConfig(spec);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("needs a config.pbtxt"));

  spec.has_config = true;
  auto* x = spec.config.add_input();
  x->set_name("X");
  x->set_data_type(inference::TYPE_INT32);
  x->add_dims(-1);
  auto config = CompleteIdentityConfig(spec);
  ASSERT_TRUE(config.ok()) << config.status().message();
  ASSERT_EQ(config->output_size(), 1);
  EXPECT_EQ(config->output(0).name(), "X_OUT");
  EXPECT_EQ(config->output(0).data_type(), inference::TYPE_INT32);
  EXPECT_EQ(config->backend(), "mmserve_test_identity");

  auto* y = spec.config.add_output();
  y->set_name("Y");
  y->set_data_type(inference::TYPE_FP32);
  y->add_dims(-1);
  auto mismatched = CompleteIdentityConfig(spec);
  ASSERT_FALSE(mismatched.ok());
  EXPECT_THAT(mismatched.status().message(), HasSubstr("output 'Y' differs from input 'X'"));
}

}  // namespace
}  // namespace mm
