// AlignedInputs: the bytes of a request's fixed-size inputs, aligned for
// their element type, for a backend that hands them to an engine as views
// (ONNX Runtime, libtorch). An input's bytes need not be aligned: a binary
// section after a JSON header, or raw contents inside a gRPC message, lie
// at any offset. Aligned inputs are used where they lie; misaligned ones
// are copied into scratch memory kept across runs, so a steady stream of
// requests allocates nothing here.
//
// Use: Prepare(request.inputs) once per run, then Data(input) for each
// input. Copies stay valid until the next Prepare. One run at a time (an
// instance's, backend.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "core/tensor.h"

namespace mm {

class AlignedInputs {
 public:
  // Sizes the scratch for `inputs`' misaligned fixed-size ones; drops the
  // last run's copies.
  void Prepare(std::span<const Tensor> inputs) {
    size_t needed = 0;
    for (const Tensor& input : inputs) {
      if (Misaligned(input)) needed += Rounded(input.data.size());
    }
    if (scratch_.size() < needed) scratch_.resize(needed);
    used_ = 0;
  }

  // `input`'s bytes, aligned for its element type (a fixed-size one): where
  // they lie, or a copy in the scratch; a static address for zero bytes.
  // Engines take a mutable pointer but only read inputs.
  std::byte* Data(const Tensor& input) {
    alignas(16) static std::byte empty[16];  // never written
    if (input.data.empty()) return empty;
    auto* data = const_cast<std::byte*>(input.data.data());
    if (!Misaligned(input)) return data;
    std::byte* copy = scratch_.data() + used_;
    used_ += Rounded(input.data.size());
    std::memcpy(copy, data, input.data.size());
    return copy;
  }

  // Whether [p, p + n) overlaps this run's copies (an output that does must
  // be copied before the next run reuses them).
  bool Overlaps(const void* p, size_t n) const {
    const auto a = reinterpret_cast<uintptr_t>(p);
    const auto b = reinterpret_cast<uintptr_t>(scratch_.data());
    return n > 0 && used_ > 0 && a < b + used_ && b < a + n;
  }

 private:
  static bool Misaligned(const Tensor& input) {
    return input.dtype != DataType::kBytes && !input.data.empty() &&
           reinterpret_cast<uintptr_t>(input.data.data()) % DataTypeSize(input.dtype) != 0;
  }
  static size_t Rounded(size_t n) { return (n + 15) & ~size_t{15}; }

  std::vector<std::byte> scratch_;  // operator new: 16-byte aligned
  size_t used_ = 0;
};

}  // namespace mm
