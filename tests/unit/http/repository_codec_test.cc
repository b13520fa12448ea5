#include "http/repository_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mm {
namespace {

using ::testing::HasSubstr;

template <typename T>
void ExpectInvalid(const T& r, std::string_view part) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.message()), HasSubstr(part));
}

TEST(RepositoryCodecTest, IndexRequest) {
  EXPECT_FALSE(*DecodeIndexRequest(""));
  EXPECT_FALSE(*DecodeIndexRequest(" \r\n\t"));
  EXPECT_FALSE(*DecodeIndexRequest("{}"));
  EXPECT_TRUE(*DecodeIndexRequest(R"({"ready":true})"));
  EXPECT_FALSE(*DecodeIndexRequest(R"({"ready":false,"other":1})"));
  ExpectInvalid(DecodeIndexRequest("{").status(), "not valid JSON");
  ExpectInvalid(DecodeIndexRequest("[true]").status(), "must be a JSON object");
  ExpectInvalid(DecodeIndexRequest(R"({"ready":"yes"})").status(), "must be true or false");
}

TEST(RepositoryCodecTest, LoadRequest) {
  auto none = DecodeLoadRequest("");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  none = DecodeLoadRequest(R"({"parameters":{}})");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto config = DecodeLoadRequest(R"({"parameters":{"config":"{\"max_batch_size\":4}"}})");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->value(), R"({"max_batch_size":4})");
  ExpectInvalid(DecodeLoadRequest("nope").status(), "model load request is not valid JSON");
  ExpectInvalid(DecodeLoadRequest("3").status(), "model load request must be a JSON object");
  ExpectInvalid(DecodeLoadRequest(R"({"parameters":[]})").status(),
                "\"parameters\" must be a JSON object");
  ExpectInvalid(DecodeLoadRequest(R"({"parameters":{"config":{}}})").status(),
                "parameter \"config\" must be a string");
  ExpectInvalid(DecodeLoadRequest(R"({"parameters":{"file:1/model.onnx":"AAAA"}})").status(),
                "does not take model files");
}

TEST(RepositoryCodecTest, UnloadRequest) {
  EXPECT_TRUE(DecodeUnloadRequest("").ok());
  EXPECT_TRUE(DecodeUnloadRequest(R"({"parameters":{"unload_dependents":true}})").ok());
  EXPECT_TRUE(DecodeUnloadRequest(R"({"parameters":{"other":1}})").ok());
  ExpectInvalid(DecodeUnloadRequest("{"), "model unload request is not valid JSON");
  ExpectInvalid(DecodeUnloadRequest(R"({"parameters":{"unload_dependents":1}})"),
                "\"unload_dependents\" must be true or false");
}

TEST(RepositoryCodecTest, EncodesIndex) {
  EXPECT_EQ(EncodeRepositoryIndex({}), "[]");
  ModelVersionStatus ready;
  ready.name = "add_sub";
  ready.version = 1;
  ready.state = ModelState::kReady;
  ModelVersionStatus broken;
  broken.name = "bad";
  broken.reason = "no \"model.onnx\"";
  ModelVersionStatus crashed;
  crashed.name = "py";
  crashed.version = 3;
  crashed.state = ModelState::kLoading;
  crashed.restarts = 2;
  crashed.last_failure = "worker exited";
  EXPECT_EQ(EncodeRepositoryIndex({ready, broken, crashed}),
            R"([{"name":"add_sub","version":"1","state":"READY","reason":""},)"
            R"({"name":"bad","state":"UNAVAILABLE","reason":"no \"model.onnx\""},)"
            R"({"name":"py","version":"3","state":"LOADING","reason":"",)"
            R"("restarts":2,"last_failure":"worker exited"}])");
}

}  // namespace
}  // namespace mm
