// The backend registry: Triton's `backend` and `platform` names, mapped to the
// Backend that serves them.
//
// Each backend registers once (BackendRegistration): its backend name
// ("onnxruntime"), its platform names ("onnxruntime_onnx"), the model file it
// loads when a config names neither ("model.onnx"), a factory, and optionally
// a config auto-complete hook. The server resolves every scanned model through
// the registry (Resolve), a worker process the name the server sends it (Find).
//
// Adding a backend: a folder with its target, and one line in that folder's
// CMakeLists.txt,
//
//   mmserve_backend(NAME onnxruntime REGISTER RegisterOnnxRuntimeBackend
//                   SOURCES ... DEPS ...)
//
// which builds the target mm_backend_<NAME> and adds a call to
// `Status mm::REGISTER(BackendRegistry&)` to the generated
// builtin_backends.cc (RegisterBuiltinBackends, builtin_backends.h). An
// explicit call, not a static initialiser: a registration object in a static
// library is dropped by the linker when nothing refers to it. A backend in
// src/backends/ sits behind its own option (MMSERVE_BACKEND_ONNXRUNTIME); one
// in tests/backends/ says TEST and is built in only with MMSERVE_TEST_BACKENDS.
//
// Test backends (BackendRegistration::test_only) are registered but hidden:
// resolving and listing ignore them until EnableTestBackends (the server's
// --enable-test-backends).
//
// Backend instances are created on first use (Resolve, Find) or all at once
// by CreateAll (but for lazy ones). The server calls CreateAll at start, so that a runtime that
// cannot start stops the server at once and a runtime's one-time set-up is
// not counted in the first model's measured footprint. A worker process holds
// one model and creates only that model's backend (a Python worker does not
// start ONNX Runtime).
//
// Thread-safety: Register and EnableTestBackends happen before anything else
// and are not concurrent with any call. Resolve, Find, CreateAll and
// Available may then run concurrently; creating one backend blocks only the
// callers that want that backend.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"
#include "core/status.h"
#include "core/thread_annotations.h"
#include "model_config.pb.h"
#include "repository/repository.h"

namespace mm {

// A backend's settings: Triton's --backend-config=<backend>,<key>=<value>,
// given to the backend's factory. Each backend documents its keys and refuses
// (in its factory) a key it does not know or a value it cannot use.
using BackendSettings = std::map<std::string, std::string, std::less<>>;

struct BackendRegistration {
  // Triton's `backend` name, unique in the registry ("onnxruntime").
  std::string name;
  // Triton's `platform` names this backend serves ("onnxruntime_onnx"); may be
  // empty (Triton's Python backend has none).
  std::vector<std::string> platforms;
  // The file in a version folder that says a model is this backend's when its
  // config names neither backend nor platform ("model.onnx"). Empty: the
  // backend needs no file, and a config must name it.
  std::string default_model_file;
  // Creates the backend with its settings (Configure; empty when none were
  // given); called once, when it is first needed. An error (the runtime
  // cannot start, a bad setting) is returned to whoever needed it and the
  // next use tries again.
  std::function<StatusOr<std::unique_ptr<Backend>>(const BackendSettings&)> create;
  // Optional: completes a config from the model's files without loading it
  // (Triton's auto-complete), for callers that need a model's config before
  // or without a load. Empty: the backend completes the config in Load
  // (backend.h, contract 2), which every backend must do in any case.
  std::function<StatusOr<inference::ModelConfig>(const LoadSpec& spec)> auto_complete;
  // Whether the backend runs models only in worker processes (Python: an
  // interpreter per model, whose crash, leak or hang must stay in its
  // process). The server then loads every model of this backend through
  // process isolation, whatever mmserve.isolation says, and refuses the load
  // when it has no worker command.
  bool process_only = false;
  // Created on first use only, never by CreateAll: for a runtime too heavy
  // to load into every server and worker process that has no model of its
  // kind (libtorch adds about 110 MB and 0.15 s to a process). Its errors
  // then surface at the first load of such a model, as that model's reason.
  bool lazy = false;
  // Whether every model this backend loads reports its exact size
  // (LoadedModel::model_bytes), so the lifecycle need not probe the heap
  // around its loads (glibc's mallinfo2 walks the free lists: a cost that
  // grows with the models loaded).
  bool reports_size = false;
  // Whether the backend's models always run in the server process, whatever
  // the server's default isolation: an ensemble only dispatches to other
  // models, which have their own isolation. mmserve.isolation PROCESS on
  // such a model is a load error.
  bool in_process_only = false;
  // A test-only backend (tests/backends/): hidden until EnableTestBackends.
  bool test_only = false;
  // For a test backend: what it does that no production backend may, for the
  // warning the server logs when they are enabled ("crashes on command").
  std::string summary;
};

// A backend ready to load: what Resolve and Find return.
struct ResolvedBackend {
  const BackendRegistration* registration = nullptr;  // owned by the registry
  // The name a load carries (LoadSpec::platform) and a worker process finds
  // the backend by: its first platform, else its backend name.
  std::string_view platform;
  Backend* backend = nullptr;  // owned by the registry, created on first use
};

// Wraps a backend owned elsewhere (a test's, one shared by two registries)
// for BackendRegistration::create. `backend` must outlive what is created.
std::function<StatusOr<std::unique_ptr<Backend>>(const BackendSettings&)> BorrowBackend(
    Backend* backend);

class BackendRegistry {
 public:
  BackendRegistry() = default;
  BackendRegistry(const BackendRegistry&) = delete;
  BackendRegistry& operator=(const BackendRegistry&) = delete;

  // Adds a backend. INVALID_ARGUMENT when the name is empty, there is no
  // factory, or a name or platform is already taken (by any backend, as a
  // name or as a platform: a name means one backend).
  Status Register(BackendRegistration registration);

  // Sets the settings `backend` (a backend name) is created with, replacing
  // any given before; before the backend is first used. INVALID_ARGUMENT for
  // a name no backend has (listing those there are).
  Status Configure(std::string_view backend, BackendSettings settings);

  // Makes the test backends visible. Returns their summaries for the server's
  // warning ("platform 'mmserve_chaos' crashes ..."); FAILED_PRECONDITION when
  // this build has none.
  StatusOr<std::string> EnableTestBackends();

  // The backend that serves `source`:
  //  - backend and/or platform set in its config: the backend they name; when
  //    both are set they must name the same backend;
  //  - neither: the backend whose default model file (or the config's
  //    default_model_filename) is in a version folder.
  // INVALID_ARGUMENT otherwise, naming what the config said and listing the
  // backends this server has ("platform 'x' is not supported by this server;
  // ..."); or the factory's error when the backend could not be created.
  StatusOr<ResolvedBackend> Resolve(const ModelSource& source);

  // The backend a name (backend or platform) names, as a worker process gets
  // it from the server. INVALID_ARGUMENT listing the backends when unknown.
  StatusOr<ResolvedBackend> Find(std::string_view name);

  // Creates every visible backend not yet created, except lazy ones; the
  // first error.
  Status CreateAll();

  // The visible backends, for messages: "onnxruntime (platform
  // onnxruntime_onnx), mmserve_chaos (platform mmserve_chaos)".
  std::string Available() const;

 private:
  struct Entry {
    explicit Entry(BackendRegistration r) : registration(std::move(r)) {}
    const BackendRegistration registration;
    BackendSettings settings;  // set by Configure, before any use
    Mutex mu;                  // held while the backend is created
    std::unique_ptr<Backend> backend MM_GUARDED_BY(mu);
  };

  Entry* Lookup(const std::map<std::string, Entry*, std::less<>>& names,
                std::string_view name) const;
  StatusOr<Entry*> ByFiles(const ModelSource& source) const;
  StatusOr<ResolvedBackend> Ready(Entry& entry);
  Status Unsupported(std::string_view kind, std::string_view name) const;

  bool test_backends_enabled_ = false;
  std::vector<std::unique_ptr<Entry>> entries_;  // in registration order
  std::map<std::string, Entry*, std::less<>> by_name_;
  std::map<std::string, Entry*, std::less<>> by_platform_;
};

}  // namespace mm
