// Tensors as they travel the request path: a view onto bytes plus, when the
// bytes are not owned by the request's transport buffer, whatever keeps them
// alive. A decoded request's tensors point into the HTTP body / gRPC message
// they arrived in; a response's tensors point into the backend's output
// (an Ort::Value, say) held by `owner`. Nothing is copied until a consumer
// needs its own layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <variant>

#include "core/data_type.h"
#include "core/shape.h"

namespace mm {

// Request/response `parameters`: KServe allows bool, int64, double and string.
using ParameterValue = std::variant<bool, int64_t, double, std::string>;
using Parameters = std::map<std::string, ParameterValue, std::less<>>;

struct Tensor {
  std::string name;
  DataType dtype = DataType::kInvalid;
  Shape shape;
  // For BYTES: the serialized form (4-byte little-endian length + bytes, per element).
  std::span<const std::byte> data;
  // Keeps `data` alive when it is not owned by the enclosing request/response.
  std::shared_ptr<const void> owner;
  // Per-tensor protocol parameters, e.g. shared_memory_region on an input, or
  // on an output written to shared memory (whose `data` is then empty).
  Parameters parameters;

  // The elements as T, for bytes known to be aligned for T (buffers a
  // backend or a codec allocated). An input's bytes need not be: a binary
  // section after a JSON header, or raw contents inside a gRPC message, lie
  // at any offset; copy those out (std::memcpy) instead.
  template <typename T>
  std::span<const T> as() const {
    return {reinterpret_cast<const T*>(data.data()), data.size() / sizeof(T)};
  }
};

// An owned, zero-initialised byte buffer, for tensors decoded from JSON or
// produced by a backend that cannot hand out its own memory.
struct ByteBuffer {
  explicit ByteBuffer(size_t n) : size(n), bytes(new std::byte[n == 0 ? 1 : n]()) {}
  size_t size;
  std::unique_ptr<std::byte[]> bytes;
  std::span<std::byte> span() { return {bytes.get(), size}; }
};

// Builds a tensor that owns `buffer`.
inline void AttachBuffer(Tensor& t, std::shared_ptr<ByteBuffer> buffer) {
  t.data = {buffer->bytes.get(), buffer->size};
  t.owner = std::move(buffer);
}

}  // namespace mm
