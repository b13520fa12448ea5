#include "backends/pytorch/torch_archive.h"

#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include "repository/repository_file.h"

namespace mm {

namespace {

bool IsCode(std::string_view record) {
  return (record.starts_with("code/") || record.find("/code/") != std::string_view::npos) &&
         record.ends_with(".py");
}

// One open file, read with pread (no shared offset: loads may overlap).
class FdArchive final : public caffe2::serialize::ReadAdapterInterface {
 public:
  FdArchive(int fd, size_t size) : fd_(fd), size_(size) {}
  ~FdArchive() override { ::close(fd_); }
  size_t size() const override { return size_; }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    size_t done = 0;
    while (done < n) {
      const ssize_t got =
          ::pread(fd_, static_cast<char*>(buf) + done, n - done, static_cast<off_t>(pos + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;  // an error or the end: libtorch reports the short read
      done += static_cast<size_t>(got);
    }
    return done;
  }

 private:
  const int fd_;
  const size_t size_;
};

}  // namespace

StatusOr<TorchArchive> OpenArchive(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    return InvalidArgument("cannot open '" + path.string() + "': " + std::strerror(errno));
  }
  struct stat st {};
  const uint64_t cap = MaxRepositoryFileBytes(RepositoryFileKind::kModel);
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
      static_cast<uint64_t>(st.st_size) > cap) {
    ::close(fd);
    return InvalidArgument("'" + path.string() + "' is not a regular file of at most " +
                           std::to_string(cap) + " bytes");
  }
  return TorchArchive(std::make_shared<FdArchive>(fd, static_cast<size_t>(st.st_size)));
}

Status CheckArchiveCode(const TorchArchive& archive) {
  std::string error;
  try {
    caffe2::serialize::PyTorchStreamReader reader(archive);
    for (const std::string& record : reader.getAllRecords()) {
      if (!IsCode(record)) continue;
      const size_t size = reader.getRecordSize(record);
      if (size > kMaxArchiveCodeBytes) {
        return InvalidArgument("its code file " + record + " holds " + std::to_string(size) +
                               " bytes; at most " + std::to_string(kMaxArchiveCodeBytes) +
                               " are read");
      }
    }
    return OkStatus();
  } catch (const c10::Error& e) {
    error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    error = e.what();
  }
  return InvalidArgument(error);
}

}  // namespace mm
