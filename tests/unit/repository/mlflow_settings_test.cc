// ResolveMlflowSettings (repository/mlflow/mlflow_client.h): the tracking
// server's base URL from an mlflow(s):// URI, and the credentials from an
// injected environment. No message or auth_source repeats a secret.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

#include "repository/mlflow/mlflow_client.h"

namespace mm {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kToken[] = "tok-5ecret-123";
constexpr char kPassword[] = "pa55-5ecret-456";

// An environment holding exactly `vars`.
std::function<std::optional<std::string>(std::string_view)> Env(
    std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

MlflowSettings Resolved(std::string_view uri, std::map<std::string, std::string> vars = {}) {
  auto settings = ResolveMlflowSettings(uri, Env(std::move(vars)));
  EXPECT_TRUE(settings.ok()) << settings.status().ToString();
  return settings.ok() ? *settings : MlflowSettings();
}

TEST(MlflowSettingsTest, MlflowIsHttp) {
  const MlflowSettings settings = Resolved("mlflow://h:5000");
  EXPECT_EQ(settings.base, "http://h:5000");
  EXPECT_EQ(settings.token, "");
  EXPECT_EQ(settings.username, "");
  EXPECT_EQ(settings.auth_source, "none");
}

TEST(MlflowSettingsTest, MlflowsIsHttpsAndKeepsThePath) {
  EXPECT_EQ(Resolved("mlflows://h/p").base, "https://h/p");
  EXPECT_EQ(Resolved("mlflows://h:8443/a/b").base, "https://h:8443/a/b");
}

TEST(MlflowSettingsTest, NoTrailingSlashAndTheSchemeInAnyCase) {
  EXPECT_EQ(Resolved("mlflow://h:5000/").base, "http://h:5000");
  EXPECT_EQ(Resolved("mlflows://h/p//").base, "https://h/p");
  EXPECT_EQ(Resolved("MLflow://h").base, "http://h");
}

TEST(MlflowSettingsTest, NoEnvironmentIsNoAuth) {
  auto settings = ResolveMlflowSettings("mlflow://h", nullptr);
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->auth_source, "none");
}

TEST(MlflowSettingsTest, ATokenWinsOverUserAndPassword) {
  const MlflowSettings settings =
      Resolved("mlflow://h:5000", {{"MLFLOW_TRACKING_TOKEN", kToken},
                                   {"MLFLOW_TRACKING_USERNAME", "alice"},
                                   {"MLFLOW_TRACKING_PASSWORD", kPassword}});
  EXPECT_EQ(settings.token, kToken);
  EXPECT_THAT(settings.auth_source, HasSubstr("MLFLOW_TRACKING_TOKEN"));
  EXPECT_THAT(settings.auth_source,
              AllOf(Not(HasSubstr(kToken)), Not(HasSubstr(kPassword)), Not(HasSubstr("alice"))));
}

TEST(MlflowSettingsTest, UserAndPasswordAreBasicAuth) {
  const MlflowSettings settings = Resolved("mlflow://h", {{"MLFLOW_TRACKING_USERNAME", "alice"},
                                                          {"MLFLOW_TRACKING_PASSWORD", kPassword}});
  EXPECT_EQ(settings.token, "");
  EXPECT_EQ(settings.username, "alice");
  EXPECT_EQ(settings.password, kPassword);
  EXPECT_THAT(settings.auth_source, AllOf(HasSubstr("alice"), HasSubstr("MLFLOW_TRACKING_USERNAME"),
                                          Not(HasSubstr(kPassword))));
}

TEST(MlflowSettingsTest, AnEmptyTokenIsUnset) {
  const MlflowSettings settings = Resolved("mlflow://h", {{"MLFLOW_TRACKING_TOKEN", ""},
                                                          {"MLFLOW_TRACKING_USERNAME", "alice"},
                                                          {"MLFLOW_TRACKING_PASSWORD", kPassword}});
  EXPECT_EQ(settings.token, "");
  EXPECT_THAT(settings.auth_source, HasSubstr("MLFLOW_TRACKING_USERNAME"));
}

TEST(MlflowSettingsTest, AUsernameWithoutAPasswordIsRefused) {
  for (const auto& vars : std::vector<std::map<std::string, std::string>>{
           {{"MLFLOW_TRACKING_USERNAME", "alice"}},
           {{"MLFLOW_TRACKING_USERNAME", "alice"}, {"MLFLOW_TRACKING_PASSWORD", ""}}}) {
    auto settings = ResolveMlflowSettings("mlflow://h", Env(vars));
    ASSERT_FALSE(settings.ok());
    EXPECT_EQ(settings.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(settings.status().message(),
                AllOf(HasSubstr("MLFLOW_TRACKING_USERNAME is set without MLFLOW_TRACKING_PASSWORD"),
                      HasSubstr("expected both")));
  }
}

TEST(MlflowSettingsTest, UserinfoInTheUriIsRefusedAndNotRepeated) {
  for (const std::string& uri : {std::string("mlflow://alice@h:5000"),
                                 "mlflows://alice:" + std::string(kPassword) + "@h/p"}) {
    auto settings = ResolveMlflowSettings(uri, Env({}));
    ASSERT_FALSE(settings.ok()) << uri;
    EXPECT_EQ(settings.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(settings.status().message(),
                AllOf(HasSubstr("no user name or password in the URI"),
                      HasSubstr("MLFLOW_TRACKING_USERNAME"), HasSubstr("expected mlflow://"),
                      Not(HasSubstr(kPassword)), Not(HasSubstr("alice"))));
  }
}

TEST(MlflowSettingsTest, AnEmptyHostIsRefused) {
  for (const char* uri : {"mlflow://", "mlflows:///p"}) {
    auto settings = ResolveMlflowSettings(uri, Env({}));
    ASSERT_FALSE(settings.ok()) << uri;
    EXPECT_EQ(settings.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(settings.status().message(), HasSubstr("expected a host"));
  }
}

TEST(MlflowSettingsTest, AnotherSchemeIsRefused) {
  for (const char* uri : {"http://h:5000", "s3://bucket/models", "/srv/models", "mlflowx://h"}) {
    auto settings = ResolveMlflowSettings(uri, Env({}));
    ASSERT_FALSE(settings.ok()) << uri;
    EXPECT_EQ(settings.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(settings.status().message(),
                AllOf(HasSubstr("'" + std::string(uri) + "' is not an MLflow URI"),
                      HasSubstr("expected mlflow://HOST[:PORT][/PATH] (http) or mlflows://")));
  }
  // Nor does a refused URI repeat a password it holds.
  auto settings = ResolveMlflowSettings(std::string("https://u:") + kPassword + "@h", Env({}));
  ASSERT_FALSE(settings.ok());
  EXPECT_THAT(settings.status().message(),
              AllOf(HasSubstr("not an MLflow URI"), Not(HasSubstr(kPassword))));
}

}  // namespace
}  // namespace mm
