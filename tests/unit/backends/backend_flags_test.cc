#include "backends/backend_flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <string>
#include <vector>

namespace mm {
namespace {

using ::testing::HasSubstr;

void Parse(CLI::App& app, std::vector<std::string> args) {
  std::vector<const char*> argv = {"mmserve"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
}

// A backend that remembers the settings it was created with.
class SettingsBackend final : public Backend {
 public:
  explicit SettingsBackend(BackendSettings settings) : settings(std::move(settings)) {}
  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec&) override {
    return Unimplemented("not loading");
  }
  const BackendSettings settings;
};

void RegisterSettingsBackend(BackendRegistry& registry, const std::string& name) {
  ASSERT_TRUE(
      registry
          .Register({.name = name,
                     .create = [](const BackendSettings& s) -> StatusOr<std::unique_ptr<Backend>> {
                       return std::unique_ptr<Backend>(new SettingsBackend(s));
                     }})
          .ok());
}

const BackendSettings& SettingsOf(BackendRegistry& registry, const std::string& name) {
  auto found = registry.Find(name);
  EXPECT_TRUE(found.ok()) << found.status().message();
  return static_cast<SettingsBackend*>(found->backend)->settings;
}

TEST(BackendFlagsTest, TritonSyntaxAndPythonEnv) {
  CLI::App app;
  BackendFlags flags;
  AddBackendFlags(app, flags);
  Parse(app, {"--backend-config", "python,env-cache-dir=/c", "--backend-config=onnxruntime,a=b=c,d",
              "--python-env", "/opt/venv"});
  auto settings = ParseBackendFlags(flags);
  ASSERT_TRUE(settings.ok()) << settings.status().message();
  EXPECT_EQ(settings->at("python"),
            (BackendSettings{{"env", "/opt/venv"}, {"env-cache-dir", "/c"}}));
  // The value is everything after the first '=' following the comma.
  EXPECT_EQ(settings->at("onnxruntime"), (BackendSettings{{"a", "b=c,d"}}));
}

TEST(BackendFlagsTest, MalformedSettingsNameTheFlagAndWhatWasExpected) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"python", "expected <backend>,<key>=<value>"},
      {"python,env", "expected <backend>,<key>=<value>"},
      {"Python,env=x", "the backend name 'Python' is not one"},
      {",env=x", "the backend name '' is not one"},
      {"python,=x", "the key is empty"},
      {"python,env=a\nb", "holds a line break"},
  };
  for (const auto& [value, expected] : cases) {
    BackendFlags flags;
    flags.backend_config = {value};
    auto settings = ParseBackendFlags(flags);
    ASSERT_FALSE(settings.ok()) << value;
    EXPECT_EQ(settings.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(settings.status().message(), HasSubstr("--backend-config"));
    EXPECT_THAT(settings.status().message(), HasSubstr(expected)) << value;
  }
  BackendFlags twice;
  twice.backend_config = {"python,env=/a"};
  twice.python_env = "/b";
  auto settings = ParseBackendFlags(twice);
  ASSERT_FALSE(settings.ok());
  EXPECT_THAT(settings.status().message(), HasSubstr("is set twice"));
  EXPECT_THAT(settings.status().message(), HasSubstr("--python-env"));
}

TEST(BackendFlagsTest, TheEncodingRoundTripsAndDecodesStrictly) {
  BackendSettingsByName settings = {{"python", {{"env", "/v env"}, {"env-cache-dir", "/c=d"}}},
                                    {"onnxruntime", {{"k", ""}}}};
  auto decoded = DecodeBackendSettings(EncodeBackendSettings(settings));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(*decoded, settings);
  EXPECT_TRUE(DecodeBackendSettings("").ok());
  auto bad = DecodeBackendSettings("python,env=/a\npython,env=/b\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("MMSERVE_BACKEND_CONFIG line 2"));
  bad = DecodeBackendSettings("python,env=/a");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("does not end with a line break"));
  EXPECT_FALSE(DecodeBackendSettings("garbage\n").ok());
}

TEST(BackendFlagsTest, TheServerHandsItsSettingsToItsWorkers) {
  BackendRegistry server;
  RegisterSettingsBackend(server, "python");
  BackendFlags flags;
  flags.python_env = "/opt/venv";
  ASSERT_TRUE(ConfigureBackendsFromFlags(flags, server).ok());
  EXPECT_EQ(SettingsOf(server, "python").at("env"), "/opt/venv");
  ASSERT_NE(std::getenv(kBackendConfigEnv), nullptr);

  BackendRegistry worker;  // as WorkerMain configures its own
  RegisterSettingsBackend(worker, "python");
  ASSERT_TRUE(ConfigureBackendsFromEnvironment(worker).ok());
  EXPECT_EQ(SettingsOf(worker, "python"), SettingsOf(server, "python"));

  // No settings: nothing is handed over.
  BackendRegistry plain;
  RegisterSettingsBackend(plain, "python");
  ASSERT_TRUE(ConfigureBackendsFromFlags({}, plain).ok());
  EXPECT_EQ(std::getenv(kBackendConfigEnv), nullptr);
  EXPECT_TRUE(SettingsOf(plain, "python").empty());
}

TEST(BackendFlagsTest, AnUnknownBackendStopsTheServerListingTheBackends) {
  BackendRegistry registry;
  RegisterSettingsBackend(registry, "python");
  BackendFlags flags;
  flags.backend_config = {"tensorflow,x=1"};
  Status s = ConfigureBackendsFromFlags(flags, registry);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("--backend-config"));
  EXPECT_THAT(s.message(), HasSubstr("'tensorflow'"));
  EXPECT_THAT(s.message(), HasSubstr("its backends: python"));
  ::unsetenv(kBackendConfigEnv);
}

}  // namespace
}  // namespace mm
