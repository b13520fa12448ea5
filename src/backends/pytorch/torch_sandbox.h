// The operators a tenant's TorchScript must never reach, taken out of
// libtorch's operator registry.
//
// Loading a module runs code (torch::jit::load calls the archive's
// `__setstate__` methods) and running it runs more; either may call any
// operator libtorch has. A few reach outside the model: aten::from_file reads
// (maps) any file the server can read, aten::save writes one,
// debugprims::load_tensor reads one, and the distributed families (c10d,
// _c10d_functional, symm_mem, rpc, fsdp, _dtensor) talk to other processes.
// Searching an archive's code for their names cannot be complete (Python's
// syntax has many spellings of one call); removing them from the registry
// is: TorchScript resolves every call through the registry when it compiles
// the archive's code, so a module naming one, however spelled, fails to load
// with "Unknown builtin op" before any of its code runs.
//
// Thread-safety: RemoveOutsideReachingOperators may be called from any thread,
// concurrently; the first call does the work, later ones remove what was
// registered since (libtorch_cuda.so, opened for a KIND_GPU instance,
// registers more).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mm {

// Removes every registered operator of the list above; returns how many.
int RemoveOutsideReachingOperators();

// What operator `qualified_name` ("aten::save") does outside the model
// ("writes a file on the server"), or nullopt for one the list does not hold.
std::optional<std::string_view> OutsideReach(std::string_view qualified_name);

// For libtorch's "Unknown builtin op: aten::save ..." about a removed
// operator: the operator's name; nullopt for any other error.
std::optional<std::string> RemovedOperatorIn(std::string_view error);

}  // namespace mm
