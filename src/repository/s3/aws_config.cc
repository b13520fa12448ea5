#include "repository/s3/aws_config.h"

#include <pwd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "repository/repository_file.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kDefaultProfile = "default";
constexpr std::string_view kDefaultRegion = "us-east-1";
constexpr std::string_view kAnonymousSource = "none (anonymous requests)";

std::string Quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// ------------------------------------------------------------------ files

// The content of `path` (ReadRepositoryFile's rules: no FIFO, device or
// folder, at most 1 MiB), or nullopt when it does not exist.
StatusOr<std::optional<std::string>> ReadAwsFile(const fs::path& path) {
  auto text = ReadRepositoryFile(path, RepositoryFileKind::kAwsSettings);
  if (text.ok()) return std::optional<std::string>(std::move(*text));
  if (text.status().code() == StatusCode::kNotFound) return std::optional<std::string>();
  return text.status();
}

// -------------------------------------------------------------------- INI

using KeyValues = std::map<std::string, std::string, std::less<>>;

struct IniSection {
  KeyValues values;
  // Sub-sections: "s3 =\n  endpoint_url = ..." is nested["s3"]["endpoint_url"].
  std::map<std::string, KeyValues, std::less<>> nested;

  // The value of `key`, or nullptr when it is missing or empty.
  const std::string* Get(std::string_view key) const {
    auto it = values.find(key);
    return it == values.end() || it->second.empty() ? nullptr : &it->second;
  }
  const std::string* GetNested(std::string_view sub, std::string_view key) const {
    auto sit = nested.find(sub);
    if (sit == nested.end()) return nullptr;
    auto it = sit->second.find(key);
    return it == sit->second.end() || it->second.empty() ? nullptr : &it->second;
  }
};

// One of the AWS files, parsed; an absent file has no sections.
struct AwsFile {
  std::string what;  // "config file '/root/.aws/config'", for messages
  bool present = false;
  std::map<std::string, IniSection, std::less<>> sections;  // by name, trimmed

  const IniSection* Find(std::string_view name) const {
    auto it = sections.find(name);
    return it == sections.end() ? nullptr : &it->second;
  }
  // What messages call it: its name, and "(absent)" when it is not there.
  std::string Described() const { return present ? what : what + " (absent)"; }
};

// Parses `text` into `file` by the INI rules of the header. Errors name the
// file and the line number, never what the line holds.
Status ParseIni(std::string_view text, AwsFile& file) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a UTF-8 byte order mark
  IniSection* section = nullptr;
  std::string* value = nullptr;  // the value of the last key line, which indented lines continue
  KeyValues* sub = nullptr;      // its sub-section, when its value was empty
  std::string key;               // that key
  size_t indent_level = 0;       // the indentation of the last section or key line
  int line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    const std::string_view content = Trim(line);
    if (content.empty() || content.front() == '#' || content.front() == ';') continue;
    auto at = [&] { return file.what + ", line " + std::to_string(line_number) + ": "; };
    const size_t indent = static_cast<size_t>(content.data() - line.data());

    if (value != nullptr && indent > indent_level) {  // continues the key above
      if (value->empty() && sub == nullptr) sub = &section->nested[key];
      if (sub != nullptr) {
        const size_t eq = content.find('=');
        if (eq == std::string_view::npos || Trim(content.substr(0, eq)).empty()) {
          return InvalidArgument(at() +
                                 "an indented line that is not 'key = value'; expected the lines "
                                 "of a nested section (after a 'key =' line) to be 'key = value'");
        }
        (*sub)[std::string(Trim(content.substr(0, eq)))] =
            std::string(Trim(content.substr(eq + 1)));
      } else {
        *value += '\n';
        *value += content;
      }
      continue;
    }
    indent_level = indent;
    value = nullptr;
    sub = nullptr;

    if (content.front() == '[') {
      const size_t close = content.rfind(']');
      if (close == std::string_view::npos) {
        return InvalidArgument(at() + "a section line without its closing ']'; expected [name]");
      }
      const std::string_view after = Trim(content.substr(close + 1));
      if (!after.empty() && after.front() != '#' && after.front() != ';') {
        return InvalidArgument(at() + "text after a section's ']'; expected nothing there but a " +
                               "comment starting with '#' or ';'");
      }
      const std::string name(Trim(content.substr(1, close - 1)));
      if (name.empty()) {
        return InvalidArgument(at() + "a section without a name; expected [name]");
      }
      if (file.sections.contains(name)) {
        return InvalidArgument(at() + "section [" + name + "] appears a second time; expected " +
                               "each section once");
      }
      section = &file.sections[name];
      continue;
    }

    const size_t eq = content.find('=');
    if (eq == std::string_view::npos) {
      return InvalidArgument(at() +
                             "cannot read the line; expected '[section]', 'key = value', a "
                             "comment starting with '#' or ';', or a blank line");
    }
    if (section == nullptr) {
      return InvalidArgument(at() + "a key before any section; expected a [section] line first");
    }
    key = std::string(Trim(content.substr(0, eq)));
    if (key.empty()) {
      return InvalidArgument(at() + "a value without a key; expected 'key = value'");
    }
    auto [it, added] = section->values.try_emplace(key, Trim(content.substr(eq + 1)));
    if (!added) {
      return InvalidArgument(at() + "a key that its section already has; expected each key once " +
                             "per section");
    }
    value = &it->second;
  }
  return OkStatus();
}

// `name` (from AWS_CONFIG_FILE or the like) with a leading "~/" in the home folder.
fs::path ExpandHome(const std::string& name, const fs::path& home) {
  if (!home.empty() && (name == "~" || name.starts_with("~/"))) {
    return home / name.substr(name.size() > 1 ? 2 : 1);
  }
  return name;
}

// Reads and parses one of the AWS files: the one `variable` names, else
// ~/.aws/`default_name`.
StatusOr<AwsFile> LoadAwsFile(std::string_view kind, const std::optional<std::string>& variable,
                              std::string_view variable_name, const fs::path& home,
                              std::string_view default_name) {
  AwsFile file;
  fs::path path;
  if (variable) {
    path = ExpandHome(*variable, home);
  } else if (!home.empty()) {
    path = home / ".aws" / default_name;
  } else {
    file.what =
        std::string(kind) + " (none: neither " + std::string(variable_name) + " nor HOME is set)";
    return file;
  }
  file.what = std::string(kind) + " " + Quoted(path.string());
  MM_ASSIGN_OR_RETURN(std::optional<std::string> text, ReadAwsFile(path));
  if (!text) return file;
  file.present = true;
  MM_RETURN_IF_ERROR(ParseIni(*text, file));
  return file;
}

// The config file's section for `profile`: [profile NAME], or for the default
// profile [profile default] or else [default].
const IniSection* FindConfigProfile(const AwsFile& config, const std::string& profile) {
  const IniSection* found = nullptr;
  for (const auto& [name, section] : config.sections) {
    if (name == kDefaultProfile) {
      if (profile == kDefaultProfile && found == nullptr) found = &section;
      continue;
    }
    if (!name.starts_with("profile") || name.size() <= 7 || !IsSpace(name[7])) continue;
    if (Trim(std::string_view(name).substr(7)) == profile) return &section;
  }
  return found;
}

// ---------------------------------------------------------------- endpoint

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

bool IsIpv6Char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
         c == '.';
}

// `value` as scheme://host[:port], or INVALID_ARGUMENT saying why not, where
// it came from (`source`) and what was expected.
StatusOr<std::string> NormalizeEndpoint(std::string_view value, std::string_view source) {
  // A value with userinfo may hold a password: it is never repeated.
  const bool userinfo = value.find('@') != std::string_view::npos;
  const std::string what = "S3 endpoint " + (userinfo ? std::string() : Quoted(value) + " ") +
                           "from " + std::string(source);
  const std::string expected =
      "expected http:// or https:// followed by a host and an optional :port, and nothing else "
      "(e.g. http://127.0.0.1:9000)";
  const size_t sep = value.find("://");
  if (sep == std::string_view::npos) {
    if (userinfo) {
      return InvalidArgument(what + " has userinfo (user@ or user:password@) and no scheme; " +
                             expected);
    }
    return InvalidArgument(what + " has no scheme; " + expected);
  }
  std::string scheme(value.substr(0, sep));
  for (char& c : scheme) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (scheme != "http" && scheme != "https") {
    return InvalidArgument(what + " has " +
                           (userinfo ? std::string("another scheme") : "scheme " + Quoted(scheme)) +
                           "; " + expected);
  }
  std::string_view rest = value.substr(sep + 3);
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (userinfo) {
    return InvalidArgument(what + " has userinfo (user@ or user:password@), which is never sent; " +
                           expected +
                           "; credentials go in AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY or the AWS files");
  }
  const size_t end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, end);
  if (end != std::string_view::npos) {
    const char c = rest[end];
    const std::string_view part = c == '/' ? "a path" : c == '?' ? "a query" : "a fragment";
    return InvalidArgument(what + " has " + std::string(part) + "; " + expected +
                           " (the bucket and prefix go in the s3:// repository URI)");
  }
  std::string_view host = authority;
  std::string_view port;
  bool has_port = false;
  if (host.starts_with('[')) {
    const size_t close = host.find(']');
    if (close == std::string_view::npos) {
      return InvalidArgument(what + " has an IPv6 address without its closing ']'; " + expected);
    }
    const std::string_view inside = host.substr(1, close - 1);
    bool ok = !inside.empty();
    for (char c : inside) ok = ok && IsIpv6Char(c);
    if (!ok) return InvalidArgument(what + " has a malformed IPv6 address; " + expected);
    const std::string_view after = host.substr(close + 1);
    if (!after.empty() && after.front() != ':') {
      return InvalidArgument(what + " has text after its IPv6 address; " + expected);
    }
    has_port = !after.empty();
    if (has_port) port = after.substr(1);
  } else {
    const size_t colon = host.find(':');
    if (colon != std::string_view::npos) {
      has_port = true;
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
    }
    if (host.empty()) return InvalidArgument(what + " has no host; " + expected);
    for (char c : host) {
      if (!IsHostChar(c)) {
        return InvalidArgument(what + " has a host with a character a host name cannot hold; " +
                               expected + ", the host made of letters, digits, '-', '.' and '_'");
      }
    }
  }
  if (has_port) {
    uint32_t number = 0;
    bool ok = !port.empty() && port.size() <= 5;
    for (char c : port) {
      ok = ok && c >= '0' && c <= '9';
      if (ok) number = number * 10 + static_cast<uint32_t>(c - '0');
    }
    if (!ok || number == 0 || number > 65535) {
      return InvalidArgument(what + " has a port that is not a number from 1 to 65535; " +
                             expected);
    }
  }
  return scheme + "://" + std::string(authority);
}

// ------------------------------------------------------------------ region

bool IsRegion(std::string_view region) {
  if (region.empty()) return false;
  for (char c : region) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

// ------------------------------------------------------------- credentials

bool HasControlChar(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// Refuses credentials that cannot travel in a request (names: how `where`
// calls the three values). Never repeats a value.
Status CheckCredentials(const AwsCredentials& c, const std::string& where,
                        const std::array<std::string_view, 3>& names) {
  const std::array<const std::string*, 3> values = {&c.access_key_id, &c.secret_access_key,
                                                    &c.session_token};
  for (size_t i = 0; i < values.size(); ++i) {
    if (HasControlChar(*values[i])) {
      return InvalidArgument(std::string(names[i]) + " " + where +
                             " holds a control character (a line break?); expected it on one "
                             "line, printable characters only");
    }
  }
  if (c.access_key_id.find(':') != std::string::npos) {
    return InvalidArgument(std::string(names[0]) + " " + where +
                           " holds ':'; expected an access key id (e.g. AKIAIOSFODNN7EXAMPLE)");
  }
  return OkStatus();
}

constexpr std::array<std::string_view, 3> kFileKeys = {"aws_access_key_id", "aws_secret_access_key",
                                                       "aws_session_token"};

// The credentials of a profile's `section`; nullopt when it holds neither of
// the pair. `where`: "shared credentials file '/x', profile 'dev'".
StatusOr<std::optional<AwsCredentials>> SectionCredentials(const IniSection& section,
                                                           const std::string& where) {
  const std::string* id = section.Get(kFileKeys[0]);
  const std::string* secret = section.Get(kFileKeys[1]);
  if (id == nullptr && secret == nullptr) return std::optional<AwsCredentials>();
  if (id == nullptr || secret == nullptr) {
    const std::string_view has = id != nullptr ? kFileKeys[0] : kFileKeys[1];
    const std::string_view missing = id != nullptr ? kFileKeys[1] : kFileKeys[0];
    return InvalidArgument(where + " has " + std::string(has) + " but no " + std::string(missing) +
                           " (or an empty one); expected both, or neither");
  }
  AwsCredentials credentials{*id, *secret, {}};
  if (const std::string* token = section.Get(kFileKeys[2])) credentials.session_token = *token;
  MM_RETURN_IF_ERROR(CheckCredentials(credentials, "in " + where, kFileKeys));
  return std::optional<AwsCredentials>(std::move(credentials));
}

}  // namespace

AwsEnvironment AwsEnvironment::Process() {
  AwsEnvironment env;
  env.get = [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    env.home = home;
  } else {
    long size = sysconf(_SC_GETPW_R_SIZE_MAX);
    std::vector<char> buffer(size > 0 ? static_cast<size_t>(size) : 16384);
    struct passwd entry {};
    struct passwd* found = nullptr;
    if (getpwuid_r(getuid(), &entry, buffer.data(), buffer.size(), &found) == 0 &&
        found != nullptr && found->pw_dir != nullptr) {
      env.home = found->pw_dir;
    }
  }
  return env;
}

StatusOr<S3Settings> ResolveS3Settings(const AwsEnvironment& env, std::string_view endpoint_flag) {
  // An unset or empty variable reads as nullopt.
  auto get = [&env](std::string_view name) -> std::optional<std::string> {
    if (!env.get) return std::nullopt;
    std::optional<std::string> value = env.get(name);
    if (value && value->empty()) return std::nullopt;
    return value;
  };

  std::string profile(kDefaultProfile);
  std::string profile_variable;  // the variable that set it; empty for the default
  for (std::string_view name : {"AWS_PROFILE", "AWS_DEFAULT_PROFILE"}) {
    if (std::optional<std::string> value = get(name)) {
      profile = std::move(*value);
      profile_variable = name;
      break;
    }
  }
  const std::string of_profile = ", profile " + Quoted(profile);

  MM_ASSIGN_OR_RETURN(AwsFile config, LoadAwsFile("config file", get("AWS_CONFIG_FILE"),
                                                  "AWS_CONFIG_FILE", env.home, "config"));
  const IniSection* config_profile = FindConfigProfile(config, profile);
  const std::string in_config = " of profile " + Quoted(profile) + " in " + config.what;

  S3Settings settings;

  // Endpoint (contract 2); the default needs the region, below.
  std::optional<std::string> endpoint;
  std::string endpoint_source;
  if (!endpoint_flag.empty()) {
    endpoint = std::string(endpoint_flag);
    endpoint_source = "--s3-endpoint";
  } else if ((endpoint = get("AWS_ENDPOINT_URL_S3"))) {
    endpoint_source = "AWS_ENDPOINT_URL_S3";
  } else if ((endpoint = get("AWS_ENDPOINT_URL"))) {
    endpoint_source = "AWS_ENDPOINT_URL";
  } else if (config_profile != nullptr) {
    if (const std::string* nested = config_profile->GetNested("s3", "endpoint_url")) {
      endpoint = *nested;
      endpoint_source = "endpoint_url under s3" + in_config;
    } else if (const std::string* top = config_profile->Get("endpoint_url")) {
      endpoint = *top;
      endpoint_source = "endpoint_url" + in_config;
    }
  }
  if (endpoint) {
    MM_ASSIGN_OR_RETURN(settings.endpoint, NormalizeEndpoint(*endpoint, endpoint_source));
  }

  // Region (contract 3).
  std::string region_source;
  if (std::optional<std::string> value = get("AWS_REGION")) {
    settings.region = std::move(*value);
    region_source = "AWS_REGION";
  } else if ((value = get("AWS_DEFAULT_REGION"))) {
    settings.region = std::move(*value);
    region_source = "AWS_DEFAULT_REGION";
  } else if (const std::string* configured =
                 config_profile != nullptr ? config_profile->Get("region") : nullptr) {
    settings.region = *configured;
    region_source = "region" + in_config;
  } else {
    settings.region = kDefaultRegion;
  }
  if (!IsRegion(settings.region)) {
    return InvalidArgument("region " + Quoted(settings.region) + " from " + region_source +
                           ": expected lower-case letters, digits and '-' (e.g. us-east-1)");
  }
  if (!endpoint) {
    settings.endpoint = "https://s3." + settings.region + ".amazonaws.com";
    if (settings.region.starts_with("cn-")) settings.endpoint += ".cn";
    settings.endpoint_from_default = true;
  }

  // Credentials (contract 4): the environment first.
  std::optional<std::string> id = get("AWS_ACCESS_KEY_ID");
  std::optional<std::string> secret = get("AWS_SECRET_ACCESS_KEY");
  if (id.has_value() != secret.has_value()) {
    const std::string_view has = id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY";
    const std::string_view missing = id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID";
    return InvalidArgument(std::string(has) + " is set but " + std::string(missing) +
                           " is not (or is empty); expected both, or neither to use the AWS "
                           "files");
  }
  if (id) {
    settings.credentials = {std::move(*id), std::move(*secret),
                            get("AWS_SESSION_TOKEN").value_or("")};
    MM_RETURN_IF_ERROR(
        CheckCredentials(settings.credentials, "in the environment",
                         {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}));
    settings.credentials_source = "environment";
    return settings;
  }

  MM_ASSIGN_OR_RETURN(AwsFile shared,
                      LoadAwsFile("shared credentials file", get("AWS_SHARED_CREDENTIALS_FILE"),
                                  "AWS_SHARED_CREDENTIALS_FILE", env.home, "credentials"));
  const IniSection* shared_profile = shared.Find(profile);
  if (shared_profile == nullptr && config_profile == nullptr && !profile_variable.empty()) {
    const std::string config_section =
        profile == kDefaultProfile ? "[default] or [profile default]" : "[profile " + profile + "]";
    return NotFound("profile " + Quoted(profile) + " (from " + profile_variable +
                    ") is in neither the " + shared.Described() + " (as [" + profile +
                    "]) nor the " + config.Described() + " (as " + config_section +
                    "); expected a section for it in one of them, or AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY in the environment");
  }
  const std::array<std::pair<const AwsFile*, const IniSection*>, 2> steps = {
      {{&shared, shared_profile}, {&config, config_profile}}};
  for (const auto& [file, section] : steps) {
    if (section == nullptr) continue;
    const std::string where = file->what + of_profile;
    MM_ASSIGN_OR_RETURN(std::optional<AwsCredentials> credentials,
                        SectionCredentials(*section, where));
    if (credentials) {
      settings.credentials = std::move(*credentials);
      settings.credentials_source = where;
      return settings;
    }
  }
  settings.credentials_source = kAnonymousSource;
  return settings;
}

}  // namespace mm
