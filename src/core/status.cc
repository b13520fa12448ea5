#include "core/status.h"

namespace mm {

namespace {
struct CodeRow {
  StatusCode code;
  std::string_view name;
  int http;
  int grpc;
};
// The single mapping table of DESIGN.md.
constexpr CodeRow kCodeTable[] = {
    {StatusCode::kOk, "OK", 200, 0},
    {StatusCode::kInvalidArgument, "INVALID_ARGUMENT", 400, 3},
    {StatusCode::kNotFound, "NOT_FOUND", 404, 5},
    {StatusCode::kAlreadyExists, "ALREADY_EXISTS", 409, 6},
    {StatusCode::kFailedPrecondition, "FAILED_PRECONDITION", 400, 9},
    {StatusCode::kUnauthenticated, "UNAUTHENTICATED", 401, 16},
    {StatusCode::kPermissionDenied, "PERMISSION_DENIED", 403, 7},
    {StatusCode::kResourceExhausted, "RESOURCE_EXHAUSTED", 429, 8},
    {StatusCode::kPayloadTooLarge, "PAYLOAD_TOO_LARGE", 413, 8},
    {StatusCode::kUnavailable, "UNAVAILABLE", 503, 14},
    {StatusCode::kDeadlineExceeded, "DEADLINE_EXCEEDED", 504, 4},
    {StatusCode::kUnimplemented, "UNIMPLEMENTED", 501, 12},
    {StatusCode::kCancelled, "CANCELLED", 499, 1},
    {StatusCode::kInternal, "INTERNAL", 500, 13},
};

const CodeRow& Row(StatusCode code) {
  for (const auto& row : kCodeTable) {
    if (row.code == code) return row;
  }
  return kCodeTable[std::size(kCodeTable) - 1];
}
}  // namespace

std::string_view StatusCodeName(StatusCode code) { return Row(code).name; }
int HttpStatusFor(StatusCode code) { return Row(code).http; }
int GrpcCodeFor(StatusCode code) { return Row(code).grpc; }

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s(StatusCodeName(code_));
  s += ": ";
  s += message_;
  return s;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  Status s(code_, std::move(m));
  s.retry_after_ms_ = retry_after_ms_;
  return s;
}

}  // namespace mm
