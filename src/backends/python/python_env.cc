#include "backends/python/python_env.h"

#include "backends/python/requirements_env.h"
#include "core/hex.h"

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string_view>
#include <system_error>

namespace mm {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kParameter = "EXECUTION_ENV_PATH";
constexpr std::string_view kModelDirectoryVariable = "$$TRITON_MODEL_DIRECTORY";

std::string Quoted(const fs::path& p) { return "'" + p.string() + "'"; }

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsArchiveName(const fs::path& p) {
  const std::string name = p.filename().string();
  return EndsWith(name, ".tar.gz") || EndsWith(name, ".tgz");
}

// "3.11" from "3.11.7", "3.11.7.final.0" or "3.11"; nullopt when it is not one.
std::optional<std::string> MajorMinor(std::string_view version) {
  auto digits = [](std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  const size_t dot = version.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string_view major = version.substr(0, dot);
  std::string_view rest = version.substr(dot + 1);
  const std::string_view minor = rest.substr(0, rest.find('.'));
  if (!digits(major) || !digits(minor)) return std::nullopt;
  return std::string(major) + "." + std::string(minor);
}

std::string Trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

// The Python version pyvenv.cfg names ("version" or uv's "version_info"),
// as X.Y; nullopt when there is no such file or line.
std::optional<std::string> PyvenvVersion(const fs::path& root) {
  std::ifstream in(root / "pyvenv.cfg");
  if (!in) return std::nullopt;
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = Trim(std::string_view(line).substr(0, eq));
    if (key != "version" && key != "version_info") continue;
    if (auto mm = MajorMinor(Trim(std::string_view(line).substr(eq + 1)))) return mm;
  }
  return std::nullopt;
}

// The lib/pythonX.Y/site-packages folders under `root`, by version.
std::vector<std::pair<std::string, fs::path>> SitePackages(const fs::path& root) {
  std::vector<std::pair<std::string, fs::path>> found;
  std::error_code ec;
  for (fs::directory_iterator it(root / "lib", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("python", 0) != 0) continue;
    auto version = MajorMinor(std::string_view(name).substr(6));
    if (!version) continue;
    const fs::path site = it->path() / "site-packages";
    if (fs::is_directory(site, ec)) found.emplace_back(*version, site);
  }
  std::sort(found.begin(), found.end());
  return found;
}

// The environment rooted at folder `root`, checked against the embedded Python.
StatusOr<PythonEnvironment> FromFolder(const fs::path& root, const std::string& source,
                                       const PythonEnvOptions& options) {
  const std::string embedded = options.embedded_version;
  if (auto version = PyvenvVersion(root); version && !embedded.empty() && *version != embedded) {
    return InvalidArgument(source + ": the environment " + Quoted(root) + " was made for Python " +
                           *version + " (its pyvenv.cfg), but models run on the embedded Python " +
                           embedded + "; expected an environment made with Python " + embedded);
  }
  auto sites = SitePackages(root);
  if (sites.empty()) {
    return InvalidArgument(source + ": " + Quoted(root) +
                           " holds no lib/pythonX.Y/site-packages; expected a virtual environment "
                           "or a conda environment made with Python " +
                           (embedded.empty() ? std::string("3") : embedded));
  }
  PythonEnvironment env;
  env.root = root;
  std::string others;
  for (const auto& [version, site] : sites) {
    if (embedded.empty() || version == embedded) {
      env.site_packages.push_back(site);
    } else {
      others += (others.empty() ? "" : ", ") + version;
    }
  }
  if (env.site_packages.empty()) {
    return InvalidArgument(source + ": the environment " + Quoted(root) +
                           " has packages for Python " + others +
                           ", but models run on the embedded Python " + embedded +
                           "; expected an environment made with Python " + embedded);
  }
  env.description = source;
  return env;
}

// ---------------------------------------------------------------- archives

StatusOr<std::string> Sha256Hex(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return InvalidArgument("cannot read " + Quoted(file) + ": " + std::strerror(errno));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return Internal("cannot start a SHA-256 digest");
  }
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize n = in.gcount();
    if (n > 0 && EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(n)) != 1) {
      return Internal("SHA-256 digest failed");
    }
  }
  if (in.bad()) return InvalidArgument("cannot read " + Quoted(file));
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest.data(), &size) != 1) {
    return Internal("SHA-256 digest failed");
  }
  return LowerHex(digest.data(), size);
}

// Whether `relative` (an entry's path, or a link's target resolved from the
// entry's folder) stays inside the folder it is unpacked in.
bool StaysInside(const fs::path& relative) {
  if (relative.empty() || relative.is_absolute()) return false;
  int depth = 0;
  for (const fs::path& part : relative.lexically_normal()) {
    const std::string s = part.string();
    if (s == "..") {
      if (--depth < 0) return false;
    } else if (!s.empty() && s != ".") {
      ++depth;
    }
  }
  return true;
}

// Whether `path`, with every symbolic link on disk resolved, lies in `root`
// (itself resolved). A link's target is checked lexically as it is unpacked,
// but links resolve through one another ("a" -> ".", then "b" -> "a/.." is
// lexically "." yet resolves to the folder above), so only the resolved path
// can tell. A path that cannot be resolved (a loop) does not lie inside.
bool ResolvesInside(const fs::path& root, const fs::path& path) {
  std::error_code ec;
  const fs::path real_root = fs::canonical(root, ec);
  if (ec) return false;
  const fs::path real = fs::weakly_canonical(path, ec);
  if (ec) return false;
  const fs::path relative = real.lexically_relative(real_root);
  return !relative.empty() && *relative.begin() != "..";
}

// Every symbolic link under `root` (unpacked, not yet in use) must resolve
// inside it, now that all of them exist: the order of the archive's entries
// cannot hide a chain that leaves.
Status CheckLinksResolveInside(const fs::path& root, const std::string& label) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (!it->is_symlink(ec)) continue;
    if (!ResolvesInside(root, it->path())) {
      return InvalidArgument(label + ", entry " + Quoted(it->path().lexically_relative(root)) +
                             " is a symbolic link that resolves (through other links) outside the "
                             "archive's folder, or in a loop; expected links inside the "
                             "environment");
    }
  }
  if (ec) return InvalidArgument(label + ": cannot list the unpacked files: " + ec.message());
  return OkStatus();
}

using ArchivePtr = std::unique_ptr<struct archive, int (*)(struct archive*)>;

// Unpacks `archive_path` into the empty folder `into`. Refuses (with the
// entry named) absolute paths, "..", devices, FIFOs and sockets, and hard
// links out of the folder (also through links unpacked before them); skips
// symbolic links whose target leaves it (venv-pack keeps bin/python as a link
// to the base interpreter, which an embedded interpreter never runs);
// `*skipped` counts them. Then refuses the archive when any link left on disk
// resolves outside (links chained through one another) or in a loop.
Status Unpack(const fs::path& archive_path, const fs::path& into, int* skipped) {
  const std::string label = "archive " + Quoted(archive_path);
  ArchivePtr in(archive_read_new(), archive_read_free);
  ArchivePtr out(archive_write_disk_new(), archive_write_free);
  if (!in || !out) return Internal(label + ": libarchive could not start");
  archive_read_support_filter_all(in.get());
  archive_read_support_format_tar(in.get());
  archive_read_support_format_gnutar(in.get());
  archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                                ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                ARCHIVE_EXTRACT_SECURE_NODOTDOT);
  archive_write_disk_set_standard_lookup(out.get());
  if (archive_read_open_filename(in.get(), archive_path.c_str(), 1 << 16) != ARCHIVE_OK) {
    return InvalidArgument(label + " cannot be read: " + archive_error_string(in.get()) +
                           "; expected a .tar.gz made by conda-pack or venv-pack");
  }
  for (;;) {
    struct archive_entry* entry = nullptr;
    const int r = archive_read_next_header(in.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      return InvalidArgument(label + " is damaged: " + archive_error_string(in.get()));
    }
    const char* raw = archive_entry_pathname(entry);
    const fs::path name = raw == nullptr ? fs::path() : fs::path(raw);
    const std::string entry_label = label + ", entry " + Quoted(name);
    if (!StaysInside(name)) {
      return InvalidArgument(entry_label +
                             " leaves the archive's folder (absolute, or through '..'); expected "
                             "paths relative to the environment's root");
    }
    const char* hard = archive_entry_hardlink(entry);
    const bool hard_link = hard != nullptr;
    if (hard_link) {
      if (!StaysInside(hard)) {
        return InvalidArgument(entry_label + " is a hard link to " + Quoted(hard) +
                               ", outside the archive's folder");
      }
      // Lexically inside is not enough: a link made earlier in the archive
      // may lie on the way; link() follows it, so the resolved target must
      // stay inside too.
      if (!ResolvesInside(into, into / hard)) {
        return InvalidArgument(entry_label + " is a hard link to " + Quoted(hard) +
                               ", which resolves (through a symbolic link) outside the archive's "
                               "folder");
      }
      archive_entry_set_hardlink(entry, (into / hard).c_str());
    }
    const mode_t type = archive_entry_filetype(entry);
    if (!hard_link && type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
      return InvalidArgument(entry_label +
                             " is a device, FIFO or socket; expected files, folders and links");
    }
    if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink(entry);
      if (target == nullptr || !StaysInside(name.parent_path() / target)) {
        ++*skipped;
        continue;
      }
    }
    archive_entry_set_pathname(entry, (into / name).c_str());
    if (archive_write_header(out.get(), entry) != ARCHIVE_OK) {
      return InvalidArgument(entry_label +
                             " cannot be written: " + archive_error_string(out.get()));
    }
    if (archive_entry_size(entry) > 0) {
      const void* block = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      for (;;) {
        const int rb = archive_read_data_block(in.get(), &block, &size, &offset);
        if (rb == ARCHIVE_EOF) break;
        if (rb != ARCHIVE_OK) {
          return InvalidArgument(entry_label + " is damaged: " + archive_error_string(in.get()));
        }
        if (archive_write_data_block(out.get(), block, size, offset) != ARCHIVE_OK) {
          return InvalidArgument(entry_label +
                                 " cannot be written: " + archive_error_string(out.get()));
        }
      }
    }
    if (archive_write_finish_entry(out.get()) != ARCHIVE_OK) {
      return InvalidArgument(entry_label +
                             " cannot be written: " + archive_error_string(out.get()));
    }
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) {
    return InvalidArgument(label + ": unpacking failed: " + archive_error_string(out.get()));
  }
  return CheckLinksResolveInside(into, label);
}

// The folder the archive is unpacked in, unpacking it first when no process
// has yet.
StatusOr<fs::path> UnpackedArchive(const fs::path& archive, const std::string& source,
                                   const PythonEnvOptions& options, std::string* how) {
  if (options.cache_dir.empty()) {
    return InvalidArgument(source +
                           ": an archive needs a cache folder to unpack in; set "
                           "--backend-config=python,env-cache-dir=PATH");
  }
  MM_ASSIGN_OR_RETURN(std::string hash, Sha256Hex(archive));
  const fs::path final_dir = options.cache_dir / hash;
  std::error_code ec;
  if (fs::is_directory(final_dir, ec)) {
    *how = "unpacked before in " + final_dir.string();
    return final_dir;
  }
  fs::create_directories(options.cache_dir, ec);
  if (ec) {
    return InvalidArgument(source + ": cannot create the cache folder " +
                           Quoted(options.cache_dir) + ": " + ec.message());
  }
  // libarchive refuses to write through any link on an entry's path, the
  // cache folder's own included: unpack under its resolved path (a cache
  // reached through a link is the operator's choice, not the archive's).
  const fs::path real_cache = fs::canonical(options.cache_dir, ec);
  if (ec) {
    return InvalidArgument(source + ": cannot resolve the cache folder " +
                           Quoted(options.cache_dir) + ": " + ec.message());
  }
  std::string pattern = (real_cache / (".unpacking-" + hash + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return InvalidArgument(source + ": cannot create a folder in " + Quoted(options.cache_dir) +
                           ": " + std::strerror(errno));
  }
  const fs::path temporary = pattern;
  int skipped = 0;
  Status unpacked = Unpack(archive, temporary, &skipped);
  if (!unpacked.ok()) {
    fs::remove_all(temporary, ec);
    return unpacked.WithContext(source);
  }
  // Another process may have finished first: its folder is as good as ours.
  if (::rename(temporary.c_str(), final_dir.c_str()) != 0) {
    const int err = errno;
    fs::remove_all(temporary, ec);
    if (!fs::is_directory(final_dir, ec)) {
      return InvalidArgument(source + ": cannot move the unpacked archive to " + Quoted(final_dir) +
                             ": " + std::strerror(err));
    }
    *how = "unpacked by another process in " + final_dir.string();
    return final_dir;
  }
  *how = "unpacked in " + final_dir.string();
  if (skipped > 0) {
    *how += "; " + std::to_string(skipped) + " symbolic link(s) leaving the archive skipped";
  }
  return final_dir;
}

StatusOr<PythonEnvironment> FromPath(const fs::path& path, const std::string& source,
                                     const PythonEnvOptions& options) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    return InvalidArgument(source + ": " + Quoted(path) +
                           " does not exist; expected a virtual environment's folder or a "
                           ".tar.gz made by conda-pack or venv-pack");
  }
  if (fs::is_directory(status)) return FromFolder(path, source, options);
  if (fs::is_regular_file(status) && IsArchiveName(path)) {
    std::string how;
    MM_ASSIGN_OR_RETURN(fs::path root, UnpackedArchive(path, source, options, &how));
    MM_ASSIGN_OR_RETURN(PythonEnvironment env, FromFolder(root, source, options));
    env.description += " (" + how + ")";
    return env;
  }
  return InvalidArgument(source + ": " + Quoted(path) +
                         " is neither a folder nor a .tar.gz; expected a virtual environment's "
                         "folder or a .tar.gz made by conda-pack or venv-pack");
}

}  // namespace

fs::path ExpandModelDirectory(std::string_view value, const fs::path& model_dir) {
  std::string out;
  size_t from = 0;
  for (size_t at; (at = value.find(kModelDirectoryVariable, from)) != std::string_view::npos;) {
    out.append(value.substr(from, at - from));
    out += model_dir.string();
    from = at + kModelDirectoryVariable.size();
  }
  out.append(value.substr(from));
  return fs::path(out);
}

fs::path DefaultPythonEnvCacheDir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && *xdg == '/') return fs::path(xdg) / "mmserve" / "python-envs";
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home == '/') return fs::path(home) / ".cache" / "mmserve" / "python-envs";
  return fs::temp_directory_path() / "mmserve-python-envs";
}

StatusOr<PythonEnvironment> ResolvePythonEnvironment(const inference::ModelConfig& config,
                                                     const fs::path& model_dir,
                                                     const PythonEnvOptions& options,
                                                     const PackageRequirements* requirements) {
  auto it = config.parameters().find(std::string(kParameter));
  if (it != config.parameters().end()) {
    const std::string& value = it->second.string_value();
    const std::string source = "parameter " + std::string(kParameter) + " '" + value + "'";
    if (value.empty()) {
      return InvalidArgument(source +
                             " is empty; expected the path of a virtual environment's folder or "
                             "of a .tar.gz (\"$$TRITON_MODEL_DIRECTORY/env.tar.gz\")");
    }
    fs::path path = ExpandModelDirectory(value, model_dir);
    if (path.is_relative()) path = model_dir / path;
    return FromPath(path, source, options);
  }
  if (options.create_from_requirements && requirements != nullptr) {
    const std::string source = "--mlflow-create-env, the model's " + requirements->source;
    RequirementsEnvOptions made;
    made.cache_dir = options.cache_dir;
    made.uv = options.uv;
    made.python = options.python_executable;
    made.python_version = options.embedded_version;
    std::string how;
    auto root = EnsureRequirementsEnvironment(requirements->packages, made, &how);
    if (!root.ok()) return root.status().WithContext(source);
    MM_ASSIGN_OR_RETURN(PythonEnvironment env, FromFolder(*root, source, options));
    env.description += " (" + how + ")";
    // Only Python X.Y runs here: a model saved with another gets this one's
    // wheels of its packages, which is what MLflow does without pyenv.
    if (auto saved = MajorMinor(requirements->python);
        saved && !options.embedded_version.empty() && *saved != options.embedded_version) {
      env.description += "; the model was saved with Python " + requirements->python +
                         " and runs on the embedded Python " + options.embedded_version;
    }
    return env;
  }
  if (!options.default_env.empty()) {
    return FromPath(options.default_env, "--python-env " + options.default_env.string(), options);
  }
  PythonEnvironment none;
  none.description = "the embedded Python " + options.embedded_version;
  return none;
}

}  // namespace mm
