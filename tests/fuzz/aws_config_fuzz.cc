// libFuzzer target for ResolveS3Settings (repository/s3/aws_config.h) over
// AWS config and shared credentials files of the fuzzer's making.
//
// Input: one byte that picks the environment (below), then the config file's
// text, a 0 byte, and the credentials file's text (no 0 byte: no credentials
// file). The files are written into a folder of this process's own, made once.
//
// Beyond "no crash, leak or UB": a failure is INVALID_ARGUMENT or NOT_FOUND
// with a message; a success has a region of [a-z0-9-]+, an endpoint of
// http:// or https:// without a trailing '/', and credentials that can travel
// in a request. Neither ever repeats a secret access key or session token of
// the files (one that is plainly a secret: see Secrets).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "repository/s3/aws_config.h"

namespace {

namespace fs = std::filesystem;

void Check(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

// This process's folder: <tmp>/mm_aws_config_fuzz_<pid>, with home/ inside.
const fs::path& Folder() {
  static const fs::path folder = [] {
    const fs::path dir =
        fs::temp_directory_path() / ("mm_aws_config_fuzz_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "home");
    std::atexit([] {
      fs::remove_all(fs::temp_directory_path() /
                     ("mm_aws_config_fuzz_" + std::to_string(getpid())));
    });
    return dir;
  }();
  return folder;
}

void WriteFile(const fs::path& path, std::string_view text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

size_t Occurrences(std::string_view haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string_view::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// The values of the files' secret keys that no message may hold, among those
// that plainly are secrets: on a key line of its own (not indented, so not a
// continuation or a nested sub-section), at least 16 characters of the
// alphabet of AWS's secrets, and, ignoring case, found nowhere else in the
// input or in this process's paths (so that a message naming a path, a
// section or another value cannot hold it by chance).
std::vector<std::string> Secrets(std::string_view config, std::string_view credentials,
                                 std::string_view paths) {
  const std::string all = Lower(std::string(config) + '\n' + std::string(credentials));
  const std::string lower_paths = Lower(paths);
  std::vector<std::string> secrets;
  for (std::string_view text : {config, credentials}) {
    while (!text.empty()) {
      const size_t eol = text.find('\n');
      const std::string_view line = text.substr(0, eol);
      text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
      if (line.empty() || IsSpace(line.front())) continue;
      const size_t eq = line.find('=');
      if (eq == std::string_view::npos) continue;
      const std::string_view key = Trim(line.substr(0, eq));
      if (key != "aws_secret_access_key" && key != "aws_session_token") continue;
      const std::string_view value = Trim(line.substr(eq + 1));
      bool plain = value.size() >= 16;
      for (char c : value) {
        plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '/' || c == '+' || c == '=');
      }
      if (!plain) continue;
      const std::string lower = Lower(value);
      if (Occurrences(all, lower) != 1 || lower_paths.find(lower) != std::string::npos) continue;
      secrets.emplace_back(value);
    }
  }
  return secrets;
}

bool IsRegion(std::string_view region) {
  if (region.empty()) return false;
  for (char c : region) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

bool HasControlChar(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

constexpr std::string_view kEndpointFlag = "http://127.0.0.1:9000";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 64 << 10) return 0;  // AWS files are small; keep runs fast
  // The environment, from the first byte:
  //   bits 0-1: AWS_PROFILE unset, "default", "dev" or "prod";
  //   bit 2:    AWS_DEFAULT_PROFILE "dev";
  //   bit 3:    --s3-endpoint given;
  //   bit 4:    AWS_CONFIG_FILE as "~/cfg" (the home folder), else a full path;
  //   bit 5:    the credentials file at ~/.aws/credentials, with
  //             AWS_SHARED_CREDENTIALS_FILE unset.
  const uint8_t pick = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t zero = input.find('\0');
  const std::string_view config = input.substr(0, zero);
  const std::optional<std::string_view> credentials =
      zero == std::string_view::npos ? std::nullopt
                                     : std::optional<std::string_view>(input.substr(zero + 1));

  const fs::path& folder = Folder();
  const fs::path home = folder / "home";
  const bool config_in_home = (pick & 0x10) != 0;
  const bool credentials_default = (pick & 0x20) != 0;
  const fs::path config_path = config_in_home ? home / "cfg" : folder / "config";
  const fs::path credentials_path =
      credentials_default ? home / ".aws" / "credentials" : folder / "credentials";
  std::error_code ec;
  fs::remove(home / "cfg", ec);
  fs::remove(folder / "config", ec);
  fs::remove(home / ".aws" / "credentials", ec);
  fs::remove(folder / "credentials", ec);
  WriteFile(config_path, config);
  if (credentials) WriteFile(credentials_path, *credentials);

  static constexpr const char* kProfiles[] = {nullptr, "default", "dev", "prod"};
  const char* profile = kProfiles[pick & 0x3];
  const bool default_profile = (pick & 0x4) != 0;
  const bool endpoint_flag = (pick & 0x8) != 0;

  mm::AwsEnvironment env;
  env.home = home;
  env.get = [&](std::string_view name) -> std::optional<std::string> {
    if (name == "AWS_PROFILE" && profile != nullptr) return profile;
    if (name == "AWS_DEFAULT_PROFILE" && default_profile) return "dev";
    if (name == "AWS_CONFIG_FILE") return config_in_home ? "~/cfg" : config_path.string();
    if (name == "AWS_SHARED_CREDENTIALS_FILE" && !credentials_default) {
      return credentials_path.string();
    }
    return std::nullopt;
  };

  const std::vector<std::string> secrets = Secrets(
      config, credentials.value_or(""), folder.string() + '\n' + std::string(kEndpointFlag));
  auto holds_secret = [&](std::string_view text) {
    for (const std::string& secret : secrets) {
      if (text.find(secret) != std::string_view::npos) return true;
    }
    return false;
  };

  auto settings = mm::ResolveS3Settings(env, endpoint_flag ? kEndpointFlag : "");
  if (!settings.ok()) {
    const mm::StatusCode code = settings.status().code();
    Check(code == mm::StatusCode::kInvalidArgument || code == mm::StatusCode::kNotFound,
          "a failure is INVALID_ARGUMENT or NOT_FOUND");
    Check(!settings.status().message().empty(), "a failure has a message");
    Check(!holds_secret(settings.status().message()), "a message holds a secret");
    return 0;
  }
  Check(IsRegion(settings->region), "the region is [a-z0-9-]+");
  const std::string_view endpoint = settings->endpoint;
  Check(endpoint.starts_with("http://") || endpoint.starts_with("https://"),
        "the endpoint is http:// or https://");
  Check(!endpoint.ends_with('/'), "the endpoint has no trailing '/'");
  Check(!endpoint_flag || endpoint == kEndpointFlag, "--s3-endpoint wins");
  Check(!settings->endpoint_from_default ||
            endpoint.starts_with("https://s3." + settings->region + ".amazonaws.com"),
        "the default endpoint is the region's");
  const mm::AwsCredentials& c = settings->credentials;
  if (c.anonymous()) {
    Check(c.secret_access_key.empty() && c.session_token.empty(), "anonymous has no secret");
    Check(settings->credentials_source == "none (anonymous requests)", "anonymous says so");
  } else {
    Check(!c.secret_access_key.empty(), "an access key id comes with its secret");
    Check(!HasControlChar(c.access_key_id) && !HasControlChar(c.secret_access_key) &&
              !HasControlChar(c.session_token),
          "credentials hold no control character");
    Check(c.access_key_id.find(':') == std::string::npos, "an access key id holds no ':'");
  }
  Check(!settings->credentials_source.empty(), "credentials say where they came from");
  Check(!holds_secret(settings->credentials_source), "the credentials' source holds a secret");
  return 0;
}
