// The one door through which the server reads files out of a model
// repository (config.pbtxt, drift baselines, warmup data) or checks one that
// a backend opens itself (a model file). A repository may belong to a
// tenant, so its files are hostile input: a FIFO would hang the reader, a
// device (/dev/zero) or a huge file would fill the server's memory.
//
// Rules, for every kind:
//  1. Symlinks are followed; what they end at must be a regular file. A FIFO,
//     socket, device or folder is refused without ever blocking on it (the
//     file is opened non-blocking and checked with fstat on the open file,
//     so it cannot be swapped between the check and the read).
//  2. A file larger than its kind's cap is refused before it is read; one
//     that grows while it is read is refused too.
//  3. Errors are INVALID_ARGUMENT (NOT_FOUND when the file does not exist,
//     or a folder on its path is a file),
//     naming the file, what it was and what was expected.
// Thread-safety: these are free functions with no shared state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mm {

enum class RepositoryFileKind {
  kConfig,         // config.pbtxt: 4 MiB
  kDriftBaseline,  // drift_baseline.json: 64 MiB
  kWarmupData,     // a warmup sample's input_data_file: 256 MiB
  kModel,          // a model file a backend opens itself: 64 GiB
  kAwsSettings,    // ~/.aws/config or credentials (not a repository's, same hazards): 1 MiB
};

// The largest file of `kind` the server accepts, in bytes.
uint64_t MaxRepositoryFileBytes(RepositoryFileKind kind);
// What files of `kind` are called in messages ("config", "drift baseline", ...).
std::string_view RepositoryFileKindName(RepositoryFileKind kind);

// The whole content of `path`, by the rules above.
StatusOr<std::string> ReadRepositoryFile(const std::filesystem::path& path,
                                         RepositoryFileKind kind);

// Checks that `path` is a regular file within its kind's cap (the rules
// above) for a library that opens it by path; returns its size.
StatusOr<uint64_t> CheckRepositoryFile(const std::filesystem::path& path, RepositoryFileKind kind);

}  // namespace mm
