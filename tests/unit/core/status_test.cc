#include "core/status.h"

#include <gtest/gtest.h>

#include <optional>

namespace mm {
namespace {

TEST(StatusTest, MapsEveryCodeOntoHttpAndGrpcAsDesigned) {
  EXPECT_EQ(HttpStatusFor(StatusCode::kOk), 200);
  EXPECT_EQ(HttpStatusFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(GrpcCodeFor(StatusCode::kInvalidArgument), 3);
  EXPECT_EQ(HttpStatusFor(StatusCode::kNotFound), 404);
  EXPECT_EQ(GrpcCodeFor(StatusCode::kNotFound), 5);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(GrpcCodeFor(StatusCode::kUnauthenticated), 16);
  EXPECT_EQ(HttpStatusFor(StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(GrpcCodeFor(StatusCode::kPermissionDenied), 7);
  EXPECT_EQ(HttpStatusFor(StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(GrpcCodeFor(StatusCode::kResourceExhausted), 8);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnavailable), 503);
  EXPECT_EQ(GrpcCodeFor(StatusCode::kUnavailable), 14);
  EXPECT_EQ(HttpStatusFor(StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(GrpcCodeFor(StatusCode::kDeadlineExceeded), 4);
  EXPECT_EQ(HttpStatusFor(StatusCode::kInternal), 500);
  EXPECT_EQ(GrpcCodeFor(StatusCode::kInternal), 13);
  EXPECT_EQ(HttpStatusFor(StatusCode::kPayloadTooLarge), 413);
}

TEST(StatusTest, ContextIsPrependedAndCodeKept) {
  Status s = NotFound("no such model 'x'").WithContext("loading");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "loading: no such model 'x'");
  EXPECT_EQ(s.ToString(), "NOT_FOUND: loading: no such model 'x'");
  EXPECT_TRUE(OkStatus().WithContext("x").ok());
}

StatusOr<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd");
  return x / 2;
}

Status Quarter(int x, int* out) {
  MM_ASSIGN_OR_RETURN(int h, Half(x));
  MM_ASSIGN_OR_RETURN(*out, Half(h));
  return OkStatus();
}

TEST(StatusTest, AssignOrReturnPropagates) {
  int out = 0;
  EXPECT_TRUE(Quarter(8, &out).ok());
  EXPECT_EQ(out, 2);
  EXPECT_EQ(Quarter(6, &out).code(), StatusCode::kInvalidArgument);
}

TEST(StatusTest, AnEmptyOptionalIsAValue) {
  StatusOr<std::optional<int>> none = std::nullopt;
  EXPECT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  StatusOr<std::optional<int>> three = 3;
  ASSERT_TRUE(three.ok());
  EXPECT_EQ(**three, 3);
}

}  // namespace
}  // namespace mm
