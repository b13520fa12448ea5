// Fuzzes the checks of XGBoost model files (backends/fil/xgboost_check.h),
// JSON and UBJSON, which read tenants' uploads before XGBoost parses them.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "backends/fil/xgboost_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  mm::fil::XGBoostShape ubj, json;
  if (mm::fil::CheckUbjson(bytes, &ubj).ok() && ubj.nodes < ubj.trees) __builtin_trap();
  if (mm::fil::CheckXGBoostJson(bytes, &json).ok() && json.nodes < json.trees) __builtin_trap();
  return 0;
}
