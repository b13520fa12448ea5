#include "ctl/url_path.h"

#include "core/percent_encoding.h"

namespace mm {

std::string PercentEncodeSegment(std::string_view segment) {
  return PercentEncode(segment, [](unsigned char b) {
    return (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b == '-' ||
           b == '.' || b == '_' || b == '~';
  });
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
