#include "backends/onnxruntime/output_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace mm {
namespace {

using ::testing::ElementsAre;

Tensor Input(std::string name, std::vector<int64_t> shape) {
  Tensor t;
  t.name = std::move(name);
  t.dtype = DataType::kFp32;
  t.shape = std::move(shape);
  return t;
}

TEST(OutputShapePlanTest, FixedDimensionsNeedNoInput) {
  const DeclaredTensor out{"y", {2, 3}, {"", ""}};
  OutputShapePlan plan = OutputShapePlan::Make(out, {});
  ASSERT_TRUE(plan.known());
  std::vector<int64_t> shape;
  ASSERT_TRUE(plan.Resolve({}, shape));
  EXPECT_THAT(shape, ElementsAre(2, 3));
}

TEST(OutputShapePlanTest, NamedDimensionFollowsTheInputSoNamed) {
  const std::vector<DeclaredTensor> inputs = {{"image", {-1, 3, -1, -1}, {"batch", "", "h", "w"}},
                                              {"scale", {-1}, {"batch"}}};
  OutputShapePlan plan = OutputShapePlan::Make({"logits", {-1, 10}, {"batch", ""}}, inputs);
  ASSERT_TRUE(plan.known());
  const std::vector<Tensor> request = {Input("scale", {5}), Input("image", {5, 3, 8, 9})};
  std::vector<int64_t> shape = {7, 7, 7};  // overwritten
  ASSERT_TRUE(plan.Resolve(request, shape));
  EXPECT_THAT(shape, ElementsAre(5, 10));

  OutputShapePlan hw = OutputShapePlan::Make({"mask", {-1, -1}, {"w", "h"}}, inputs);
  ASSERT_TRUE(hw.Resolve(request, shape));
  EXPECT_THAT(shape, ElementsAre(9, 8));
}

TEST(OutputShapePlanTest, UnnamedOrUnmatchedDimensionIsUnknown) {
  const std::vector<DeclaredTensor> inputs = {{"x", {-1}, {"n"}}};
  EXPECT_FALSE(OutputShapePlan::Make({"y", {-1}, {""}}, inputs).known());
  EXPECT_FALSE(OutputShapePlan::Make({"y", {-1}, {"k"}}, inputs).known());  // NonZero's count
  EXPECT_FALSE(OutputShapePlan::Make({"y", {-1}, {}}, inputs).known());
  // A name a fixed input dimension carries is not a source (only dynamic ones are).
  EXPECT_FALSE(OutputShapePlan::Make({"y", {-1}, {"n"}}, {{{"x", {4}, {"n"}}}}).known());
  std::vector<int64_t> shape;
  EXPECT_FALSE(OutputShapePlan().Resolve({}, shape));
}

TEST(OutputShapePlanTest, MissingShortOrDisagreeingInputsDoNotResolve) {
  const std::vector<DeclaredTensor> inputs = {{"a", {-1, 4}, {"batch", ""}},
                                              {"b", {-1}, {"batch"}}};
  OutputShapePlan plan = OutputShapePlan::Make({"y", {-1}, {"batch"}}, inputs);
  ASSERT_TRUE(plan.known());
  std::vector<int64_t> shape;
  EXPECT_FALSE(plan.Resolve(std::vector<Tensor>{Input("a", {3, 4})}, shape));  // b missing
  EXPECT_FALSE(plan.Resolve(std::vector<Tensor>{Input("a", {}), Input("b", {3})}, shape));
  // Two inputs named alike that disagree: a request ONNX Runtime must judge.
  EXPECT_FALSE(plan.Resolve(std::vector<Tensor>{Input("a", {3, 4}), Input("b", {2})}, shape));
  ASSERT_TRUE(plan.Resolve(std::vector<Tensor>{Input("a", {3, 4}), Input("b", {3})}, shape));
  EXPECT_THAT(shape, ElementsAre(3));
}

TEST(OutputShapePlanTest, ScalarOutputHasNoDimensions) {
  OutputShapePlan plan = OutputShapePlan::Make({"loss", {}, {}}, {});
  ASSERT_TRUE(plan.known());
  std::vector<int64_t> shape = {1};
  ASSERT_TRUE(plan.Resolve({}, shape));
  EXPECT_TRUE(shape.empty());
}

}  // namespace
}  // namespace mm
