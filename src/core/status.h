// Status and StatusOr: how every failure travels through the core.
//
// A Status carries a code and a message a user can act on ("input 'x': expected
// FP32 [?,4], got INT64 [2,3]"). Codes map to HTTP and gRPC in one table
// (HttpStatusFor / GrpcCodeFor) so the transports never disagree.
#pragma once

#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace mm {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,
  kUnauthenticated,
  kPermissionDenied,
  kResourceExhausted,
  kPayloadTooLarge,  // a request body over --max-request-bytes (HTTP 413)
  kUnavailable,
  kDeadlineExceeded,
  kUnimplemented,
  kCancelled,
  kInternal,
};

std::string_view StatusCodeName(StatusCode code);
// The one table that maps codes onto the wire.
int HttpStatusFor(StatusCode code);
int GrpcCodeFor(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Prepends context: "loading model m: " + message.
  Status WithContext(std::string_view context) const;

  // For a refusal that a retry after a while would pass (a quota): how long
  // to wait, in milliseconds (0: no hint). HTTP sends it as Retry-After.
  uint32_t retry_after_ms() const { return retry_after_ms_; }
  Status WithRetryAfter(uint32_t ms) && {
    retry_after_ms_ = ms;
    return std::move(*this);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  uint32_t retry_after_ms_ = 0;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status PermissionDenied(std::string m) {
  return {StatusCode::kPermissionDenied, std::move(m)};
}
inline Status ResourceExhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status PayloadTooLarge(std::string m) {
  return {StatusCode::kPayloadTooLarge, std::move(m)};
}
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}
inline Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : status_(status) { assert(!status.ok()); }         // NOLINT
  StatusOr(Status&& status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT
  StatusOr(const T& value) : value_(value) {}                                        // NOLINT
  StatusOr(T&& value) : value_(std::move(value)) {}                                  // NOLINT
  // Built in place, so that a StatusOr<std::optional<X>> made from
  // std::nullopt holds a value (an empty optional), not nothing.
  template <typename U>
  requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, Status> &&
           !std::is_same_v<std::decay_t<U>, StatusOr<T>> && !std::is_same_v<std::decay_t<U>, T>)
      StatusOr(U&& value)
      : value_(std::in_place, std::forward<U>(value)) {}  // NOLINT

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;  // OK when value_ is set
  std::optional<T> value_;
};

#define MM_CONCAT_INNER(a, b) a##b
#define MM_CONCAT(a, b) MM_CONCAT_INNER(a, b)

#define MM_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::mm::Status _mm_status = (expr);        \
    if (!_mm_status.ok()) return _mm_status; \
  } while (0)

#define MM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

#define MM_ASSIGN_OR_RETURN(lhs, expr) \
  MM_ASSIGN_OR_RETURN_IMPL(MM_CONCAT(_mm_statusor_, __LINE__), lhs, expr)

}  // namespace mm
