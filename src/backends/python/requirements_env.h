// A Python environment made from a model's own package requirements
// (--mlflow-create-env: an MLflow model's python_env.yaml / requirements.txt,
// read and checked by repository/mlflow/mlmodel.h), by uv, once per distinct
// list, in the python backend's environment cache.
//
//  - Wheels only (`uv pip install --no-build`): installing runs no code of
//    the packages (building a source distribution would run its setup.py in
//    the installing process). A package without a wheel for this platform
//    fails the load, naming it (uv's own message).
//  - Keyed by a hash of the list, the interpreter and its version: models
//    with the same requirements share one environment, made once.
//  - Made in a temporary folder under a file lock (`<key>.lock`, so two
//    makers, in one process or two, make it once), and renamed into place
//    only when uv succeeded: a half-made environment is never used; what a
//    crash leaves is removed by the next maker.
//  - The list reaches uv as a requirements file mmserve writes from the
//    checked list, never the model's own file, and uv runs in its own
//    process group under a time limit (past it, the group is killed and the
//    load fails).
//
// Thread-safety: EnsureRequirementsEnvironment may run concurrently, in
// several processes too.
#pragma once

#include <chrono>
#include <filesystem>
#include <span>
#include <string>

#include "core/status.h"

namespace mm {

struct RequirementsEnvOptions {
  std::filesystem::path cache_dir;  // the environments' parent folder
  std::filesystem::path uv;         // the uv program
  std::filesystem::path python;     // the interpreter to make it for (/usr/bin/python3.11)
  std::string python_version;       // its X.Y ("3.11"), part of the key
  std::chrono::seconds timeout{1200};
};

// The environment's folder name under cache_dir: "requirements-" and 32 hex
// digits of a SHA-256 over the packages (in order), the interpreter and its
// version.
std::string RequirementsEnvName(std::span<const std::string> packages,
                                const RequirementsEnvOptions& options);

// The folder of the environment for `packages` (checked requirements),
// made first when no process has. `*how` says which ("made in ...", "made
// before in ..."). INVALID_ARGUMENT naming the folder for a cache that
// cannot be written; FAILED_PRECONDITION with uv's last lines when uv fails
// (a package that does not exist, has no wheel, cannot be reached);
// DEADLINE_EXCEEDED past the time limit.
StatusOr<std::filesystem::path> EnsureRequirementsEnvironment(std::span<const std::string> packages,
                                                              const RequirementsEnvOptions& options,
                                                              std::string* how);

// The uv program: `configured` when set (it must be an executable file),
// else `<default_env>/bin/uv` when there is one, else the first `uv` on PATH.
// INVALID_ARGUMENT saying how to get one when none is found.
StatusOr<std::filesystem::path> FindUv(const std::filesystem::path& configured,
                                       const std::filesystem::path& default_env);

}  // namespace mm
