// Fuzzes the checks of the files Treelite reads (backends/fil/treelite_check.h):
// Treelite checkpoints and XGBoost's legacy binary format, tenants' uploads.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "backends/fil/treelite_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)mm::fil::CheckTreeliteCheckpoint(bytes);
  (void)mm::fil::CheckXGBoostLegacyBinary(bytes);
  return 0;
}
