#include "repository/s3/aws_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// Made-up credentials, in AWS's shapes.
constexpr char kKeyId[] = "AKIAIOSFODNN7EXAMPLE";
constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr char kToken[] = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN//wEaDA";
constexpr char kOtherKeyId[] = "AKIAI44QH8DHBEXAMPLE";
constexpr char kOtherSecret[] = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY";

class AwsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mm_aws_config_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    home_ = dir_ / "home";
    fs::create_directories(home_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  AwsEnvironment Env() const {
    AwsEnvironment env;
    env.home = home_;
    env.get = [vars = vars_](std::string_view name) -> std::optional<std::string> {
      auto it = vars.find(std::string(name));
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
    return env;
  }
  StatusOr<S3Settings> Resolve(std::string_view endpoint_flag = "") const {
    return ResolveS3Settings(Env(), endpoint_flag);
  }
  // The error of a resolution that must fail with `code`.
  std::string Error(StatusCode code, std::string_view endpoint_flag = "") const {
    auto settings = Resolve(endpoint_flag);
    EXPECT_FALSE(settings.ok());
    if (settings.ok()) return "";
    EXPECT_EQ(settings.status().code(), code) << settings.status().ToString();
    return settings.status().message();
  }

  fs::path Write(const fs::path& path, const std::string& content) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  fs::path WriteConfig(const std::string& content) { return Write(ConfigPath(), content); }
  fs::path WriteCredentials(const std::string& content) {
    return Write(CredentialsPath(), content);
  }
  fs::path ConfigPath() const { return home_ / ".aws" / "config"; }
  fs::path CredentialsPath() const { return home_ / ".aws" / "credentials"; }

  fs::path dir_;
  fs::path home_;
  std::map<std::string, std::string> vars_;
};

std::string Pair(const std::string& id, const std::string& secret) {
  return "aws_access_key_id = " + id + "\naws_secret_access_key = " + secret + "\n";
}

// ------------------------------------------------------------------ defaults

TEST_F(AwsConfigTest, NothingSetIsAnonymousAtTheDefaultEndpoint) {
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->endpoint, "https://s3.us-east-1.amazonaws.com");
  EXPECT_TRUE(settings->endpoint_from_default);
  EXPECT_EQ(settings->region, "us-east-1");
  EXPECT_TRUE(settings->credentials.anonymous());
  EXPECT_EQ(settings->credentials_source, "none (anonymous requests)");
}

TEST_F(AwsConfigTest, MissingFilesAreAbsentNotErrors) {
  vars_["AWS_CONFIG_FILE"] = (dir_ / "no" / "config").string();
  vars_["AWS_SHARED_CREDENTIALS_FILE"] = (dir_ / "nothing-here").string();
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_TRUE(settings->credentials.anonymous());
  // Without a home folder there are no default files either.
  AwsEnvironment env;
  env.home.clear();
  settings = ResolveS3Settings(env, "");
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->region, "us-east-1");
}

TEST_F(AwsConfigTest, EmptyVariablesCountAsUnset) {
  WriteCredentials("[default]\n" + Pair(kKeyId, kSecret));
  for (const char* name :
       {"AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"}) {
    vars_[name] = "";
  }
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->endpoint, "https://s3.us-east-1.amazonaws.com");
  EXPECT_EQ(settings->credentials.access_key_id, kKeyId);
}

// ------------------------------------------------------------------ endpoint

TEST_F(AwsConfigTest, EndpointPrecedence) {
  WriteConfig("[default]\nendpoint_url = http://top-level:1\n");
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->endpoint, "http://top-level:1");
  EXPECT_FALSE(settings->endpoint_from_default);

  // The S3-specific one under `s3 =` wins over the top-level one, wherever it is.
  WriteConfig(
      "[default]\ns3 =\n  addressing_style = path\n  endpoint_url = http://nested:2\n"
      "endpoint_url = http://top-level:1\n");
  EXPECT_EQ(Resolve()->endpoint, "http://nested:2");

  vars_["AWS_ENDPOINT_URL"] = "http://all-services:3";
  EXPECT_EQ(Resolve()->endpoint, "http://all-services:3");
  vars_["AWS_ENDPOINT_URL_S3"] = "http://s3-only:4";
  EXPECT_EQ(Resolve()->endpoint, "http://s3-only:4");
  settings = Resolve("https://flag:5");
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->endpoint, "https://flag:5");
  EXPECT_FALSE(settings->endpoint_from_default);
}

TEST_F(AwsConfigTest, TheProfilesEndpointIsItsOwn) {
  WriteConfig(
      "[default]\nendpoint_url = http://default-profile\n"
      "[profile dev]\nendpoint_url = http://dev-profile:9000\n");
  vars_["AWS_PROFILE"] = "dev";
  EXPECT_EQ(Resolve()->endpoint, "http://dev-profile:9000");
  // A nested endpoint_url under another service is not S3's.
  WriteConfig("[profile dev]\ndynamodb =\n  endpoint_url = http://dynamo:8000\n");
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->endpoint, "https://s3.us-east-1.amazonaws.com");
  EXPECT_TRUE(settings->endpoint_from_default);
}

TEST_F(AwsConfigTest, EndpointsAreNormalized) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"http://127.0.0.1:9000/", "http://127.0.0.1:9000"},
      {"HTTPS://Storage.Example.com", "https://Storage.Example.com"},
      {"http://[::1]:9000", "http://[::1]:9000"},
      {"http://minio_1:9000", "http://minio_1:9000"},
      {"https://s3.eu-west-1.amazonaws.com", "https://s3.eu-west-1.amazonaws.com"},
  };
  for (const auto& [given, expected] : cases) {
    auto settings = Resolve(given);
    ASSERT_TRUE(settings.ok()) << given << ": " << settings.status().ToString();
    EXPECT_EQ(settings->endpoint, expected) << given;
  }
}

TEST_F(AwsConfigTest, BadEndpointsAreRefusedNamingTheirSource) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ftp://host", "has scheme 'ftp'"},
      {"127.0.0.1:9000", "has no scheme"},
      {"http://", "has no host"},
      {"http://:9000", "has no host"},
      {"http://host/bucket", "has a path"},
      {"http://host//", "has a path"},
      {"http://host?versioning", "has a query"},
      {"http://host#top", "has a fragment"},
      {"http://host:0", "port that is not a number from 1 to 65535"},
      {"http://host:65536", "port that is not a number from 1 to 65535"},
      {"http://host:90a", "port that is not a number from 1 to 65535"},
      {"http://host:", "port that is not a number from 1 to 65535"},
      {"http://ho st", "a character a host name cannot hold"},
      {"http://[::1", "without its closing ']'"},
      {"http://[zz]:1", "malformed IPv6 address"},
      {"http://[::1]x", "text after its IPv6 address"},
  };
  for (const auto& [given, expected] : cases) {
    const std::string message = Error(StatusCode::kInvalidArgument, given);
    EXPECT_THAT(message, HasSubstr("S3 endpoint '" + given + "' from --s3-endpoint")) << given;
    EXPECT_THAT(message, HasSubstr(expected)) << given;
    EXPECT_THAT(message, HasSubstr("expected http:// or https:// followed by a host")) << given;
  }
  vars_["AWS_ENDPOINT_URL_S3"] = "s3://bucket";
  EXPECT_THAT(Error(StatusCode::kInvalidArgument), HasSubstr("from AWS_ENDPOINT_URL_S3"));
  vars_.clear();
  vars_["AWS_ENDPOINT_URL"] = "http://host/path";
  EXPECT_THAT(Error(StatusCode::kInvalidArgument), HasSubstr("from AWS_ENDPOINT_URL has a path"));
  vars_.clear();
  WriteConfig("[default]\ns3 =\n  endpoint_url = minio:9000\n");
  EXPECT_THAT(Error(StatusCode::kInvalidArgument),
              HasSubstr("from endpoint_url under s3 of profile 'default' in config file '" +
                        ConfigPath().string() + "'"));
  WriteConfig("[default]\nendpoint_url = tcp://minio\n");
  EXPECT_THAT(Error(StatusCode::kInvalidArgument),
              HasSubstr("from endpoint_url of profile 'default' in config file '"));
}

// An endpoint with userinfo may hold a password: the message never repeats it.
TEST_F(AwsConfigTest, AnEndpointWithUserinfoIsRefusedWithoutRepeatingIt) {
  for (const std::string& given : {"http://minio:" + std::string(kSecret) + "@host:9000",
                                   "minio:" + std::string(kSecret) + "@host"}) {
    const std::string message = Error(StatusCode::kInvalidArgument, given);
    EXPECT_THAT(message, HasSubstr("S3 endpoint from --s3-endpoint has")) << given;
    EXPECT_THAT(message, HasSubstr("userinfo")) << given;
    EXPECT_THAT(message, Not(HasSubstr(kSecret)));
  }
  const std::string message =
      Error(StatusCode::kInvalidArgument, "gopher://u:" + std::string(kSecret) + "@host");
  EXPECT_THAT(message, HasSubstr("S3 endpoint from --s3-endpoint has another scheme"));
  EXPECT_THAT(message, Not(HasSubstr(kSecret)));
}

// -------------------------------------------------------------------- region

TEST_F(AwsConfigTest, RegionPrecedenceAndTheDefaultEndpoint) {
  WriteConfig("[default]\nregion = eu-central-1\n");
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->region, "eu-central-1");
  EXPECT_EQ(settings->endpoint, "https://s3.eu-central-1.amazonaws.com");
  EXPECT_TRUE(settings->endpoint_from_default);

  vars_["AWS_DEFAULT_REGION"] = "ap-south-1";
  EXPECT_EQ(Resolve()->region, "ap-south-1");
  vars_["AWS_REGION"] = "us-west-2";
  settings = Resolve();
  EXPECT_EQ(settings->region, "us-west-2");
  EXPECT_EQ(settings->endpoint, "https://s3.us-west-2.amazonaws.com");
  // An explicit endpoint is not changed by the region.
  EXPECT_EQ(Resolve("http://localhost:9000")->endpoint, "http://localhost:9000");
  EXPECT_EQ(Resolve("http://localhost:9000")->region, "us-west-2");

  vars_["AWS_REGION"] = "cn-north-1";
  EXPECT_EQ(Resolve()->endpoint, "https://s3.cn-north-1.amazonaws.com.cn");
}

TEST_F(AwsConfigTest, TheProfilesRegionIsItsOwn) {
  WriteConfig("[default]\nregion = eu-west-1\n[profile dev]\nregion = eu-west-3\n");
  vars_["AWS_PROFILE"] = "dev";
  EXPECT_EQ(Resolve()->region, "eu-west-3");
  vars_["AWS_PROFILE"] = "default";
  EXPECT_EQ(Resolve()->region, "eu-west-1");
}

TEST_F(AwsConfigTest, BadRegionsAreRefusedNamingTheirSource) {
  vars_["AWS_REGION"] = "us:east-1";
  EXPECT_THAT(Error(StatusCode::kInvalidArgument),
              HasSubstr("region 'us:east-1' from AWS_REGION: expected lower-case letters, digits "
                        "and '-' (e.g. us-east-1)"));
  vars_.clear();
  vars_["AWS_DEFAULT_REGION"] = "US-EAST-1";
  EXPECT_THAT(Error(StatusCode::kInvalidArgument), HasSubstr("from AWS_DEFAULT_REGION"));
  vars_.clear();
  WriteConfig("[default]\nregion = eu west 1\n");
  EXPECT_THAT(Error(StatusCode::kInvalidArgument),
              HasSubstr("region 'eu west 1' from region of profile 'default' in config file '" +
                        ConfigPath().string() + "'"));
}

// --------------------------------------------------------------- credentials

TEST_F(AwsConfigTest, EnvironmentCredentialsComeFirst) {
  WriteCredentials("[default]\n" + Pair(kOtherKeyId, kOtherSecret));
  WriteConfig("[default]\n" + Pair(kOtherKeyId, kOtherSecret));
  vars_["AWS_ACCESS_KEY_ID"] = kKeyId;
  vars_["AWS_SECRET_ACCESS_KEY"] = kSecret;
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->credentials.access_key_id, kKeyId);
  EXPECT_EQ(settings->credentials.secret_access_key, kSecret);
  EXPECT_EQ(settings->credentials.session_token, "");
  EXPECT_FALSE(settings->credentials.anonymous());
  EXPECT_EQ(settings->credentials_source, "environment");

  vars_["AWS_SESSION_TOKEN"] = kToken;
  EXPECT_EQ(Resolve()->credentials.session_token, kToken);
}

// With credentials in the environment, a missing profile only means no
// region or endpoint from the config file.
TEST_F(AwsConfigTest, EnvironmentCredentialsNeedNoProfile) {
  vars_["AWS_PROFILE"] = "nowhere";
  vars_["AWS_ACCESS_KEY_ID"] = kKeyId;
  vars_["AWS_SECRET_ACCESS_KEY"] = kSecret;
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->credentials_source, "environment");
  EXPECT_EQ(settings->region, "us-east-1");
}

TEST_F(AwsConfigTest, HalfAPairInTheEnvironmentIsRefused) {
  WriteCredentials("[default]\n" + Pair(kOtherKeyId, kOtherSecret));
  vars_["AWS_ACCESS_KEY_ID"] = kKeyId;
  std::string message = Error(StatusCode::kInvalidArgument);
  EXPECT_THAT(message, HasSubstr("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"));
  EXPECT_THAT(message, HasSubstr("expected both"));
  vars_.clear();
  vars_["AWS_SECRET_ACCESS_KEY"] = kSecret;
  vars_["AWS_SESSION_TOKEN"] = kToken;
  message = Error(StatusCode::kInvalidArgument);
  EXPECT_THAT(message, HasSubstr("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"));
  EXPECT_THAT(message, Not(HasSubstr(kSecret)));
  EXPECT_THAT(message, Not(HasSubstr(kToken)));
}

// A session token alone is left over from something else: the SDKs ignore it.
TEST_F(AwsConfigTest, ASessionTokenWithoutThePairIsIgnored) {
  vars_["AWS_SESSION_TOKEN"] = kToken;
  WriteCredentials("[default]\n" + Pair(kKeyId, kSecret));
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->credentials.session_token, "");
  EXPECT_EQ(settings->credentials_source,
            "shared credentials file '" + CredentialsPath().string() + "', profile 'default'");
}

TEST_F(AwsConfigTest, TheSharedCredentialsFile) {
  WriteCredentials("[default]\n" + Pair(kKeyId, kSecret) + "[dev]\n" +
                   Pair(kOtherKeyId, kOtherSecret) + "aws_session_token = " + kToken + "\n");
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->credentials.access_key_id, kKeyId);
  EXPECT_EQ(settings->credentials.secret_access_key, kSecret);
  EXPECT_EQ(settings->credentials.session_token, "");
  EXPECT_EQ(settings->credentials_source,
            "shared credentials file '" + CredentialsPath().string() + "', profile 'default'");

  vars_["AWS_PROFILE"] = "dev";
  settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->credentials.access_key_id, kOtherKeyId);
  EXPECT_EQ(settings->credentials.secret_access_key, kOtherSecret);
  EXPECT_EQ(settings->credentials.session_token, kToken);
  EXPECT_EQ(settings->credentials_source,
            "shared credentials file '" + CredentialsPath().string() + "', profile 'dev'");

  // AWS_DEFAULT_PROFILE is the fallback; AWS_PROFILE wins over it.
  vars_.clear();
  vars_["AWS_DEFAULT_PROFILE"] = "dev";
  EXPECT_EQ(Resolve()->credentials.access_key_id, kOtherKeyId);
  vars_["AWS_PROFILE"] = "default";
  EXPECT_EQ(Resolve()->credentials.access_key_id, kKeyId);
}

TEST_F(AwsConfigTest, TheConfigFile) {
  WriteConfig("[profile dev]\n" + Pair(kOtherKeyId, kOtherSecret) +
              "aws_session_token = " + kToken + "\n[default]\n" + Pair(kKeyId, kSecret));
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->credentials.access_key_id, kKeyId);
  EXPECT_EQ(settings->credentials_source,
            "config file '" + ConfigPath().string() + "', profile 'default'");
  vars_["AWS_PROFILE"] = "dev";
  settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->credentials.access_key_id, kOtherKeyId);
  EXPECT_EQ(settings->credentials.secret_access_key, kOtherSecret);
  EXPECT_EQ(settings->credentials.session_token, kToken);
  EXPECT_EQ(settings->credentials_source,
            "config file '" + ConfigPath().string() + "', profile 'dev'");
}

TEST_F(AwsConfigTest, TheConfigFileTakesProfileDefaultToo) {
  WriteConfig("[profile default]\n" + Pair(kKeyId, kSecret) + "region = eu-north-1\n");
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->credentials.access_key_id, kKeyId);
  EXPECT_EQ(settings->region, "eu-north-1");
  // With both, [profile default] wins.
  WriteConfig("[default]\nregion = eu-south-1\n[profile   default]\nregion = eu-north-1\n");
  EXPECT_EQ(Resolve()->region, "eu-north-1");
  // In the config file a profile needs its "profile " prefix; [dev] is some other section.
  WriteConfig("[dev]\nregion = eu-south-1\n");
  vars_["AWS_PROFILE"] = "dev";
  EXPECT_THAT(Error(StatusCode::kNotFound), HasSubstr("(as [profile dev])"));
}

TEST_F(AwsConfigTest, TheCredentialsFileWinsOverTheConfigFile) {
  WriteCredentials("[dev]\n" + Pair(kKeyId, kSecret));
  WriteConfig("[profile dev]\n" + Pair(kOtherKeyId, kOtherSecret) + "region = sa-east-1\n");
  vars_["AWS_PROFILE"] = "dev";
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->credentials.access_key_id, kKeyId);
  EXPECT_EQ(settings->region, "sa-east-1");
  // A credentials-file section without the pair goes on to the config file.
  WriteCredentials("[dev]\nsome_setting = 1\n");
  settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->credentials.access_key_id, kOtherKeyId);
  EXPECT_EQ(settings->credentials_source,
            "config file '" + ConfigPath().string() + "', profile 'dev'");
  // And a profile with no keys anywhere is anonymous.
  WriteConfig("[profile dev]\nregion = sa-east-1\n");
  settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_TRUE(settings->credentials.anonymous());
  EXPECT_EQ(settings->credentials_source, "none (anonymous requests)");
}

TEST_F(AwsConfigTest, TheFilesCanBeMovedByVariables) {
  const fs::path credentials =
      Write(dir_ / "elsewhere" / "creds", "[ci]\n" + Pair(kKeyId, kSecret));
  const fs::path config = Write(dir_ / "elsewhere" / "cfg", "[profile ci]\nregion = us-west-1\n");
  // The files at the default places are not read once the variables move them.
  WriteCredentials("[ci]\n" + Pair(kOtherKeyId, kOtherSecret));
  WriteConfig("[profile ci]\nregion = eu-west-1\n");
  vars_["AWS_PROFILE"] = "ci";
  vars_["AWS_SHARED_CREDENTIALS_FILE"] = credentials.string();
  vars_["AWS_CONFIG_FILE"] = config.string();
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->credentials.access_key_id, kKeyId);
  EXPECT_EQ(settings->region, "us-west-1");
  EXPECT_EQ(settings->credentials_source,
            "shared credentials file '" + credentials.string() + "', profile 'ci'");
  // "~/" is the home folder.
  Write(home_ / "aws-cfg", "[profile ci]\nregion = us-east-2\n");
  vars_["AWS_CONFIG_FILE"] = "~/aws-cfg";
  EXPECT_EQ(Resolve()->region, "us-east-2");
}

TEST_F(AwsConfigTest, AnUnknownProfileIsNotFound) {
  WriteCredentials("[default]\n" + Pair(kKeyId, kSecret));
  WriteConfig("[default]\nregion = eu-west-1\n");
  vars_["AWS_PROFILE"] = "staging";
  const std::string message = Error(StatusCode::kNotFound);
  EXPECT_THAT(message, HasSubstr("profile 'staging' (from AWS_PROFILE) is in neither"));
  EXPECT_THAT(message, HasSubstr("shared credentials file '" + CredentialsPath().string() + "'"));
  EXPECT_THAT(message, HasSubstr("config file '" + ConfigPath().string() + "'"));
  EXPECT_THAT(message, HasSubstr("[profile staging]"));
  EXPECT_THAT(message, HasSubstr("expected a section for it"));
  EXPECT_THAT(message, Not(HasSubstr(kSecret)));

  // Also when the files are absent, which the message says.
  fs::remove_all(home_ / ".aws");
  vars_["AWS_PROFILE"] = "";
  vars_["AWS_DEFAULT_PROFILE"] = "staging";
  EXPECT_THAT(Error(StatusCode::kNotFound),
              HasSubstr("(from AWS_DEFAULT_PROFILE) is in neither the shared credentials file '" +
                        CredentialsPath().string() + "' (absent)"));
  // The default profile, not asked for, may be missing: requests are anonymous.
  vars_.clear();
  EXPECT_TRUE(Resolve()->credentials.anonymous());
}

// A profile in one file only is found there.
TEST_F(AwsConfigTest, AProfileInEitherFileIsKnown) {
  WriteConfig("[profile only-config]\nregion = eu-west-2\n");
  WriteCredentials("[only-credentials]\n" + Pair(kKeyId, kSecret));
  vars_["AWS_PROFILE"] = "only-config";
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_TRUE(settings->credentials.anonymous());
  EXPECT_EQ(settings->region, "eu-west-2");
  vars_["AWS_PROFILE"] = "only-credentials";
  settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->credentials.access_key_id, kKeyId);
}

TEST_F(AwsConfigTest, HalfAPairInAFileIsRefused) {
  WriteCredentials("[dev]\naws_secret_access_key = " + std::string(kSecret) +
                   "\naws_session_token = " + kToken + "\n");
  vars_["AWS_PROFILE"] = "dev";
  std::string message = Error(StatusCode::kInvalidArgument);
  EXPECT_THAT(message, HasSubstr("shared credentials file '" + CredentialsPath().string() +
                                 "', profile 'dev' has aws_secret_access_key but no "
                                 "aws_access_key_id"));
  EXPECT_THAT(message, HasSubstr("expected both"));
  EXPECT_THAT(message, Not(HasSubstr(kSecret)));
  EXPECT_THAT(message, Not(HasSubstr(kToken)));

  fs::remove(CredentialsPath());
  WriteConfig("[profile dev]\naws_access_key_id = " + std::string(kKeyId) +
              "\naws_secret_access_key =\n");
  message = Error(StatusCode::kInvalidArgument);
  EXPECT_THAT(message, HasSubstr("config file '" + ConfigPath().string() +
                                 "', profile 'dev' has aws_access_key_id but no "
                                 "aws_secret_access_key"));
}

// Credentials go into a request's headers and curl's "id:secret".
TEST_F(AwsConfigTest, CredentialsThatCannotTravelAreRefusedWithoutRepeatingThem) {
  // An indented line continues the value above it: the secret would hold a line break.
  WriteCredentials("[default]\naws_access_key_id = " + std::string(kKeyId) +
                   "\naws_secret_access_key = " + kSecret + "\n  " + kOtherSecret + "\n");
  std::string message = Error(StatusCode::kInvalidArgument);
  EXPECT_THAT(message, HasSubstr("aws_secret_access_key in shared credentials file '"));
  EXPECT_THAT(message, HasSubstr("holds a control character"));
  EXPECT_THAT(message, Not(HasSubstr(kSecret)));
  EXPECT_THAT(message, Not(HasSubstr(kOtherSecret)));

  WriteCredentials("[default]\n" + Pair("AKIA:EXAMPLE", kSecret));
  EXPECT_THAT(Error(StatusCode::kInvalidArgument),
              HasSubstr("aws_access_key_id in shared credentials file '"));

  vars_["AWS_ACCESS_KEY_ID"] = kKeyId;
  vars_["AWS_SECRET_ACCESS_KEY"] = kSecret;
  vars_["AWS_SESSION_TOKEN"] = std::string(kToken) + "\r\nX-Injected: 1";
  message = Error(StatusCode::kInvalidArgument);
  EXPECT_THAT(message, HasSubstr("AWS_SESSION_TOKEN in the environment holds a control character"));
  EXPECT_THAT(message, Not(HasSubstr(kToken)));
}

// ------------------------------------------------------------------ INI syntax

TEST_F(AwsConfigTest, IniSyntaxAsTheCliReadsIt) {
  WriteConfig(
      "\xEF\xBB\xBF# a comment\r\n"
      "; another\r\n"
      "\r\n"
      "[profile dev] # the dev account\r\n"
      "  # an indented comment\r\n"
      "  region=eu-west-1   \r\n"
      "s3 =\r\n"
      "  addressing_style = path\r\n"
      "\r\n"
      "  # a comment in a nested section\r\n"
      "  endpoint_url=http://minio:9000/\r\n"
      "cli_pager =   less\r\n"
      "    -R\r\n"
      "Region = us-west-2\r\n"
      "aws_access_key_id\t=\t" +
      std::string(kKeyId) + "\r\naws_secret_access_key = " + kSecret + "\r\n");
  vars_["AWS_PROFILE"] = "dev";
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->region, "eu-west-1");  // keys are case-sensitive: "Region" is another key
  EXPECT_EQ(settings->endpoint, "http://minio:9000");
  EXPECT_EQ(settings->credentials.access_key_id, kKeyId);
  EXPECT_EQ(settings->credentials.secret_access_key, kSecret);
}

// A nested endpoint_url counts only in the config file, and only under s3.
TEST_F(AwsConfigTest, NestedSectionsOfTheCredentialsFileAreSkipped) {
  WriteCredentials("[default]\ns3 =\n  endpoint_url = http://ignored\n" + Pair(kKeyId, kSecret));
  auto settings = Resolve();
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_TRUE(settings->endpoint_from_default);
  EXPECT_EQ(settings->credentials.access_key_id, kKeyId);
}

TEST_F(AwsConfigTest, LinesThatCannotBeReadNameTheFileAndLineButNotTheLine) {
  const std::string config = ConfigPath().string();
  const std::vector<std::tuple<std::string, int, std::string>> cases = {
      {"[default]\nregion = us-east-1\naws_secret_access_key " + std::string(kSecret) + "\n", 3,
       "cannot read the line; expected '[section]', 'key = value'"},
      {"aws_secret_access_key = " + std::string(kSecret) + "\n[default]\n", 1,
       "a key before any section"},
      {"# c\n[default\n", 2, "a section line without its closing ']'"},
      {"[ ]\n", 1, "a section without a name"},
      {"[default] " + std::string(kSecret) + "\n", 1, "text after a section's ']'"},
      {"[default]\n= " + std::string(kSecret) + "\n", 2, "a value without a key"},
      {"[default]\nregion = a\n[default]\n", 3, "section [default] appears a second time"},
      {"[default]\naws_secret_access_key = " + std::string(kSecret) +
           "\naws_secret_access_key = " + kSecret + "\n",
       3, "a key that its section already has"},
      {"[default]\ns3 =\n  " + std::string(kSecret) + "\n", 3,
       "an indented line that is not 'key = value'"},
  };
  for (const auto& [text, line, expected] : cases) {
    WriteConfig(text);
    const std::string message = Error(StatusCode::kInvalidArgument);
    EXPECT_THAT(message, HasSubstr("config file '" + config + "', line " + std::to_string(line) +
                                   ": " + expected))
        << text;
    EXPECT_THAT(message, Not(HasSubstr(kSecret))) << text;
  }
  // The credentials file's lines too (read when the environment has no credentials).
  fs::remove(ConfigPath());
  WriteCredentials("[default]\n" + std::string(kToken) + "\n");
  const std::string message = Error(StatusCode::kInvalidArgument);
  EXPECT_THAT(message, HasSubstr("shared credentials file '" + CredentialsPath().string() +
                                 "', line 2: cannot read the line"));
  EXPECT_THAT(message, Not(HasSubstr(kToken)));
}

// ----------------------------------------------------------------- the files

TEST_F(AwsConfigTest, AFolderOrFifoIsRefused) {
  fs::create_directories(dir_ / "a-folder");
  vars_["AWS_CONFIG_FILE"] = (dir_ / "a-folder").string();
  EXPECT_THAT(Error(StatusCode::kInvalidArgument),
              HasSubstr("AWS settings file '" + (dir_ / "a-folder").string() +
                        "' is a folder; expected a regular file"));
  vars_.clear();
  ASSERT_EQ(mkfifo((dir_ / "fifo").c_str(), 0600), 0);
  vars_["AWS_SHARED_CREDENTIALS_FILE"] = (dir_ / "fifo").string();
  EXPECT_THAT(Error(StatusCode::kInvalidArgument),
              HasSubstr("AWS settings file '" + (dir_ / "fifo").string() +
                        "' is a FIFO; expected a regular file"));
}

TEST_F(AwsConfigTest, AFileOverOneMebibyteIsRefused) {
  WriteConfig("[default]\n" + std::string(1 << 20, '#'));
  EXPECT_THAT(Error(StatusCode::kInvalidArgument),
              HasSubstr("AWS settings file '" + ConfigPath().string() + "' is 1048586 bytes; " +
                        "expected at most 1048576 bytes"));
  WriteConfig("[default]\nregion = eu-west-1\n#" + std::string((1 << 20) - 30, '#'));
  EXPECT_EQ(Resolve()->region, "eu-west-1");
}

TEST_F(AwsConfigTest, AnUnreadableFileIsRefused) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any file";
  WriteConfig("[default]\n");
  fs::permissions(ConfigPath(), fs::perms::none);
  EXPECT_THAT(Error(StatusCode::kInvalidArgument),
              HasSubstr("cannot open AWS settings file '" + ConfigPath().string() + "'"));
}

TEST_F(AwsConfigTest, ProcessReadsTheRealEnvironment) {
  const AwsEnvironment env = AwsEnvironment::Process();
  ASSERT_TRUE(env.get);
  const char* path = std::getenv("PATH");
  EXPECT_EQ(env.get("PATH"), path == nullptr ? std::nullopt : std::optional<std::string>(path));
  EXPECT_EQ(env.get("MM_AWS_CONFIG_TEST_SURELY_UNSET"), std::nullopt);
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') EXPECT_EQ(env.home, fs::path(home));
  EXPECT_FALSE(env.home.empty());
}

}  // namespace
}  // namespace mm
