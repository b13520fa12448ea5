// Fuzzes the HTTP inference codec: DecodeInferRequest on arbitrary bodies and,
// for every request that decodes, EncodeInferResponse echoing its inputs as
// outputs. Checks, beyond "no crash, leak or UB":
//  - parsing in place (body with spare capacity full of junk) and parsing a
//    copy give the same result;
//  - an encoded response is valid JSON;
//  - the response, read back as a request, decodes to the same tensors.
//
// Input layout: bytes 0-1 choose how the body is presented, the rest is the body.
//   h = (b0 & 0x7f) << 8 | b1: 0 = no Inference-Header-Content-Length, else h - 1.
//   b0 & 0x80: the body string gets spare capacity (the in-place parse path).
#include <simdjson.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "http/infer_codec.h"

namespace {

void Check(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

template <typename F>
bool SameFloats(const mm::Tensor& a, const mm::Tensor& b, F to_double, size_t elem) {
  for (size_t i = 0; i < a.data.size(); i += elem) {
    const double x = to_double(a.data.data() + i), y = to_double(b.data.data() + i);
    if (std::isnan(x) != std::isnan(y)) return false;
    if (!std::isnan(x) && std::memcmp(a.data.data() + i, b.data.data() + i, elem) != 0) {
      return false;
    }
  }
  return true;
}

bool SameData(const mm::Tensor& a, const mm::Tensor& b) {
  if (a.data.size() != b.data.size()) return false;
  auto f32 = [](const std::byte* p) {
    float v;
    std::memcpy(&v, p, 4);
    return static_cast<double>(v);
  };
  auto f64 = [](const std::byte* p) {
    double v;
    std::memcpy(&v, p, 8);
    return v;
  };
  auto half_is_nan = [](const std::byte* p) {  // only NaN-ness matters here
    uint16_t v;
    std::memcpy(&v, p, 2);
    return (v & 0x7C00) == 0x7C00 && (v & 0x3FF) != 0 ? NAN : 0.0;
  };
  auto bf16_is_nan = [](const std::byte* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return (v & 0x7F80) == 0x7F80 && (v & 0x7F) != 0 ? NAN : 0.0;
  };
  switch (a.dtype) {
    case mm::DataType::kFp32:
      return SameFloats(a, b, f32, 4);
    case mm::DataType::kFp64:
      return SameFloats(a, b, f64, 8);
    case mm::DataType::kFp16:
      return SameFloats(a, b, half_is_nan, 2);
    case mm::DataType::kBf16:
      return SameFloats(a, b, bf16_is_nan, 2);
    default:
      return a.data.empty() || std::memcmp(a.data.data(), b.data.data(), a.data.size()) == 0;
  }
}

void EchoAndReadBack(const mm::DecodedInferRequest& d) {
  mm::InferResponse r;
  r.model_name = "fuzz";
  r.id = d.request.id;
  r.parameters = d.request.parameters;
  r.outputs = d.request.inputs;
  std::string json;
  std::vector<std::span<const std::byte>> chunks;
  if (!mm::EncodeInferResponse(r, d.format, json, chunks).ok()) return;  // e.g. non-UTF-8 BYTES

  simdjson::dom::parser parser;
  Check(parser.parse(json).error() == simdjson::SUCCESS, "response is valid JSON");

  // The response's top-level "outputs" key is its last `"outputs":[` (strings
  // escape their quotes; no nested key is named so).
  const size_t at = json.rfind("\"outputs\":[");
  Check(at != std::string::npos, "response has outputs");
  json.replace(at, 10, "\"inputs\":");
  const size_t header = json.size();
  for (auto c : chunks) json.append(reinterpret_cast<const char*>(c.data()), c.size());
  auto back = mm::DecodeInferRequest(std::make_shared<const std::string>(std::move(json)),
                                     chunks.empty() ? std::nullopt : std::optional<size_t>(header));
  if (!back.ok()) std::fprintf(stderr, "%s\n", back.status().ToString().c_str());
  Check(back.ok(), "response reads back as a request");
  const auto& in = back->request.inputs;
  Check(in.size() == r.outputs.size(), "same number of tensors");
  for (size_t i = 0; i < in.size(); ++i) {
    Check(in[i].name == r.outputs[i].name, "same name");
    Check(in[i].dtype == r.outputs[i].dtype, "same datatype");
    Check(in[i].shape == r.outputs[i].shape, "same shape");
    Check(SameData(in[i], r.outputs[i]), "same data");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t h = (static_cast<size_t>(data[0] & 0x7F) << 8) | data[1];
  const bool spare_capacity = (data[0] & 0x80) != 0;
  const std::optional<size_t> header_length = h == 0 ? std::nullopt : std::optional<size_t>(h - 1);
  const char* p = reinterpret_cast<const char*>(data + 2);
  const size_t n = size - 2;

  auto plain = std::make_shared<const std::string>(p, n);
  auto padded = std::make_shared<std::string>();
  if (spare_capacity) {
    padded->resize(n + mm::kRequestBodyPadding, '"');  // junk the parser must not act on
    if (n != 0) std::memcpy(padded->data(), p, n);
    padded->resize(n);
  } else {
    padded->assign(p, n);
  }

  auto a = mm::DecodeInferRequest(plain, header_length);
  auto b = mm::DecodeInferRequest(padded, header_length);
  Check(a.ok() == b.ok(), "in-place and copied parses agree");
  if (!a.ok()) {
    Check(a.status().message() == b.status().message(), "same error");
    Check(!a.status().message().empty(), "errors have messages");
    return 0;
  }
  Check(a->request.inputs.size() == b->request.inputs.size(), "same inputs");
  for (size_t i = 0; i < a->request.inputs.size(); ++i) {
    Check(SameData(a->request.inputs[i], b->request.inputs[i]), "same input data");
  }
  EchoAndReadBack(*a);
  return 0;
}
