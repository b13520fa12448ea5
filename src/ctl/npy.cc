#include "ctl/npy.h"

#include <cctype>
#include <optional>

#include "ctl/files.h"

namespace mm {

namespace {

constexpr std::string_view kMagic = "\x93NUMPY";

struct DtypeInfo {
  std::string_view descr;
  std::string_view datatype;
  size_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {"<f2", "FP16", 2},   {"<f4", "FP32", 4},  {"<f8", "FP64", 8},   {"|i1", "INT8", 1},
    {"<i1", "INT8", 1},   {"<i2", "INT16", 2}, {"<i4", "INT32", 4},  {"<i8", "INT64", 8},
    {"|u1", "UINT8", 1},  {"<u1", "UINT8", 1}, {"<u2", "UINT16", 2}, {"<u4", "UINT32", 4},
    {"<u8", "UINT64", 8}, {"|b1", "BOOL", 1},
};

constexpr std::string_view kExpected =
    "expected one of <f2 <f4 <f8 <i1 <i2 <i4 <i8 |u1 <u2 <u4 <u8 |b1 (little-endian numbers or "
    "booleans)";

// A cursor over the header: a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderReader {
 public:
  explicit HeaderReader(std::string_view text) : text_(text) {}

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Eat(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  char Peek() {
    SkipSpace();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }
  // A quoted string ('...' or "..."), without escapes (numpy writes none).
  std::optional<std::string_view> String() {
    const char quote = Peek();
    if (quote != '\'' && quote != '"') return std::nullopt;
    const size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view s = text_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return s;
  }
  std::optional<std::string_view> Word() {
    SkipSpace();
    const size_t start = pos_;
    while (pos_ < text_.size() && std::isalpha(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    if (pos_ == start) return std::nullopt;
    return text_.substr(start, pos_ - start);
  }
  std::optional<int64_t> Integer() {
    SkipSpace();
    const size_t start = pos_;
    int64_t v = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (v > (INT64_MAX - 9) / 10) return std::nullopt;
      v = v * 10 + (text_[pos_++] - '0');
    }
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2's long
    if (pos_ == start) return std::nullopt;
    return v;
  }
  // Skips one value of a kind we do not read (a nested list or tuple, a word).
  void SkipValue() {
    int depth = 0;
    SkipSpace();
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '\'' || c == '"') {
        if (!String()) {  // unterminated: the header ends here (the caller reports it)
          pos_ = text_.size();
          return;
        }
        if (depth == 0) return;
        continue;
      }
      if (c == '(' || c == '[' || c == '{') ++depth;
      if (c == ')' || c == ']' || c == '}') {
        if (depth == 0) return;
        --depth;
      }
      if (c == ',' && depth == 0) return;
      ++pos_;
    }
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

uint32_t ReadLittleEndian(std::string_view bytes, size_t offset, size_t width) {
  uint32_t v = 0;
  for (size_t i = 0; i < width; ++i) {
    v |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  }
  return v;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ',';
  return s + ")";
}

}  // namespace

StatusOr<NpyArray> ParseNpy(std::string_view contents, std::string_view file) {
  const std::string where(file);
  auto bad = [&](const std::string& why) {
    return InvalidArgument("'" + where + "' is not a usable .npy file: " + why);
  };
  if (contents.size() < 10 || contents.substr(0, kMagic.size()) != kMagic) {
    return bad("it does not start with the NumPy magic string \\x93NUMPY");
  }
  const int major = static_cast<unsigned char>(contents[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = ReadLittleEndian(contents, 8, 2);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (contents.size() < 12) return bad("the file ends inside its header");
    header_len = ReadLittleEndian(contents, 8, 4);
    header_start = 12;
  } else {
    return bad("format version " + std::to_string(major) + " is unknown; expected 1, 2 or 3");
  }
  if (header_len > contents.size() - header_start) return bad("the file ends inside its header");
  HeaderReader header(contents.substr(header_start, header_len));

  std::optional<std::string_view> descr;
  std::optional<bool> fortran;
  std::optional<std::vector<int64_t>> shape;
  if (!header.Eat('{')) return bad("its header is not a dictionary");
  while (!header.Eat('}')) {
    auto key = header.String();
    if (!key || !header.Eat(':')) return bad("its header dictionary is malformed");
    if (*key == "descr") {
      if (header.Peek() == '[') {
        return bad("structured dtypes are not supported; " + std::string(kExpected));
      }
      descr = header.String();
      if (!descr) return bad("its 'descr' is not a string");
    } else if (*key == "fortran_order") {
      auto word = header.Word();
      if (word != "True" && word != "False") return bad("its 'fortran_order' is not True/False");
      fortran = *word == "True";
    } else if (*key == "shape") {
      if (!header.Eat('(')) return bad("its 'shape' is not a tuple");
      shape.emplace();
      while (!header.Eat(')')) {
        auto dim = header.Integer();
        if (!dim) return bad("its 'shape' holds something other than non-negative integers");
        shape->push_back(*dim);
        if (!header.Eat(',') && header.Peek() != ')') return bad("its 'shape' is malformed");
      }
    } else {
      header.SkipValue();
    }
    if (!header.Eat(',') && header.Peek() != '}') return bad("its header dictionary is malformed");
  }
  if (!descr || !fortran || !shape) {
    return bad("its header lacks one of 'descr', 'fortran_order' and 'shape'");
  }
  const DtypeInfo* info = nullptr;
  for (const DtypeInfo& d : kDtypes) {
    if (d.descr == *descr) info = &d;
  }
  if (info == nullptr) {
    std::string why = "dtype '" + std::string(*descr) + "' is not supported";
    if (!descr->empty() && descr->front() == '>') {
      why += " (big-endian; write it little-endian, e.g. arr.astype(arr.dtype.newbyteorder('<')))";
    } else if (descr->find('O') != std::string_view::npos) {
      why += " (an object array)";
    } else if (descr->find('U') != std::string_view::npos ||
               descr->find('S') != std::string_view::npos) {
      why += " (strings: send BYTES inputs as JSON)";
    }
    return bad(why + "; " + std::string(kExpected));
  }
  if (*fortran) {
    return bad(
        "it is in Fortran order; expected fortran_order False (write "
        "numpy.ascontiguousarray(arr))");
  }
  uint64_t count = 1;
  for (const int64_t d : *shape) {
    if (d != 0 && count > UINT64_MAX / static_cast<uint64_t>(d)) return bad("its shape overflows");
    count *= static_cast<uint64_t>(d);
  }
  const size_t data_start = header_start + header_len;
  const uint64_t have = contents.size() - data_start;
  if (count > UINT64_MAX / info->size || count * info->size != have) {
    return bad("shape " + ShapeText(*shape) + " of " + std::string(*descr) + " needs " +
               std::to_string(count * info->size) + " data bytes, the file has " +
               std::to_string(have));
  }
  NpyArray out;
  out.datatype = std::string(info->datatype);
  out.shape = std::move(*shape);
  out.data = std::string(contents.substr(data_start));
  return out;
}

StatusOr<NpyArray> ReadNpyFile(const std::string& path) {
  MM_ASSIGN_OR_RETURN(std::string contents, ReadFile(path));
  return ParseNpy(contents, path);
}

}  // namespace mm
