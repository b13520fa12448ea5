#include "cache/response_cache.h"

#include <cstring>

#include <gtest/gtest.h>

#include "cache/cache_flags.h"

namespace mm {
namespace {

// A request with one FP32 input `x` holding `values`.
struct Request {
  std::vector<float> values;
  InferRequest request;
  explicit Request(std::vector<float> v, std::string id = "") : values(std::move(v)) {
    request.model_name = "m";
    request.id = std::move(id);
    Tensor& t = request.inputs.emplace_back();
    t.name = "x";
    t.dtype = DataType::kFp32;
    t.shape = {static_cast<int64_t>(values.size())};
    t.data = {reinterpret_cast<const std::byte*>(values.data()), values.size() * sizeof(float)};
  }
};

InferResponse Answer(float value, size_t n = 4) {
  InferResponse r;
  auto buffer = std::make_shared<ByteBuffer>(n * sizeof(float));
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(buffer->bytes.get() + i * sizeof(float), &value, sizeof(float));
  }
  Tensor& t = r.outputs.emplace_back();
  t.name = "y";
  t.dtype = DataType::kFp32;
  t.shape = {static_cast<int64_t>(n)};
  AttachBuffer(t, buffer);
  return r;
}

float First(const InferResponse& r) {
  float v;
  std::memcpy(&v, r.outputs.at(0).data.data(), sizeof(v));
  return v;
}

// A lookup into `out`: true on a hit.
bool Get(const ResponseCache::Scope& scope, const std::string& key, InferResponse* out) {
  auto hit = scope.Lookup(key);
  if (hit == nullptr) return false;
  *out = std::move(*hit);
  return true;
}

std::unique_ptr<ResponseCache> Cache(uint64_t bytes) {
  auto cache = ResponseCache::Create({.capacity_bytes = bytes});
  EXPECT_TRUE(cache.ok());
  return std::move(*cache);
}

TEST(ResponseCacheTest, AHitAnswersWithACopyOfTheOutputs) {
  auto cache = Cache(1 << 20);
  auto scope = cache->NewScope();
  Request a({1, 2, 3});
  const std::string key = scope->Key(a.request, "tenant");
  InferResponse miss;
  EXPECT_FALSE(Get(*scope, key, &miss));
  {
    InferResponse answer = Answer(7);
    ASSERT_TRUE(scope->Insert(key, answer));
  }  // the backend's memory is gone: the entry holds its own copy
  InferResponse hit;
  ASSERT_TRUE(Get(*scope, key, &hit));
  ASSERT_EQ(hit.outputs.size(), 1u);
  EXPECT_EQ(hit.outputs[0].name, "y");
  EXPECT_EQ(hit.outputs[0].shape, (Shape{4}));
  EXPECT_EQ(First(hit), 7);
  EXPECT_EQ(cache->Read().entries, 1u);
}

TEST(ResponseCacheTest, KeysTellApartInputsTenantsOutputsAndParameters) {
  auto cache = Cache(1 << 20);
  auto scope = cache->NewScope();
  Request a({1, 2, 3}), b({1, 2, 4}), a_again({1, 2, 3}, "another id");
  EXPECT_EQ(scope->Key(a.request, "t"), scope->Key(a_again.request, "t"));  // the id is not
  EXPECT_NE(scope->Key(a.request, "t"), scope->Key(b.request, "t"));
  EXPECT_NE(scope->Key(a.request, "t"), scope->Key(a.request, "u"));
  EXPECT_NE(scope->Key(a.request, "t"), scope->Key(a.request, ""));
  Request reshaped({1, 2, 3});
  reshaped.request.inputs[0].shape = {3, 1};
  EXPECT_NE(scope->Key(a.request, "t"), scope->Key(reshaped.request, "t"));
  Request asks({1, 2, 3});
  asks.request.outputs.push_back({"y", {}});
  EXPECT_NE(scope->Key(a.request, "t"), scope->Key(asks.request, "t"));
  Request custom({1, 2, 3}), timed({1, 2, 3});
  custom.request.parameters["temperature"] = 0.5;
  timed.request.parameters["timeout"] = int64_t{100};
  timed.request.parameters["priority"] = int64_t{2};
  EXPECT_NE(scope->Key(a.request, "t"), scope->Key(custom.request, "t"));
  EXPECT_EQ(scope->Key(a.request, "t"), scope->Key(timed.request, "t"));
  // Another version (scope) never meets these entries.
  auto other = cache->NewScope();
  EXPECT_NE(scope->Key(a.request, "t"), other->Key(a.request, "t"));
}

TEST(ResponseCacheTest, EvictsTheLeastRecentlyUsedToStayWithinItsBytes) {
  auto probe = Cache(1 << 20);
  auto probe_scope = probe->NewScope();
  Request r0({0});
  ASSERT_TRUE(probe_scope->Insert(probe_scope->Key(r0.request, ""), Answer(0)));
  const uint64_t entry = probe->Read().bytes;  // every entry below is this size

  auto cache = Cache(3 * entry + entry / 2);  // room for 3
  auto scope = cache->NewScope();
  std::vector<std::unique_ptr<Request>> requests;
  for (int i = 0; i < 5; ++i) {
    requests.push_back(std::make_unique<Request>(std::vector<float>{static_cast<float>(i)}));
  }
  auto key = [&](int i) { return scope->Key(requests[i]->request, ""); };
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(scope->Insert(key(i), Answer(i)));
  InferResponse r;
  ASSERT_TRUE(Get(*scope, key(0), &r));  // 0 is now the most recent: 1 goes first
  ASSERT_TRUE(scope->Insert(key(3), Answer(3)));
  ASSERT_TRUE(scope->Insert(key(4), Answer(4)));
  EXPECT_TRUE(Get(*scope, key(0), &r));
  EXPECT_EQ(First(r), 0);
  EXPECT_FALSE(Get(*scope, key(1), &r));
  EXPECT_FALSE(Get(*scope, key(2), &r));
  EXPECT_TRUE(Get(*scope, key(4), &r));
  const ResponseCache::Figures f = cache->Read();
  EXPECT_EQ(f.entries, 3u);
  EXPECT_EQ(f.evictions, 2u);
  EXPECT_LE(f.bytes, f.capacity);
  // An entry larger than the whole cache is not kept, and evicts nothing.
  Request big(std::vector<float>(4096, 1.0f));
  EXPECT_FALSE(scope->Insert(scope->Key(big.request, ""), Answer(1)));
  EXPECT_EQ(cache->Read().entries, 3u);
}

TEST(ResponseCacheTest, AScopeTakesItsEntriesWithItButAHitsViewOutlivesThem) {
  auto cache = Cache(1 << 20);
  auto v1 = cache->NewScope();
  auto v2 = cache->NewScope();
  Request a({1});
  ASSERT_TRUE(v1->Insert(v1->Key(a.request, ""), Answer(1)));
  ASSERT_TRUE(v2->Insert(v2->Key(a.request, ""), Answer(2)));
  InferResponse held;
  ASSERT_TRUE(Get(*v1, v1->Key(a.request, ""), &held));
  v1.reset();  // the version is dropped
  const ResponseCache::Figures f = cache->Read();
  EXPECT_EQ(f.entries, 1u);
  EXPECT_EQ(First(held), 1);  // a response being written keeps its bytes
  InferResponse r;
  ASSERT_TRUE(Get(*v2, v2->Key(a.request, ""), &r));
  EXPECT_EQ(First(r), 2);
}

TEST(ResponseCacheTest, AnInsertOfAKnownKeyReplacesIt) {
  auto cache = Cache(1 << 20);
  auto scope = cache->NewScope();
  Request a({1});
  const std::string key = scope->Key(a.request, "");
  ASSERT_TRUE(scope->Insert(key, Answer(1)));
  ASSERT_TRUE(scope->Insert(key, Answer(5)));
  InferResponse r;
  ASSERT_TRUE(Get(*scope, key, &r));
  EXPECT_EQ(First(r), 5);
  EXPECT_EQ(cache->Read().entries, 1u);
}

TEST(CacheFlagsTest, ParsesTritonsSpellingAndRefusesTheRest) {
  EXPECT_EQ(*ParseCacheConfig({}), 0u);
  EXPECT_EQ(*ParseCacheConfig({"local,size=1048576"}), 1048576u);
  EXPECT_EQ(*ParseCacheConfig({"local,size=1", "local,size=2"}), 2u);
  for (const char* bad : {"redis,size=1", "local", "local,bytes=1", "local,size=1k",
                          "local,size=", "local,size=-1", "local,size=2000000000000"}) {
    auto parsed = ParseCacheConfig({bad});
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.status().message().find("--cache-config"), std::string::npos) << bad;
  }
  EXPECT_FALSE(ResponseCache::Create({.capacity_bytes = 0}).ok());
}

}  // namespace
}  // namespace mm
