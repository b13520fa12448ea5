// A TorchScript archive, opened and looked over before libtorch loads it.
// Loading runs code (torch::jit::load compiles the archive's code files and
// calls its `__setstate__` methods): the operators that would reach outside
// the model are gone from libtorch by then (torch_sandbox.h), and a code file
// too large to compile is refused here, before libtorch reads it.
//
// The file is opened once (OpenArchive): the check and every load of it read
// that one open file, so a file renamed into its place after the check is
// never what libtorch reads.
//
// Thread-safety: an archive may be read from any thread (pread at offsets).
#pragma once

#include <caffe2/serialize/read_adapter_interface.h>

#include <filesystem>
#include <memory>

#include "core/status.h"

namespace mm {

using TorchArchive = std::shared_ptr<caffe2::serialize::ReadAdapterInterface>;

// Opens `path` for reading without blocking on it; INVALID_ARGUMENT when what
// is open is not a regular file or exceeds the model file cap
// (repository_file.h). The file is closed with the last reference.
StatusOr<TorchArchive> OpenArchive(const std::filesystem::path& path);

// INVALID_ARGUMENT naming a code file over kMaxArchiveCodeBytes, or libtorch's
// reason when the archive cannot be read ("PytorchStreamReader failed ...").
// Never throws.
Status CheckArchiveCode(const TorchArchive& archive);

// The largest code file read (the whole archive may be larger: its tensors
// are not read here).
inline constexpr size_t kMaxArchiveCodeBytes = size_t{256} << 20;

}  // namespace mm
