#include "repository/local/inotify_watch.h"

#include <errno.h>
#include <linux/magic.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <utility>

namespace mm {

namespace fs = std::filesystem;

namespace {

// Changes of the repository folder's entries: models added, removed, renamed, relinked.
constexpr uint32_t kRootMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB |
                               IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
// Everything that changes a fingerprint (a file written, touched, added,
// removed or renamed) in a model or version folder.
constexpr uint32_t kFolderMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE |
                                 IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |
                                 IN_ONLYDIR;
// Events after which a model's folders are walked again (folders may have
// come, gone or moved; a symlink may have appeared).
constexpr uint32_t kStructural =
    IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF;

constexpr long kZfsMagic = 0x2fc12fc1;  // not in <linux/magic.h>

// Filesystems where every change is made by this kernel, so inotify sees it.
// Network and FUSE filesystems are left out: a change made on another host
// (or by the FUSE daemon's remote) raises no event here.
bool WatchableFilesystem(const fs::path& path, std::string* why) {
  struct statfs st;
  if (::statfs(path.c_str(), &st) != 0) {
    *why = "cannot read the filesystem of '" + path.string() + "': " + std::strerror(errno);
    return false;
  }
  switch (static_cast<long>(st.f_type)) {
    case EXT4_SUPER_MAGIC:  // ext2, ext3 and ext4 share it
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case TMPFS_MAGIC:
    case RAMFS_MAGIC:
    case OVERLAYFS_SUPER_MAGIC:
    case F2FS_SUPER_MAGIC:
    case kZfsMagic:
      return true;
    default: {
      char hex[32];
      std::snprintf(hex, sizeof hex, "0x%lx", static_cast<unsigned long>(st.f_type));
      *why = "'" + path.string() + "' is on a filesystem (type " + hex +
             ") whose changes inotify may not see (a network or FUSE filesystem)";
      return false;
    }
  }
}

// A folder List() would list as a model: one path component, not hidden.
bool IsModelName(std::string_view name) {
  return !name.empty() && name[0] != '.' && name.find('/') == std::string_view::npos;
}

// A folder ScanModel reads as a version, or warns about ("0", "007"): digits.
bool IsVersionName(std::string_view name) {
  return !name.empty() &&
         std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

StatusOr<std::unique_ptr<InotifyWatch>> InotifyWatch::Create(const fs::path& root) {
  std::string why;
  if (!WatchableFilesystem(root, &why)) return Unavailable(why);
  std::unique_ptr<InotifyWatch> watch(new InotifyWatch(root));
  MutexLock lock(watch->mu_);
  MM_RETURN_IF_ERROR(watch->Open());
  return watch;
}

InotifyWatch::InotifyWatch(fs::path root) : root_(std::move(root)) {}

InotifyWatch::~InotifyWatch() {
  MutexLock lock(mu_);
  Close();
}

size_t InotifyWatch::watched_folders() const {
  MutexLock lock(mu_);
  return folders_.size() + (root_wd_ >= 0 ? 1 : 0);
}

Status InotifyWatch::Open() {
  fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    return Unavailable(std::string("cannot watch model repository '") + root_.string() +
                       "' for changes: inotify_init1: " + std::strerror(errno) +
                       (errno == EMFILE ? " (fs.inotify.max_user_instances reached)" : ""));
  }
  struct stat st;
  if (::stat(root_.c_str(), &st) == 0) root_device_ = st.st_dev;
  root_wd_ = ::inotify_add_watch(fd_, root_.c_str(), kRootMask);
  if (root_wd_ < 0) {
    const int error = errno;
    Close();
    return Unavailable("cannot watch model repository '" + root_.string() +
                       "' for changes: " + std::strerror(error));
  }
  std::error_code ec;
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (IsModelName(name)) SyncModel(name);
  }
  if (ec) {
    Close();
    return Unavailable("cannot watch model repository '" + root_.string() +
                       "' for changes: " + ec.message());
  }
  return OkStatus();
}

void InotifyWatch::Close() {
  if (fd_ >= 0) ::close(fd_);  // drops every watch
  fd_ = -1;
  root_wd_ = -1;
  folders_.clear();
  model_folders_.clear();
  always_.clear();
}

void InotifyWatch::Detach(const std::string& model, int wd) {
  auto it = folders_.find(wd);
  if (it == folders_.end()) return;
  auto& models = it->second;
  models.erase(std::remove(models.begin(), models.end(), model), models.end());
  if (models.empty()) {
    ::inotify_rm_watch(fd_, wd);  // its IN_IGNORED is skipped: the wd is unknown by then
    folders_.erase(it);
  }
}

bool InotifyWatch::WatchTree(const std::string& model, const fs::path& dir, int depth,
                             std::vector<int>& seen) {
  if (depth > kMaxDepth || seen.size() >= kMaxDirsPerModel) return false;
  const int wd = ::inotify_add_watch(fd_, dir.c_str(), kFolderMask);
  if (wd < 0) {
    const int error = errno;
    if (error == ENOSPC && !warned_limit_) {
      warned_limit_ = true;
      warnings_.push_back(
          "the inotify watch limit (fs.inotify.max_user_watches) is reached: "
          "models whose folders cannot be watched are scanned at every poll");
    }
    return error == ENOENT || error == ENOTDIR;  // gone since it was listed: an event says so
  }
  auto& models = folders_[wd];  // the same wd when the inode is already watched
  if (std::find(models.begin(), models.end(), model) == models.end()) models.push_back(model);
  if (std::find(seen.begin(), seen.end(), wd) == seen.end()) seen.push_back(wd);
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code entry_ec;
    if (depth == 0 && name != "config.pbtxt" && !IsVersionName(name)) continue;
    if (it->is_symlink(entry_ec)) return false;  // its target changes without an event here
    if (it->is_directory(entry_ec) && (depth > 0 || IsVersionName(name))) {
      if (!WatchTree(model, it->path(), depth + 1, seen)) return false;
    }
  }
  return !ec || ec == std::errc::no_such_file_or_directory;
}

void InotifyWatch::SyncModel(const std::string& name) {
  const fs::path path = root_ / name;
  std::vector<int> seen;
  bool watched = true;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {  // symlinks followed
    // Another filesystem (a symlink or a mount point leads there) is checked
    // as the repository's was.
    std::string why;
    watched = (st.st_dev == root_device_ || WatchableFilesystem(path, &why)) &&
              WatchTree(name, path, 0, seen);
  }
  std::vector<int>& had = model_folders_[name];
  for (int wd : had) {
    if (std::find(seen.begin(), seen.end(), wd) == seen.end()) Detach(name, wd);
  }
  if (seen.empty()) {
    model_folders_.erase(name);
  } else {
    had = std::move(seen);
  }
  if (watched) {
    always_.erase(name);
  } else {
    always_.insert(name);
  }
}

RepositoryWatch::Changes InotifyWatch::Take() {
  MutexLock lock(mu_);
  Changes out;
  if (fd_ < 0) {  // a rebuild failed: try again, and list meanwhile
    Status reopened = Open();
    if (!reopened.ok()) out.warnings.push_back(reopened.message());
    out.everything = true;
    return out;
  }
  std::set<std::string> dirty, sync;
  bool overflow = false;
  alignas(struct inotify_event) char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      out.warnings.push_back("reading the inotify events of '" + root_.string() +
                             "' failed: " + std::strerror(n < 0 ? errno : EIO));
      overflow = true;
      break;
    }
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const struct inotify_event*>(buffer + at);
      at += static_cast<ssize_t>(sizeof(struct inotify_event) + event->len);
      const std::string name = event->len > 0 ? std::string(event->name) : std::string();
      if (event->mask & IN_Q_OVERFLOW) {
        overflow = true;
        continue;
      }
      if (event->wd == root_wd_) {
        if (event->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED)) {
          overflow = true;  // the repository folder itself went
        } else if (IsModelName(name)) {
          dirty.insert(name);
          sync.insert(name);
        }
        continue;
      }
      auto folder = folders_.find(event->wd);
      if (folder == folders_.end()) continue;  // dropped since (Detach, Close)
      for (const std::string& model : folder->second) {
        dirty.insert(model);
        if (event->mask & (kStructural | IN_IGNORED)) sync.insert(model);
      }
      if (event->mask & IN_IGNORED) {  // the folder is gone
        for (const std::string& model : folder->second) {
          auto& wds = model_folders_[model];
          wds.erase(std::remove(wds.begin(), wds.end(), event->wd), wds.end());
        }
        folders_.erase(folder);
      }
    }
  }
  if (overflow) {
    Close();
    Status reopened = Open();
    if (!reopened.ok()) out.warnings.push_back(reopened.message());
    out.everything = true;
    out.warnings.insert(out.warnings.begin(),
                        "the change events of model repository '" + root_.string() +
                            "' overflowed or its folder was replaced: scanning every model");
  } else {
    // Models that must be scanned every time are walked again each time, so
    // that they leave that list once the cause (a symlink, a full watch
    // table) has gone.
    for (const std::string& model : always_) sync.insert(model);
    for (const std::string& model : sync) SyncModel(model);
    dirty.insert(sync.begin(), sync.end());
    dirty.insert(always_.begin(), always_.end());
    out.models.assign(dirty.begin(), dirty.end());
  }
  for (auto& w : warnings_) out.warnings.push_back(std::move(w));
  warnings_.clear();
  return out;
}

}  // namespace mm
