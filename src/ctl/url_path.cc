#include "ctl/url_path.h"

namespace mm {

std::string PercentEncodeSegment(std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(segment.size());
  for (const char c : segment) {
    const auto b = static_cast<unsigned char>(c);
    if ((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b == '-' ||
        b == '.' || b == '_' || b == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 0xF];
    }
  }
  return out;
}

std::string ModelPath(std::string_view model, std::string_view version, std::string_view action) {
  std::string path = "/v2/models/" + PercentEncodeSegment(model);
  if (!version.empty()) path += "/versions/" + PercentEncodeSegment(version);
  if (!action.empty()) {
    path += '/';
    path += action;
  }
  return path;
}

std::string RepositoryModelPath(std::string_view model, std::string_view action) {
  std::string path = "/v2/repository/models/" + PercentEncodeSegment(model);
  path += '/';
  path += action;
  return path;
}

}  // namespace mm
