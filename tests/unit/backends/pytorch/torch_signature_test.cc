#include "backends/pytorch/torch_signature.h"

#include <gtest/gtest.h>

#include <string>

#include "torch_test_util.h"

namespace mm {
namespace {

using torch_test::MakeModule;
using torch_test::ParseConfig;

ForwardSignature SignatureOf(const std::string& source) {
  torch::jit::Module module = MakeModule(source);
  return ReadForwardSignature(module.get_method("forward").function().getSchema());
}

const char* kTwoArgs = R"(
def forward(self, a: Tensor, b: Tensor) -> Tensor:
    return a - b
)";

TEST(TorchSignatureTest, ReadsArgumentsWithoutSelf) {
  ForwardSignature sig = SignatureOf(R"(
def forward(self, x: Tensor, s: List[str]) -> Tuple[Tensor, List[str]]:
    return x, s
)");
  EXPECT_EQ(sig.text, "forward(Tensor x, List[str] s) -> Tuple[Tensor, List[str]]");
  ASSERT_EQ(sig.args.size(), 2u);
  EXPECT_EQ(sig.args[0].kind, TorchValueKind::kTensor);
  EXPECT_EQ(sig.args[1].kind, TorchValueKind::kStringList);
  EXPECT_EQ(sig.returns, TorchValueKind::kTuple);
  EXPECT_EQ(sig.tuple.size(), 2u);
}

TEST(TorchSignatureTest, ForwardArgumentNamesInAnyOrder) {
  auto map = MapTorchIo(ParseConfig(R"(
    input [ { name: "b" data_type: TYPE_FP32 dims: [ 2 ] },
            { name: "a" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "out" data_type: TYPE_FP32 dims: [ 2 ] } ])"),
                        SignatureOf(kTwoArgs));
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_EQ(map->input_convention, "FORWARD_ARGUMENT");
  EXPECT_EQ(map->input_position, (std::vector<int>{1, 0}));
  EXPECT_EQ(map->output_convention, "STRICT_CONFIG_ORDERING");
  EXPECT_TRUE(map->warnings.empty());
}

TEST(TorchSignatureTest, NamedIndexThenStrictOrderWithWarning) {
  auto named = MapTorchIo(ParseConfig(R"(
    input [ { name: "INPUT__1" data_type: TYPE_FP32 dims: [ 2 ] },
            { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2 ] } ])"),
                          SignatureOf(kTwoArgs));
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  EXPECT_EQ(named->input_convention, "NAMED_INDEX");
  EXPECT_EQ(named->input_position, (std::vector<int>{1, 0}));
  EXPECT_EQ(named->output_convention, "NAMED_INDEX");

  auto strict = MapTorchIo(ParseConfig(R"(
    input [ { name: "first__x" data_type: TYPE_FP32 dims: [ 2 ] },
            { name: "second" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "out" data_type: TYPE_FP32 dims: [ 2 ] } ])"),
                           SignatureOf(kTwoArgs));
  ASSERT_TRUE(strict.ok()) << strict.status().ToString();
  EXPECT_EQ(strict->input_convention, "STRICT_CONFIG_ORDERING");
  EXPECT_EQ(strict->input_position, (std::vector<int>{0, 1}));
  ASSERT_EQ(strict->warnings.size(), 1u);
  EXPECT_NE(strict->warnings[0].find("<name>__<index>"), std::string::npos);
}

TEST(TorchSignatureTest, NamedIndexOutOfRangeOrTwiceIsAnError) {
  auto out_of_range = MapTorchIo(ParseConfig(R"(
    input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 2 ] },
            { name: "INPUT__2" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "o" data_type: TYPE_FP32 dims: [ 2 ] } ])"),
                                 SignatureOf(kTwoArgs));
  ASSERT_FALSE(out_of_range.ok());
  EXPECT_NE(out_of_range.status().message().find("input 'INPUT__2' names index 2"),
            std::string::npos)
      << out_of_range.status().message();
  auto twice = MapTorchIo(ParseConfig(R"(
    input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 2 ] },
            { name: "OTHER__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "o" data_type: TYPE_FP32 dims: [ 2 ] } ])"),
                          SignatureOf(kTwoArgs));
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("which another input names too"), std::string::npos);
}

TEST(TorchSignatureTest, CountMismatchShowsForward) {
  auto map = MapTorchIo(ParseConfig(R"(
    input [ { name: "a" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "o" data_type: TYPE_FP32 dims: [ 2 ] } ])"),
                        SignatureOf(kTwoArgs));
  ASSERT_FALSE(map.ok());
  EXPECT_EQ(map.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(map.status().message(),
            "configuration expects 1 inputs, model provides 2: forward(Tensor a, Tensor b) -> "
            "Tensor");
}

TEST(TorchSignatureTest, NoInputsOrOutputsShowsForward) {
  auto map = MapTorchIo(ParseConfig(""), SignatureOf(kTwoArgs));
  ASSERT_FALSE(map.ok());
  EXPECT_NE(map.status().message().find("lists no inputs"), std::string::npos);
  EXPECT_NE(map.status().message().find("forward(Tensor a, Tensor b) -> Tensor"),
            std::string::npos);
}

TEST(TorchSignatureTest, StringInputNeedsListOfStrAndRankOne) {
  const char* source = R"(
def forward(self, s: List[str]) -> List[str]:
    return s
)";
  auto ok = MapTorchIo(ParseConfig(R"(
    max_batch_size: 4
    input [ { name: "s" data_type: TYPE_STRING dims: [ 1 ] reshape: { shape: [ ] } } ]
    output [ { name: "o" data_type: TYPE_STRING dims: [ 1 ] reshape: { shape: [ ] } } ])"),
                       SignatureOf(source));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  auto rank2 = MapTorchIo(ParseConfig(R"(
    max_batch_size: 4
    input [ { name: "s" data_type: TYPE_STRING dims: [ 1 ] } ]
    output [ { name: "o" data_type: TYPE_STRING dims: [ -1 ] } ])"),
                          SignatureOf(source));
  ASSERT_FALSE(rank2.ok());
  EXPECT_NE(rank2.status().message().find("must have rank 1"), std::string::npos);
  auto tensor_arg = MapTorchIo(ParseConfig(R"(
    input [ { name: "a" data_type: TYPE_STRING dims: [ -1 ] },
            { name: "b" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "o" data_type: TYPE_FP32 dims: [ 2 ] } ])"),
                               SignatureOf(kTwoArgs));
  ASSERT_FALSE(tensor_arg.ok());
  EXPECT_NE(tensor_arg.status().message().find("which is Tensor, not List[str]"), std::string::npos)
      << tensor_arg.status().message();
}

TEST(TorchSignatureTest, DictInputAndDictOutput) {
  auto map = MapTorchIo(ParseConfig(R"(
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] },
            { name: "y" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "sum" data_type: TYPE_FP32 dims: [ 2 ] } ])"),
                        SignatureOf(R"(
def forward(self, d: Dict[str, Tensor]) -> Dict[str, Tensor]:
    return {"sum": d["x"] + d["y"]}
)"));
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_TRUE(map->dict_input);
  EXPECT_EQ(map->output_position, (std::vector<int>{-1}));
}

TEST(TorchSignatureTest, RefusesOtherArgumentAndReturnTypes) {
  auto int_arg = MapTorchIo(ParseConfig(R"(
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] }, { name: "n" data_type: TYPE_INT64 dims: [ 1 ] } ]
    output [ { name: "o" data_type: TYPE_FP32 dims: [ 2 ] } ])"),
                            SignatureOf(R"(
def forward(self, x: Tensor, n: int) -> Tensor:
    return x * n
)"));
  ASSERT_FALSE(int_arg.ok());
  EXPECT_NE(int_arg.status().message().find("argument 'n' has type int"), std::string::npos)
      << int_arg.status().message();
  auto int_return = MapTorchIo(ParseConfig(R"(
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "o" data_type: TYPE_FP32 dims: [ 2 ] } ])"),
                               SignatureOf(R"(
def forward(self, x: Tensor) -> int:
    return 3
)"));
  ASSERT_FALSE(int_return.ok());
  EXPECT_NE(int_return.status().message().find("forward returns int"), std::string::npos)
      << int_return.status().message();
}

TEST(TorchSignatureTest, MoreOutputsThanTheTupleHas) {
  auto map = MapTorchIo(ParseConfig(R"(
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "a" data_type: TYPE_FP32 dims: [ 2 ] },
             { name: "b" data_type: TYPE_FP32 dims: [ 2 ] },
             { name: "c" data_type: TYPE_FP32 dims: [ 2 ] } ])"),
                        SignatureOf(R"(
def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
    return x, x
)"));
  ASSERT_FALSE(map.ok());
  EXPECT_EQ(map.status().message(),
            "configuration expects 3 outputs, model provides 2: forward(Tensor x) -> "
            "Tuple[Tensor, Tensor]");
}

}  // namespace
}  // namespace mm
