#include "backends/python/requirements_env.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "core/hex.h"
#include "core/unique_fd.h"

extern char** environ;

namespace mm {
namespace {

namespace fs = std::filesystem;

std::string Quoted(const fs::path& p) { return "'" + p.string() + "'"; }

std::string Sha256Hex(std::string_view text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr);
  return LowerHex(digest.data(), size);
}

bool IsExecutableFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// The last `max` bytes of `file`, printable, for an error message.
std::string Tail(const fs::path& file, size_t max) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  if (text.size() > max) text = "..." + text.substr(text.size() - max);
  for (char& c : text) {
    if (c == '\n' || c == '\t') {
      c = ' ';
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      c = '?';
    }
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

// Runs `argv` in `cwd`, its output into `log`, in a process group of its
// own, waiting at most `timeout` (then the group is killed). OK when it
// exited 0.
Status Run(const std::vector<std::string>& argv, const fs::path& cwd, const fs::path& log,
           std::chrono::seconds timeout, const std::string& what) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  // The caller's thread may block signals (the server's do) or ignore
  // SIGPIPE: the child starts with none blocked and every default.
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (spawned != 0) {
    return FailedPrecondition(what + ": cannot start " + Quoted(argv[0]) + ": " +
                              std::strerror(spawned));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) {
      ::kill(-pid, SIGKILL);
      return Internal(what + ": cannot wait for " + Quoted(argv[0]) + ": " + std::strerror(errno));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return DeadlineExceeded(what + ": uv did not finish within " +
                              std::to_string(timeout.count()) +
                              " s and was stopped; its output: " + Tail(log, 1500));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return OkStatus();
  const std::string how = WIFEXITED(status)
                              ? "exited with status " + std::to_string(WEXITSTATUS(status))
                              : "was killed by signal " + std::to_string(WTERMSIG(status));
  return FailedPrecondition(what + ": uv " + how + ": " + Tail(log, 1500));
}

}  // namespace

std::string RequirementsEnvName(std::span<const std::string> packages,
                                const RequirementsEnvOptions& options) {
  std::string text = "mmserve requirements environment 1\n";
  text += options.python.string() + "\n" + options.python_version + "\n";
  for (const std::string& p : packages) text += p + "\n";
  return "requirements-" + Sha256Hex(text).substr(0, 32);
}

StatusOr<fs::path> EnsureRequirementsEnvironment(std::span<const std::string> packages,
                                                 const RequirementsEnvOptions& options,
                                                 std::string* how) {
  const std::string name = RequirementsEnvName(packages, options);
  const fs::path final_dir = options.cache_dir / name;
  std::error_code ec;
  if (fs::is_directory(final_dir, ec)) {
    *how = "made before in " + final_dir.string();
    return final_dir;
  }
  fs::create_directories(options.cache_dir, ec);
  if (ec) {
    return InvalidArgument("cannot create the environment cache folder " +
                           Quoted(options.cache_dir) + ": " + ec.message() +
                           "; set --backend-config=python,env-cache-dir=PATH to a writable one");
  }
  const fs::path lock_path = options.cache_dir / (name + ".lock");
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (lock.get() < 0) {
    return InvalidArgument("cannot create the lock file " + Quoted(lock_path) + ": " +
                           std::strerror(errno));
  }
  // Another maker (a second model with the same requirements, another
  // worker) holds it while it makes the environment: wait, then use it.
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) {
      return Internal("cannot lock " + Quoted(lock_path) + ": " + std::strerror(errno));
    }
  }
  if (fs::is_directory(final_dir, ec)) {
    *how = "made by another loader in " + final_dir.string();
    return final_dir;
  }
  // Under the lock no one else makes it: what is here is a crash's leftover.
  const fs::path temporary = options.cache_dir / (".making-" + name);
  fs::remove_all(temporary, ec);
  const fs::path log = options.cache_dir / (name + ".log");
  fs::remove(log, ec);
  const std::string what = "making the environment " + Quoted(final_dir);
  Status made = Run({options.uv.string(), "venv", "--quiet", "--no-python-downloads", "--python",
                     options.python.string(), temporary.string()},
                    options.cache_dir, log, options.timeout, what);
  if (made.ok()) {
    // mmserve's own copy of the checked list: the model's file never
    // reaches uv (it could name options, other files, other indexes).
    const fs::path listed = temporary / "mmserve-requirements.txt";
    std::ofstream out(listed);
    for (const std::string& p : packages) out << p << "\n";
    out.close();
    if (!out) {
      made = InvalidArgument(what + ": cannot write " + Quoted(listed));
    } else {
      made = Run({options.uv.string(), "pip", "install", "--quiet", "--no-build", "--python",
                  (temporary / "bin" / "python").string(), "--requirements", listed.string()},
                 temporary, log, options.timeout, what);
    }
  }
  if (!made.ok()) {
    fs::remove_all(temporary, ec);
    return made;
  }
  if (::rename(temporary.c_str(), final_dir.c_str()) != 0) {
    const int err = errno;
    fs::remove_all(temporary, ec);
    return InvalidArgument(what + ": cannot move it into place: " + std::strerror(err));
  }
  *how = "made in " + final_dir.string() + " from " + std::to_string(packages.size()) +
         " requirement(s)";
  return final_dir;
}

StatusOr<fs::path> FindUv(const fs::path& configured, const fs::path& default_env) {
  if (!configured.empty()) {
    if (IsExecutableFile(configured)) return configured;
    return InvalidArgument("python backend setting uv " + Quoted(configured) +
                           " is not an executable file; expected the uv program");
  }
  if (!default_env.empty() && IsExecutableFile(default_env / "bin" / "uv")) {
    return default_env / "bin" / "uv";
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path == nullptr ? "" : path;
  while (!dirs.empty()) {
    const size_t colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
    if (dir.empty() || dir[0] != '/') continue;
    const fs::path candidate = fs::path(dir) / "uv";
    if (IsExecutableFile(candidate)) return candidate;
  }
  return InvalidArgument(
      "--mlflow-create-env makes environments with uv, which is neither in --python-env's bin "
      "folder nor on PATH; install it (pip install uv) or set --backend-config=python,uv=PATH");
}

}  // namespace mm
