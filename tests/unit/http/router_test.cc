#include "http/router.h"
#include "local_repositories.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <utility>
#include <vector>

#include <simdjson.h>

#include "observability/histogram.h"

namespace mm {
namespace {

TEST(DecodePathSegmentTest, DecodesAndRejectsTricks) {
  EXPECT_EQ(*DecodePathSegment("add_sub"), "add_sub");
  EXPECT_EQ(*DecodePathSegment("a%20b"), "a b");
  EXPECT_EQ(*DecodePathSegment("%41%62"), "Ab");
  EXPECT_FALSE(DecodePathSegment("a%2Fb").has_value());  // would smuggle a '/'
  EXPECT_FALSE(DecodePathSegment("a%00").has_value());
  EXPECT_FALSE(DecodePathSegment("%zz").has_value());
  EXPECT_FALSE(DecodePathSegment("%4").has_value());
  EXPECT_FALSE(DecodePathSegment("%").has_value());
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("router_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + std::to_string(reinterpret_cast<uintptr_t>(this)));
    std::filesystem::create_directories(dir_);
    ModelManager::Options mo;
    mo.repositories = LocalRepositories({dir_});
    mo.slots = &pool_;
    mo.backends = &backends_;
    manager_ = std::move(*ModelManager::Create(mo));
    static_cast<void>(manager_->Start());  // a failed start-up load is in the index
    service_ = std::move(*InferenceService::Create({manager_.get(), "mmserve", "9.9"}));
    service_->SetReady(true);
    router_ = std::make_unique<Router>(service_.get());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  HttpReply Call(HttpMethod m, std::string target, std::string body = "") {
    HttpRequestView v;
    v.method = m;
    v.target = target;
    v.body = std::make_shared<const std::string>(std::move(body));
    HttpReply out;
    bool called = false;
    router_->Handle(v, [&](HttpReply r) {
      out = std::move(r);
      called = true;
    });
    EXPECT_TRUE(called);  // no model work here: every reply is synchronous
    return out;
  }

  std::filesystem::path dir_;
  ExecutionSlots pool_{ExecutionSlotsOptions{.slots = 1}};
  BackendRegistry backends_;  // none: these tests load no model
  std::unique_ptr<ModelManager> manager_;
  std::unique_ptr<InferenceService> service_;
  std::unique_ptr<Router> router_;
};

TEST_F(RouterTest, HealthAndMetadata) {
  EXPECT_EQ(Call(HttpMethod::kGet, "/v2/health/live").status, 200);
  EXPECT_EQ(Call(HttpMethod::kGet, "/v2/health/ready").status, 200);
  service_->SetReady(false);
  EXPECT_EQ(Call(HttpMethod::kGet, "/v2/health/ready").status, 400);
  auto md = Call(HttpMethod::kGet, "/v2?x=1");
  EXPECT_EQ(md.status, 200);
  EXPECT_NE(md.body.find("\"version\":\"9.9\""), std::string::npos) << md.body;
}

TEST_F(RouterTest, UnknownPathsAndMethods) {
  EXPECT_EQ(Call(HttpMethod::kGet, "/v1/models").status, 404);
  EXPECT_EQ(Call(HttpMethod::kGet, "/v2/models/m/versions").status, 404);
  EXPECT_EQ(Call(HttpMethod::kGet, "/v2/models/m/a/b/c").status, 404);
  EXPECT_EQ(Call(HttpMethod::kGet, "relative").status, 404);
  auto r = Call(HttpMethod::kPost, "/v2/health/live");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.allow, "GET");
  EXPECT_EQ(Call(HttpMethod::kGet, "/v2/repository/index").status, 405);
  EXPECT_EQ(Call(HttpMethod::kGet, "/v2/models/m/infer").status, 405);
  EXPECT_EQ(Call(HttpMethod::kGet, "/v2/models/%zz").status, 400);
}

TEST_F(RouterTest, UnknownModelIs404WithName) {
  auto r = Call(HttpMethod::kGet, "/v2/models/ghost");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("ghost"), std::string::npos);
  EXPECT_EQ(Call(HttpMethod::kGet, "/v2/models/ghost/ready").status, 400);
  auto infer = Call(HttpMethod::kPost, "/v2/models/ghost/infer",
                    R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]})");
  EXPECT_EQ(infer.status, 404);
}

TEST_F(RouterTest, ConsolePagesAreServedWithTheirTypeAndAPolicy) {
  for (const auto& [target, type] :
       std::vector<std::pair<std::string, std::string>>{{"/console", "text/html"},
                                                        {"/console/", "text/html"},
                                                        {"/console/console.js", "text/javascript"},
                                                        {"/console/console.css", "text/css"}}) {
    auto r = Call(HttpMethod::kGet, target);
    EXPECT_EQ(r.status, 200) << target;
    EXPECT_EQ(r.content_type.substr(0, type.size()), type) << target;
    EXPECT_GT(r.content_length(), 0u) << target;
    EXPECT_NE(r.headers.find("Content-Security-Policy: default-src 'self'"), std::string::npos);
    EXPECT_NE(r.headers.find("frame-ancestors 'none'"), std::string::npos);
  }
  EXPECT_EQ(Call(HttpMethod::kGet, "/console/../v2").status, 404);
  EXPECT_EQ(Call(HttpMethod::kGet, "/console/secret.txt").status, 404);
  EXPECT_EQ(Call(HttpMethod::kGet, "/console/a/b").status, 404);
  auto post = Call(HttpMethod::kPost, "/console/api/overview");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.allow, "GET");
}

TEST_F(RouterTest, ConsoleOverviewOfAnOpenServerIsOneJsonDocument) {
  auto r = Call(HttpMethod::kGet, "/console/api/overview");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.content_type.empty());  // JSON
  EXPECT_NE(r.headers.find("Cache-Control: no-store"), std::string::npos);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(r.body).get(doc), simdjson::SUCCESS) << r.body;
  EXPECT_EQ(int64_t(doc["schema"]), 1);
  EXPECT_EQ(std::string_view(doc["server"]["version"]), "9.9");
  EXPECT_FALSE(bool(doc["server"]["tenants"]));
  EXPECT_EQ(uint64_t(doc["slots"]["size"]), 1u);
  EXPECT_EQ(simdjson::dom::array(doc["latency_bounds_s"]).size(),
            LatencyHistogram::kBoundsNs.size());
  EXPECT_EQ(simdjson::dom::array(doc["memory"]["eviction_order"]).size(), 0u);
  EXPECT_EQ(simdjson::dom::array(doc["models"]).size(), 0u);
}

TEST_F(RouterTest, RepositoryIndexBody) {
  EXPECT_EQ(Call(HttpMethod::kPost, "/v2/repository/index").body, "[]");
  EXPECT_EQ(Call(HttpMethod::kPost, "/v2/repository/index", R"({"ready":true})").body, "[]");
  EXPECT_EQ(Call(HttpMethod::kPost, "/v2/repository/index", "{").status, 400);
  EXPECT_EQ(Call(HttpMethod::kPost, "/v2/repository/index", R"({"ready":3})").status, 400);
}

}  // namespace
}  // namespace mm
