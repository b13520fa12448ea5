// EnsureRequirementsEnvironment and FindUv (backends/python/requirements_env.h)
// with a fake uv: a shell script that logs its arguments and makes the
// folders a venv has, or fails, or hangs, as the test asks. The real uv is
// driven by tests/integration/test_mlflow_create_env.py.
#include "backends/python/requirements_env.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "backends/python/python_env.h"

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string ReadText(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

size_t CountLines(const std::string& text, const std::string& prefix) {
  size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.rfind(prefix, 0) == 0;
  return n;
}

class RequirementsEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(testing::TempDir()) /
           ("requirements-env-" + std::to_string(getpid()) + "-" +
            testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    options_.cache_dir = dir_ / "cache";
    options_.uv = dir_ / "uv";
    options_.python = "/usr/bin/python3.11";
    options_.python_version = "3.11";
    WriteUv("");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The fake uv; `extra` runs first (e.g. "exit 3", "sleep 30").
  void WriteUv(const std::string& extra) {
    std::ofstream(options_.uv) << "#!/bin/sh\n"
                               << "echo \"$*\" >> '" << (dir_ / "calls").string() << "'\n"
                               << extra << "\n"
                               << R"SH(last=""; prev=""; req=""; py=""
for a in "$@"; do
  [ "$prev" = "--requirements" ] && req="$a"
  [ "$prev" = "--python" ] && py="$a"
  prev="$a"; last="$a"
done
if [ "$1" = venv ]; then
  mkdir -p "$last/lib/python3.11/site-packages" "$last/bin"
  echo "version_info = 3.11.2" > "$last/pyvenv.cfg"
else
  cp "$req" "$(dirname "$(dirname "$py")")/lib/python3.11/site-packages/installed.txt"
fi
)SH";
    fs::permissions(options_.uv, fs::perms::owner_all);
  }

  std::string Calls() { return ReadText(dir_ / "calls"); }

  fs::path dir_;
  RequirementsEnvOptions options_;
  const std::vector<std::string> packages_{"numpy==2.4.6", "roman==4.2"};
};

TEST_F(RequirementsEnvTest, MakesTheEnvironmentOnceWithTheCheckedListAndWheelsOnly) {
  std::string how;
  auto made = EnsureRequirementsEnvironment(packages_, options_, &how);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_EQ(made->parent_path(), options_.cache_dir);
  EXPECT_EQ(made->filename().string(), RequirementsEnvName(packages_, options_));
  EXPECT_THAT(how, HasSubstr("made in"));
  EXPECT_EQ(ReadText(*made / "lib/python3.11/site-packages/installed.txt"),
            "numpy==2.4.6\nroman==4.2\n");
  const std::string calls = Calls();
  EXPECT_THAT(calls, HasSubstr("venv --quiet --no-python-downloads --python /usr/bin/python3.11"));
  EXPECT_THAT(calls, HasSubstr("pip install --quiet --no-build --python"));
  // Again, in this process or another: found, not made.
  made = EnsureRequirementsEnvironment(packages_, options_, &how);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_THAT(how, HasSubstr("made before"));
  EXPECT_EQ(CountLines(Calls(), "venv"), 1u);
  // What resolves it for a worker: the environment's site-packages.
  PythonEnvOptions env_options;
  env_options.cache_dir = options_.cache_dir;
  env_options.embedded_version = "3.11";
  env_options.create_from_requirements = true;
  env_options.uv = options_.uv;
  env_options.python_executable = options_.python;
  PackageRequirements requirements{packages_, "3.12.1", "python_env.yaml"};
  auto env = ResolvePythonEnvironment({}, dir_, env_options, &requirements);
  ASSERT_TRUE(env.ok()) << env.status().ToString();
  ASSERT_EQ(env->site_packages.size(), 1u);
  EXPECT_EQ(env->site_packages[0], *made / "lib/python3.11/site-packages");
  EXPECT_THAT(env->description,
              AllOf(HasSubstr("python_env.yaml"), HasSubstr("saved with Python 3.12.1")));
  // Off, the same model runs in the default environment (none here).
  env_options.create_from_requirements = false;
  env = ResolvePythonEnvironment({}, dir_, env_options, &requirements);
  ASSERT_TRUE(env.ok()) << env.status().ToString();
  EXPECT_TRUE(env->site_packages.empty());
}

TEST_F(RequirementsEnvTest, AnotherListOrInterpreterIsAnotherEnvironment) {
  const std::string name = RequirementsEnvName(packages_, options_);
  EXPECT_NE(name, RequirementsEnvName(std::vector<std::string>{"numpy==2.4.6"}, options_));
  EXPECT_NE(name,
            RequirementsEnvName(std::vector<std::string>{"roman==4.2", "numpy==2.4.6"}, options_));
  RequirementsEnvOptions other = options_;
  other.python = "/opt/python3.11";
  EXPECT_NE(name, RequirementsEnvName(packages_, other));
  EXPECT_EQ(name.rfind("requirements-", 0), 0u);
  EXPECT_EQ(name.size(), std::string("requirements-").size() + 32);
}

TEST_F(RequirementsEnvTest, ConcurrentMakersMakeItOnce) {
  WriteUv("sleep 0.2");
  std::vector<std::thread> threads;
  std::vector<StatusOr<fs::path>> results(4, Internal("not run"));
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      std::string how;
      results[i] = EnsureRequirementsEnvironment(packages_, options_, &how);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, results[0].value());
  }
  EXPECT_EQ(CountLines(Calls(), "venv"), 1u);
}

TEST_F(RequirementsEnvTest, AFailingUvFailsWithItsOutputAndLeavesNothing) {
  WriteUv("[ \"$1\" = pip ] && { echo 'No solution found: roman==99 has no wheel' >&2; exit 1; }");
  std::string how;
  auto made = EnsureRequirementsEnvironment(packages_, options_, &how);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(made.status().message(),
              AllOf(HasSubstr("exited with status 1"), HasSubstr("roman==99 has no wheel")));
  EXPECT_FALSE(fs::exists(options_.cache_dir / RequirementsEnvName(packages_, options_)));
  EXPECT_FALSE(
      fs::exists(options_.cache_dir / (".making-" + RequirementsEnvName(packages_, options_))));
  // Mended, the next load makes it.
  WriteUv("");
  made = EnsureRequirementsEnvironment(packages_, options_, &how);
  EXPECT_TRUE(made.ok()) << made.status().ToString();
}

TEST_F(RequirementsEnvTest, AUvPastTheTimeLimitIsStopped) {
  WriteUv("sleep 600");
  options_.timeout = std::chrono::seconds(1);
  std::string how;
  auto made = EnsureRequirementsEnvironment(packages_, options_, &how);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_THAT(made.status().message(), HasSubstr("did not finish within 1 s"));
}

TEST_F(RequirementsEnvTest, ACrashLeftoverIsRemovedBeforeMaking) {
  const fs::path leftover =
      options_.cache_dir / (".making-" + RequirementsEnvName(packages_, options_));
  fs::create_directories(leftover / "lib/python3.11/site-packages");
  std::ofstream(leftover / "half") << "x";
  std::string how;
  auto made = EnsureRequirementsEnvironment(packages_, options_, &how);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_FALSE(fs::exists(*made / "half"));
  EXPECT_FALSE(fs::exists(leftover));
}

TEST_F(RequirementsEnvTest, FindUvLooksInTheSettingTheDefaultEnvironmentThenPath) {
  auto found = FindUv(options_.uv, {});
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, options_.uv);
  EXPECT_FALSE(FindUv(dir_ / "nope", {}).ok());
  fs::create_directories(dir_ / "venv/bin");
  fs::copy_file(options_.uv, dir_ / "venv/bin/uv");
  found = FindUv({}, dir_ / "venv");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, dir_ / "venv/bin/uv");
  const char* saved = std::getenv("PATH");
  const std::string path = saved ? saved : "";
  setenv("PATH", (dir_.string() + ":" + path).c_str(), 1);
  found = FindUv({}, dir_ / "no-venv");
  setenv("PATH", "/nonexistent", 1);
  auto none = FindUv({}, {});
  setenv("PATH", path.c_str(), 1);
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, dir_ / "uv");
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(none.status().message(), HasSubstr("pip install uv"));
}

}  // namespace
}  // namespace mm
