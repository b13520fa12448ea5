// Pieces of WorkerInstance's worker handling (worker_instance.cc) that need
// none of its state: a batch's description and layout in a shared region,
// its outputs taken back as response tensors, and a few process and socket
// settings. Internal to src/isolation/.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/infer_request.h"
#include "isolation/memory_limit.h"
#include "isolation/shared_region.h"
#include "isolation/worker_process.h"
#include "isolation/worker_protocol.h"

namespace mm::isolation_internal {

// "1.5 s".
std::string Seconds(std::chrono::milliseconds d);

// Sets the nice value of every thread of process `pid` (a nice value is per
// thread on Linux). A refusal (raising priority needs CAP_SYS_NICE or
// RLIMIT_NICE) leaves the worker at its loading priority; logged once per
// server.
void ServeAt(pid_t pid, int nice, const std::string& label);

// Send and receive timeouts of a blocking socket (0: none).
void SetSocketTimeouts(int socket, std::chrono::milliseconds receive,
                       std::chrono::milliseconds send);

// Describes `requests` into `execute` (its buffers reused): ids, parameters,
// requested outputs, and each input laid out 64-byte aligned from offset 0;
// sets output_offset after the inputs. Returns the end of the inputs.
uint64_t DescribeBatch(std::span<const InferRequest* const> requests, ExecuteRequest& execute);

// Copies the requests' input bytes to where DescribeBatch laid them out.
void CopyInputs(std::span<const InferRequest* const> requests, const ExecuteRequest& execute,
                std::span<std::byte> region);

// A successful reply's results into the responses (outputs viewing the
// region, which they hold) and results; the stage times set.
void TakeOutputs(ExecuteReply& reply, const std::shared_ptr<SharedRegion>& region, int64_t input_ns,
                 int64_t output_ns, std::span<InferResponse* const> responses,
                 std::span<Status> results);

// How a worker's exit reads in errors and logs ("worker killed by signal 11
// (Segmentation fault)"): `killed_for` (why the server killed it) when set,
// else a memory limit hit (its mechanism named), a protocol refusal, or the
// exit itself.
std::string DescribeExit(const WorkerExit& exit, const CgroupGroup* cgroup,
                         const std::string& killed_for, uint64_t memory_limit);

}  // namespace mm::isolation_internal
