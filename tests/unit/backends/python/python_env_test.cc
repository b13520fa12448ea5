#include "backends/python/python_env.h"

#include <archive.h>
#include <archive_entry.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <random>
#include <thread>

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

void WriteFile(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// A tar.gz entry: a path and either contents (a file), a link target
// (symlink), a hard-link target, or a type.
struct Entry {
  std::string path;
  std::string contents;
  std::string symlink;
  std::string hardlink;
  mode_t type = AE_IFREG;
};

void WriteArchive(const fs::path& file, const std::vector<Entry>& entries) {
  struct archive* a = archive_write_new();
  archive_write_add_filter_gzip(a);
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(archive_write_open_filename(a, file.c_str()), ARCHIVE_OK);
  for (const Entry& e : entries) {
    struct archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_perm(entry, 0644);
    if (!e.symlink.empty()) {
      archive_entry_set_filetype(entry, AE_IFLNK);
      archive_entry_set_symlink(entry, e.symlink.c_str());
    } else if (!e.hardlink.empty()) {
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_hardlink(entry, e.hardlink.c_str());
    } else {
      archive_entry_set_filetype(entry, e.type);
      if (e.type == AE_IFDIR) archive_entry_set_perm(entry, 0755);
      archive_entry_set_size(entry, e.type == AE_IFREG ? e.contents.size() : 0);
    }
    archive_write_header(a, entry);
    if (e.type == AE_IFREG && e.hardlink.empty() && e.symlink.empty()) {
      archive_write_data(a, e.contents.data(), e.contents.size());
    }
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
}

class PythonEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mm_python_env_test_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
    model_dir_ = dir_ / "models" / "m";
    fs::create_directories(model_dir_);
    options_.cache_dir = dir_ / "cache";
    options_.embedded_version = "3.11";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A virtual environment as `python3 -m venv` makes it.
  fs::path MakeVenv(const fs::path& root, const std::string& version = "3.11.7") {
    WriteFile(root / "pyvenv.cfg",
              "home = /usr/bin\ninclude-system-site-packages = false\n"
              "version = " +
                  version + "\n");
    const std::string mm = version.substr(0, version.rfind('.'));
    WriteFile(root / "lib" / ("python" + mm) / "site-packages" / "pkg" / "__init__.py", "");
    return root;
  }

  static inference::ModelConfig WithEnvPath(const std::string& value) {
    inference::ModelConfig config;
    (*config.mutable_parameters())["EXECUTION_ENV_PATH"].set_string_value(value);
    return config;
  }

  fs::path dir_;
  fs::path model_dir_;
  PythonEnvOptions options_;
};

TEST_F(PythonEnvTest, NoEnvironmentIsTheEmbeddedPython) {
  auto env = ResolvePythonEnvironment({}, model_dir_, options_);
  ASSERT_TRUE(env.ok()) << env.status().message();
  EXPECT_TRUE(env->site_packages.empty());
  EXPECT_TRUE(env->root.empty());
  EXPECT_EQ(env->description, "the embedded Python 3.11");
}

TEST_F(PythonEnvTest, TheServerDefaultIsAVirtualEnvironment) {
  options_.default_env = MakeVenv(dir_ / "venv");
  auto env = ResolvePythonEnvironment({}, model_dir_, options_);
  ASSERT_TRUE(env.ok()) << env.status().message();
  ASSERT_EQ(env->site_packages.size(), 1u);
  EXPECT_EQ(env->site_packages[0], dir_ / "venv" / "lib" / "python3.11" / "site-packages");
  EXPECT_EQ(env->root, dir_ / "venv");
  EXPECT_THAT(env->description, HasSubstr("--python-env"));
}

TEST_F(PythonEnvTest, TheModelParameterWinsAndExpandsTheModelDirectory) {
  options_.default_env = MakeVenv(dir_ / "default");
  MakeVenv(model_dir_ / "env");
  auto env =
      ResolvePythonEnvironment(WithEnvPath("$$TRITON_MODEL_DIRECTORY/env"), model_dir_, options_);
  ASSERT_TRUE(env.ok()) << env.status().message();
  EXPECT_EQ(env->root, model_dir_ / "env");
  EXPECT_THAT(env->description, HasSubstr("EXECUTION_ENV_PATH"));
  // Relative: from the model's folder.
  env = ResolvePythonEnvironment(WithEnvPath("env"), model_dir_, options_);
  ASSERT_TRUE(env.ok()) << env.status().message();
  EXPECT_EQ(env->root, model_dir_ / "env");
  EXPECT_EQ(ExpandModelDirectory("$$TRITON_MODEL_DIRECTORY/a:$$TRITON_MODEL_DIRECTORY", "/m"),
            fs::path("/m/a:/m"));
}

TEST_F(PythonEnvTest, ACondaEnvironmentHasNoPyvenvCfg) {
  WriteFile(dir_ / "conda" / "lib" / "python3.11" / "site-packages" / "x.py", "");
  WriteFile(dir_ / "conda" / "bin" / "python3.11", "");
  auto env = ResolvePythonEnvironment(WithEnvPath((dir_ / "conda").string()), model_dir_, options_);
  ASSERT_TRUE(env.ok()) << env.status().message();
  ASSERT_EQ(env->site_packages.size(), 1u);
}

TEST_F(PythonEnvTest, AnotherPythonVersionIsRefusedNamingBoth) {
  MakeVenv(dir_ / "old", "3.10.12");
  auto env = ResolvePythonEnvironment(WithEnvPath((dir_ / "old").string()), model_dir_, options_);
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(env.status().message(), HasSubstr("Python 3.10"));
  EXPECT_THAT(env.status().message(), HasSubstr("embedded Python 3.11"));
  // A conda environment says it by its folder.
  WriteFile(dir_ / "conda310" / "lib" / "python3.10" / "site-packages" / "x.py", "");
  env = ResolvePythonEnvironment(WithEnvPath((dir_ / "conda310").string()), model_dir_, options_);
  ASSERT_FALSE(env.ok());
  EXPECT_THAT(env.status().message(), HasSubstr("Python 3.10"));
  EXPECT_THAT(env.status().message(), HasSubstr("embedded Python 3.11"));
}

TEST_F(PythonEnvTest, BadPathsAreNamed) {
  auto env = ResolvePythonEnvironment(WithEnvPath("/no/such/env"), model_dir_, options_);
  ASSERT_FALSE(env.ok());
  EXPECT_THAT(
      env.status().message(),
      HasSubstr("parameter EXECUTION_ENV_PATH '/no/such/env': '/no/such/env' does not exist"));
  env = ResolvePythonEnvironment(WithEnvPath(""), model_dir_, options_);
  ASSERT_FALSE(env.ok());
  EXPECT_THAT(env.status().message(), HasSubstr("is empty"));
  WriteFile(dir_ / "file.zip", "x");
  env = ResolvePythonEnvironment(WithEnvPath((dir_ / "file.zip").string()), model_dir_, options_);
  ASSERT_FALSE(env.ok());
  EXPECT_THAT(env.status().message(), HasSubstr("neither a folder nor a .tar.gz"));
  fs::create_directories(dir_ / "empty");
  env = ResolvePythonEnvironment(WithEnvPath((dir_ / "empty").string()), model_dir_, options_);
  ASSERT_FALSE(env.ok());
  EXPECT_THAT(env.status().message(), HasSubstr("holds no lib/pythonX.Y/site-packages"));
  options_.default_env = dir_ / "missing";
  env = ResolvePythonEnvironment({}, model_dir_, options_);
  ASSERT_FALSE(env.ok());
  EXPECT_THAT(env.status().message(), HasSubstr("--python-env"));
}

std::vector<Entry> PackedVenv() {
  return {{.path = "pyvenv.cfg", .contents = "version = 3.11.2\n"},
          {.path = "lib", .type = AE_IFDIR},
          {.path = "lib/python3.11/site-packages/pkg/__init__.py", .contents = "v = 1\n"},
          {.path = "bin/python", .symlink = "/usr/bin/python3.11"},  // venv-pack's
          {.path = "bin/python3", .symlink = "python"}};
}

TEST_F(PythonEnvTest, AnArchiveIsUnpackedOnceIntoTheCache) {
  WriteArchive(model_dir_ / "env.tar.gz", PackedVenv());
  auto config = WithEnvPath("$$TRITON_MODEL_DIRECTORY/env.tar.gz");
  auto env = ResolvePythonEnvironment(config, model_dir_, options_);
  ASSERT_TRUE(env.ok()) << env.status().message();
  EXPECT_EQ(env->root.parent_path(), options_.cache_dir);
  EXPECT_EQ(env->root.filename().string().size(), 64u);  // the SHA-256, in hex
  ASSERT_EQ(env->site_packages.size(), 1u);
  EXPECT_TRUE(fs::exists(env->site_packages[0] / "pkg" / "__init__.py"));
  EXPECT_THAT(env->description, HasSubstr("unpacked in"));
  EXPECT_THAT(env->description, HasSubstr("1 symbolic link(s) leaving the archive skipped"));
  EXPECT_FALSE(fs::exists(fs::symlink_status(env->root / "bin" / "python")));
  EXPECT_TRUE(fs::is_symlink(env->root / "bin" / "python3"));
  // The second time, the cache answers: a file added there is still there.
  WriteFile(env->root / "marker", "");
  auto again = ResolvePythonEnvironment(config, model_dir_, options_);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->root, env->root);
  EXPECT_THAT(again->description, HasSubstr("unpacked before"));
  EXPECT_TRUE(fs::exists(env->root / "marker"));
  // Nothing half-done is left beside it.
  int folders = 0;
  for (const auto& e : fs::directory_iterator(options_.cache_dir)) folders += e.is_directory();
  EXPECT_EQ(folders, 1);
}

// A cache folder reached through a symbolic link (a home on another disk, a
// /tmp that is a link) is the operator's choice, not the archive's: it unpacks.
TEST_F(PythonEnvTest, TheCacheFolderMayBeReachedThroughALink) {
  fs::create_directories(dir_ / "real-cache");
  fs::create_directory_symlink(dir_ / "real-cache", dir_ / "linked-cache");
  options_.cache_dir = dir_ / "linked-cache" / "envs";
  WriteArchive(model_dir_ / "env.tar.gz", PackedVenv());
  auto env = ResolvePythonEnvironment(WithEnvPath("$$TRITON_MODEL_DIRECTORY/env.tar.gz"),
                                      model_dir_, options_);
  ASSERT_TRUE(env.ok()) << env.status().message();
  ASSERT_EQ(env->site_packages.size(), 1u);
  EXPECT_TRUE(fs::exists(dir_ / "real-cache" / "envs" / env->root.filename() / "lib"));
}

TEST_F(PythonEnvTest, ConcurrentUnpacksAgreeOnOneFolder) {
  WriteArchive(dir_ / "env.tar.gz", PackedVenv());
  auto config = WithEnvPath((dir_ / "env.tar.gz").string());
  std::vector<std::thread> threads;
  std::vector<StatusOr<PythonEnvironment>> results(6, Internal("not run"));
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back(
        [&, i] { results[i] = ResolvePythonEnvironment(config, model_dir_, options_); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->root, results[0]->root);
    EXPECT_TRUE(fs::exists(r->site_packages.at(0) / "pkg" / "__init__.py"));
  }
  int folders = 0;
  for (const auto& e : fs::directory_iterator(options_.cache_dir)) folders += e.is_directory();
  EXPECT_EQ(folders, 1);
}

TEST_F(PythonEnvTest, HostileArchivesAreRefusedAndLeaveNothing) {
  const std::vector<std::pair<std::vector<Entry>, std::string>> cases = {
      {{{.path = "../escape.py", .contents = "x"}}, "leaves the archive's folder"},
      {{{.path = "lib/../../escape.py", .contents = "x"}}, "leaves the archive's folder"},
      {{{.path = "/etc/escape.py", .contents = "x"}}, "leaves the archive's folder"},
      {{{.path = "fifo", .type = AE_IFIFO}}, "device, FIFO or socket"},
      {{{.path = "passwd", .hardlink = "../../etc/passwd"}}, "hard link"},
      // Links that are each lexically inside but resolve outside through one
      // another ("here/.." is "." on paper, the folder above on disk), in
      // either order, and a hard link made through such a chain.
      {{{.path = "here", .symlink = "."}, {.path = "up", .symlink = "here/.."}},
       "resolves (through other links) outside"},
      {{{.path = "up", .symlink = "here/.."}, {.path = "here", .symlink = "."}},
       "resolves (through other links) outside"},
      {{{.path = "here", .symlink = "."},
        {.path = "up", .symlink = "here/.."},
        {.path = "stolen", .hardlink = "up/up/escape.py"}},
       "resolves (through a symbolic link) outside"},
      {{{.path = "loop1", .symlink = "loop2"}, {.path = "loop2", .symlink = "loop1"}}, "loop"},
  };
  int n = 0;
  for (const auto& [entries, expected] : cases) {
    const fs::path archive = dir_ / ("bad" + std::to_string(n++) + ".tar.gz");
    WriteArchive(archive, entries);
    auto env = ResolvePythonEnvironment(WithEnvPath(archive.string()), model_dir_, options_);
    ASSERT_FALSE(env.ok()) << expected;
    EXPECT_EQ(env.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(env.status().message(), HasSubstr(expected));
    EXPECT_THAT(env.status().message(), HasSubstr("EXECUTION_ENV_PATH"));
  }
  EXPECT_FALSE(fs::exists(dir_ / "escape.py"));
  EXPECT_FALSE(fs::exists(dir_ / "models" / "escape.py"));
  EXPECT_TRUE(fs::is_empty(options_.cache_dir));
  // A file that is no archive at all.
  WriteFile(dir_ / "junk.tar.gz", "not gzip");
  auto env =
      ResolvePythonEnvironment(WithEnvPath((dir_ / "junk.tar.gz").string()), model_dir_, options_);
  ASSERT_FALSE(env.ok());
  EXPECT_TRUE(fs::is_empty(options_.cache_dir));
}

TEST_F(PythonEnvTest, TheDefaultCacheFollowsXdgThenHome) {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const std::string saved = xdg ? xdg : "";
  setenv("XDG_CACHE_HOME", "/x", 1);
  EXPECT_EQ(DefaultPythonEnvCacheDir(), fs::path("/x/mmserve/python-envs"));
  unsetenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home == '/') {
    EXPECT_EQ(DefaultPythonEnvCacheDir(), fs::path(home) / ".cache/mmserve/python-envs");
  }
  if (xdg) setenv("XDG_CACHE_HOME", saved.c_str(), 1);
}

}  // namespace
}  // namespace mm
