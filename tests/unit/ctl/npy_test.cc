#include "ctl/npy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

namespace mm {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A .npy file as numpy.save writes it: magic, version, header length, the
// dict padded with spaces and a newline to a multiple of 64, then the data.
std::string Npy(std::string_view dict, std::string_view data, int version = 1) {
  const size_t prefix = version == 1 ? 10 : 12;
  std::string header(dict);
  size_t total = prefix + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(version);
  out += '\0';
  const size_t len = header.size();
  out += static_cast<char>(len & 0xFF);
  out += static_cast<char>((len >> 8) & 0xFF);
  if (version != 1) {
    out += static_cast<char>((len >> 16) & 0xFF);
    out += static_cast<char>((len >> 24) & 0xFF);
  }
  return out + header + std::string(data);
}

template <typename T>
std::string Bytes(std::initializer_list<T> values) {
  std::string out(values.size() * sizeof(T), '\0');
  std::memcpy(out.data(), std::data(values), out.size());
  return out;
}

void ExpectInvalid(const StatusOr<NpyArray>& r, std::string_view part) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), AllOf(HasSubstr("'x.npy'"), HasSubstr(std::string(part))));
}

TEST(NpyTest, ReadsFloat32Matrix) {
  const std::string data = Bytes<float>({1, 2, 3, 4, 5, 6});
  auto r =
      ParseNpy(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data), "x.npy");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->datatype, "FP32");
  EXPECT_EQ(r->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(r->data, data);
}

TEST(NpyTest, ReadsVersion2And3Headers) {
  const std::string data = Bytes<int64_t>({7, -8});
  for (int version : {2, 3}) {
    auto r = ParseNpy(
        Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", data, version), "x.npy");
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->datatype, "INT64");
    EXPECT_EQ(r->shape, (std::vector<int64_t>{2}));
    EXPECT_EQ(r->data, data);
  }
}

TEST(NpyTest, EveryAcceptedDtype) {
  const struct {
    const char* descr;
    const char* datatype;
    size_t size;
  } cases[] = {{"<f2", "FP16", 2},   {"<f4", "FP32", 4},   {"<f8", "FP64", 8},
               {"|i1", "INT8", 1},   {"<i1", "INT8", 1},   {"<i2", "INT16", 2},
               {"<i4", "INT32", 4},  {"<i8", "INT64", 8},  {"|u1", "UINT8", 1},
               {"<u2", "UINT16", 2}, {"<u4", "UINT32", 4}, {"<u8", "UINT64", 8},
               {"|b1", "BOOL", 1}};
  for (const auto& c : cases) {
    const std::string dict =
        std::string("{'descr': '") + c.descr + "', 'fortran_order': False, 'shape': (3,), }";
    auto r = ParseNpy(Npy(dict, std::string(3 * c.size, '\1')), "x.npy");
    ASSERT_TRUE(r.ok()) << c.descr << ": " << r.status().message();
    EXPECT_EQ(r->datatype, c.datatype) << c.descr;
  }
}

TEST(NpyTest, ScalarAndEmptyShapes) {
  auto scalar =
      ParseNpy(Npy("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", Bytes<double>({2.5})),
               "x.npy");
  ASSERT_TRUE(scalar.ok()) << scalar.status().message();
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->data.size(), 8u);
  auto empty =
      ParseNpy(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }", ""), "x.npy");
  ASSERT_TRUE(empty.ok()) << empty.status().message();
  EXPECT_EQ(empty->shape, (std::vector<int64_t>{0, 4}));
}

TEST(NpyTest, KeysInAnyOrderAndDoubleQuotes) {
  auto r = ParseNpy(Npy("{\"shape\": (1, 2), \"fortran_order\": False, \"descr\": \"<i4\"}",
                        Bytes<int32_t>({1, 2})),
                    "x.npy");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->datatype, "INT32");
  EXPECT_EQ(r->shape, (std::vector<int64_t>{1, 2}));
}

TEST(NpyTest, RefusesBigEndianNamingWhatIsExpected) {
  auto r =
      ParseNpy(Npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", "abcd"), "x.npy");
  ExpectInvalid(r, "big-endian");
  EXPECT_THAT(r.status().message(), HasSubstr("<f4"));
}

TEST(NpyTest, RefusesFortranOrder) {
  ExpectInvalid(ParseNpy(Npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                             std::string(16, '\0')),
                         "x.npy"),
                "Fortran order");
}

TEST(NpyTest, RefusesObjectStringAndStructuredDtypes) {
  ExpectInvalid(ParseNpy(Npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
                             std::string(8, '\0')),
                         "x.npy"),
                "object");
  ExpectInvalid(ParseNpy(Npy("{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }",
                             std::string(12, '\0')),
                         "x.npy"),
                "strings");
  ExpectInvalid(ParseNpy(Npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                             std::string(4, '\0')),
                         "x.npy"),
                "structured");
}

TEST(NpyTest, RefusesDataOfTheWrongSize) {
  ExpectInvalid(ParseNpy(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                             std::string(20, '\0')),
                         "x.npy"),
                "needs 24 data bytes, the file has 20");
}

TEST(NpyTest, RefusesMalformedHeaders) {
  ExpectInvalid(ParseNpy("not a numpy file at all", "x.npy"), "magic");
  ExpectInvalid(ParseNpy("", "x.npy"), "magic");
  std::string v9 = Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "abcd");
  v9[6] = 9;
  ExpectInvalid(ParseNpy(v9, "x.npy"), "version 9");
  const std::string whole =
      Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "abcd");
  ExpectInvalid(ParseNpy(whole.substr(0, 30), "x.npy"), "ends inside its header");
  ExpectInvalid(ParseNpy(Npy("{'descr': '<f4', 'shape': (1,), }", "abcd"), "x.npy"),
                "lacks one of");
  ExpectInvalid(
      ParseNpy(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", ""), "x.npy"),
      "shape");
  ExpectInvalid(ParseNpy(Npy("['<f4']", ""), "x.npy"), "not a dictionary");
  // An unknown key whose value is an unterminated string (found by the fuzz
  // target: it used to spin forever).
  ExpectInvalid(
      ParseNpy(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': [[\"ab}", "abcd"),
               "x.npy"),
      "malformed");
  ExpectInvalid(ParseNpy(Npy("{'extra': 'open", ""), "x.npy"), "malformed");
}

TEST(NpyTest, ReadFileNamesAMissingFile) {
  auto r = ReadNpyFile("/nonexistent/dir/in.npy");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("/nonexistent/dir/in.npy"));
}

}  // namespace
}  // namespace mm
