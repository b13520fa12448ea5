#include "ctl/ctl_flags.h"

#include <gtest/gtest.h>

#include <map>

namespace mm {
namespace {

struct FakeEnv {
  std::map<std::string, std::string> vars;
  std::function<const char*(const char*)> Get() {
    return [this](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

TEST(CtlFlagsTest, DefaultsWithoutFlagsOrEnvironment) {
  FakeEnv env;
  const HttpClientOptions o = ResolveClientOptions(CtlFlags{}, env.Get(), 30);
  EXPECT_EQ(o.url, "http://localhost:8000");
  EXPECT_EQ(o.api_key, "");
  EXPECT_EQ(o.timeout_s, 30);
  EXPECT_FALSE(o.insecure);
}

TEST(CtlFlagsTest, EnvironmentThenFlagsWin) {
  FakeEnv env;
  env.vars = {{"MMSERVE_URL", "http://env:1"}, {"MMSERVE_API_KEY", "env-key"}};
  CtlFlags flags;
  HttpClientOptions o = ResolveClientOptions(flags, env.Get(), 0);
  EXPECT_EQ(o.url, "http://env:1");
  EXPECT_EQ(o.api_key, "env-key");
  flags.url = "http://flag:2";
  flags.api_key = "flag-key";
  flags.timeout_s = 5;
  flags.insecure = true;
  flags.cacert = "/ca.pem";
  o = ResolveClientOptions(flags, env.Get(), 0);
  EXPECT_EQ(o.url, "http://flag:2");
  EXPECT_EQ(o.api_key, "flag-key");
  EXPECT_EQ(o.timeout_s, 5);
  EXPECT_TRUE(o.insecure);
  EXPECT_EQ(o.cacert, "/ca.pem");
  flags.timeout_s = 0;  // given as 0: no limit, not the default
  EXPECT_EQ(ResolveClientOptions(flags, env.Get(), 30).timeout_s, 0);
}

TEST(CtlFlagsTest, ParsedFromTheCommandLine) {
  CLI::App app;
  CtlFlags flags;
  AddCtlFlags(app, flags);
  app.parse("--url http://h:9 --api-key k --timeout 7", false);
  EXPECT_EQ(flags.url, "http://h:9");
  EXPECT_EQ(flags.api_key, "k");
  EXPECT_EQ(flags.timeout_s, 7);
}

}  // namespace
}  // namespace mm
