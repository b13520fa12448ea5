#include "repository/repository_key.h"

#include "core/path_key.h"

namespace mm {

namespace {

constexpr std::string_view kSeparator = "://";

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsSchemeChar(char c) {
  return IsAlpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

// The length of `uri`'s scheme (RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ))
// when "://" follows it; 0 when `uri` has none.
size_t SchemeLength(std::string_view uri) {
  const size_t end = uri.find(kSeparator);
  if (end == 0 || end == std::string_view::npos || !IsAlpha(uri[0])) return 0;
  for (size_t i = 1; i < end; ++i) {
    if (!IsSchemeChar(uri[i])) return 0;
  }
  return end;
}

}  // namespace

RepositoryLocation ParseRepositoryLocation(std::string_view uri) {
  RepositoryLocation location;
  const size_t scheme_length = SchemeLength(uri);
  if (scheme_length == 0) {
    location.path = std::string(uri);
    return location;
  }
  std::string scheme(uri.substr(0, scheme_length));
  for (char& c : scheme) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  const std::string_view rest = uri.substr(scheme_length + kSeparator.size());
  if (scheme == "file") {
    location.path = std::string(rest);
    return location;
  }
  std::string normal = scheme + std::string(kSeparator);
  for (char c : rest) {
    if (c == '/' && !normal.empty() && normal.back() == '/' &&
        normal.size() > scheme.size() + kSeparator.size()) {
      continue;  // a run of '/' in the path
    }
    normal += c;
  }
  while (normal.size() > scheme.size() + kSeparator.size() && normal.back() == '/') {
    normal.pop_back();
  }
  location.scheme = std::move(scheme);
  location.path = std::move(normal);
  return location;
}

std::string RepositoryKey(std::string_view uri) {
  RepositoryLocation location = ParseRepositoryLocation(uri);
  if (!location.local()) return std::move(location.path);
  return LocalRepositoryKey(location.path);
}

std::string LocalRepositoryKey(const std::filesystem::path& path) { return PathKey(path); }

}  // namespace mm
