// libFuzzer target for the W3C traceparent parser. Beyond "no crash, leak or
// UB": whatever parses has non-zero ids, formats as a 55-character version-00
// header, and that header parses back to the same context (for version-00
// input, the whole context; for a higher version, which keeps only the
// sampled flag, the same too, since it is re-sent as version 00).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "observability/trace_context.h"

namespace {

void Check(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;  // a header value; keep runs fast
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto ctx = mm::ParseTraceparent(text);
  if (!ctx) return 0;
  Check(!mm::IsZeroId(ctx->trace_id) && !mm::IsZeroId(ctx->span_id), "ids are not zero");
  const std::string header = mm::FormatTraceparent(*ctx);
  Check(header.size() == 55 && header.starts_with("00-"), "formats as version 00");
  const auto again = mm::ParseTraceparent(header);
  Check(again.has_value(), "the formatted header parses");
  Check(*again == *ctx, "round trip keeps the context");
  // For version-00 input the header is the input without its OWS.
  size_t begin = 0, end = text.size();
  while (begin < end && (text[begin] == ' ' || text[begin] == '\t')) ++begin;
  while (end > begin && (text[end - 1] == ' ' || text[end - 1] == '\t')) --end;
  if (text.substr(begin, 2) == "00") {
    Check(text.substr(begin, end - begin) == header, "version 00 round trips byte for byte");
  }
  return 0;
}
