#include "scheduler/batch_tensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/bytes_tensor.h"

namespace mm {
namespace {

using Bytes = std::vector<std::byte>;

Bytes ToBytes(std::span<const std::byte> data) { return Bytes(data.begin(), data.end()); }

// A tensor owning a copy of `bytes`.
Tensor OwnedTensor(std::string name, DataType dtype, Shape shape, const Bytes& bytes) {
  Tensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  auto buffer = std::make_shared<ByteBuffer>(bytes.size());
  if (!bytes.empty()) std::memcpy(buffer->bytes.get(), bytes.data(), bytes.size());
  AttachBuffer(t, std::move(buffer));
  return t;
}

template <typename T>
Bytes RawBytes(const std::vector<T>& values) {
  Bytes out(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

Bytes SerializeStrings(const std::vector<std::string>& elements) {
  std::string s;
  for (const std::string& e : elements) AppendBytesElement(e, s);
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return Bytes(p, p + s.size());
}

Tensor Fp32(std::string name, Shape shape, std::vector<float> values) {
  return OwnedTensor(std::move(name), DataType::kFp32, std::move(shape), RawBytes(values));
}

Tensor Strings(std::string name, Shape shape, const std::vector<std::string>& elements) {
  return OwnedTensor(std::move(name), DataType::kBytes, std::move(shape),
                     SerializeStrings(elements));
}

std::unique_ptr<InferRequest> Req(std::string id, std::vector<Tensor> inputs,
                                  std::vector<std::string> outputs = {}) {
  auto r = std::make_unique<InferRequest>();
  r->model_name = "m";
  r->model_version = "1";
  r->id = std::move(id);
  r->inputs = std::move(inputs);
  for (std::string& name : outputs) r->outputs.push_back(RequestedOutput{std::move(name), {}});
  return r;
}

std::vector<InferRequest*> Ptrs(const std::vector<std::unique_ptr<InferRequest>>& requests) {
  std::vector<InferRequest*> out;
  for (const auto& r : requests) out.push_back(r.get());
  return out;
}

// Whether `inner` lies inside `outer`.
bool Within(std::span<const std::byte> inner, std::span<const std::byte> outer) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

// ------------------------------------------------------------ RequestBatchSize

TEST(RequestBatchSizeTest, ReadsDimZeroOfEveryInput) {
  auto r = Req("r", {Fp32("a", {3, 2}, std::vector<float>(6)), Fp32("b", {3}, {1, 2, 3})});
  auto size = RequestBatchSize(*r);
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  EXPECT_EQ(*size, 3);
}

TEST(RequestBatchSizeTest, ZeroRowsIsAValidBatchSize) {
  auto r = Req("r", {Fp32("a", {0, 2}, {})});
  auto size = RequestBatchSize(*r);
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  EXPECT_EQ(*size, 0);
}

TEST(RequestBatchSizeTest, InputsThatDisagreeAreNamed) {
  auto r = Req("r", {Fp32("a", {2}, {1, 2}), Fp32("b", {3}, {1, 2, 3})});
  auto size = RequestBatchSize(*r);
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(size.status().message(), "input 'b': batch dimension 3 differs from input 'a''s 2");
}

TEST(RequestBatchSizeTest, ScalarInputHasNoBatchDimension) {
  auto r = Req("r", {Fp32("a", {2}, {1, 2}), Fp32("s", {}, {1})});
  auto size = RequestBatchSize(*r);
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(size.status().message().find("input 's'"), std::string::npos);
  EXPECT_NE(size.status().message().find("batch dimension"), std::string::npos);
}

TEST(RequestBatchSizeTest, NoInputsAndNegativeDimsAreRejected) {
  auto none = Req("r", {});
  EXPECT_EQ(RequestBatchSize(*none).status().code(), StatusCode::kInvalidArgument);
  auto negative = Req("r", {Fp32("a", {-1, 2}, {})});
  auto size = RequestBatchSize(*negative);
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(size.status().message().find("input 'a'"), std::string::npos);
}

// ------------------------------------------------------------ CanBatchTogether

TEST(CanBatchTogetherTest, SameInputsWithDifferentBatchSizesBatch) {
  auto a = Req("a", {Fp32("x", {1, 2}, {1, 2}), Strings("s", {1}, {"hi"})});
  auto b = Req("b", {Fp32("x", {3, 2}, std::vector<float>(6)), Strings("s", {3}, {"", "a", "b"})});
  EXPECT_TRUE(CanBatchTogether(*a, *b));
  EXPECT_TRUE(CanBatchTogether(*b, *a));
  EXPECT_TRUE(CanBatchTogether(*a, *a));
}

TEST(CanBatchTogetherTest, InputOrderDoesNotMatter) {
  auto a = Req("a", {Fp32("x", {1}, {1}), Fp32("y", {1, 2}, {1, 2})});
  auto b = Req("b", {Fp32("y", {2, 2}, {1, 2, 3, 4}), Fp32("x", {2}, {1, 2})});
  EXPECT_TRUE(CanBatchTogether(*a, *b));
  EXPECT_TRUE(CanBatchTogether(*b, *a));
}

TEST(CanBatchTogetherTest, RequestedOutputsDoNotMatter) {
  auto a = Req("a", {Fp32("x", {1}, {1})}, {"y"});
  auto b = Req("b", {Fp32("x", {1}, {1})}, {"z"});
  auto c = Req("c", {Fp32("x", {1}, {1})});
  EXPECT_TRUE(CanBatchTogether(*a, *b));
  EXPECT_TRUE(CanBatchTogether(*a, *c));
}

TEST(CanBatchTogetherTest, DifferentNamesOrCountsDoNotBatch) {
  auto a = Req("a", {Fp32("x", {1}, {1})});
  auto renamed = Req("b", {Fp32("w", {1}, {1})});
  auto extra = Req("c", {Fp32("x", {1}, {1}), Fp32("y", {1}, {1})});
  EXPECT_FALSE(CanBatchTogether(*a, *renamed));
  EXPECT_FALSE(CanBatchTogether(*a, *extra));
  EXPECT_FALSE(CanBatchTogether(*extra, *a));
}

TEST(CanBatchTogetherTest, DifferentDtypeDoesNotBatch) {
  auto a = Req("a", {Fp32("x", {1}, {1})});
  auto b = Req("b", {OwnedTensor("x", DataType::kInt32, {1}, Bytes(4))});
  EXPECT_FALSE(CanBatchTogether(*a, *b));
}

TEST(CanBatchTogetherTest, DifferentTrailingDimsOrRankDoNotBatch) {
  auto a = Req("a", {Fp32("x", {1, 2}, {1, 2})});
  auto wider = Req("b", {Fp32("x", {1, 3}, {1, 2, 3})});
  auto deeper = Req("c", {Fp32("x", {1, 2, 1}, {1, 2})});
  auto flat = Req("d", {Fp32("x", {2}, {1, 2})});
  EXPECT_FALSE(CanBatchTogether(*a, *wider));
  EXPECT_FALSE(CanBatchTogether(*a, *deeper));
  EXPECT_FALSE(CanBatchTogether(*a, *flat));
}

TEST(CanBatchTogetherTest, ScalarInputsNeverBatch) {
  auto a = Req("a", {Fp32("x", {}, {1})});
  auto b = Req("b", {Fp32("x", {}, {2})});
  EXPECT_FALSE(CanBatchTogether(*a, *b));
}

// ------------------------------------------------------------------ MergeBatch

struct TypeCase {
  DataType dtype;
  size_t element_size;
};

// Element bytes for row `row` of request `k`: distinct per request and row; for
// BOOL only 0 and 1.
Bytes RowBytes(const TypeCase& type, int k, int64_t row, int64_t per_row) {
  Bytes out(static_cast<size_t>(per_row) * type.element_size);
  for (size_t i = 0; i < out.size(); ++i) {
    int v = k * 97 + static_cast<int>(row) * 13 + static_cast<int>(i);
    out[i] = std::byte(type.dtype == DataType::kBool ? v & 1 : v & 0xff);
  }
  return out;
}

TEST(MergeBatchTest, ConcatenatesFixedSizeTypesExactly) {
  const TypeCase types[] = {
      {DataType::kFp32, 4}, {DataType::kInt64, 8}, {DataType::kBool, 1}, {DataType::kFp16, 2}};
  const int64_t batch_sizes[] = {2, 1, 3};
  for (const TypeCase& type : types) {
    for (size_t n = 1; n <= 3; ++n) {
      SCOPED_TRACE(std::string(DataTypeName(type.dtype)) + " x" + std::to_string(n));
      std::vector<std::unique_ptr<InferRequest>> requests;
      Bytes expected_x, expected_y;
      int64_t total = 0;
      for (size_t k = 0; k < n; ++k) {
        const int64_t b = batch_sizes[k];
        Bytes x, y;
        for (int64_t row = 0; row < b; ++row) {
          Bytes rx = RowBytes(type, static_cast<int>(k), row, 3);
          Bytes ry = RowBytes(type, static_cast<int>(k) + 50, row, 1);
          x.insert(x.end(), rx.begin(), rx.end());
          y.insert(y.end(), ry.begin(), ry.end());
        }
        expected_x.insert(expected_x.end(), x.begin(), x.end());
        expected_y.insert(expected_y.end(), y.begin(), y.end());
        total += b;
        requests.push_back(Req("r" + std::to_string(k), {OwnedTensor("x", type.dtype, {b, 3}, x),
                                                         OwnedTensor("y", type.dtype, {b}, y)}));
      }
      auto ptrs = Ptrs(requests);
      auto merged = MergeBatch(ptrs);
      ASSERT_TRUE(merged.ok()) << merged.status().ToString();
      const InferRequest& m = **merged;
      EXPECT_EQ(m.model_name, "m");
      EXPECT_EQ(m.model_version, "1");
      EXPECT_EQ(m.id, "");
      ASSERT_EQ(m.inputs.size(), 2u);
      EXPECT_EQ(m.inputs[0].name, "x");
      EXPECT_EQ(m.inputs[0].dtype, type.dtype);
      EXPECT_EQ(m.inputs[0].shape, (Shape{total, 3}));
      EXPECT_EQ(ToBytes(m.inputs[0].data), expected_x);
      EXPECT_EQ(m.inputs[1].name, "y");
      EXPECT_EQ(m.inputs[1].shape, (Shape{total}));
      EXPECT_EQ(ToBytes(m.inputs[1].data), expected_y);
    }
  }
}

TEST(MergeBatchTest, ConcatenatesBytesTensorsByteWise) {
  const std::vector<std::vector<std::string>> rows = {
      {"alpha", ""},
      {"b", "longer element with spaces", "", "\x00\x01"},
      {"x", "y", "z", "w", "v", "u"}};
  for (size_t n = 1; n <= 3; ++n) {
    SCOPED_TRACE(n);
    std::vector<std::unique_ptr<InferRequest>> requests;
    std::vector<std::string> all;
    int64_t total = 0;
    for (size_t k = 0; k < n; ++k) {
      const auto b = static_cast<int64_t>(rows[k].size() / 2);  // shape [b, 2]
      requests.push_back(Req("r" + std::to_string(k), {Strings("s", {b, 2}, rows[k])}));
      all.insert(all.end(), rows[k].begin(), rows[k].end());
      total += b;
    }
    auto ptrs = Ptrs(requests);
    auto merged = MergeBatch(ptrs);
    ASSERT_TRUE(merged.ok()) << merged.status().ToString();
    const Tensor& s = (*merged)->inputs.at(0);
    EXPECT_EQ(s.dtype, DataType::kBytes);
    EXPECT_EQ(s.shape, (Shape{total, 2}));
    EXPECT_EQ(ToBytes(s.data), SerializeStrings(all));
    auto elements = SplitBytesTensor(s.data, total * 2, "merged");
    ASSERT_TRUE(elements.ok()) << elements.status().ToString();
    EXPECT_EQ(elements->size(), all.size());
  }
}

TEST(MergeBatchTest, FollowsTheFirstRequestsInputOrder) {
  auto a = Req("a", {Fp32("x", {1}, {1}), Fp32("y", {1, 2}, {10, 11})});
  auto b = Req("b", {Fp32("y", {2, 2}, {12, 13, 14, 15}), Fp32("x", {2}, {2, 3})});
  InferRequest* ptrs[] = {a.get(), b.get()};
  auto merged = MergeBatch(ptrs);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  const InferRequest& m = **merged;
  ASSERT_EQ(m.inputs.size(), 2u);
  EXPECT_EQ(m.inputs[0].name, "x");
  EXPECT_EQ(ToBytes(m.inputs[0].data), RawBytes(std::vector<float>{1, 2, 3}));
  EXPECT_EQ(m.inputs[1].name, "y");
  EXPECT_EQ(m.inputs[1].shape, (Shape{3, 2}));
  EXPECT_EQ(ToBytes(m.inputs[1].data), RawBytes(std::vector<float>{10, 11, 12, 13, 14, 15}));
}

TEST(MergeBatchTest, MergedInputsOwnTheirBuffers) {
  auto a = Req("a", {Fp32("x", {1}, {1})});
  auto b = Req("b", {Fp32("x", {2}, {2, 3})});
  InferRequest* ptrs[] = {a.get(), b.get()};
  auto merged = MergeBatch(ptrs);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  const Tensor& x = (*merged)->inputs[0];
  EXPECT_FALSE(Within(x.data, a->inputs[0].data));
  EXPECT_FALSE(Within(x.data, b->inputs[0].data));
  EXPECT_NE(x.owner, nullptr);
  EXPECT_EQ((*merged)->body, nullptr);
  a.reset();
  b.reset();
  EXPECT_EQ(ToBytes(x.data), RawBytes(std::vector<float>{1, 2, 3}));  // ASan checks the read
}

TEST(MergeBatchTest, SingleRequestIsNotCopied) {
  auto body = std::make_shared<std::string>("transport body");
  auto a = Req("a", {Fp32("x", {2, 2}, {1, 2, 3, 4}), Strings("s", {2}, {"p", "q"})}, {"y"});
  a->body = body;
  a->inputs[0].parameters["shared_memory_region"] = std::string("r");
  const std::byte* x_data = a->inputs[0].data.data();
  const std::byte* s_data = a->inputs[1].data.data();
  InferRequest* ptrs[] = {a.get()};
  auto merged = MergeBatch(ptrs);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  const InferRequest& m = **merged;
  EXPECT_EQ(m.inputs[0].data.data(), x_data);
  EXPECT_EQ(m.inputs[1].data.data(), s_data);
  EXPECT_EQ(m.inputs[0].shape, (Shape{2, 2}));
  EXPECT_TRUE(m.inputs[0].parameters.empty());
  EXPECT_EQ(m.body, body);
  EXPECT_EQ(m.id, "");
  ASSERT_EQ(m.outputs.size(), 1u);
  EXPECT_EQ(m.outputs[0].name, "y");
  // The alias keeps the data alive on its own.
  a.reset();
  EXPECT_EQ(ToBytes(m.inputs[0].data), RawBytes(std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(ToBytes(m.inputs[1].data), SerializeStrings({"p", "q"}));
}

TEST(MergeBatchTest, RequestedOutputsAreTheUnion) {
  auto a = Req("a", {Fp32("x", {1}, {1})}, {"y"});
  auto b = Req("b", {Fp32("x", {1}, {1})}, {"z", "y"});
  auto c = Req("c", {Fp32("x", {1}, {1})}, {"w"});
  b->outputs[0].parameters["shared_memory_region"] = std::string("r");
  InferRequest* ptrs[] = {a.get(), b.get(), c.get()};
  auto merged = MergeBatch(ptrs);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  const auto& outputs = (*merged)->outputs;
  ASSERT_EQ(outputs.size(), 3u);
  EXPECT_EQ(outputs[0].name, "y");
  EXPECT_EQ(outputs[1].name, "z");
  EXPECT_EQ(outputs[2].name, "w");
  EXPECT_TRUE(outputs[1].parameters.empty());
}

TEST(MergeBatchTest, AnyRequestAskingForAllAsksForAll) {
  auto a = Req("a", {Fp32("x", {1}, {1})}, {"y"});
  auto b = Req("b", {Fp32("x", {1}, {1})});
  InferRequest* ptrs[] = {a.get(), b.get()};
  auto merged = MergeBatch(ptrs);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_TRUE((*merged)->outputs.empty());
}

TEST(MergeBatchTest, UnbatchableRequestsNameTheInput) {
  auto a = Req("a", {Fp32("x", {1, 2}, {1, 2}), Fp32("y", {1}, {1})});
  auto b = Req("b", {Fp32("x", {1, 2}, {1, 2}), Fp32("y", {1}, {1})});
  auto dtype =
      Req("c", {Fp32("x", {1, 2}, {1, 2}), OwnedTensor("y", DataType::kInt32, {1}, Bytes(4))});
  InferRequest* ptrs[] = {a.get(), b.get(), dtype.get()};
  auto merged = MergeBatch(ptrs);
  ASSERT_FALSE(merged.ok());
  EXPECT_EQ(merged.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(merged.status().message(),
            "cannot batch request 2 with request 0: input 'y' is INT32 in request 2 but FP32 in "
            "request 0");

  auto dims = Req("d", {Fp32("x", {1, 3}, {1, 2, 3}), Fp32("y", {1}, {1})});
  InferRequest* ptrs2[] = {a.get(), dims.get()};
  merged = MergeBatch(ptrs2);
  ASSERT_FALSE(merged.ok());
  EXPECT_EQ(merged.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(merged.status().message().find("input 'x' has shape [1,3] in request 1 but [1,2]"),
            std::string::npos)
      << merged.status().message();

  auto missing = Req("e", {Fp32("x", {1, 2}, {1, 2}), Fp32("z", {1}, {1})});
  InferRequest* ptrs3[] = {a.get(), missing.get()};
  merged = MergeBatch(ptrs3);
  ASSERT_FALSE(merged.ok());
  EXPECT_NE(merged.status().message().find("input 'y' is missing from request 1"),
            std::string::npos)
      << merged.status().message();
}

TEST(MergeBatchTest, RejectsMalformedInput) {
  auto empty = MergeBatch({});
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);

  auto dup = Req("a", {Fp32("x", {1}, {1}), Fp32("x", {1}, {1})});
  InferRequest* ptrs[] = {dup.get(), dup.get()};
  auto merged = MergeBatch(ptrs);
  ASSERT_FALSE(merged.ok());
  EXPECT_EQ(merged.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(merged.status().message().find("input 'x' appears twice"), std::string::npos);

  auto a = Req("a", {Fp32("x", {1, 2}, {1, 2})});
  auto short_data = Req("b", {Fp32("x", {2, 2}, {1, 2, 3})});  // 12 bytes for 16
  InferRequest* ptrs2[] = {a.get(), short_data.get()};
  merged = MergeBatch(ptrs2);
  ASSERT_FALSE(merged.ok());
  EXPECT_EQ(merged.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(merged.status().message().find("input 'x' of request 1 holds 12 bytes"),
            std::string::npos)
      << merged.status().message();

  auto disagree = Req("c", {Fp32("x", {1, 2}, {1, 2}), Fp32("y", {2}, {1, 2})});
  auto disagree2 = Req("d", {Fp32("x", {1, 2}, {1, 2}), Fp32("y", {2}, {1, 2})});
  InferRequest* ptrs3[] = {disagree.get(), disagree2.get()};
  merged = MergeBatch(ptrs3);
  ASSERT_FALSE(merged.ok());
  EXPECT_EQ(merged.status().message(),
            "request 0: input 'y': batch dimension 2 differs from input 'x''s 1");
}

// ------------------------------------------------------------------ SplitBatch

// A batched response as a backend would produce it: FP32 y [6,2], INT64 z [6],
// BYTES s [6]; rows 1, 2, 3 belong to three requests.
std::shared_ptr<InferResponse> BatchedResponse() {
  auto r = std::make_shared<InferResponse>();
  r->model_name = "m";
  r->model_version = "1";
  r->parameters["note"] = std::string("batched");
  r->outputs.push_back(Fp32("y", {6, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  r->outputs.push_back(
      OwnedTensor("z", DataType::kInt64, {6}, RawBytes(std::vector<int64_t>{0, 1, 2, 3, 4, 5})));
  r->outputs.push_back(Strings("s", {6}, {"zero", "", "two", "three!", "4", "five"}));
  return r;
}

TEST(SplitBatchTest, EachRequestGetsItsRowsAsViews) {
  std::vector<std::unique_ptr<InferRequest>> requests;
  requests.push_back(Req("r0", {Fp32("x", {1}, {0})}));                 // all outputs
  requests.push_back(Req("r1", {Fp32("x", {2}, {0, 0})}, {"s", "y"}));  // two
  requests.push_back(Req("r2", {Fp32("x", {3}, {0, 0, 0})}, {"z"}));    // one
  requests[2]->model_version = "7";
  const int64_t sizes[] = {1, 2, 3};
  auto batched = BatchedResponse();
  const std::vector<std::span<const std::byte>> whole = {
      batched->outputs[0].data, batched->outputs[1].data, batched->outputs[2].data};
  auto ptrs = Ptrs(requests);
  auto split = SplitBatch(batched, ptrs, sizes);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  ASSERT_EQ(split->size(), 3u);

  const InferResponse& r0 = *(*split)[0];
  EXPECT_EQ(r0.id, "r0");
  EXPECT_EQ(r0.model_name, "m");
  EXPECT_EQ(r0.model_version, "1");
  EXPECT_EQ(std::get<std::string>(r0.parameters.at("note")), "batched");
  ASSERT_EQ(r0.outputs.size(), 3u);
  EXPECT_EQ(r0.outputs[0].name, "y");
  EXPECT_EQ(r0.outputs[0].shape, (Shape{1, 2}));
  EXPECT_EQ(ToBytes(r0.outputs[0].data), RawBytes(std::vector<float>{0, 1}));
  EXPECT_EQ(r0.outputs[1].name, "z");
  EXPECT_EQ(ToBytes(r0.outputs[1].data), RawBytes(std::vector<int64_t>{0}));
  EXPECT_EQ(r0.outputs[2].name, "s");
  EXPECT_EQ(r0.outputs[2].shape, (Shape{1}));
  EXPECT_EQ(ToBytes(r0.outputs[2].data), SerializeStrings({"zero"}));

  const InferResponse& r1 = *(*split)[1];
  EXPECT_EQ(r1.id, "r1");
  ASSERT_EQ(r1.outputs.size(), 2u);  // in the batched response's order
  EXPECT_EQ(r1.outputs[0].name, "y");
  EXPECT_EQ(r1.outputs[0].shape, (Shape{2, 2}));
  EXPECT_EQ(ToBytes(r1.outputs[0].data), RawBytes(std::vector<float>{2, 3, 4, 5}));
  EXPECT_EQ(r1.outputs[1].name, "s");
  EXPECT_EQ(r1.outputs[1].shape, (Shape{2}));
  EXPECT_EQ(ToBytes(r1.outputs[1].data), SerializeStrings({"", "two"}));

  const InferResponse& r2 = *(*split)[2];
  EXPECT_EQ(r2.id, "r2");
  EXPECT_EQ(r2.model_version, "7");
  ASSERT_EQ(r2.outputs.size(), 1u);
  EXPECT_EQ(r2.outputs[0].name, "z");
  EXPECT_EQ(r2.outputs[0].shape, (Shape{3}));
  EXPECT_EQ(ToBytes(r2.outputs[0].data), RawBytes(std::vector<int64_t>{3, 4, 5}));

  // Views, not copies.
  EXPECT_EQ(r0.outputs[0].data.data(), whole[0].data());
  EXPECT_TRUE(Within(r1.outputs[0].data, whole[0]));
  EXPECT_TRUE(Within(r1.outputs[1].data, whole[2]));
  EXPECT_TRUE(Within(r2.outputs[0].data, whole[1]));
  EXPECT_EQ(r2.outputs[0].data.data(), whole[1].data() + 3 * sizeof(int64_t));
}

TEST(SplitBatchTest, ViewsOutliveTheBatchedResponseAndTheRequests) {
  std::vector<std::unique_ptr<InferRequest>> requests;
  requests.push_back(Req("r0", {Fp32("x", {4}, {0, 0, 0, 0})}));
  requests.push_back(Req("r1", {Fp32("x", {2}, {0, 0})}));
  const int64_t sizes[] = {4, 2};
  auto batched = BatchedResponse();
  std::weak_ptr<InferResponse> weak = batched;
  auto ptrs = Ptrs(requests);
  auto split = SplitBatch(std::move(batched), ptrs, sizes);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  requests.clear();
  EXPECT_FALSE(weak.expired());  // held by the views
  auto r1 = std::move((*split)[1]);
  split->clear();
  EXPECT_FALSE(weak.expired());
  // ASan would flag these reads if the buffers were gone.
  EXPECT_EQ(ToBytes(r1->outputs[0].data), RawBytes(std::vector<float>{8, 9, 10, 11}));
  EXPECT_EQ(ToBytes(r1->outputs[1].data), RawBytes(std::vector<int64_t>{4, 5}));
  EXPECT_EQ(ToBytes(r1->outputs[2].data), SerializeStrings({"4", "five"}));
  r1.reset();
  EXPECT_TRUE(weak.expired());
}

TEST(SplitBatchTest, ZeroRowRequestGetsEmptyOutputs) {
  std::vector<std::unique_ptr<InferRequest>> requests;
  requests.push_back(Req("r0", {Fp32("x", {3}, {0, 0, 0})}));
  requests.push_back(Req("r1", {Fp32("x", {0}, {})}));
  requests.push_back(Req("r2", {Fp32("x", {3}, {0, 0, 0})}));
  const int64_t sizes[] = {3, 0, 3};
  auto ptrs = Ptrs(requests);
  auto split = SplitBatch(BatchedResponse(), ptrs, sizes);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  const InferResponse& r1 = *(*split)[1];
  ASSERT_EQ(r1.outputs.size(), 3u);
  EXPECT_EQ(r1.outputs[0].shape, (Shape{0, 2}));
  EXPECT_TRUE(r1.outputs[0].data.empty());
  EXPECT_TRUE(r1.outputs[2].data.empty());
  EXPECT_EQ(ToBytes((*split)[2]->outputs[2].data), SerializeStrings({"three!", "4", "five"}));
}

TEST(SplitBatchTest, BytesOutputsSplitByElementsPerRow) {
  auto batched = std::make_shared<InferResponse>();
  batched->outputs.push_back(Strings("s", {3, 2}, {"a", "bb", "", "ddd", "e", "f"}));
  std::vector<std::unique_ptr<InferRequest>> requests;
  requests.push_back(Req("r0", {Fp32("x", {2}, {0, 0})}));
  requests.push_back(Req("r1", {Fp32("x", {1}, {0})}));
  const int64_t sizes[] = {2, 1};
  auto ptrs = Ptrs(requests);
  auto split = SplitBatch(batched, ptrs, sizes);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_EQ((*split)[0]->outputs[0].shape, (Shape{2, 2}));
  EXPECT_EQ(ToBytes((*split)[0]->outputs[0].data), SerializeStrings({"a", "bb", "", "ddd"}));
  EXPECT_EQ((*split)[1]->outputs[0].shape, (Shape{1, 2}));
  EXPECT_EQ(ToBytes((*split)[1]->outputs[0].data), SerializeStrings({"e", "f"}));
}

// Splits `batched` over requests of sizes {1, 2, 3}; returns the status.
Status SplitStatus(std::shared_ptr<InferResponse> batched,
                   std::vector<std::string> r2_outputs = {}) {
  std::vector<std::unique_ptr<InferRequest>> requests;
  requests.push_back(Req("r0", {Fp32("x", {1}, {0})}));
  requests.push_back(Req("r1", {Fp32("x", {2}, {0, 0})}));
  requests.push_back(Req("r2", {Fp32("x", {3}, {0, 0, 0})}, std::move(r2_outputs)));
  const int64_t sizes[] = {1, 2, 3};
  auto ptrs = Ptrs(requests);
  auto split = SplitBatch(std::move(batched), ptrs, sizes);
  return split.ok() ? OkStatus() : split.status();
}

TEST(SplitBatchTest, InconsistentOutputsAreInternalErrors) {
  auto expect_internal = [](const Status& s, std::string_view needle) {
    EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  };
  {
    auto b = BatchedResponse();
    b->outputs[0].shape = {5, 2};
    expect_internal(SplitStatus(b),
                    "output 'y' of the batched response has batch dimension 5 (shape [5,2]), not "
                    "the sum of the requests' batch sizes, 6");
  }
  {
    auto b = BatchedResponse();
    b->outputs[1].data = b->outputs[1].data.first(40);
    expect_internal(SplitStatus(b), "output 'z' of the batched response holds 40 bytes");
  }
  {
    auto b = BatchedResponse();
    b->outputs[0].shape = {};
    expect_internal(SplitStatus(b), "output 'y' of the batched response has no batch dimension");
  }
  {
    auto b = BatchedResponse();
    b->outputs[2].data = b->outputs[2].data.first(b->outputs[2].data.size() - 1);
    expect_internal(SplitStatus(b), "output 's'");
  }
  {
    auto b = BatchedResponse();
    b->outputs[2] = Strings("s", {6}, {"a", "b", "c", "d", "e"});
    expect_internal(SplitStatus(b), "output 's' of the batched response holds 5 BYTES elements");
  }
  {
    auto b = BatchedResponse();
    b->outputs[2] = Strings("s", {6}, {"a", "b", "c", "d", "e", "f", "g"});
    expect_internal(SplitStatus(b), "bytes after the 6 BYTES elements");
  }
  expect_internal(SplitStatus(BatchedResponse(), {"y", "nope"}),
                  "output 'nope' requested by request 2 is missing from the batched response");
  {
    std::vector<std::unique_ptr<InferRequest>> requests;
    requests.push_back(Req("r0", {Fp32("x", {6}, std::vector<float>(6))}));
    const int64_t sizes[] = {6, 0};
    auto ptrs = Ptrs(requests);
    auto split = SplitBatch(BatchedResponse(), ptrs, sizes);
    EXPECT_EQ(split.status().code(), StatusCode::kInternal);
  }
  EXPECT_TRUE(SplitStatus(BatchedResponse()).ok());
}

// ----------------------------------------------------------------- round trip

TEST(BatchRoundTripTest, SixtyFourRequestsMergeAndSplitBack) {
  std::vector<std::unique_ptr<InferRequest>> requests;
  std::vector<int64_t> sizes;
  for (int k = 0; k < 64; ++k) {
    const int64_t b = 1 + k % 5;
    std::vector<float> x;
    std::vector<std::string> s;
    for (int64_t row = 0; row < b; ++row) {
      x.push_back(static_cast<float>(k * 100 + row));
      x.push_back(static_cast<float>(-(k * 100 + row)));
      s.push_back(std::string(static_cast<size_t>(k % 7), static_cast<char>('a' + k % 26)));
    }
    std::vector<std::string> outputs;
    if (k % 3 == 1) outputs = {"x_out"};
    if (k % 3 == 2) outputs = {"s_out"};
    requests.push_back(
        Req("r" + std::to_string(k), {Fp32("x", {b, 2}, x), Strings("s", {b}, s)}, outputs));
    sizes.push_back(b);
  }
  auto ptrs = Ptrs(requests);
  auto merged = MergeBatch(ptrs);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_TRUE((*merged)->outputs.empty());  // some request asked for all

  // The "model": echoes each input as an output in a buffer of its own.
  auto batched = std::make_shared<InferResponse>();
  for (const Tensor& input : (*merged)->inputs) {
    batched->outputs.push_back(
        OwnedTensor(input.name + "_out", input.dtype, input.shape, ToBytes(input.data)));
  }
  merged->reset();
  auto split = SplitBatch(std::move(batched), ptrs, sizes);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  ASSERT_EQ(split->size(), 64u);
  for (size_t k = 0; k < 64; ++k) {
    SCOPED_TRACE(k);
    const InferRequest& request = *requests[k];
    const InferResponse& response = *(*split)[k];
    EXPECT_EQ(response.id, request.id);
    const size_t expected_outputs = k % 3 == 0 ? 2 : 1;
    ASSERT_EQ(response.outputs.size(), expected_outputs);
    for (const Tensor& out : response.outputs) {
      const Tensor& in = request.inputs[out.name == "x_out" ? 0 : 1];
      EXPECT_EQ(out.name, in.name + "_out");
      EXPECT_EQ(out.shape, in.shape);
      EXPECT_EQ(ToBytes(out.data), ToBytes(in.data));
    }
  }
}

}  // namespace
}  // namespace mm
