// libFuzzer target for what `mmserve ctl` decodes from files and servers:
// .npy files (ParseNpy), inline JSON inputs (ParseJsonTensor) and the
// console's overview document that `top` reads (ParseOverview). Each gets
// the same bytes; none may crash, read out of bounds or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ctl/json_tensor.h"
#include "ctl/npy.h"
#include "ctl/overview.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)mm::ParseNpy(bytes, "fuzz.npy");
  (void)mm::ParseJsonTensor(bytes, "input 'x'");
  (void)mm::ParseOverview(bytes);
  return 0;
}
