// Which Python environment a Python model runs in (Triton's
// EXECUTION_ENV_PATH), resolved in the model's worker process before its
// model.py is imported.
//
// Sources, first match wins:
//  1. the model's config parameter EXECUTION_ENV_PATH, with
//     $$TRITON_MODEL_DIRECTORY expanded to the model's folder: a virtual
//     environment's folder, or a conda-pack / venv-pack archive (.tar.gz),
//     which is unpacked once into a cache folder keyed by the archive's
//     content hash (a half-unpacked archive is never used: it unpacks into a
//     temporary folder renamed into place);
//  2. with --mlflow-create-env, the model's own requirements (an MLflow
//     model's python_env.yaml / requirements.txt, given by the caller), made
//     into an environment once and cached (requirements_env.h);
//  3. the server's default environment (--python-env PATH): a virtual
//     environment's folder;
//  4. none: the embedded interpreter's own packages.
// A relative EXECUTION_ENV_PATH is taken from the model's folder. A load
// override (the repository API's "config") cannot change EXECUTION_ENV_PATH:
// it chooses code the model runs, so only the repository's config.pbtxt may
// (the lifecycle refuses such an override).
// An environment built for another Python (3.10 when the worker embeds 3.11)
// is an error that names both versions.
//
// Thread-safety: ResolvePythonEnvironment may run concurrently, in several
// processes too (two workers unpacking one archive: one wins the rename, the
// other uses its result).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

struct PythonEnvironment {
  // Folders to put first on sys.path, in order (the environment's
  // site-packages), as site directories (site.addsitedir, so that their .pth
  // files apply). Empty: the interpreter's own.
  std::vector<std::filesystem::path> site_packages;
  // The environment's root folder (the unpacked archive's, for an archive);
  // empty when there is none.
  std::filesystem::path root;
  // For the log: "EXECUTION_ENV_PATH /models/m/env.tar.gz (unpacked in
  // /cache/python-envs/3f2a...)", "--python-env /opt/venv", "the embedded
  // Python 3.11".
  std::string description;
};

struct PythonEnvOptions {
  std::filesystem::path default_env;  // --python-env; empty: none
  std::filesystem::path cache_dir;    // where archives are unpacked (and environments made)
  std::string embedded_version;       // "3.11": the interpreter the worker embeds
  // --mlflow-create-env: source 2 above, made by `uv` for the interpreter
  // `python_executable` (the one the worker embeds).
  bool create_from_requirements = false;
  std::filesystem::path uv;
  std::filesystem::path python_executable;
};

// A model's own package requirements (source 2), checked by their reader.
struct PackageRequirements {
  std::vector<std::string> packages;
  std::string python;  // the Python the model was saved with ("3.12.1"); "" when unknown
  std::string source;  // the file they come from, for the log ("python_env.yaml")
};

// `value` with every $$TRITON_MODEL_DIRECTORY replaced by `model_dir`.
std::filesystem::path ExpandModelDirectory(std::string_view value,
                                           const std::filesystem::path& model_dir);

// The default cache for unpacked archives: $XDG_CACHE_HOME/mmserve/python-envs,
// else $HOME/.cache/mmserve/python-envs, else one under the temporary folder.
std::filesystem::path DefaultPythonEnvCacheDir();

// The environment the model in `model_dir` with `config` runs in.
// INVALID_ARGUMENT naming the parameter or flag and the path for a path that
// does not exist, is neither a folder nor a .tar.gz, holds no
// lib/pythonX.Y/site-packages, or was built for another Python version; an
// archive that cannot be unpacked is INVALID_ARGUMENT naming the archive and
// the reason.
// `requirements`: the model's own (null: none), used for source 2 when
// options.create_from_requirements; making the environment fails as
// EnsureRequirementsEnvironment says.
StatusOr<PythonEnvironment> ResolvePythonEnvironment(
    const inference::ModelConfig& config, const std::filesystem::path& model_dir,
    const PythonEnvOptions& options, const PackageRequirements* requirements = nullptr);

}  // namespace mm
