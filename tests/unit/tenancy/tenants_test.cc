#include "tenancy/tenants.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace mm {
namespace {

// A valid stored key hash (any salt and digest parse).
std::string Hash(char c) { return "sha256$" + std::string(32, c) + "$" + std::string(64, c); }

std::string TwoTenants() {
  return "tenants:\n"
         "  - id: team-a\n"
         "    api_keys: ['" +
         Hash('a') +
         "']\n"
         "    repositories: [/models/a]\n"
         "    weight: 2\n"
         "    quotas:\n"
         "      max_concurrency: 8\n"
         "      requests_per_second: 100\n"
         "      burst: 200\n"
         "      max_loaded_models: 4\n"
         "      memory_bytes: 2GiB\n"
         "  - id: ops\n"
         "    api_keys:\n"
         "      - " +
         Hash('b') + "\n      - " + Hash('c') +
         "\n"
         "    role: admin\n";
}

void ExpectInvalid(const std::string& yaml, std::initializer_list<std::string> needles) {
  auto parsed = ParseTenants(yaml);
  ASSERT_FALSE(parsed.ok()) << yaml;
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  for (const std::string& n : needles) {
    EXPECT_NE(parsed.status().message().find(n), std::string::npos)
        << "'" << n << "' not in: " << parsed.status().message();
  }
}

TEST(TenantsTest, ParsesEveryField) {
  auto parsed = ParseTenants(TwoTenants());
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_EQ(parsed->tenants.size(), 2u);
  const Tenant& a = parsed->tenants[0];
  EXPECT_EQ(a.id, "team-a");
  EXPECT_EQ(a.api_keys.size(), 1u);
  EXPECT_EQ(a.repositories, std::vector<std::string>{"/models/a"});
  EXPECT_EQ(a.role, TenantRole::kUser);
  EXPECT_EQ(a.weight, 2);
  EXPECT_EQ(a.quotas.max_concurrency, 8u);
  EXPECT_EQ(a.quotas.requests_per_second, 100);
  EXPECT_EQ(a.quotas.burst, 200);
  EXPECT_EQ(a.quotas.max_loaded_models, 4u);
  EXPECT_EQ(a.quotas.memory_bytes, 2ull << 30);
  const Tenant& ops = parsed->tenants[1];
  EXPECT_EQ(ops.role, TenantRole::kAdmin);
  EXPECT_EQ(ops.api_keys.size(), 2u);
  EXPECT_TRUE(ops.repositories.empty());
  EXPECT_EQ(ops.weight, 1);
  EXPECT_EQ(ops.quotas.requests_per_second, 0);
}

TEST(TenantsTest, BurstDefaultsToTheRate) {
  auto parsed =
      ParseTenants("tenants:\n  - id: t\n    api_keys: ['" + Hash('a') +
                   "']\n    repositories: [/r]\n    quotas: {requests_per_second: 0.5}\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->tenants[0].quotas.burst, 1);
}

TEST(TenantsTest, RefusesWhatIsWrongNamingThePlace) {
  const std::string key = "    api_keys: ['" + Hash('a') + "']\n";
  ExpectInvalid("", {"the file", "expected a mapping"});
  ExpectInvalid("tenants: []", {"tenants", "non-empty list"});
  ExpectInvalid("tenant: []", {"unknown field 'tenant'"});
  ExpectInvalid("tenants: [", {"not valid YAML", "line 1"});
  ExpectInvalid("tenants:\n  - id: t\n" + key + "    repositories: [/r]\n    colour: red\n",
                {"tenants[0]", "unknown field 'colour'", "known: id, api_keys"});
  ExpectInvalid("tenants:\n  - api_keys: []\n", {"tenants[0]", "no 'id'"});
  ExpectInvalid("tenants:\n  - id: 'a/b'\n" + key + "    repositories: [/r]\n",
                {"tenants[0].id", "letters, digits"});
  ExpectInvalid("tenants:\n  - id: " + std::string(65, 'x') + "\n" + key,
                {"tenants[0].id", "1 to 64 characters"});
  ExpectInvalid("tenants:\n  - id: t\n    repositories: [/r]\n", {"(t)", "no api_keys"});
  ExpectInvalid("tenants:\n  - id: t\n    api_keys: ['abc']\n    repositories: [/r]\n",
                {"(t).api_keys[0]", "unknown scheme", "mmserve hash-key"});
  ExpectInvalid("tenants:\n  - id: t\n" + key, {"(t)", "no repositories"});
  ExpectInvalid("tenants:\n  - id: t\n" + key + "    repositories: [/r]\n    role: root\n",
                {"(t).role", "'user' or 'admin'", "'root'"});
  ExpectInvalid("tenants:\n  - id: t\n" + key + "    repositories: [/r]\n    weight: 0\n",
                {"(t).weight", "> 0"});
  ExpectInvalid("tenants:\n  - id: t\n" + key + "    repositories: [/r]\n    weight: heavy\n",
                {"(t).weight", "'heavy'"});
  ExpectInvalid(
      "tenants:\n  - id: t\n" + key + "    repositories: [/r]\n    quotas: {max_concurrency: -1}\n",
      {"(t).quotas.max_concurrency", "whole number"});
  ExpectInvalid("tenants:\n  - id: t\n" + key + "    repositories: [/r]\n    quotas: {burst: 5}\n",
                {"(t).quotas.burst", "without requests_per_second"});
  ExpectInvalid("tenants:\n  - id: t\n" + key +
                    "    repositories: [/r]\n    quotas: {requests_per_second: 5, burst: 0.5}\n",
                {"(t).quotas.burst", ">= 1"});
  ExpectInvalid(
      "tenants:\n  - id: t\n" + key + "    repositories: [/r]\n    quotas: {memory_bytes: lots}\n",
      {"(t).quotas.memory_bytes"});
  ExpectInvalid(
      "tenants:\n  - id: t\n" + key + "    repositories: [/r]\n    quotas: {max_models: 3}\n",
      {"(t).quotas", "unknown field 'max_models'"});
  ExpectInvalid("tenants:\n  - id: t\n" + key + "    repositories: /r\n",
                {"(t).repositories", "list of strings"});
}

TEST(TenantsTest, RefusesDuplicates) {
  const std::string a = "  - id: a\n    api_keys: ['" + Hash('a') + "']\n    repositories: [/r]\n";
  ExpectInvalid("tenants:\n" + a + a, {"tenants[1].id", "'a' appears twice"});
  ExpectInvalid(
      "tenants:\n" + a + "  - id: b\n    api_keys: ['" + Hash('a') + "']\n    repositories: [/s]\n",
      {"(b).api_keys[0]", "listed twice"});
  ExpectInvalid("tenants:\n" + a + "  - id: b\n    api_keys: ['" + Hash('b') +
                    "']\n    repositories: [/x/../r/]\n",
                {"(b).repositories[0]", "already tenant 'a''s"});
}

TEST(TenantsTest, RepositoriesMayBeUris) {
  const std::string key = "    api_keys: ['" + Hash('a') + "']\n";
  auto parsed = ParseTenants("tenants:\n  - id: t\n" + key +
                             "    repositories: [s3://bucket/prefix, 'mlflow://host:5000/models', "
                             "'file:///models/t', /models/u]\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->tenants[0].repositories,
            (std::vector<std::string>{"s3://bucket/prefix", "mlflow://host:5000/models",
                                      "file:///models/t", "/models/u"}));
  EXPECT_TRUE(parsed->tenants[0].repository_keys.empty());  // the registry's job
  ExpectInvalid("tenants:\n  - id: t\n" + key + "    repositories: ['file://']\n",
                {"(t).repositories[0]", "expected a folder or a repository URI, got 'file://'"});
}

TEST(TenantsTest, RefusesTwoSpellingsOfOneRepository) {
  const std::string a = "  - id: a\n    api_keys: ['" + Hash('a') + "']\n";
  const std::string b = "  - id: b\n    api_keys: ['" + Hash('b') + "']\n";
  const std::pair<std::string, std::string> same[] = {
      {"s3://bucket/prefix", "s3://bucket/prefix/"},
      {"s3://bucket/prefix", "S3://bucket//prefix"},
      {"/r", "file:///r"},
      {"file:///x/../r/", "/r"},
  };
  for (const auto& [first, second] : same) {
    ExpectInvalid("tenants:\n" + a + "    repositories: ['" + first + "']\n" + b +
                      "    repositories: ['" + second + "']\n",
                  {"(b).repositories[0]", "'" + second + "' is already tenant 'a''s"});
  }
  // Different repositories, though alike.
  auto parsed = ParseTenants("tenants:\n" + a + "    repositories: [s3://bucket/prefix]\n" + b +
                             "    repositories: [s3://bucket/Prefix, s3://other/prefix, "
                             "'s3:/bucket/prefix']\n");
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
}

}  // namespace
}  // namespace mm
