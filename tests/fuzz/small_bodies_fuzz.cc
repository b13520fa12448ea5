// libFuzzer target for the small JSON bodies of the HTTP control endpoints:
// POST /v2/repository/index, /v2/repository/models/{m}/load and /unload, and
// POST /v2/systemsharedmemory/region/{n}/register.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/repository_codec.h"
#include "http/shm_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)mm::DecodeIndexRequest(body);
  (void)mm::DecodeLoadRequest(body);
  (void)mm::DecodeUnloadRequest(body);
  (void)mm::DecodeShmRegisterRequest(body);
  return 0;
}
