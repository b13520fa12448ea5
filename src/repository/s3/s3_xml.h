// Decoders for the XML an S3-compatible server answers with: a page of
// ListObjectsV2, and an error body. Pure functions over untrusted bytes
// (fuzzed: tests/fuzz/s3_xml_fuzz.cc): expat does the parsing, with its
// entity-expansion protection; the document may be truncated, hostile or not
// XML at all, and then decoding fails with INVALID_ARGUMENT, never crashes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace mm {

// One object of a listing.
struct S3Object {
  std::string key;
  uint64_t size = 0;
  std::string etag;  // without its quotes: "0cc1...e9" or, after a multipart upload, "ab..-3"
  // The listing names CRC32 among its ChecksumAlgorithm: the store keeps its
  // CRC32 (boto3 and the AWS CLI send one with each upload), which a HEAD
  // with x-amz-checksum-mode gives.
  bool crc32 = false;
};

// One page of a ListObjectsV2 answer (ListBucketResult).
struct S3ListPage {
  std::vector<S3Object> objects;
  bool truncated = false;
  std::string next_continuation_token;  // set when `truncated`
};

// INVALID_ARGUMENT when `xml` is not a ListBucketResult, or a Contents entry
// lacks its Key, or has a Size that is not a decimal integer, or a page says
// it is truncated without a continuation token.
StatusOr<S3ListPage> ParseS3ListPage(std::string_view xml);

// An <Error><Code>..</Code><Message>..</Message></Error> body. Either field is
// empty when absent, or when `xml` is not such a body (a proxy's HTML page).
struct S3Error {
  std::string code;
  std::string message;
};
S3Error ParseS3Error(std::string_view xml);

}  // namespace mm
