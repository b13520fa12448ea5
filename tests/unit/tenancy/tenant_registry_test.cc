#include "tenancy/tenant_registry.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "repository/repository_key.h"

namespace mm {
namespace {

Tenant Make(const std::string& id, const std::vector<std::string>& keys) {
  Tenant t;
  t.id = id;
  for (const auto& k : keys) t.api_keys.push_back(*ParseApiKeyHash(*HashApiKey(k)));
  t.repositories = {"/models/" + id};
  return t;
}

TEST(TenantRegistryTest, OpenModeIsOneAdminTenantForEveryone) {
  auto registry = TenantRegistry::Open();
  EXPECT_TRUE(registry->open());
  for (std::string_view auth : {"", "Bearer anything", "garbage"}) {
    auto tenant = registry->Authenticate(auth);
    ASSERT_TRUE(tenant.ok());
    EXPECT_EQ((*tenant)->id, "default");
    EXPECT_EQ((*tenant)->role, TenantRole::kAdmin);
  }
  EXPECT_EQ(registry->Reload().code(), StatusCode::kFailedPrecondition);
}

TEST(TenantRegistryTest, KeysNameTheirTenants) {
  auto registry = TenantRegistry::FromConfig(
      {{Make("a", {"key-of-a-1", "key-of-a-2"}), Make("b", {"key-of-b"})}});
  for (int round = 0; round < 2; ++round) {  // the second round comes from the cache
    EXPECT_EQ((*registry->Authenticate("Bearer key-of-a-1"))->id, "a");
    EXPECT_EQ((*registry->Authenticate("bearer  key-of-a-2 "))->id, "a");
    EXPECT_EQ((*registry->Authenticate("BEARER key-of-b"))->id, "b");
  }
  for (std::string_view bad : {"", "key-of-b", "Basic key-of-b", "Bearer ", "Bearer key-of-c",
                               "Bearer key-of-b2", "Bearer key-of-"}) {
    auto tenant = registry->Authenticate(bad);
    ASSERT_FALSE(tenant.ok()) << bad;
    EXPECT_EQ(tenant.status().code(), StatusCode::kUnauthenticated);
    EXPECT_NE(tenant.status().message().find("Authorization: Bearer"), std::string::npos);
  }
}

TEST(TenantRegistryTest, ThreadsAuthenticateConcurrently) {
  auto registry = TenantRegistry::FromConfig({{Make("a", {"ka"}), Make("b", {"kb"})}});
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < 200; ++n) {
        const bool a = (n + i) % 2 == 0;
        auto t = registry->Authenticate(a ? "Bearer ka" : "Bearer kb");
        if (!t.ok() || (*t)->id != (a ? "a" : "b")) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(TenantRegistryTest, ReloadSwapsTheFileAndKeepsTheOldOneWhenBad) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("mm-tenants-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "tenants.yaml").string();
  const auto write = [&](const std::string& id, const std::string& key) {
    std::ofstream(path) << "tenants:\n  - id: " << id << "\n    api_keys: ['" << *HashApiKey(key)
                        << "']\n    repositories: [/m]\n";
  };
  write("first", "k1");
  auto registry = TenantRegistry::FromFile(path);
  ASSERT_TRUE(registry.ok()) << registry.status().message();
  EXPECT_EQ((*(*registry)->Authenticate("Bearer k1"))->id, "first");
  (*(*registry)->Authenticate("Bearer k1"))->usage->RecordRefused();

  write("second", "k2");
  ASSERT_TRUE((*registry)->Reload().ok());
  // A tenant the reload removed keeps its usage.
  auto usage = (*registry)->usage().Tenants();
  ASSERT_EQ(usage.size(), 2u);
  EXPECT_EQ(usage[0]->tenant_id(), "first");
  EXPECT_EQ(usage[0]->refused(), 1u);
  EXPECT_EQ(usage[1]->tenant_id(), "second");
  auto old_key = (*registry)->Authenticate("Bearer k1");  // was cached on this thread
  EXPECT_EQ(old_key.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ((*(*registry)->Authenticate("Bearer k2"))->id, "second");

  std::ofstream(path) << "tenants: [";
  Status bad = (*registry)->Reload();
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find(path), std::string::npos) << bad.message();
  EXPECT_EQ((*(*registry)->Authenticate("Bearer k2"))->id, "second");
  EXPECT_EQ((*registry)->config()->tenants.size(), 1u);
  std::filesystem::remove_all(dir);
}

TEST(TenantRegistryTest, AConnectionsMemoAnswersItsRepeatedKeyAndNothingElse) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("mm-memo-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "tenants.yaml").string();
  std::ofstream(path) << "tenants:\n  - id: a\n    api_keys: ['" << *HashApiKey("key-a")
                      << "']\n    repositories: [/a]\n  - id: b\n    api_keys: ['"
                      << *HashApiKey("key-b") << "']\n    repositories: [/b]\n";
  auto registry = TenantRegistry::FromFile(path);
  ASSERT_TRUE(registry.ok()) << registry.status().message();
  TenantRegistry::Memo memo;
  EXPECT_EQ((*(*registry)->Authenticate("Bearer key-a", &memo))->id, "a");
  EXPECT_EQ(memo.authorization, "Bearer key-a");
  EXPECT_EQ((*(*registry)->Authenticate("Bearer key-a", &memo))->id, "a");  // from the memo
  // Another value on the same connection is checked afresh, and a wrong one
  // neither passes nor spoils the memo.
  EXPECT_EQ((*(*registry)->Authenticate("Bearer key-b", &memo))->id, "b");
  EXPECT_EQ((*registry)->Authenticate("Bearer key-c", &memo).status().code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ((*registry)->Authenticate("", &memo).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ((*(*registry)->Authenticate("Bearer key-b", &memo))->id, "b");
  // A reload that drops key-b empties the memo's worth (an open stream or
  // keep-alive connection that presents it again is refused) ...
  std::ofstream(path) << "tenants:\n  - id: a\n    api_keys: ['" << *HashApiKey("key-a")
                      << "']\n    repositories: [/a]\n    quotas: {max_concurrency: 3}\n";
  ASSERT_TRUE((*registry)->Reload().ok());
  EXPECT_EQ((*registry)->Authenticate("Bearer key-b", &memo).status().code(),
            StatusCode::kUnauthenticated);
  // ... and a memo of a key that stays answers with the tenant as reloaded.
  TenantRegistry::Memo stream_memo;
  auto before = (*registry)->Authenticate("Bearer key-a", &stream_memo);
  ASSERT_TRUE(before.ok());
  std::ofstream(path) << "tenants:\n  - id: a\n    api_keys: ['" << *HashApiKey("key-a")
                      << "']\n    repositories: [/a]\n    quotas: {max_concurrency: 5}\n";
  ASSERT_TRUE((*registry)->Reload().ok());
  auto after = (*registry)->Authenticate("Bearer key-a", &stream_memo);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*before)->quotas.max_concurrency, 3u);
  EXPECT_EQ((*after)->quotas.max_concurrency, 5u);
  std::filesystem::remove_all(dir);
}

TEST(TenantRegistryTest, RepositoriesAreComparedByTheirCanonicalPath) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("mm-tenant-repos-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "models");
  std::filesystem::create_symlink(dir / "models", dir / "link");
  Tenant a = Make("a", {"ka"});
  a.repositories = {(dir / "models/").string(), (dir / "link").string(),
                    (dir / "x/../models").string()};
  auto registry = TenantRegistry::FromConfig({{a}});
  auto tenant = registry->Authenticate("Bearer ka");
  ASSERT_TRUE(tenant.ok());
  const std::string want = std::filesystem::canonical(dir / "models").string();
  EXPECT_EQ((*tenant)->repository_keys, (std::vector<std::string>{want, want, want}));
  std::filesystem::remove_all(dir);
}

TEST(TenantRegistryTest, OwnerOfFindsATenantByItsRepositorysKey) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("mm-tenant-owner-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "models");
  Tenant a = Make("a", {"ka"});
  a.repositories = {(dir / "models").string()};
  Tenant b = Make("b", {"kb"});
  b.repositories = {"file://" + (dir / "x/../models-b/").string()};
  auto registry = TenantRegistry::FromConfig({{a, b}});
  const std::string key_a = RepositoryKey((dir / "models/").string());
  EXPECT_EQ(key_a, std::filesystem::canonical(dir / "models").string());
  ASSERT_NE(registry->OwnerOf(key_a), nullptr);
  EXPECT_EQ(registry->OwnerOf(key_a)->id, "a");
  // A folder that does not exist yet is keyed as it will be once it does.
  ASSERT_NE(registry->OwnerOf((dir / "models-b").string()), nullptr);
  EXPECT_EQ(registry->OwnerOf((dir / "models-b").string())->id, "b");
  EXPECT_EQ(registry->OwnerOf((dir / "models").string() + "/"), nullptr);  // keys, not spellings
  EXPECT_EQ(registry->OwnerOf("/elsewhere"), nullptr);
  EXPECT_EQ(TenantRegistry::Open()->OwnerOf(key_a), nullptr);
  std::filesystem::remove_all(dir);
}

TEST(TenantRegistryTest, UriRepositoriesAreKeyedByTheirNormalizedUri) {
  Tenant a = Make("a", {"ka"});
  a.repositories = {"s3://bucket/prefix/", "S3://bucket//other", "mlflow://host:5000/models"};
  Tenant b = Make("b", {"kb"});
  b.repositories = {"s3://bucket/Prefix"};
  auto registry = TenantRegistry::FromConfig({{a, b}});
  auto tenant = registry->Authenticate("Bearer ka");
  ASSERT_TRUE(tenant.ok());
  EXPECT_EQ((*tenant)->repositories, a.repositories);  // as written
  EXPECT_EQ((*tenant)->repository_keys,
            (std::vector<std::string>{"s3://bucket/prefix", "s3://bucket/other",
                                      "mlflow://host:5000/models"}));
  for (const std::string& key : (*tenant)->repository_keys) {
    ASSERT_NE(registry->OwnerOf(key), nullptr) << key;
    EXPECT_EQ(registry->OwnerOf(key)->id, "a") << key;
  }
  ASSERT_NE(registry->OwnerOf("s3://bucket/Prefix"), nullptr);
  EXPECT_EQ(registry->OwnerOf("s3://bucket/Prefix")->id, "b");
  EXPECT_EQ(registry->OwnerOf("s3://bucket"), nullptr);
  EXPECT_EQ(registry->OwnerOf("s3://bucket/prefix/"), nullptr);  // keys, not spellings
}

TEST(TenantRegistryTest, AMissingFileIsNamed) {
  auto registry = TenantRegistry::FromFile("/nonexistent/tenants.yaml");
  ASSERT_FALSE(registry.ok());
  EXPECT_NE(registry.status().message().find("/nonexistent/tenants.yaml"), std::string::npos);
}

}  // namespace
}  // namespace mm
