// Model warmup (Triton's `model_warmup`): synthetic requests run on a freshly
// loaded instance before it takes traffic, so the first real request does not
// pay for lazy allocation, kernel selection or JIT.
//
// Contract:
//  1. Runs on a loader thread, never on the request path; it blocks while the
//     instance executes.
//  2. Backend-agnostic: it only builds InferRequests from the config and calls
//     ModelInstance::Execute, so any backend gets warmup for free.
//  3. Deterministic: random_data is generated from a fixed seed, so a warmup
//     run is reproducible.
//  4. Keeps no state; safe to call concurrently on different instances.
#pragma once

#include <atomic>
#include <filesystem>

#include "backends/backend.h"
#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

// Runs every sample of config.model_warmup() on `instance`, each `count` times
// (0 = once), in order. `config` is the model's complete config; `model_dir` is
// <repo>/<model> (input_data_file names a file under <model_dir>/warmup/).
//
// A sample is validated and its data built in full before it executes. Its
// request carries one input per warmup input, in config order, with shape
// [batch_size] + dims for a batching model and dims otherwise, and requests no
// outputs (every output). Responses are discarded.
//
// The first failure is returned as a Status whose message names the model, the
// warmup sample and what was wrong, e.g.
//   "model 'm' warmup sample 's': input 'x': expected TYPE_FP32, got TYPE_INT32".
// Validation errors (including a missing or escaping input_data_file, and a
// sample over 64 MiB of input data) are INVALID_ARGUMENT; an execution failure
// keeps the instance's status code with the context prepended. Samples before
// the failing one have already run.
//
// `cancel` (may be null) is read before every execution: once true, warmup
// stops with UNAVAILABLE ("... cancelled: the server is stopping"), so that a
// long warmup never holds up shutdown for more than one execution.
Status RunWarmup(const inference::ModelConfig& config, const std::filesystem::path& model_dir,
                 ModelInstance& instance, const std::atomic<bool>* cancel = nullptr);

}  // namespace mm
