// FakeBackend: a Backend (backends/backend.h) for tests that loads a model
// from any folder whose version holds "model.bin", without a framework. Its
// instances are FakeInstances made by a factory the test gives (by default,
// y = x + version). WriteFakeModel lays out such a model in a repository.
//
// Thread-safety: Load may be called concurrently (backend.h); FailLoads and
// loads() from any thread.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/registry.h"
#include "core/thread_annotations.h"
#include "fake_instance.h"

namespace mm::fakes {

// The backend and platform name FakeBackend is registered under in tests.
inline constexpr char kFakePlatform[] = "fake";

class FakeBackend final : public Backend {
 public:
  // Makes instance `index` of the model `spec` loads.
  using InstanceFactory =
      std::function<std::unique_ptr<ModelInstance>(const LoadSpec& spec, size_t index)>;

  // Default factory: FakeInstances answering "y" = first input + version.
  FakeBackend();
  explicit FakeBackend(InstanceFactory factory);

  // NOT_FOUND naming the folder without model.bin; the status FailLoads set
  // for the model. Otherwise the user's config as the complete one, and one
  // instance per instance_group count (at least one); batch_as_list when the
  // config's parameter "batch_as_list" is "true".
  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override MM_EXCLUDES(mu_);

  // Every later load of `model` fails with `status` (OK: loads again).
  void FailLoads(const std::string& model, Status status) MM_EXCLUDES(mu_);
  int loads() const { return loads_.load(); }

 private:
  const InstanceFactory factory_;
  std::atomic<int> loads_{0};
  Mutex mu_;
  std::map<std::string, Status> fail_ MM_GUARDED_BY(mu_);
};

// Registers `backend` (not owned; it outlives the registry's use) as backend
// and platform "fake", whose model file is model.bin.
Status RegisterFakeBackend(BackendRegistry& registry, FakeBackend* backend);

// Writes <repo>/<name>/config.pbtxt (platform "fake", input x and output y:
// FP32 [4], then `extra_config`) and <repo>/<name>/<v>/model.bin for each
// version.
void WriteFakeModel(const std::filesystem::path& repo, const std::string& name,
                    const std::vector<int64_t>& versions, const std::string& extra_config = "");

}  // namespace mm::fakes
