#include "repository/repository.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <iterator>
#include <map>
#include <system_error>
#include <tuple>
#include <utility>

#include "repository/fingerprint.h"
#include "repository/mlflow/mlmodel.h"
#include "repository/model_config.h"
#include "repository/repository_file.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kConfigFile = "config.pbtxt";

std::string Quoted(const fs::path& p) { return "'" + p.string() + "'"; }

bool IsHidden(const fs::path& p) {
  std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
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
    switch (ParseVersionName(name, &version)) {
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

// Last-write time in ns since the clock's epoch (symlinks followed); 0 on error.
int64_t MtimeNs(const fs::path& path, std::error_code& ec) {
  fs::file_time_type t = fs::last_write_time(path, ec);
  if (ec) return 0;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// For a config.pbtxt that exists but was not read: what is known of it.
uint64_t UnreadConfigFingerprint(const fs::path& path, const Status& why) {
  Fingerprint fp;
  fp.AddField("unread config");
  fp.AddField(why.message());
  std::error_code ec;
  fp.AddNumber(fs::file_size(path, ec));  // uintmax_t(-1) on error
  fp.AddNumber(static_cast<uint64_t>(MtimeNs(path, ec)));
  return fp.value();
}

// Version folders are listed to this depth and no further. Together with the
// loop guard (a folder is never entered while it is being listed) this bounds
// a walk through symlinks; the entry cap bounds one through a wide fan of them.
constexpr int kMaxListingDepth = 32;
constexpr size_t kMaxListingEntries = 100'000;

// One line of a version folder's listing.
struct ListedEntry {
  std::string path;  // relative to the version folder, '/'-separated
  int type = 0;      // fs::file_type, symlinks followed
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string link;   // a symlink's target; empty otherwise
  std::string error;  // why the entry could not be read; empty when it could

  auto Key() const { return std::tie(path, type, size, mtime_ns, link, error); }
};

// Lists one version folder recursively for its fingerprint.
class VersionLister {
 public:
  VersionLister(const fs::path& root, int64_t version, std::vector<std::string>* warnings)
      : root_(root), version_(version), warnings_(warnings) {}

  uint64_t Compute() {
    ListDir(root_, "", 0);
    std::sort(entries_.begin(), entries_.end(),
              [](const ListedEntry& a, const ListedEntry& b) { return a.Key() < b.Key(); });
    Fingerprint fp;
    std::error_code ec;
    if (fs::is_symlink(fs::symlink_status(root_, ec))) {
      fp.AddField(fs::read_symlink(root_, ec).string());  // a relinked version folder
    }
    for (const ListedEntry& e : entries_) {
      fp.AddField(e.path);
      fp.AddNumber(static_cast<uint64_t>(e.type));
      fp.AddNumber(e.size);
      fp.AddNumber(static_cast<uint64_t>(e.mtime_ns));
      fp.AddField(e.link);
      fp.AddField(e.error);
    }
    return fp.value();
  }

 private:
  // Records that `entry` could not be (fully) read: a warning, and an entry
  // whose error makes the fingerprint differ from the clean state's.
  void Fail(ListedEntry entry, const std::string& what, const std::error_code& ec) {
    const fs::path shown = entry.path.empty() ? root_ : root_ / entry.path;
    entry.error = what + (ec ? ": " + ec.message() : "");
    warnings_->push_back("version " + std::to_string(version_) + ": " + what + " " + Quoted(shown) +
                         (ec ? ": " + ec.message() : "") +
                         "; changes there may go unnoticed when polling");
    entries_.push_back(std::move(entry));
  }
  void Fail(const std::string& relative, const std::string& what, const std::error_code& ec) {
    ListedEntry entry;
    entry.path = relative;
    Fail(std::move(entry), what, ec);
  }

  void ListDir(const fs::path& dir, const std::string& relative, int depth) {
    std::error_code ec;
    fs::path canonical = fs::canonical(dir, ec);
    if (!ec) {
      if (std::find(open_.begin(), open_.end(), canonical) != open_.end()) {
        Fail(relative, "symlink loop: not listing", {});
        return;
      }
      open_.push_back(canonical);
    }
    const bool pushed = !ec;
    fs::directory_iterator it(dir, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      if (entries_.size() >= kMaxListingEntries) {
        Fail(relative,
             "listing stopped after " + std::to_string(kMaxListingEntries) + " entries in", {});
        break;
      }
      const fs::path& path = it->path();
      ListedEntry entry;
      entry.path = (relative.empty() ? "" : relative + "/") + path.filename().string();
      std::error_code entry_ec;
      if (it->is_symlink(entry_ec)) {
        entry.link = fs::read_symlink(path, entry_ec).string();
      }
      fs::file_status st = fs::status(path, entry_ec);  // follows symlinks
      if (entry_ec || !fs::exists(st)) {
        Fail(std::move(entry), "cannot read", entry_ec);
        continue;
      }
      entry.type = static_cast<int>(st.type());
      if (fs::is_regular_file(st)) entry.size = fs::file_size(path, entry_ec);
      if (!entry_ec) entry.mtime_ns = MtimeNs(path, entry_ec);
      if (entry_ec) {
        Fail(std::move(entry), "cannot read", entry_ec);
        continue;
      }
      std::string child = entry.path;
      entries_.push_back(std::move(entry));
      if (fs::is_directory(st)) {
        if (depth + 1 >= kMaxListingDepth) {
          Fail(child,
               "not listing, deeper than " + std::to_string(kMaxListingDepth) + " levels:", {});
        } else {
          ListDir(path, child, depth + 1);
        }
      }
    }
    if (ec) Fail(relative, "cannot list", ec);
    if (pushed) open_.pop_back();
  }

  const fs::path root_;
  const int64_t version_;
  std::vector<std::string>* const warnings_;
  std::vector<ListedEntry> entries_;
  std::vector<fs::path> open_;  // canonical paths of the folders being listed
};

// Reads, parses and checks config.pbtxt (or the empty default) into `source`.
Status LoadConfig(ModelSource& source) {
  const fs::path path = source.dir / kConfigFile;
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) return ApplyModelConfig(source, nullptr);
  StatusOr<std::string> read = ReadRepositoryFile(path, RepositoryFileKind::kConfig);
  if (!read.ok()) {
    source.has_config = true;
    source.config_fingerprint = UnreadConfigFingerprint(path, read.status());
    return read.status();
  }
  return ApplyModelConfig(source, &*read);
}

}  // namespace

VersionName ParseVersionName(const std::string& name, int64_t* version) {
  if (name.empty() ||
      !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return VersionName::kNotNumeric;
  }
  if (name[0] == '0') return VersionName::kMalformed;  // "0" or a leading zero
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), *version);
  if (ec != std::errc() || end != name.data() + name.size()) return VersionName::kMalformed;
  return VersionName::kValid;
}

Status ApplyMLmodel(ModelSource& source, std::string_view text) {
  const std::string context =
      "MLmodel of model '" + source.name + "' version " +
      (source.versions.empty() ? "?" : std::to_string(source.versions.back()));
  auto parsed = ParseMLmodel(text);
  if (!parsed.ok()) return parsed.status().WithContext(context);
  auto config = MLmodelConfig(*parsed, source.name);
  if (!config.ok()) return config.status().WithContext(context);
  source.config = std::move(*config);
  return ValidateModelConfig(source.config).WithContext(context);
}

Status ApplyModelConfig(ModelSource& source, const std::string* text) {
  const std::string context = "config.pbtxt of model '" + source.name + "'";
  source.has_config = text != nullptr;
  source.config_fingerprint = 0;
  source.config.Clear();
  if (source.has_config) {
    Fingerprint fp;
    fp.AddField(*text);
    source.config_fingerprint = fp.value();
    auto parsed = ParseModelConfig(*text, source.name, &source.warnings);
    if (!parsed.ok()) {
      source.config.set_name(source.name);
      return parsed.status();
    }
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

ModelSource ScanModel(const fs::path& dir) {
  ModelSource source;
  fs::path normal = dir.lexically_normal();
  if (!normal.has_filename()) normal = normal.parent_path();
  source.name = normal.filename().string();
  source.dir = dir;
  source.config.set_name(source.name);
  source.status = ScanVersions(source);
  for (int64_t version : source.versions) {
    VersionLister lister(dir / std::to_string(version), version, &source.warnings);
    source.version_fingerprints[version] = lister.Compute();
  }
  Status config = LoadConfig(source);
  // No config.pbtxt: the MLflow model format, when the newest version is one.
  if (config.ok() && !source.has_config && !source.versions.empty()) {
    const fs::path mlmodel = dir / std::to_string(source.versions.back()) / kMLmodelFile;
    std::error_code ec;
    if (fs::exists(fs::symlink_status(mlmodel, ec))) {
      auto text = ReadRepositoryFile(mlmodel, RepositoryFileKind::kConfig);
      config = text.ok() ? ApplyMLmodel(source, *text) : text.status();
    }
  }
  if (source.status.ok()) source.status = std::move(config);
  return source;
}

}  // namespace mm
