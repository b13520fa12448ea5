#include "repository/repository.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iterator>
#include <map>
#include <system_error>
#include <utility>

#include "repository/model_config.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kConfigFile = "config.pbtxt";
constexpr uintmax_t kMaxConfigBytes = 4 << 20;  // far above any real config

std::string Quoted(const fs::path& p) { return "'" + p.string() + "'"; }

bool IsHidden(const fs::path& p) {
  std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

enum class VersionName { kValid, kMalformed, kNotNumeric };

// Version directories are canonical positive decimal integers ("1", "42").
VersionName ParseVersion(const std::string& name, int64_t* version) {
  if (name.empty() ||
      !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return VersionName::kNotNumeric;
  }
  if (name[0] == '0') return VersionName::kMalformed;  // "0" or a leading zero
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), *version);
  if (ec != std::errc() || end != name.data() + name.size()) return VersionName::kMalformed;
  return VersionName::kValid;
}

StatusOr<std::string> ReadConfigFile(const fs::path& path) {
  std::error_code ec;
  uintmax_t size = fs::file_size(path, ec);
  if (ec) return FailedPrecondition("cannot read " + Quoted(path) + ": " + ec.message());
  if (size > kMaxConfigBytes) {
    return InvalidArgument(Quoted(path) + " is " + std::to_string(size) +
                           " bytes; expected a config of at most " +
                           std::to_string(kMaxConfigBytes) + " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad() || !in.is_open()) return FailedPrecondition("cannot read " + Quoted(path));
  return text;
}

// Lists the version directories of `source.dir` into `source`.
Status ScanVersions(ModelSource& source) {
  std::error_code ec;
  for (fs::directory_iterator it(source.dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& path = it->path();
    if (IsHidden(path)) continue;
    std::error_code dir_ec;
    if (!it->is_directory(dir_ec)) continue;
    std::string name = path.filename().string();
    int64_t version = 0;
    switch (ParseVersion(name, &version)) {
      case VersionName::kValid:
        source.versions.push_back(version);
        break;
      case VersionName::kMalformed:
        source.warnings.push_back("directory '" + name +
                                  "' ignored; version directories are positive integers "
                                  "without leading zeros");
        break;
      case VersionName::kNotNumeric:
        break;
    }
  }
  if (ec) {
    return FailedPrecondition("cannot read model directory " + Quoted(source.dir) + ": " +
                              ec.message());
  }
  std::sort(source.versions.begin(), source.versions.end());
  return OkStatus();
}

// Reads, parses and checks config.pbtxt (or the empty default) into `source`.
Status LoadConfig(ModelSource& source) {
  const fs::path path = source.dir / kConfigFile;
  const std::string context = "config.pbtxt of model '" + source.name + "'";
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  source.has_config = fs::exists(st);
  if (source.has_config) {
    if (!fs::is_regular_file(st)) {
      return InvalidArgument(Quoted(path) + " is not a regular file; expected a text config");
    }
    MM_ASSIGN_OR_RETURN(std::string text, ReadConfigFile(path));
    auto parsed = ParseModelConfig(text, source.name, &source.warnings);
    if (!parsed.ok()) return parsed.status();
    source.config = std::move(parsed).value();
    const std::string& configured = source.config.name();
    if (!configured.empty() && configured != source.name) {
      std::string got = configured;
      source.config.set_name(source.name);
      return InvalidArgument(context + " sets name '" + got +
                             "'; expected the model directory name '" + source.name +
                             "' or no name");
    }
  }
  source.config.set_name(source.name);
  Status valid = ValidateModelConfig(source.config);
  if (!valid.ok()) {
    return valid.WithContext(source.has_config ? context : "model '" + source.name + "'");
  }
  return OkStatus();
}

}  // namespace

ModelSource ScanModel(const fs::path& dir) {
  ModelSource source;
  fs::path normal = dir.lexically_normal();
  if (!normal.has_filename()) normal = normal.parent_path();
  source.name = normal.filename().string();
  source.dir = dir;
  source.config.set_name(source.name);
  source.status = ScanVersions(source);
  Status config = LoadConfig(source);
  if (source.status.ok()) source.status = std::move(config);
  return source;
}

StatusOr<std::vector<ModelSource>> ScanRepositories(const std::vector<fs::path>& repos) {
  std::vector<ModelSource> sources;
  for (const fs::path& repo : repos) {
    std::error_code ec;
    fs::file_status st = fs::status(repo, ec);
    if (!fs::exists(st)) {
      return NotFound("model repository " + Quoted(repo) +
                      " does not exist; expected a directory of model directories");
    }
    if (!fs::is_directory(st)) {
      return InvalidArgument("model repository " + Quoted(repo) +
                             " is not a directory; expected a directory of model directories");
    }
    for (fs::directory_iterator it(repo, ec), end; !ec && it != end; it.increment(ec)) {
      if (IsHidden(it->path())) continue;
      std::error_code dir_ec;
      if (!it->is_directory(dir_ec)) continue;
      sources.push_back(ScanModel(it->path()));
    }
    if (ec) {
      return FailedPrecondition("cannot read model repository " + Quoted(repo) + ": " +
                                ec.message());
    }
  }
  std::stable_sort(sources.begin(), sources.end(),
                   [](const ModelSource& a, const ModelSource& b) { return a.name < b.name; });

  // A name in several repositories is ambiguous: mark every copy.
  for (size_t begin = 0; begin < sources.size();) {
    size_t end = begin + 1;
    while (end < sources.size() && sources[end].name == sources[begin].name) ++end;
    if (end - begin > 1) {
      std::string paths;
      for (size_t i = begin; i < end; ++i) {
        if (i > begin) paths += i + 1 == end ? " and " : ", ";
        paths += Quoted(sources[i].dir);
      }
      for (size_t i = begin; i < end; ++i) {
        sources[i].status = AlreadyExists("model '" + sources[i].name +
                                          "' is in more than one repository: " + paths +
                                          "; model names must be unique across repositories");
      }
    }
    begin = end;
  }
  return sources;
}

std::string PlatformOf(const ModelSource& source) {
  const inference::ModelConfig& config = source.config;
  const std::string onnx(kOnnxRuntimePlatform);
  if (!config.backend().empty() || !config.platform().empty()) {
    bool backend_ok = config.backend().empty() || config.backend() == "onnxruntime";
    bool platform_ok = config.platform().empty() || config.platform() == onnx;
    return backend_ok && platform_ok ? onnx : "";
  }
  const std::string file =
      config.default_model_filename().empty() ? "model.onnx" : config.default_model_filename();
  for (int64_t version : source.versions) {
    std::error_code ec;
    if (fs::exists(source.dir / std::to_string(version) / file, ec)) return onnx;
  }
  return "";
}

}  // namespace mm
