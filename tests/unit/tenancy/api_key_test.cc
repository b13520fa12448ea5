#include "tenancy/api_key.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace mm {
namespace {

TEST(ApiKeyTest, AHashMatchesItsKeyOnly) {
  auto stored = HashApiKey("s3cret-key-of-some-length");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->rfind("sha256$", 0), 0u);
  EXPECT_EQ(stored->size(), 7 + 32 + 1 + 64);
  EXPECT_EQ(stored->find("s3cret"), std::string::npos);
  auto hash = ParseApiKeyHash(*stored);
  ASSERT_TRUE(hash.ok()) << hash.status().message();
  EXPECT_TRUE(ApiKeyMatches(*hash, "s3cret-key-of-some-length"));
  EXPECT_FALSE(ApiKeyMatches(*hash, "s3cret-key-of-some-lengtH"));
  EXPECT_FALSE(ApiKeyMatches(*hash, ""));
}

TEST(ApiKeyTest, EveryHashHasItsOwnSalt) {
  auto a = HashApiKey("same");
  auto b = HashApiKey("same");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(ApiKeyMatches(*ParseApiKeyHash(*a), "same"));
  EXPECT_TRUE(ApiKeyMatches(*ParseApiKeyHash(*b), "same"));
}

TEST(ApiKeyTest, TheDigestIsSha256OfSaltThenKey) {
  // The stored form written out by hand: salt 00 01 .. 0f, digest
  // SHA-256(salt || "abc"), so other tools can make hashes too.
  std::string salt;
  std::string salt_hex;
  for (int i = 0; i < 16; ++i) {
    salt.push_back(static_cast<char>(i));
    char buf[3];
    std::snprintf(buf, sizeof(buf), "%02x", i);
    salt_hex += buf;
  }
  std::string digest_hex;
  for (uint8_t b : Sha256(salt + "abc")) {
    char buf[3];
    std::snprintf(buf, sizeof(buf), "%02X", b);  // upper case is accepted too
    digest_hex += buf;
  }
  auto hash = ParseApiKeyHash("sha256$" + salt_hex + "$" + digest_hex);
  ASSERT_TRUE(hash.ok()) << hash.status().message();
  EXPECT_TRUE(ApiKeyMatches(*hash, "abc"));
  EXPECT_FALSE(ApiKeyMatches(*hash, "abd"));
}

TEST(ApiKeyTest, MalformedHashesAreRefusedWithTheExpectedForm) {
  for (const char* bad :
       {"", "md5$00$00", "sha256$", "sha256$zz$00", "sha256$00000000000000000000000000000000",
        "sha256$00000000000000000000000000000000$abc",
        "sha256$0000000000000000000000000000000$"
        "0000000000000000000000000000000000000000000000000000000000000000"}) {
    auto hash = ParseApiKeyHash(bad);
    ASSERT_FALSE(hash.ok()) << bad;
    EXPECT_EQ(hash.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(hash.status().message().find("mmserve hash-key"), std::string::npos)
        << hash.status().message();
  }
}

TEST(ApiKeyTest, Sha256OfAbcIsTheStandardOne) {
  const KeyDigest d = Sha256("abc");
  EXPECT_EQ(d[0], 0xba);
  EXPECT_EQ(d[1], 0x78);
  EXPECT_EQ(d[31], 0xad);
}

}  // namespace
}  // namespace mm
