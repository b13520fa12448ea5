// Fuzzes the check of LightGBM text models' trees
// (backends/fil/lightgbm_check.h), which reads tenants' uploads.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "backends/fil/lightgbm_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // The tree count only matters at the end: every tree is checked first. A
  // large feature count lets splits pass, so the walk goes deeper.
  uint64_t leaves = 0;
  const mm::Status status = mm::fil::CheckLightGBMText(text, 1, 1 << 24, &leaves);
  if (status.ok() && leaves == 0) __builtin_trap();  // one tree has >= 1 leaf
  return 0;
}
