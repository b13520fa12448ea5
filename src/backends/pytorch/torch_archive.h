// A TorchScript archive's code, read before libtorch loads it. Loading runs
// code: torch::jit::load calls the `__setstate__` methods the archive holds,
// and they may call any operator. A few operators reach outside the model:
// torch.from_file reads any file the server can read, torch.save writes one,
// debugprims.load_tensor reads one, the distributed operators (c10d, rpc,
// symm_mem) talk to other processes. A tenant's model must do none of it, at
// load or at run time, so every code file of the archive (code/**.py) is
// searched for their names (spaces and line breaks removed, so that no
// spelling hides them) before anything of it runs. A name in a comment or a
// string refuses the module too: that costs a rename, missing one costs the
// server.
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

// INVALID_ARGUMENT naming the code file and the operator ("code/__torch__.py
// calls torch.from_file, which reads a file of the server's ..."), or libtorch's
// reason when the archive cannot be read ("PytorchStreamReader failed ...").
// Never throws.
Status CheckArchiveCode(const TorchArchive& archive);

// The largest code file read (the whole archive may be larger: its tensors
// are not read here).
inline constexpr size_t kMaxArchiveCodeBytes = size_t{256} << 20;

}  // namespace mm
