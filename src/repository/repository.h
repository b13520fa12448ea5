// Model repositories on disk, in Triton's layout:
//
//   <repo>/<model>/config.pbtxt     optional
//   <repo>/<model>/<version>/...    version: a positive decimal integer
//
// Scanning only reads directories and config files; it loads nothing. A model
// whose config is unusable still appears, with a non-OK status, so the server
// can list it UNAVAILABLE with the reason instead of failing to start.
// Functions here touch the filesystem and hold no state; they may run
// concurrently.
//
// Change detection (poll mode): a scan also fingerprints what it saw, so the
// caller can compare two ModelSources of one model and reload only what
// changed. Two scans of an unchanged model give equal fingerprints; editing
// config.pbtxt changes config_fingerprint, and adding, removing, resizing or
// touching (new last-write time) any file or folder at any depth of a version
// folder changes that version's fingerprint and no other. Fingerprints are
// 64-bit FNV-1a hashes: stable across runs and builds, not cryptographic, and
// file contents are not read (a rewrite that keeps size and mtime goes unseen).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

// A file of a remote repository's model, as its listing gave it.
struct RemoteFile {
  std::string
      path;  // relative to the model's folder, '/'-separated: "config.pbtxt", "1/model.onnx"
  uint64_t size = 0;
  std::string etag;    // the store's tag of this content (S3's ETag)
  bool crc32 = false;  // the store keeps its CRC32 (S3's ChecksumAlgorithm), checked on fetch
};

// What one model directory holds.
struct ModelSource {
  std::string name;                   // the directory name
  std::string repository;             // key() of the ModelRepository listing it ("": none)
  std::filesystem::path dir;          // <repo>/<model> (a local repository's folder)
  std::vector<int64_t> versions;      // version directories on disk, ascending
  inference::ModelConfig config;      // parsed config.pbtxt; name always filled in
  bool has_config = false;            // whether config.pbtxt exists
  Status status;                      // non-OK: the model is UNAVAILABLE for this reason
  std::vector<std::string> warnings;  // e.g. unknown config fields, odd version dirs

  // Hash of config.pbtxt's bytes; 0 when there is no config.pbtxt. A config
  // that exists but cannot be read hashes its error, size and mtime instead.
  uint64_t config_fingerprint = 0;
  // One entry per element of `versions`: a hash of the version folder's
  // recursive listing, each entry's path relative to the folder, type, size,
  // last-write time (ns) and, for a symlink, its target, sorted by path.
  // Symlinks are followed (models are often symlinked) to a depth of 32,
  // never into a folder already being listed. A listing error (permission,
  // a file vanishing mid-scan, a dangling link) adds a warning and is folded
  // into the hash, so it differs from the clean state.
  std::map<int64_t, uint64_t> version_fingerprints;
  // A remote repository's model (dir empty): every file it holds, sorted by
  // path. Empty for a local folder, whose files are on disk at `dir`.
  std::vector<RemoteFile> remote_files;
};

// Reads one model directory: its version directories and config.pbtxt
// (parsed and validated). Problems with the model become `status`; entries
// that are not positive integer directories are ignored (with a warning when
// they look like a malformed version, such as "0" or "007"). Fills the
// fingerprints (see the top of this file); their listing errors are warnings.
ModelSource ScanModel(const std::filesystem::path& dir);

// Version folders are canonical positive decimal integers ("1", "42"):
// kMalformed for a number that is not ("0", "007"), kNotNumeric otherwise.
enum class VersionName { kValid, kMalformed, kNotNumeric };
VersionName ParseVersionName(const std::string& name, int64_t* version);

// Fills `source`'s config from the text of its config.pbtxt (`text` null:
// the model has none) as ScanModel does (parsed, named, validated; the
// fingerprint set): for a repository that reads config files itself.
// Returns what ScanModel would make the status.
Status ApplyModelConfig(ModelSource& source, const std::string* text);

// For a model without config.pbtxt whose newest version folder holds an
// MLmodel (the MLflow model format, mlflow/mlmodel.h): its config derived
// from `text`, that MLmodel's content, named and validated. Returns what the
// model's status becomes (the MLmodel's error, naming it).
Status ApplyMLmodel(ModelSource& source, std::string_view text);

}  // namespace mm
