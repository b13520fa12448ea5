// libFuzzer target for the decoders of an S3 server's XML answers
// (repository/s3/s3_xml.h): a ListObjectsV2 page and an error body, both read
// from bytes a server or a proxy in between chose. Beyond "no crash, leak or
// UB": a refused page is INVALID_ARGUMENT with a message, a parsed page that
// says it is truncated has a continuation token, and an ETag lost its quotes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "repository/s3/s3_xml.h"

namespace {

void Check(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256 << 10) return 0;  // a page of 1000 keys is about this; keep runs fast
  const std::string_view xml(reinterpret_cast<const char*>(data), size);

  auto page = mm::ParseS3ListPage(xml);
  if (!page.ok()) {
    Check(page.status().code() == mm::StatusCode::kInvalidArgument,
          "a refused page is INVALID_ARGUMENT");
    Check(!page.status().message().empty(), "a refused page has a message");
  } else {
    Check(!page->truncated || !page->next_continuation_token.empty(),
          "a truncated page has a continuation token");
    for (const mm::S3Object& object : page->objects) {
      const std::string_view etag = object.etag;
      Check(etag.size() < 2 || etag.front() != '"' || etag.back() != '"',
            "an ETag has lost its quotes");
    }
  }

  // Never fails: a body that is not an S3 error gives empty fields. (Their
  // sizes are not bounded by the input's: internal entities expand, within
  // expat's amplification limit.)
  const mm::S3Error error = mm::ParseS3Error(xml);
  (void)error;
  return 0;
}
