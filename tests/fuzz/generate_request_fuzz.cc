// Fuzzes the generate extension's codec (http/generate_codec.h):
// DecodeGenerateRequest on arbitrary bodies against a fixed set of model
// inputs (every dtype, fixed and variable dims), and, for every request that
// decodes, EncodeGenerateResponse echoing its inputs as outputs. Checks,
// beyond "no crash, leak or UB":
//  - every decoded tensor's bytes match its dtype and shape;
//  - the encoded response is valid JSON;
//  - the response, read back as a generate request, decodes to the same
//    tensors for the integer, boolean and BYTES inputs (exact types).
#include <simdjson.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/bytes_tensor.h"
#include "core/shape.h"
#include "http/generate_codec.h"

namespace {

void Check(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

const std::vector<mm::TensorMetadata>& Inputs() {
  using mm::DataType;
  static const std::vector<mm::TensorMetadata> inputs = {
      {"B", DataType::kBool, {-1}},      {"I8", DataType::kInt8, {2}},
      {"I32", DataType::kInt32, {-1}},   {"I64", DataType::kInt64, {-1, 2}},
      {"U16", DataType::kUint16, {1}},   {"U64", DataType::kUint64, {-1}},
      {"F16", DataType::kFp16, {-1}},    {"BF16", DataType::kBf16, {-1}},
      {"F32", DataType::kFp32, {2, -1}}, {"F64", DataType::kFp64, {-1}},
      {"S", DataType::kBytes, {-1}},
  };
  return inputs;
}

bool Exact(mm::DataType t) {
  return t != mm::DataType::kFp16 && t != mm::DataType::kBf16 && t != mm::DataType::kFp32 &&
         t != mm::DataType::kFp64;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  auto decoded = mm::DecodeGenerateRequest(body, Inputs());
  if (!decoded.ok()) {
    Check(!decoded.status().message().empty(), "an error says what was wrong");
    return 0;
  }
  mm::InferResponse response;
  response.model_name = "m";
  response.model_version = "1";
  for (const mm::Tensor& t : decoded->inputs) {
    auto count = mm::ElementCount(t.shape, "t");
    Check(count.ok(), "a decoded shape is valid");
    if (t.dtype == mm::DataType::kBytes) {
      Check(mm::CheckBytesTensor(t.data, *count, "t").ok(), "BYTES layout matches the shape");
    } else {
      Check(t.data.size() == static_cast<size_t>(*count) * mm::DataTypeSize(t.dtype),
            "byte size matches dtype and shape");
    }
    response.outputs.push_back(t);
  }
  std::string json;
  Check(mm::EncodeGenerateResponse(response, json).ok(), "decoded tensors encode");
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  Check(!parser.parse(json).get(root), "the response is valid JSON");
  // Read back: the same names, as inputs again (model_name/version become parameters).
  auto again = mm::DecodeGenerateRequest(json, Inputs());
  Check(again.ok(), "the response reads back as a request");
  for (const mm::Tensor& t : decoded->inputs) {
    if (!Exact(t.dtype)) continue;
    const mm::Tensor* u = nullptr;
    for (const mm::Tensor& x : again->inputs) {
      if (x.name == t.name) u = &x;
    }
    Check(u != nullptr, "every input comes back");
    Check(u->data.size() == t.data.size() &&
              (t.data.empty() || std::memcmp(u->data.data(), t.data.data(), t.data.size()) == 0),
          "exact types round-trip");
  }
  return 0;
}
