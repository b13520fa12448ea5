// ModelManager with a fake backend whose load time (a gate), footprint and
// failure each test controls, and a memory probe that follows the fake's
// allocations: every transition, single flight, LRU order, pinning, budget
// errors, version policies, swaps and poll mode, without timing.
#include "lifecycle/model_manager.h"

#include "core/path_key.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "fake_instance.h"
#include "gate.h"
#include "local_repositories.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

// A latch a test opens when it wants a blocked load or execution to proceed.
struct FakeWorld {
  // The instances' memory (what the probe reports) and executions.
  fakes::FakeCounters counters;
  std::atomic<int> loads{0};
  std::mutex mu;
  std::map<std::string, Status> fail;                       // "name/version" -> load error
  std::map<std::string, std::shared_ptr<Gate>> load_gates;  // "name" -> held loads
  std::shared_ptr<Gate> exec_gate;                          // held executions
  std::map<std::string, std::string> loaded_by;             // name -> backend tag, platform
  std::map<std::string, std::function<void(const Status&)>> health;  // name -> on_health

  std::shared_ptr<Gate> LoadGate(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = load_gates.find(name);
    return it == load_gates.end() ? nullptr : it->second;
  }
};

// An instance that adds the version number to the input (its first four
// FP32 values) and holds `bytes` of the world's memory until destroyed; an
// execution waits at the world's exec_gate, if any (but "warmup-free" ones).
std::unique_ptr<ModelInstance> MakeInstance(FakeWorld* world, int64_t version, uint64_t bytes) {
  auto handler = [world, version](const InferRequest& request, InferResponse& response) {
    std::shared_ptr<Gate> gate;
    {
      std::lock_guard<std::mutex> lock(world->mu);
      gate = world->exec_gate;
    }
    if (gate && request.id != "warmup-free") gate->Wait();
    auto buffer = std::make_shared<std::vector<float>>(4, static_cast<float>(version));
    if (!request.inputs.empty()) {
      auto in = request.inputs[0].as<float>();
      for (size_t i = 0; i < in.size() && i < 4; ++i) (*buffer)[i] += in[i];
    }
    Tensor out;
    out.name = "y";
    out.dtype = DataType::kFp32;
    out.shape = {4};
    out.data = std::as_bytes(std::span<const float>(*buffer));
    out.owner = buffer;
    response.outputs.push_back(std::move(out));
    return OkStatus();
  };
  return std::make_unique<fakes::FakeInstance>(fakes::FakeInstance::Options{
      .counters = &world->counters, .bytes = bytes, .handler = std::move(handler)});
}

class FakeBackend : public Backend {
 public:
  explicit FakeBackend(FakeWorld* world, std::string tag = "direct")
      : world_(world), tag_(std::move(tag)) {}
  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override {
    ++world_->loads;
    {
      std::lock_guard<std::mutex> lock(world_->mu);
      world_->loaded_by[spec.model_name] = tag_ + "/" + spec.platform;
      world_->health[spec.model_name] = spec.on_health;
    }
    if (auto gate = world_->LoadGate(spec.model_name)) gate->Wait();
    {
      std::lock_guard<std::mutex> lock(world_->mu);
      auto it = world_->fail.find(spec.model_name + "/" + std::to_string(spec.version));
      if (it != world_->fail.end()) return it->second;
    }
    if (!fs::exists(spec.version_dir / "model.bin")) {
      return NotFound("model '" + spec.model_name + "': no model.bin in " +
                      spec.version_dir.string());
    }
    auto loaded = std::make_unique<LoadedModel>();
    loaded->config = spec.config;
    // The model's "size": a parameter in its config, 100 by default.
    uint64_t bytes = 100;
    auto p = spec.config.parameters().find("fake_bytes");
    if (p != spec.config.parameters().end()) bytes = std::stoull(p->second.string_value());
    loaded->instances.push_back(MakeInstance(world_, spec.version, bytes));
    // The size its "library" reports (LoadedModel::model_bytes), when set.
    auto exact = spec.config.parameters().find("fake_model_bytes");
    if (exact != spec.config.parameters().end()) {
      loaded->model_bytes = std::stoull(exact->second.string_value());
    }
    return loaded;
  }

 private:
  FakeWorld* world_;
  const std::string tag_;
};

// A repository that delegates to a local one and counts how it is read, so
// that a test sees how much a poll scanned. Its watch is the local one's
// (inotify), none (`watch` false), or, when `scripted` is set, that one.
class CountingRepository final : public ModelRepository {
 public:
  struct Counts {
    std::atomic<int> lists{0};
    std::atomic<int> scans{0};
    bool watch = true;
    bool fail_list = false;
    RepositoryWatch* scripted = nullptr;  // not owned
  };
  CountingRepository(std::shared_ptr<ModelRepository> inner, Counts* counts)
      : inner_(std::move(inner)), counts_(counts) {}
  const std::string& key() const override { return inner_->key(); }
  StatusOr<std::vector<ModelSource>> List() const override {
    ++counts_->lists;
    if (counts_->fail_list) return FailedPrecondition("listing fails in this test");
    return inner_->List();
  }
  StatusOr<ModelSource> Scan(std::string_view name) const override {
    ++counts_->scans;
    return inner_->Scan(name);
  }
  StatusOr<LocalModelVersion> Fetch(const ModelSource& source, int64_t version,
                                    const FetchProgress& progress) override {
    return inner_->Fetch(source, version, progress);
  }
  StatusOr<std::unique_ptr<RepositoryWatch>> Watch() const override {
    if (!counts_->watch) return Unimplemented("no watch in this test");
    if (counts_->scripted == nullptr) return inner_->Watch();
    struct Borrowed final : RepositoryWatch {
      explicit Borrowed(RepositoryWatch* w) : w(w) {}
      Changes Take() override { return w->Take(); }
      RepositoryWatch* w;
    };
    return std::unique_ptr<RepositoryWatch>(std::make_unique<Borrowed>(counts_->scripted));
  }

 private:
  const std::shared_ptr<ModelRepository> inner_;
  Counts* const counts_;
};

// A watch that answers what the test tells it to.
class ScriptedWatch final : public RepositoryWatch {
 public:
  Changes Take() override {
    std::lock_guard<std::mutex> lock(mu_);
    Changes out = std::move(next_);
    next_ = {};
    return out;
  }
  void Next(Changes changes) {
    std::lock_guard<std::mutex> lock(mu_);
    next_ = std::move(changes);
  }

 private:
  std::mutex mu_;
  Changes next_;
};

class ModelManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = fs::temp_directory_path() /
            ("mm_manager_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(repo_);
    fs::create_directories(repo_);
    repo_b_ = repo_.string() + "_b";
    fs::remove_all(repo_b_);
    ASSERT_TRUE(
        backends_
            .Register({.name = "fake", .platforms = {"fake"}, .create = BorrowBackend(&backend_)})
            .ok());
    // The same fake, registered as a backend that reports every model's size.
    ASSERT_TRUE(backends_
                    .Register({.name = "sized",
                               .platforms = {"sized"},
                               .create = BorrowBackend(&backend_),
                               .reports_size = true})
                    .ok());
  }
  void TearDown() override {
    manager_.reset();
    pool_.Shutdown();
    fs::remove_all(repo_);
    fs::remove_all(repo_b_);
  }

  // A fake model: config with one FP32[4] input and output.
  void AddModel(const std::string& name, std::vector<int64_t> versions, std::string extra = "",
                uint64_t bytes = 100) {
    AddModelIn(repo_, name, std::move(versions), std::move(extra), bytes);
  }
  void AddModelIn(const fs::path& repo, const std::string& name, std::vector<int64_t> versions,
                  std::string extra = "", uint64_t bytes = 100) {
    fs::create_directories(repo / name);
    std::ofstream(repo / name / "config.pbtxt")
        << "name: \"" << name << "\"\nplatform: \"fake\"\n"
        << "input { name: \"x\" data_type: TYPE_FP32 dims: [ 4 ] }\n"
        << "output { name: \"y\" data_type: TYPE_FP32 dims: [ 4 ] }\n"
        << "parameters { key: \"fake_bytes\" value { string_value: \"" << bytes << "\" } }\n"
        << extra;
    for (int64_t v : versions) {
      fs::create_directories(repo / name / std::to_string(v));
      std::ofstream(repo / name / std::to_string(v) / "model.bin") << "weights";
    }
  }
  void AddVersion(const std::string& name, int64_t v, const std::string& content = "weights") {
    fs::create_directories(repo_ / name / std::to_string(v));
    std::ofstream(repo_ / name / std::to_string(v) / "model.bin") << content;
  }
  // repo_ belongs to tenant "a", repo_b_ (when it exists) to tenant "b".
  void SetOwners(ModelOwner a, ModelOwner b) {
    a.tenant = "a";
    b.tenant = "b";
    owners_ = {{PathKey(repo_), a}};
    if (fs::exists(repo_b_)) owners_[PathKey(repo_b_)] = b;
  }

  void Create(ModelControlMode mode, uint64_t budget = 0, std::vector<std::string> startup = {},
              size_t load_threads = 2, EvictionPolicy eviction = EvictionPolicy::kLfu,
              Backend* process_backend = nullptr, bool default_process = false) {
    ModelManager::Options o;
    o.process_backend = process_backend;
    o.default_process_isolation = default_process;
    o.repositories = LocalRepositories({repo_});
    if (fs::exists(repo_b_)) o.repositories.push_back(LocalRepositoryAt(repo_b_));
    if (counted_) {
      o.repositories[0] = std::make_shared<CountingRepository>(o.repositories[0], &counts_);
    }
    if (!owners_.empty()) {
      o.owner_of = [owners = owners_](std::string_view key) {
        auto it = owners.find(std::string(key));
        return it != owners.end() ? it->second : ModelOwner{};
      };
    }
    o.mode = mode;
    o.startup_models = std::move(startup);
    o.load_on_demand = mode == ModelControlMode::kExplicit;
    o.memory_budget_bytes = budget;
    o.eviction = eviction;
    o.load_threads = load_threads;
    o.slots = &pool_;
    o.backends = &backends_;
    o.memory_probe = [this] {
      probes_.fetch_add(1);
      return world_.counters.memory.load();
    };
    auto m = ModelManager::Create(std::move(o));
    ASSERT_TRUE(m.ok()) << m.status().message();
    manager_ = std::move(*m);
    static_cast<void>(manager_->Start());  // a failed start-up load is in the index
  }

  Status LoadSync(const std::string& name, std::optional<std::string> config = std::nullopt) {
    std::promise<Status> p;
    manager_->Load(name, std::move(config), [&](Status s) { p.set_value(s); });
    return p.get_future().get();
  }
  Status UnloadSync(const std::string& name) {
    std::promise<Status> p;
    manager_->Unload(name, [&](Status s) { p.set_value(s); });
    return p.get_future().get();
  }
  StatusOr<ModelHandle> GetAfterLoadSync(const std::string& name, const std::string& version = "") {
    std::promise<StatusOr<ModelHandle>> p;
    if (!manager_->GetAfterLoad(name, version,
                                [&](StatusOr<ModelHandle> h) { p.set_value(std::move(h)); })) {
      return manager_->Get(name, version);
    }
    return p.get_future().get();
  }
  // Waits until `name` version `v` reaches `state`: a replaced version drains
  // and unloads after the load that replaced it has answered.
  void WaitForState(const std::string& name, int64_t v, ModelState state) {
    const std::string key = name + "/" + std::to_string(v);
    while (IndexMap()[key].state != state) std::this_thread::yield();
  }
  std::map<std::string, ModelVersionStatus> IndexMap() {
    std::map<std::string, ModelVersionStatus> out;
    for (auto& s : manager_->Index()) out[s.name + "/" + std::to_string(s.version)] = s;
    return out;
  }
  // Runs one request on `model` and returns its first output value.
  float Run(const ModelHandle& model) {
    std::promise<StatusOr<std::unique_ptr<InferResponse>>> p;
    auto req = std::make_unique<InferRequest>();
    req->model_name = model->name;
    model->scheduler->Enqueue(std::move(req), [&](StatusOr<std::unique_ptr<InferResponse>> r) {
      p.set_value(std::move(r));
    });
    auto r = p.get_future().get();
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? (*r)->outputs[0].as<float>()[0] : -1;
  }

  fs::path repo_;
  fs::path repo_b_;
  std::map<std::string, ModelOwner> owners_;  // by PathKey
  bool counted_ = false;                      // repo_ is read through a CountingRepository
  std::atomic<int> probes_{0};                // calls of the memory probe
  CountingRepository::Counts counts_;
  FakeWorld world_;
  FakeBackend backend_{&world_};
  BackendRegistry backends_;
  ExecutionSlots pool_{ExecutionSlotsOptions{.slots = 2}};
  std::unique_ptr<ModelManager> manager_;
};

TEST_F(ModelManagerTest, NoneModeLoadsEveryModelAtStartAndListsFailures) {
  AddModel("a", {1});
  AddModel("b", {1, 2});
  AddModel("broken", {1});
  world_.fail["broken/1"] = InvalidArgument("model 'broken': corrupt file");
  fs::create_directories(repo_ / "noversion");
  std::ofstream(repo_ / "noversion" / "config.pbtxt") << "platform: \"fake\"\n";
  Create(ModelControlMode::kNone);

  ASSERT_TRUE(manager_->Get("a", "").ok());
  auto b = manager_->Get("b", "");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->version, 2);  // default policy: latest 1
  auto index = IndexMap();
  EXPECT_EQ(index["a/1"].state, ModelState::kReady);
  EXPECT_EQ(index["broken/1"].state, ModelState::kUnavailable);
  EXPECT_NE(index["broken/1"].reason.find("corrupt file"), std::string::npos);
  EXPECT_NE(index["noversion/0"].reason.find("no version folder"), std::string::npos);
  // Ready(): the READY versions (a/1 and b/2), from the snapshot.
  std::set<std::string> ready;
  for (const ModelHandle& h : manager_->Ready()) {
    ready.insert(h->name + "/" + std::to_string(h->version));
  }
  EXPECT_EQ(ready, (std::set<std::string>{"a/1", "b/2"}));
  // Statistics: a/1 loaded once; broken/1 failed once.
  EXPECT_EQ(manager_->stats().Find("a", 1)->Read().loads, 1u);
  EXPECT_EQ(manager_->stats().Find("broken", 1)->Read().load_failures, 1u);
  EXPECT_EQ(manager_->stats().Find("b", 1), nullptr);  // not selected: never tried
  auto missing = manager_->Get("nope", "");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  auto broken = manager_->Get("broken", "1");
  EXPECT_EQ(broken.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(broken.status().message().find("corrupt file"), std::string::npos);
  // None mode takes no repository commands.
  EXPECT_EQ(LoadSync("a").code(), StatusCode::kUnavailable);
  EXPECT_EQ(UnloadSync("a").code(), StatusCode::kUnavailable);
}

TEST_F(ModelManagerTest, ExplicitModeLoadsStartupModelsThenOnCommand) {
  AddModel("a", {1});
  AddModel("b", {1});
  Create(ModelControlMode::kExplicit, 0, {"a"});
  EXPECT_TRUE(manager_->Get("a", "").ok());
  EXPECT_EQ(manager_->Get("b", "").status().code(), StatusCode::kUnavailable);
  auto index = IndexMap();
  EXPECT_EQ(index["b/0"].reason, "not loaded");

  ASSERT_TRUE(LoadSync("b").ok());
  auto b = manager_->Get("b", "1");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Run(*b), 1.0f);

  ASSERT_TRUE(UnloadSync("b").ok());
  EXPECT_EQ(manager_->Get("b", "").status().code(), StatusCode::kUnavailable);
  index = IndexMap();
  EXPECT_EQ(index["b/1"].state, ModelState::kUnavailable);
  EXPECT_EQ(index["b/1"].reason, "unloaded");
  // The handle taken before the unload still runs: nothing is destroyed under it.
  EXPECT_EQ(Run(*b), 1.0f);
  b = Cancelled("released");
  // Only "a" is left once the execution thread lets go of b's scheduler.
  while (world_.counters.memory.load() != 100) std::this_thread::yield();
}

TEST_F(ModelManagerTest, CreateRefusesOptionsThatCannotWork) {
  auto create = [&](auto change) {
    ModelManager::Options o;
    o.repositories = LocalRepositories({repo_});
    o.slots = &pool_;
    o.backends = &backends_;
    change(o);
    auto m = ModelManager::Create(std::move(o));
    return m.ok() ? OkStatus() : m.status();
  };
  EXPECT_TRUE(create([](ModelManager::Options&) {}).ok());
  EXPECT_EQ(create([](ModelManager::Options& o) { o.backends = nullptr; }).message(),
            "ModelManager needs a backend registry");
  Status s = create([](ModelManager::Options& o) { o.repositories.clear(); });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "no model repository given: pass --model-repository PATH");
  s = create([](ModelManager::Options& o) { o.repositories.push_back(nullptr); });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = create([](ModelManager::Options& o) { o.load_on_demand = true; });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "--load-on-demand needs --model-control-mode explicit");
  s = create([](ModelManager::Options& o) { o.startup_models = {"m"}; });
  EXPECT_EQ(s.message(), "--load-model needs --model-control-mode explicit");
  EXPECT_TRUE(create([](ModelManager::Options& o) {
                o.mode = ModelControlMode::kExplicit;
                o.load_on_demand = true;
                o.startup_models = {"m"};
              }).ok());
}

TEST_F(ModelManagerTest, BadNamesAndUnknownModelsAreClearErrors) {
  AddModel("a", {1});
  Create(ModelControlMode::kExplicit);
  for (std::string bad :
       std::vector<std::string>{"", "..", ".", "a/b", "../a", std::string("a\0b", 3), "x\n"}) {
    Status s = LoadSync(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(LoadSync(std::string(300, 'x')).code(), StatusCode::kInvalidArgument);
  Status s = LoadSync("nope");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("not in any model repository"), std::string::npos);
  EXPECT_EQ(UnloadSync("nope").code(), StatusCode::kNotFound);
  // A bad config override changes nothing.
  EXPECT_EQ(LoadSync("a", std::string("{not json")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadSync("a", std::string(R"({"name": "other"})")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(manager_->Get("a", "").ok());
}

// Issue 17: a config is checked in full, bounds and server caps, before the
// backend sees it; an override never drops the repository's mmserve block.
TEST_F(ModelManagerTest, ConfigsOverBoundsOrCapsNeverReachTheBackend) {
  AddModel("a", {1}, "mmserve { memory_footprint_bytes: 5000 pinned: true }\n");
  AddModel("wide", {1}, "instance_group [ { count: 17 } ]\n");
  AddModel("levels", {1}, "max_batch_size: 8 dynamic_batching { priority_levels: 5000000 }\n");
  Create(ModelControlMode::kExplicit);
  auto expect_refused = [&](Status s, const std::string& want) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
  };
  expect_refused(
      LoadSync("a", std::string(R"({"platform": "fake", "max_batch_size": 8,
          "dynamic_batching": {"priority_levels": 4294967295}})")),
      "model 'a': the 'config' parameter: dynamic_batching.priority_levels is 4294967295; "
      "expected at most 1000");
  expect_refused(LoadSync("a", std::string(R"({"platform": "fake",
          "instance_group": [{"count": 4}],
          "parameters": {"intra_op_thread_count": {"string_value": "200"}}})")),
                 "= 804 threads; this server allows at most 64 per model "
                 "(--max-threads-per-model)");
  expect_refused(LoadSync("a", std::string(R"({"platform": "fake",
          "model_warmup": [{"name": "w", "batch_size": 1, "count": 4294967295}]})")),
                 "model_warmup[0].count is 4294967295; expected at most 1000");
  EXPECT_EQ(world_.loads.load(), 0);
  // Repository configs over a bound or a cap: UNAVAILABLE with the reason.
  expect_refused(LoadSync("wide"), "(--max-instances-per-model)");
  expect_refused(LoadSync("levels"), "priority_levels is 5000000; expected at most 1000");
  EXPECT_EQ(world_.loads.load(), 0);
  auto index = IndexMap();
  EXPECT_EQ(index["wide/0"].state, ModelState::kUnavailable);
  EXPECT_NE(index["wide/0"].reason.find("--max-instances-per-model"), std::string::npos)
      << index["wide/0"].reason;
  EXPECT_NE(index["levels/0"].reason.find("priority_levels is 5000000"), std::string::npos)
      << index["levels/0"].reason;

  // An override without an mmserve block keeps config.pbtxt's ...
  ASSERT_TRUE(LoadSync("a", std::string(R"({"platform": "fake"})")).ok());
  auto a = manager_->Get("a", "");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE((*a)->pinned);
  EXPECT_EQ((*a)->footprint_bytes, 5000u);
  // The same override again after config.pbtxt's block changed: the new block.
  AddModel("a", {1}, "mmserve { memory_footprint_bytes: 6000 }\n");
  ASSERT_TRUE(LoadSync("a", std::string(R"({"platform": "fake"})")).ok());
  a = manager_->Get("a", "");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE((*a)->pinned);
  EXPECT_EQ((*a)->footprint_bytes, 6000u);
  // ... and one with a block (an admin's) replaces it.
  ASSERT_TRUE(LoadSync("a", std::string(R"({"platform": "fake", "mmserve": {}})")).ok());
  a = manager_->Get("a", "");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE((*a)->pinned);
  EXPECT_EQ((*a)->config.mmserve().memory_footprint_bytes(), 0u);
}

TEST_F(ModelManagerTest, ConcurrentOnDemandRequestsShareOneLoad) {
  AddModel("a", {1});
  Create(ModelControlMode::kExplicit);
  auto gate = std::make_shared<Gate>();
  world_.load_gates["a"] = gate;
  constexpr int kWaiters = 16;
  std::vector<std::promise<StatusOr<ModelHandle>>> results(kWaiters);
  for (int i = 0; i < kWaiters; ++i) {
    ASSERT_TRUE(manager_->GetAfterLoad(
        "a", "", [&results, i](StatusOr<ModelHandle> h) { results[i].set_value(std::move(h)); }));
  }
  gate->AwaitWaiters(1);
  EXPECT_EQ(IndexMap()["a/1"].state, ModelState::kLoading);
  gate->Open();
  const ServableModel* first = nullptr;
  for (auto& r : results) {
    auto h = r.get_future().get();
    ASSERT_TRUE(h.ok()) << h.status().message();
    if (!first) first = h->get();
    EXPECT_EQ(h->get(), first);
  }
  EXPECT_EQ(world_.loads.load(), 1);
}

TEST_F(ModelManagerTest, AFailedOnDemandLoadFailsEveryWaiterWithItsError) {
  AddModel("a", {1});
  Create(ModelControlMode::kExplicit);
  auto gate = std::make_shared<Gate>();
  world_.load_gates["a"] = gate;
  world_.fail["a/1"] = InvalidArgument("model 'a': truncated model file");
  std::vector<std::promise<StatusOr<ModelHandle>>> results(4);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(manager_->GetAfterLoad(
        "a", "", [&results, i](StatusOr<ModelHandle> h) { results[i].set_value(std::move(h)); }));
  }
  gate->Open();
  for (auto& r : results) {
    auto h = r.get_future().get();
    ASSERT_FALSE(h.ok());
    EXPECT_NE(h.status().message().find("truncated model file"), std::string::npos);
  }
  EXPECT_EQ(world_.loads.load(), 1);
  // A deterministic failure is not retried by every later request.
  EXPECT_FALSE(manager_->GetAfterLoad("a", "", [](StatusOr<ModelHandle>) {}));
  // An explicit load tries again.
  world_.fail.clear();
  EXPECT_TRUE(LoadSync("a").ok());
}

TEST_F(ModelManagerTest, OnDemandDoesNotApplyToUnknownModelsOrOtherModes) {
  AddModel("a", {1});
  Create(ModelControlMode::kExplicit);
  EXPECT_FALSE(manager_->GetAfterLoad("nope", "", [](StatusOr<ModelHandle>) {}));
  EXPECT_FALSE(manager_->GetAfterLoad("../a", "", [](StatusOr<ModelHandle>) {}));
  auto a = GetAfterLoadSync("a");
  EXPECT_TRUE(a.ok());
  // A loaded model's missing version is NOT_FOUND at once: no rescan, no load.
  const int loads = world_.loads.load();
  EXPECT_FALSE(manager_->GetAfterLoad("a", "7", [](StatusOr<ModelHandle>) {}));
  EXPECT_EQ(manager_->Get("a", "7").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(world_.loads.load(), loads);
}

// A request whose Acquire failed just before an on-demand load finished
// reaches GetAfterLoad with the model READY: it is answered from the
// snapshot at once (no second load), not refused with its stale error.
TEST_F(ModelManagerTest, OnDemandAfterTheLoadFinishedAnswersAtOnce) {
  AddModel("a", {1});
  Create(ModelControlMode::kExplicit);
  ASSERT_TRUE(GetAfterLoadSync("a").ok());
  const int loads = world_.loads.load();
  bool answered = false;
  EXPECT_TRUE(manager_->GetAfterLoad("a", "", [&](StatusOr<ModelHandle> got) {
    answered = true;
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ((*got)->version, 1);
  }));
  EXPECT_TRUE(answered);  // on this thread, before GetAfterLoad returned
  EXPECT_EQ(world_.loads.load(), loads);
}

TEST_F(ModelManagerTest, EvictsIdleModelsLeastRecentlyUsedFirst) {
  for (auto name : {"a", "b", "c", "d"}) AddModel(name, {1});
  Create(ModelControlMode::kExplicit, /*budget=*/300, {}, 2, EvictionPolicy::kLru);
  ASSERT_TRUE(LoadSync("a").ok());
  ASSERT_TRUE(LoadSync("b").ok());
  ASSERT_TRUE(LoadSync("c").ok());
  EXPECT_EQ(manager_->memory().loaded, 300u);
  // Use a after b: b is now the least recently used. (Get, unlike Acquire,
  // counts no use: metadata and health checks do not keep a model.)
  ASSERT_TRUE(manager_->Acquire("b", "").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1));  // distinct clock readings
  ASSERT_TRUE(manager_->Acquire("a", "").ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(manager_->Get("b", "").ok());
  ASSERT_TRUE(manager_->Acquire("c", "").ok());
  ASSERT_TRUE(LoadSync("d").ok());
  auto index = IndexMap();
  EXPECT_EQ(index["b/1"].state, ModelState::kUnavailable);
  EXPECT_NE(index["b/1"].reason.find("evicted"), std::string::npos);
  EXPECT_EQ(index["a/1"].state, ModelState::kReady);
  EXPECT_EQ(index["c/1"].state, ModelState::kReady);
  EXPECT_EQ(index["d/1"].state, ModelState::kReady);
  EXPECT_EQ(manager_->memory().loaded, 300u);
  EXPECT_EQ(world_.counters.memory.load(), 300u);
  // b comes back on demand, evicting the least recently used again (d was
  // loaded last but a, c, d were all used after... a is oldest now).
  auto b = GetAfterLoadSync("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(IndexMap()["a/1"].state, ModelState::kUnavailable);
}

TEST_F(ModelManagerTest, AModelUnloadedAfterLeavingTheDiskComesBackAndIsPlannedAsAnyOther) {
  // The memory account keeps a pointer to each held model's table entry: the
  // entry stays while the model holds a copy, and a model that comes back is
  // planned from the entry it has then (ASan would report a plan that read a
  // forgotten one).
  for (auto name : {"a", "b", "c"}) AddModel(name, {1});
  Create(ModelControlMode::kExplicit, /*budget=*/200, {}, 2, EvictionPolicy::kLru);
  ASSERT_TRUE(LoadSync("a").ok());
  ASSERT_TRUE(LoadSync("b").ok());
  fs::remove_all(repo_ / "a");
  EXPECT_EQ(IndexMap()["a/1"].state, ModelState::kReady);  // left the disk, still held
  ASSERT_TRUE(UnloadSync("a").ok());
  EXPECT_EQ(manager_->memory().loaded, 100u);

  AddModel("a", {1});
  ASSERT_TRUE(LoadSync("a").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1));  // distinct clock readings
  ASSERT_TRUE(manager_->Acquire("a", "").ok());
  ASSERT_TRUE(LoadSync("c").ok());  // evicts b, the least recently used
  auto index = IndexMap();
  EXPECT_EQ(index["a/1"].state, ModelState::kReady);
  EXPECT_EQ(index["b/1"].state, ModelState::kUnavailable);
  EXPECT_NE(index["b/1"].reason.find("evicted"), std::string::npos);
  EXPECT_EQ(index["c/1"].state, ModelState::kReady);
  EXPECT_EQ(manager_->memory().loaded, 200u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(manager_->Acquire("c", "").ok());
  ASSERT_TRUE(LoadSync("b").ok());  // and a, now the least recently used, makes room
  EXPECT_EQ(IndexMap()["a/1"].state, ModelState::kUnavailable);
}

TEST_F(ModelManagerTest, ARescanKeepsTheEntryOfAModelWhoseCopyStillDrains) {
  // Unloaded while a request runs, then removed from the disk: the index's
  // rescan must not forget the model before its copy is dropped (the memory
  // account still points at its entry; ASan reports the use after free).
  AddModel("m", {1});
  AddModel("other", {1});
  Create(ModelControlMode::kExplicit, /*budget=*/200);
  ASSERT_TRUE(LoadSync("m").ok());  // one at a time: each footprint measured (100)
  ASSERT_TRUE(LoadSync("other").ok());
  auto gate = std::make_shared<Gate>();
  {
    std::lock_guard<std::mutex> lock(world_.mu);
    world_.exec_gate = gate;
  }
  std::promise<float> in_flight;
  {
    auto v1 = manager_->Get("m", "");
    ASSERT_TRUE(v1.ok());
    auto req = std::make_unique<InferRequest>();
    req->model_name = "m";
    (*v1)->scheduler->Enqueue(std::move(req), [&](StatusOr<std::unique_ptr<InferResponse>> r) {
      in_flight.set_value(r.ok() ? (*r)->outputs[0].as<float>()[0] : -1);
    });
  }
  gate->AwaitWaiters(1);
  std::promise<Status> unloaded;
  manager_->Unload("m", [&](Status s) { unloaded.set_value(s); });
  WaitForState("m", 1, ModelState::kUnloading);
  fs::remove_all(repo_ / "m");
  (void)IndexMap();  // the rescan sees m gone while its copy drains
  gate->Open();
  EXPECT_EQ(in_flight.get_future().get(), 1.0f);
  EXPECT_TRUE(unloaded.get_future().get().ok());
  {
    std::lock_guard<std::mutex> lock(world_.mu);
    world_.exec_gate = nullptr;
  }
  EXPECT_EQ(manager_->memory().loaded, 100u);
  AddModel("c", {1});
  AddModel("d", {1});
  ASSERT_TRUE(LoadSync("c").ok());
  ASSERT_TRUE(LoadSync("d").ok());  // plans over the held copies: evicts one
  EXPECT_EQ(manager_->memory().loaded, 200u);
}

TEST_F(ModelManagerTest, LfuEvictsTheLeastUsedPerByteAndRemembersUsesAcrossEvictions) {
  for (auto name : {"a", "b", "c", "d"}) AddModel(name, {1});
  AddModel("fat", {1}, "", 200);
  Create(ModelControlMode::kExplicit, /*budget=*/300);
  ASSERT_TRUE(LoadSync("a").ok());
  ASSERT_TRUE(LoadSync("b").ok());
  ASSERT_TRUE(LoadSync("c").ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(manager_->Acquire("a", "").ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(manager_->Acquire("c", "").ok());
  ASSERT_TRUE(manager_->Acquire("b", "").ok());  // the most recent, and the least used
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(manager_->Get("b", "").ok());  // not uses
  ASSERT_TRUE(LoadSync("d").ok());
  auto index = IndexMap();
  EXPECT_EQ(index["b/1"].state, ModelState::kUnavailable);
  EXPECT_NE(index["b/1"].reason.find("least used"), std::string::npos);
  EXPECT_EQ(index["a/1"].state, ModelState::kReady);
  EXPECT_EQ(index["c/1"].state, ModelState::kReady);
  // d (0 uses) goes next; b's count survived its eviction: 1 + the on-demand request.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(manager_->Acquire("d", "").ok());
  ASSERT_TRUE(GetAfterLoadSync("b").ok());  // c has 3, d 4, a 5: c goes
  index = IndexMap();
  EXPECT_EQ(index["c/1"].state, ModelState::kUnavailable);
  EXPECT_EQ(index["b/1"].state, ModelState::kReady);
  // Per byte: a 200-byte model needs twice the uses of a 100-byte one to stay.
  ASSERT_TRUE(LoadSync("fat").ok());  // evicts the two least used per byte: b (2) and d (4)
  index = IndexMap();
  EXPECT_EQ(index["fat/1"].state, ModelState::kReady);
  EXPECT_EQ(index["a/1"].state, ModelState::kReady);
}

TEST_F(ModelManagerTest, PinnedAndBusyModelsAreNotEvictedAndTheErrorSaysWhy) {
  AddModel("pinned", {1}, "mmserve { pinned: true }\n");
  AddModel("busy", {1});
  AddModel("big", {1}, "", 150);
  Create(ModelControlMode::kExplicit, /*budget=*/250);
  ASSERT_TRUE(LoadSync("pinned").ok());
  ASSERT_TRUE(LoadSync("busy").ok());
  // A request holds "busy" mid-execution.
  auto gate = std::make_shared<Gate>();
  {
    std::lock_guard<std::mutex> lock(world_.mu);
    world_.exec_gate = gate;
  }
  auto busy = manager_->Get("busy", "");
  ASSERT_TRUE(busy.ok());
  std::promise<void> ran;
  auto req = std::make_unique<InferRequest>();
  req->model_name = "busy";
  (*busy)->scheduler->Enqueue(std::move(req), [&](auto) { ran.set_value(); });
  gate->AwaitWaiters(1);
  Status s = LoadSync("big");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("150 B"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("250 B"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("100 B pinned"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("100 B in use"), std::string::npos) << s.message();
  EXPECT_EQ(IndexMap()["big/1"].state, ModelState::kUnavailable);
  // Its size on disk looked small, so it was loaded, measured and let go.
  EXPECT_EQ(world_.counters.memory.load(), 200u);
  EXPECT_EQ(manager_->memory().loaded, 200u);
  gate->Open();
  ran.get_future().get();
  // (The answer comes just before the execution slot is given back.)
  while ((*busy)->scheduler->pending() > 0) std::this_thread::yield();
  // Idle now: "busy" makes room.
  EXPECT_TRUE(LoadSync("big").ok());
  EXPECT_EQ(IndexMap()["busy/1"].state, ModelState::kUnavailable);
  EXPECT_EQ(IndexMap()["pinned/1"].state, ModelState::kReady);
}

TEST_F(ModelManagerTest, MaxLoadedModelsEvictsTheTenantsOwnIdleModels) {
  for (auto name : {"a1", "a2", "a3"}) AddModel(name, {1});
  AddModelIn(repo_b_, "b1", {1});
  SetOwners({.max_loaded_models = 2}, {});
  Create(ModelControlMode::kExplicit, /*budget=*/0, {}, 2, EvictionPolicy::kLru);
  ASSERT_TRUE(LoadSync("b1").ok());
  ASSERT_TRUE(LoadSync("a1").ok());
  ASSERT_TRUE(LoadSync("a2").ok());
  EXPECT_EQ((*manager_->Get("a1", ""))->owner.tenant, "a");
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(manager_->Acquire("a1", "").ok());  // a2 is now a's least recently used
  ASSERT_TRUE(LoadSync("a3").ok());
  auto index = IndexMap();
  EXPECT_EQ(index["a2/1"].state, ModelState::kUnavailable);
  EXPECT_NE(index["a2/1"].reason.find("the quota max_loaded_models (2) of tenant 'a'"),
            std::string::npos)
      << index["a2/1"].reason;
  EXPECT_EQ(index["a1/1"].state, ModelState::kReady);
  EXPECT_EQ(index["a3/1"].state, ModelState::kReady);
  EXPECT_EQ(index["b1/1"].state, ModelState::kReady);  // another tenant's: not counted
  // A reload of a loaded model does not count it twice.
  ASSERT_TRUE(LoadSync("a3").ok());
  EXPECT_EQ(IndexMap()["a1/1"].state, ModelState::kReady);
}

TEST_F(ModelManagerTest, MaxLoadedModelsRefusesWhenNoOwnModelIsIdle) {
  AddModel("p1", {1}, "mmserve { pinned: true }\n");
  AddModel("p2", {1}, "mmserve { pinned: true }\n");
  AddModel("a1", {1});
  SetOwners({.max_loaded_models = 2}, {});
  Create(ModelControlMode::kExplicit);
  ASSERT_TRUE(LoadSync("p1").ok());
  ASSERT_TRUE(LoadSync("p2").ok());
  Status s = LoadSync("a1");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("tenant 'a' has 2 models loaded or loading, its quota "
                             "max_loaded_models is 2, and none of them is idle to evict"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(world_.loads.load(), 2);  // refused before loading
}

TEST_F(ModelManagerTest, MemoryBytesQuotaEvictsOwnModelsAndRefusesWhatCannotFit) {
  for (auto name : {"a1", "a2", "a3"}) AddModel(name, {1});
  AddModel("big", {1}, "mmserve { memory_footprint_bytes: 300 }\n");
  SetOwners({.memory_bytes = 250}, {});
  Create(ModelControlMode::kExplicit, /*budget=*/0, {}, 2, EvictionPolicy::kLru);
  ASSERT_TRUE(LoadSync("a1").ok());
  ASSERT_TRUE(LoadSync("a2").ok());
  ASSERT_TRUE(LoadSync("a3").ok());  // 300 > 250: a1 goes
  auto index = IndexMap();
  EXPECT_EQ(index["a1/1"].state, ModelState::kUnavailable);
  EXPECT_NE(index["a1/1"].reason.find("the quota memory_bytes (250 B) of tenant 'a'"),
            std::string::npos);
  EXPECT_EQ(manager_->memory().loaded, 200u);
  Status s = LoadSync("big");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("needs 300 B; tenant 'a' holds 200 B of its quota memory_bytes "
                             "(250 B), and evicting its idle models would leave 250 B"),
            std::string::npos)
      << s.message();
  // Refused before anything was evicted for it.
  EXPECT_EQ(IndexMap()["a2/1"].state, ModelState::kReady);
  EXPECT_EQ(IndexMap()["a3/1"].state, ModelState::kReady);
}

TEST_F(ModelManagerTest, TheBudgetNeverEvictsAnotherTenantsMemoryShare) {
  for (auto name : {"a1", "a2", "a3"}) AddModel(name, {1});
  for (auto name : {"b1", "b2", "b3"}) AddModelIn(repo_b_, name, {1});
  AddModelIn(repo_b_, "b_big", {1}, "mmserve { memory_footprint_bytes: 200 }\n");
  // a is guaranteed 200 of the 300-byte budget; b has no share.
  SetOwners({.memory_bytes = 200}, {});
  Create(ModelControlMode::kExplicit, /*budget=*/300, {}, 2, EvictionPolicy::kLru);
  // b fills the budget; a reclaims its share from b, not from itself.
  ASSERT_TRUE(LoadSync("b1").ok());
  ASSERT_TRUE(LoadSync("b2").ok());
  ASSERT_TRUE(LoadSync("a1").ok());
  ASSERT_TRUE(LoadSync("b3").ok());  // b, without a share, makes room from its own: b1
  EXPECT_EQ(IndexMap()["b1/1"].state, ModelState::kUnavailable);
  EXPECT_EQ(IndexMap()["a1/1"].state, ModelState::kReady);
  ASSERT_TRUE(LoadSync("a2").ok());  // a, within its share, takes from b: b2
  auto index = IndexMap();
  EXPECT_EQ(index["b2/1"].state, ModelState::kUnavailable);
  EXPECT_NE(index["b2/1"].reason.find("memory budget"), std::string::npos);
  EXPECT_EQ(index["b3/1"].state, ModelState::kReady);
  EXPECT_EQ(index["a1/1"].state, ModelState::kReady);
  // b needs 200: its own b3 would free 100, and a's share (200, idle) is
  // not b's to take: refused, and nothing is evicted for a load that fails.
  Status s = LoadSync("b_big");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("200 B idle in other tenants' memory shares"), std::string::npos)
      << s.message();
  index = IndexMap();
  EXPECT_EQ(index["a1/1"].state, ModelState::kReady);
  EXPECT_EQ(index["a2/1"].state, ModelState::kReady);
  EXPECT_EQ(index["b3/1"].state, ModelState::kReady);
}

TEST_F(ModelManagerTest, AModelLargerThanItsEstimateIsUnloadedWhenItCannotFit) {
  // On disk it looks small ("weights": 7 bytes); loaded it takes 500.
  AddModel("huge", {1}, "", 500);
  Create(ModelControlMode::kExplicit, /*budget=*/300);
  Status s = LoadSync("huge");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
  EXPECT_EQ(world_.counters.memory.load(), 0u);
  EXPECT_EQ(manager_->memory().loaded, 0u);
  EXPECT_EQ(world_.loads.load(), 1);
  // Its measured size is remembered: the next attempt is refused before loading.
  s = LoadSync("huge");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
  EXPECT_NE(s.message().find("needs 500 B"), std::string::npos) << s.message();
  EXPECT_EQ(world_.loads.load(), 1);
}

TEST_F(ModelManagerTest, DeclaredFootprintOverridesTheMeasure) {
  AddModel("a", {1}, "mmserve { memory_footprint_bytes: 1000 }\n");
  Create(ModelControlMode::kNone);
  auto a = manager_->Get("a", "");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->footprint_bytes, 1000u);
  EXPECT_EQ(manager_->memory().loaded, 1000u);
}

TEST_F(ModelManagerTest, TheLibrarysModelSizeIsTheFootprintNotTheHeapGrowth) {
  // "exact" grows the heap by 100 bytes but its library says 7000: 7000 is
  // charged, and the budget (10000) then has no room for a second such model
  // without evicting the first; "measured" reports nothing and is measured.
  AddModel("exact", {1},
           "parameters { key: \"fake_model_bytes\" value { string_value: \"7000\" } }\n");
  AddModel("exact2", {1},
           "parameters { key: \"fake_model_bytes\" value { string_value: \"7000\" } }\n");
  AddModel("measured", {1}, "", 300);
  Create(ModelControlMode::kExplicit, 10000);
  ASSERT_TRUE(LoadSync("exact").ok());
  auto a = manager_->Get("exact", "");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->footprint_bytes, 7000u);
  EXPECT_EQ((*a)->footprint_source, "the library's size of the model");
  EXPECT_EQ(manager_->memory().loaded, 7000u);
  a = StatusOr<ModelHandle>(NotFound(""));  // not in use: evictable
  ASSERT_TRUE(LoadSync("measured").ok());
  auto m = manager_->Get("measured", "");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->footprint_bytes, 300u);
  EXPECT_EQ((*m)->footprint_source, "measured across its load");
  m = StatusOr<ModelHandle>(NotFound(""));
  ASSERT_TRUE(LoadSync("exact2").ok());
  EXPECT_FALSE(manager_->Get("exact", "").ok());  // evicted
  EXPECT_EQ(manager_->memory().loaded, 7300u);
}

TEST_F(ModelManagerTest, ABackendThatReportsSizesIsNotProbedAroundItsLoads) {
  // "sized" models report their size (reports_size): no heap probe around
  // their loads; one that reports nothing anyway keeps its estimate.
  AddModel("exact", {1},
           "parameters { key: \"fake_model_bytes\" value { string_value: \"7000\" } }\n");
  AddModel("silent", {1});
  for (const char* name : {"exact", "silent"}) {
    const fs::path config = repo_ / name / "config.pbtxt";
    std::ifstream in(config);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    text.replace(text.find("platform: \"fake\""), 16, "platform: \"sized\"");
    std::ofstream(config) << text;
  }
  AddModel("measured", {1}, "", 300);
  Create(ModelControlMode::kExplicit);
  ASSERT_TRUE(LoadSync("exact").ok());
  ASSERT_TRUE(LoadSync("silent").ok());
  EXPECT_EQ(probes_.load(), 0);
  auto silent = manager_->Get("silent", "");
  ASSERT_TRUE(silent.ok());
  EXPECT_EQ((*silent)->footprint_source, "estimated: its backend reported no size");
  ASSERT_TRUE(LoadSync("measured").ok());
  EXPECT_EQ(probes_.load(), 2);  // before and after its load
}

TEST_F(ModelManagerTest, VersionPolicies) {
  AddModel("latest2", {1, 2, 3}, "version_policy { latest { num_versions: 2 } }\n");
  AddModel("all", {1, 2, 3}, "version_policy { all { } }\n");
  AddModel("specific", {1, 2, 3}, "version_policy { specific { versions: [1, 3] } }\n");
  Create(ModelControlMode::kNone);
  auto ready = [&](const std::string& m) {
    std::vector<int64_t> out;
    for (auto& s : manager_->Index()) {
      if (s.name == m && s.state == ModelState::kReady) out.push_back(s.version);
    }
    return out;
  };
  EXPECT_EQ(ready("latest2"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ready("all"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(ready("specific"), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ((*manager_->Get("specific", ""))->version, 3);
  EXPECT_EQ((*manager_->Get("specific", "1"))->version, 1);
  EXPECT_EQ(manager_->Get("specific", "2").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(manager_->Get("specific", "x").status().code(), StatusCode::kNotFound);
}

TEST_F(ModelManagerTest, ANewVersionSwapsInAndTheOldOneDrains) {
  AddModel("m", {1});
  Create(ModelControlMode::kExplicit, 0, {"m"});
  auto v1 = manager_->Get("m", "");
  ASSERT_TRUE(v1.ok());
  EXPECT_EQ(Run(*v1), 1.0f);
  // A request is executing on version 1 while version 2 arrives.
  auto gate = std::make_shared<Gate>();
  {
    std::lock_guard<std::mutex> lock(world_.mu);
    world_.exec_gate = gate;
  }
  std::promise<float> in_flight;
  auto req = std::make_unique<InferRequest>();
  req->model_name = "m";
  (*v1)->scheduler->Enqueue(std::move(req), [&](StatusOr<std::unique_ptr<InferResponse>> r) {
    in_flight.set_value(r.ok() ? (*r)->outputs[0].as<float>()[0] : -1);
  });
  gate->AwaitWaiters(1);
  AddVersion("m", 2);
  ASSERT_TRUE(LoadSync("m").ok());
  auto now = manager_->Get("m", "");
  ASSERT_TRUE(now.ok());
  EXPECT_EQ((*now)->version, 2);  // new requests go to version 2 at once
  auto index = IndexMap();
  EXPECT_EQ(index["m/2"].state, ModelState::kReady);
  EXPECT_EQ(index["m/1"].state, ModelState::kUnloading);  // draining its request
  gate->Open();
  EXPECT_EQ(in_flight.get_future().get(), 1.0f);  // answered by version 1
  {
    std::lock_guard<std::mutex> lock(world_.mu);
    world_.exec_gate = nullptr;
  }
  // Drained, version 1 goes.
  v1 = Cancelled("released");
  WaitForState("m", 1, ModelState::kUnavailable);
  ASSERT_TRUE(UnloadSync("m").ok());
  now = Cancelled("released");
  while (world_.counters.memory.load() != 0) std::this_thread::yield();
}

TEST_F(ModelManagerTest, AFailedNewVersionLeavesTheOldOneServing) {
  AddModel("m", {1});
  Create(ModelControlMode::kExplicit, 0, {"m"});
  AddVersion("m", 2);
  world_.fail["m/2"] = InvalidArgument("model 'm': version 2 is corrupt");
  Status s = LoadSync("m");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("corrupt"), std::string::npos);
  auto now = manager_->Get("m", "");
  ASSERT_TRUE(now.ok());
  EXPECT_EQ((*now)->version, 1);
  auto index = IndexMap();
  EXPECT_EQ(index["m/1"].state, ModelState::kReady);
  EXPECT_EQ(index["m/2"].state, ModelState::kUnavailable);
}

TEST_F(ModelManagerTest, ChangedFilesReloadTheSameVersion) {
  AddModel("m", {1});
  Create(ModelControlMode::kExplicit, 0, {"m"});
  auto before = manager_->Get("m", "1");
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(LoadSync("m").ok());  // nothing changed: the same copy
  EXPECT_EQ(manager_->Get("m", "1")->get(), before->get());
  AddVersion("m", 1, "new weights, a different size");
  ASSERT_TRUE(LoadSync("m").ok());
  auto after = manager_->Get("m", "1");
  ASSERT_TRUE(after.ok());
  EXPECT_NE(after->get(), before->get());
  EXPECT_EQ(world_.loads.load(), 2);
}

TEST_F(ModelManagerTest, ConfigOverrideReplacesTheRepositoryConfig) {
  AddModel("m", {1, 2});
  Create(ModelControlMode::kExplicit);
  std::string config = R"({"platform": "fake", "version_policy": {"specific": {"versions": [1]}},
    "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [4]}],
    "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [4]}]})";
  ASSERT_TRUE(LoadSync("m", config).ok());
  EXPECT_EQ((*manager_->Get("m", ""))->version, 1);
  ASSERT_TRUE(LoadSync("m").ok());  // back to config.pbtxt: latest 1
  EXPECT_EQ((*manager_->Get("m", ""))->version, 2);
}

TEST_F(ModelManagerTest, UnloadWaitsForRequestsInFlight) {
  AddModel("m", {1});
  Create(ModelControlMode::kExplicit, 0, {"m"});
  auto gate = std::make_shared<Gate>();
  {
    std::lock_guard<std::mutex> lock(world_.mu);
    world_.exec_gate = gate;
  }
  auto m = manager_->Get("m", "");
  std::promise<bool> answered;
  auto req = std::make_unique<InferRequest>();
  req->model_name = "m";
  (*m)->scheduler->Enqueue(std::move(req), [&](auto r) { answered.set_value(r.ok()); });
  m = Cancelled("released");
  gate->AwaitWaiters(1);
  std::promise<Status> unloaded;
  auto unloaded_future = unloaded.get_future();
  manager_->Unload("m", [&](Status s) { unloaded.set_value(s); });
  // Not before the request is answered.
  while (IndexMap()["m/1"].state != ModelState::kUnloading) std::this_thread::yield();
  EXPECT_EQ(unloaded_future.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  EXPECT_EQ(manager_->Get("m", "").status().code(), StatusCode::kUnavailable);
  gate->Open();
  EXPECT_TRUE(answered.get_future().get());
  EXPECT_TRUE(unloaded_future.get().ok());
  EXPECT_EQ(IndexMap()["m/1"].state, ModelState::kUnavailable);
  // The execution thread that answered lets go of the scheduler last.
  while (world_.counters.memory.load() != 0) std::this_thread::yield();
}

TEST_F(ModelManagerTest, WarmupRunsBeforeReadyAndAFailingWarmupFailsTheLoad) {
  AddModel("warm", {1},
           "model_warmup { name: \"w\" batch_size: 1 count: 3 inputs { key: \"x\" value { "
           "data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } }\n");
  AddModel("cold", {1},
           "model_warmup { name: \"w\" batch_size: 1 inputs { key: \"x\" value { "
           "data_type: TYPE_INT32 dims: [ 4 ] zero_data: true } } }\n");
  Create(ModelControlMode::kNone);
  EXPECT_EQ(world_.counters.executions.load(), 3);
  EXPECT_TRUE(manager_->Get("warm", "").ok());
  auto index = IndexMap();
  EXPECT_EQ(index["cold/1"].state, ModelState::kUnavailable);
  EXPECT_NE(index["cold/1"].reason.find("warmup"), std::string::npos) << index["cold/1"].reason;
}

TEST_F(ModelManagerTest, PollModeFollowsTheRepository) {
  AddModel("a", {1});
  AddModel("b", {1});
  Create(ModelControlMode::kPoll);
  ASSERT_TRUE(manager_->Get("a", "").ok());
  auto b_before = manager_->Get("b", "");
  ASSERT_TRUE(b_before.ok());
  EXPECT_EQ(LoadSync("a").code(), StatusCode::kUnavailable);

  AddModel("c", {1});           // added
  AddVersion("a", 2);           // new version
  fs::remove_all(repo_ / "b");  // removed (b_before still holds its copy)
  manager_->Poll();
  EXPECT_TRUE(manager_->Get("c", "").ok());
  EXPECT_EQ((*manager_->Get("a", ""))->version, 2);
  EXPECT_FALSE(manager_->Get("b", "").ok());
  EXPECT_EQ(Run(*b_before), 1.0f);
  b_before = Cancelled("released");
  WaitForState("a", 1, ModelState::kUnavailable);
  auto index = IndexMap();
  EXPECT_EQ(index.count("b/1"), 0u);  // forgotten once it held nothing

  // An unchanged repository changes nothing.
  const int loads = world_.loads.load();
  auto c = manager_->Get("c", "");
  manager_->Poll();
  EXPECT_EQ(world_.loads.load(), loads);
  EXPECT_EQ(manager_->Get("c", "")->get(), c->get());

  // A changed config reloads only that model.
  AddModel("c", {1}, "# edited\n");
  manager_->Poll();
  EXPECT_EQ(world_.loads.load(), loads + 1);
  EXPECT_NE(manager_->Get("c", "")->get(), c->get());
}

TEST_F(ModelManagerTest, APollScansOnlyTheModelsItsWatchNames) {
  for (int i = 0; i < 20; ++i) AddModel("m" + std::to_string(i), {1});
  counted_ = true;
  Create(ModelControlMode::kPoll);
  ASSERT_TRUE(manager_->Get("m7", "").ok());
  // The first poll makes the watch, and lists the repository once.
  int lists = counts_.lists.load();
  manager_->Poll();
  EXPECT_EQ(counts_.lists.load(), ++lists);
  const int loads = world_.loads.load();
  counts_.scans = 0;
  // Nothing changed: nothing listed, nothing scanned.
  manager_->Poll();
  EXPECT_EQ(counts_.lists.load(), lists);
  EXPECT_EQ(counts_.scans.load(), 0);
  // One config edited: that model scanned (and reloaded), and no other.
  auto m7 = manager_->Get("m7", "");
  AddModel("m7", {1}, "# edited\n");
  manager_->Poll();
  EXPECT_EQ(counts_.lists.load(), lists);
  EXPECT_EQ(world_.loads.load(), loads + 1);
  EXPECT_NE(manager_->Get("m7", "")->get(), m7->get());
  // A model added, a version added, a model removed: each scanned once.
  const int scans = counts_.scans.load();  // the poll's and the reload's own
  AddModel("added", {1});
  AddVersion("m3", 2);
  fs::remove_all(repo_ / "m5");
  manager_->Poll();
  EXPECT_EQ(counts_.lists.load(), lists);
  EXPECT_TRUE(manager_->Get("added", "").ok());
  EXPECT_EQ((*manager_->Get("m3", ""))->version, 2);
  EXPECT_FALSE(manager_->Get("m5", "").ok());
  EXPECT_EQ(world_.loads.load(), loads + 3);
  // 3 by the poll, one by each of the two loads.
  EXPECT_EQ(counts_.scans.load(), scans + 5);
  for (int i = 0; i < 20; ++i) {
    if (i != 5) EXPECT_TRUE(manager_->Get("m" + std::to_string(i), "").ok()) << i;
  }
}

TEST_F(ModelManagerTest, APollListsEverythingWhenTheWatchCannotTellOrThereIsNone) {
  AddModel("a", {1});
  AddModel("b", {1});
  ScriptedWatch watch;
  counts_.scripted = &watch;
  counted_ = true;
  Create(ModelControlMode::kPoll);
  manager_->Poll();  // makes the watch
  const int lists = counts_.lists.load(), loads = world_.loads.load();
  // The watch names nothing although b changed: b is not scanned (what the
  // watch says is what a poll believes).
  AddModel("b", {1}, "# edited\n");
  manager_->Poll();
  EXPECT_EQ(world_.loads.load(), loads);
  // The watch cannot tell (an overflow): everything is listed, b reloads.
  watch.Next({.everything = true, .models = {}, .warnings = {"overflowed"}});
  manager_->Poll();
  EXPECT_EQ(counts_.lists.load(), lists + 1);
  EXPECT_EQ(world_.loads.load(), loads + 1);
  // A name the watch gives that is gone unloads it; one that is new loads.
  fs::remove_all(repo_ / "a");
  AddModel("c", {1});
  watch.Next({.everything = false, .models = {"a", "c"}, .warnings = {}});
  manager_->Poll();
  EXPECT_EQ(counts_.lists.load(), lists + 1);
  EXPECT_FALSE(manager_->Get("a", "").ok());
  EXPECT_TRUE(manager_->Get("c", "").ok());
  // A listing that fails applies nothing; the next poll lists again, though
  // its watch names nothing.
  AddModel("c", {1}, "# edited\n");
  watch.Next({.everything = true, .models = {}, .warnings = {}});
  counts_.fail_list = true;
  manager_->Poll();
  EXPECT_EQ(world_.loads.load(), loads + 2);  // c's first load only
  counts_.fail_list = false;
  manager_->Poll();
  EXPECT_EQ(counts_.lists.load(), lists + 3);
  EXPECT_EQ(world_.loads.load(), loads + 3);

  // Without a watch, every poll lists the repository.
  manager_.reset();
  counts_.scripted = nullptr;
  counts_.watch = false;
  counts_.lists = 0;
  Create(ModelControlMode::kPoll);
  manager_->Poll();
  manager_->Poll();
  EXPECT_EQ(counts_.lists.load(), 3);  // start and two polls
}

TEST_F(ModelManagerTest, TheExplicitIndexRescansOnlyWhatChanged) {
  for (int i = 0; i < 10; ++i) AddModel("m" + std::to_string(i), {1});
  counted_ = true;
  Create(ModelControlMode::kExplicit);
  // The first rescan makes the watch and lists the repository; later ones
  // scan what it names.
  int lists = counts_.lists.load();
  counts_.scans = 0;
  EXPECT_EQ(IndexMap().size(), 10u);
  EXPECT_EQ(counts_.lists.load(), ++lists);
  EXPECT_EQ(IndexMap().size(), 10u);
  EXPECT_EQ(counts_.scans.load(), 0);
  AddModel("new", {1});
  fs::remove_all(repo_ / "m2");
  auto index = IndexMap();
  EXPECT_EQ(index.size(), 10u);
  EXPECT_EQ(index.count("new/0"), 1u);
  EXPECT_EQ(index.count("m2/0"), 0u);
  EXPECT_EQ(counts_.scans.load(), 2);
  EXPECT_EQ(counts_.lists.load(), lists);
}

TEST_F(ModelManagerTest, AModelDeletedWhileLoadingFailsWithAReasonAndOthersServe) {
  AddModel("doomed", {1});
  AddModel("other", {1});
  Create(ModelControlMode::kExplicit, 0, {"other"});
  auto gate = std::make_shared<Gate>();
  world_.load_gates["doomed"] = gate;
  std::promise<Status> loaded;
  manager_->Load("doomed", std::nullopt, [&](Status s) { loaded.set_value(s); });
  gate->AwaitWaiters(1);
  fs::remove_all(repo_ / "doomed");  // mid-load
  gate->Open();
  Status s = loaded.get_future().get();
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.message();
  EXPECT_NE(s.message().find("model.bin"), std::string::npos);
  EXPECT_EQ(manager_->Get("doomed", "1").status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(manager_->Get("other", "").ok());
  // Gone from disk and holding nothing: the index forgets it (once its load
  // operation, which answered us from inside, has ended).
  while (IndexMap().count("doomed/1")) std::this_thread::yield();
  // Loading it again says it is gone.
  s = LoadSync("doomed");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("not in any model repository"), std::string::npos);
}

TEST_F(ModelManagerTest, ParallelLoadsOfDifferentModelsAndShutdownWithLoadsQueued) {
  for (int i = 0; i < 8; ++i) AddModel("m" + std::to_string(i), {1});
  Create(ModelControlMode::kExplicit, 0, {}, /*load_threads=*/2);
  auto gate = std::make_shared<Gate>();
  world_.load_gates["m0"] = gate;
  world_.load_gates["m1"] = gate;
  std::vector<std::promise<Status>> done(8);
  for (int i = 0; i < 8; ++i) {
    manager_->Load("m" + std::to_string(i), std::nullopt,
                   [&done, i](Status s) { done[i].set_value(s); });
  }
  gate->AwaitWaiters(2);  // both loader threads busy with slow loads
  // Requests to a loaded model are not blocked by loads in progress.
  EXPECT_EQ(manager_->Get("m0", "").status().code(), StatusCode::kUnavailable);
  gate->Open();
  for (auto& d : done) EXPECT_TRUE(d.get_future().get().ok());
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(manager_->Get("m" + std::to_string(i), "").ok());
  // Destroying the manager with work queued finishes it (or refuses it) and
  // calls every callback.
  std::vector<std::promise<Status>> late(8);
  for (int i = 0; i < 8; ++i) {
    manager_->Unload("m" + std::to_string(i), [&late, i](Status s) { late[i].set_value(s); });
  }
  manager_.reset();
  for (auto& d : late) (void)d.get_future().get();
}

TEST_F(ModelManagerTest, AnUnloadedVersionsStatisticsStayInOneShard) {
  AddModel("m", {1});
  Create(ModelControlMode::kExplicit, 0, {"m"});
  auto m = manager_->Get("m", "");
  ASSERT_TRUE(m.ok());
  Run(*m);  // the scheduler records on an execution thread
  // Requests' own counters, as the service records them, from several threads.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([stats = (*m)->stats] {
      stats->RequestStarted();
      stats->RequestSucceeded(1000, 10, 1, 2, 3);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_GE((*m)->stats->shards(), 2u);
  const ModelStatsSnapshot before = (*m)->stats->Read();
  m = Cancelled("released");
  ASSERT_TRUE(UnloadSync("m").ok());
  // The execution thread that answered lets go of the scheduler last.
  while (world_.counters.memory.load() != 0) std::this_thread::yield();
  auto stats = manager_->stats().Find("m", 1);
  ASSERT_NE(stats, nullptr);
  EXPECT_EQ(stats->shards(), 1u);
  const ModelStatsSnapshot after = stats->Read();
  EXPECT_EQ(after.success.count, before.success.count);
  EXPECT_EQ(after.success.ns, before.success.ns);
  EXPECT_EQ(after.execution_count, before.execution_count);
  EXPECT_EQ(after.total_histogram.counts, before.total_histogram.counts);
  EXPECT_EQ(after.in_flight, 0);
  EXPECT_EQ(after.loads, 1u);
  // Loaded again, it records on into the same entry.
  stats.reset();
  ASSERT_TRUE(LoadSync("m").ok());
  auto again = manager_->Get("m", "");
  ASSERT_TRUE(again.ok());
  Run(*again);
  EXPECT_EQ((*again)->stats->Read().execution_count, before.execution_count + 1);
  EXPECT_EQ((*again)->stats->Read().loads, 2u);
}

TEST_F(ModelManagerTest, RepeatedLoadUnloadCyclesReturnTheMemory) {
  AddModel("m", {1});
  Create(ModelControlMode::kExplicit);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(LoadSync("m").ok());
    ASSERT_TRUE(UnloadSync("m").ok());
  }
  EXPECT_EQ(world_.counters.memory.load(), 0u);
  EXPECT_EQ(manager_->memory().loaded, 0u);
}

TEST_F(ModelManagerTest, IsolatedModelsLoadThroughTheProcessBackendAndFollowItsHealth) {
  AddModel("iso", {1}, "mmserve { isolation: PROCESS }\n");
  AddModel("plain", {1});
  FakeBackend process{&world_, "process"};
  Create(ModelControlMode::kNone, 0, {}, 2, EvictionPolicy::kLfu, &process);
  EXPECT_EQ(world_.loaded_by["iso"], "process/fake");  // the platform travels with the load
  EXPECT_EQ(world_.loaded_by["plain"], "direct/fake");
  auto handle = manager_->Get("iso", "1");
  ASSERT_TRUE(handle.ok());

  // The worker died: the version is UNAVAILABLE with the cause, counted.
  const std::string cause = "worker killed by signal 11 (Segmentation fault); restart 1 in 1.0 s";
  world_.health["iso"](Unavailable(cause));
  auto down = manager_->Get("iso", "1");
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(down.status().message().find("signal 11"), std::string::npos)
      << down.status().message();
  auto index = IndexMap();
  EXPECT_EQ(index["iso/1"].state, ModelState::kUnavailable);
  EXPECT_EQ(index["iso/1"].reason, cause);
  EXPECT_EQ(index["iso/1"].restarts, 1);
  EXPECT_EQ(index["iso/1"].last_failure, cause);
  EXPECT_EQ(index["plain/1"].restarts, 0);
  EXPECT_TRUE(manager_->Get("plain", "1").ok());

  // Back: READY on the same servable, the count kept.
  world_.health["iso"](OkStatus());
  auto up = manager_->Get("iso", "1");
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(up->get(), handle->get());
  index = IndexMap();
  EXPECT_EQ(index["iso/1"].state, ModelState::kReady);
  EXPECT_EQ(index["iso/1"].reason, "");
  EXPECT_EQ(index["iso/1"].restarts, 1);

  // A report for a servable no longer loaded changes nothing.
  auto stale = world_.health["iso"];
  manager_.reset();
  stale(Unavailable("too late"));  // the manager is gone: ignored, no crash
}

TEST_F(ModelManagerTest, DefaultIsolationAndItsAbsence) {
  AddModel("iso", {1}, "mmserve { isolation: PROCESS }\n");
  AddModel("plain", {1});
  AddModel("pinned_in", {1}, "mmserve { isolation: IN_PROCESS }\n");
  {
    FakeBackend process{&world_, "process"};
    Create(ModelControlMode::kNone, 0, {}, 2, EvictionPolicy::kLfu, &process, true);
    EXPECT_EQ(world_.loaded_by["plain"], "process/fake");
    EXPECT_EQ(world_.loaded_by["pinned_in"], "direct/fake");
    manager_.reset();
  }
  Create(ModelControlMode::kNone);  // no process backend
  auto index = IndexMap();
  EXPECT_EQ(index["iso/0"].state, ModelState::kUnavailable);
  EXPECT_NE(index["iso/0"].reason.find("PROCESS is not available"), std::string::npos)
      << index["iso/0"].reason;
  EXPECT_TRUE(manager_->Get("plain", "1").ok());
}

TEST(ModelNameTest, Validation) {
  EXPECT_TRUE(ValidateModelName("resnet50_v1.5-int8").ok());
  EXPECT_FALSE(ValidateModelName("").ok());
  EXPECT_FALSE(ValidateModelName("a/b").ok());
  EXPECT_FALSE(ValidateModelName("a\\b").ok());
  EXPECT_FALSE(ValidateModelName("..").ok());
  EXPECT_FALSE(ValidateModelName(std::string(256, 'a')).ok());
  EXPECT_TRUE(ValidateModelName(std::string(255, 'a')).ok());
}

// ------------------------------------------------------- names per tenant

template <class F>
Status Sync(F&& start) {
  std::promise<Status> p;
  start([&](Status s) { p.set_value(s); });
  return p.get_future().get();
}

TEST_F(ModelManagerTest, TwoTenantsModelsOfOneNameAreApartAndNeverShowEachOther) {
  // Tenant a's m (version 1) and tenant b's m (version 2, adds 2): each
  // tenant loads, serves, reads and unloads its own.
  AddModelIn(repo_, "m", {1});
  AddModelIn(repo_b_, "m", {2});
  AddModelIn(repo_b_, "only_b", {1});
  SetOwners({}, {});
  Create(ModelControlMode::kExplicit);
  const std::vector<std::string> keys_a = {PathKey(repo_)}, keys_b = {PathKey(repo_b_)};
  const NameScope a = NameScope::Of(keys_a), b = NameScope::Of(keys_b);
  const std::string path_a = repo_.string(), path_b = repo_b_.string();
  auto shows = [](const Status& s, const std::string& path) {
    return s.message().find(path) != std::string::npos;
  };

  ASSERT_TRUE(Sync([&](auto cb) { manager_->Load(a, "m", std::nullopt, cb); }).ok());
  auto m_a = manager_->Get(a, "m", "");
  ASSERT_TRUE(m_a.ok()) << m_a.status().message();
  EXPECT_EQ((*m_a)->version, 1);
  EXPECT_EQ((*m_a)->repository, keys_a[0]);
  // b's own m is not loaded: b is told so about its own model, not a's.
  auto m_b = manager_->Acquire(b, "m", "");
  EXPECT_EQ(m_b.status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(shows(m_b.status(), path_a)) << m_b.status().message();
  ASSERT_TRUE(Sync([&](auto cb) { manager_->Load(b, "m", std::nullopt, cb); }).ok());
  m_b = manager_->Acquire(b, "m", "");
  ASSERT_TRUE(m_b.ok()) << m_b.status().message();
  EXPECT_EQ((*m_b)->version, 2);
  EXPECT_EQ(Run(*m_a), 1.0f);
  EXPECT_EQ(Run(*m_b), 2.0f);
  // Versions are each tenant's own.
  EXPECT_EQ(manager_->Get(a, "m", "2").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(manager_->Get(b, "m", "2").ok());
  auto versions_b = manager_->Versions(b, "m");
  ASSERT_TRUE(versions_b.ok());
  ASSERT_EQ(versions_b->size(), 1u);
  EXPECT_EQ((*versions_b)[0].version, 2);

  // Another tenant's model answers as one that does not exist, everywhere.
  for (const char* name : {"only_b", "zz_missing"}) {
    const std::string n = name;
    auto expect_unknown = [&](const Status& s, StatusCode code, const std::string& what) {
      EXPECT_EQ(s.code(), code) << what << " " << n;
      std::string message = s.message();
      message.replace(message.find(n), n.size(), "M");
      EXPECT_FALSE(shows(s, path_b)) << what << " " << s.message();
      return message;
    };
    static std::map<std::string, std::string> first;  // by what: the message for only_b
    auto same = [&](const std::string& what, const Status& s, StatusCode code) {
      const std::string m = expect_unknown(s, code, what);
      if (n == "only_b") {
        first[what] = m;
      } else {
        EXPECT_EQ(first[what], m) << what;
      }
    };
    same("get", manager_->Get(a, n, "").status(), StatusCode::kNotFound);
    same("acquire", manager_->Acquire(a, n, "1").status(), StatusCode::kNotFound);
    same("versions", manager_->Versions(a, n).status(), StatusCode::kNotFound);
    same("repository", manager_->RepositoryOf(a, n).status(), StatusCode::kNotFound);
    same("load", Sync([&](auto cb) { manager_->Load(a, n, std::nullopt, cb); }),
         StatusCode::kNotFound);
    same("unload", Sync([&](auto cb) { manager_->Unload(a, n, cb); }), StatusCode::kNotFound);
    EXPECT_FALSE(manager_->GetAfterLoad(a, n, "", [](StatusOr<ModelHandle>) { FAIL(); }));
  }
  EXPECT_EQ(IndexMap()["only_b/0"].reason, "not loaded");  // a's attempts loaded nothing

  // The admin's view is every repository: the name is ambiguous, and the
  // error names both (it may see both).
  for (const Status& s : {manager_->Get("m", "").status(), manager_->Acquire("m", "").status(),
                          manager_->RepositoryOf("m").status(),
                          Sync([&](auto cb) { manager_->Load("m", std::nullopt, cb); }),
                          Sync([&](auto cb) { manager_->Unload("m", cb); })}) {
    EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.message();
    EXPECT_TRUE(shows(s, path_a) && shows(s, path_b)) << s.message();
  }
  EXPECT_TRUE(manager_->Get("only_b", "").status().code() == StatusCode::kUnavailable);

  // The index lists both, each with its repository and owner.
  int listed = 0;
  for (const auto& s : manager_->Index()) {
    if (s.name != "m") continue;
    ++listed;
    EXPECT_EQ(s.owner, s.repository == keys_a[0] ? "a" : "b");
    EXPECT_EQ(s.version, s.repository == keys_a[0] ? 1 : 2);
  }
  EXPECT_EQ(listed, 2);
  // Statistics are apart.
  EXPECT_EQ(manager_->stats().Find("m", 1, keys_a[0])->Read().loads, 1u);
  EXPECT_EQ(manager_->stats().Find("m", 2, keys_b[0])->Read().loads, 1u);
  EXPECT_EQ(manager_->stats().Find("m", 1, keys_b[0]), nullptr);

  // a unloads its m; b's keeps serving, and loads again on demand after its own unload.
  ASSERT_TRUE(Sync([&](auto cb) { manager_->Unload(a, "m", cb); }).ok());
  EXPECT_EQ(manager_->Get(a, "m", "").status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(manager_->Get(b, "m", "").ok());
  ASSERT_TRUE(Sync([&](auto cb) { manager_->Unload(b, "m", cb); }).ok());
  std::promise<StatusOr<ModelHandle>> on_demand;
  ASSERT_TRUE(manager_->GetAfterLoad(
      b, "m", "", [&](StatusOr<ModelHandle> h) { on_demand.set_value(std::move(h)); }));
  auto loaded = on_demand.get_future().get();
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ((*loaded)->version, 2);
  EXPECT_EQ(manager_->Get(a, "m", "").status().code(), StatusCode::kUnavailable);
}

TEST_F(ModelManagerTest, StartLoadsEachNamespacesModelAndANameTwiceInOneIsAConflict) {
  // With owners, each tenant's m loads at start.
  AddModelIn(repo_, "m", {1});
  AddModelIn(repo_b_, "m", {2});
  SetOwners({}, {});
  Create(ModelControlMode::kNone);
  const std::vector<std::string> keys_a = {PathKey(repo_)}, keys_b = {PathKey(repo_b_)};
  EXPECT_EQ((*manager_->Get(NameScope::Of(keys_a), "m", ""))->version, 1);
  EXPECT_EQ((*manager_->Get(NameScope::Of(keys_b), "m", ""))->version, 2);
  // Without owners, every repository is one namespace: the name is a
  // conflict, as before, and neither loads.
  manager_.reset();
  owners_.clear();
  Create(ModelControlMode::kNone);
  int listed = 0;
  for (const auto& s : manager_->Index()) {
    if (s.name != "m") continue;
    ++listed;
    EXPECT_EQ(s.state, ModelState::kUnavailable);
    EXPECT_NE(s.reason.find("more than one repository"), std::string::npos) << s.reason;
  }
  EXPECT_EQ(listed, 2);
  EXPECT_FALSE(manager_->Get(NameScope::Of(keys_a), "m", "").ok());
}

// ----------------------------------------------------------- fair loading

TEST_F(ModelManagerTest, ASlowLoadOfOneTenantNeverHoldsAnothersLoads) {
  AddModelIn(repo_, "slow", {1});
  AddModelIn(repo_, "next", {1});
  AddModelIn(repo_b_, "fast", {1});
  AddModelIn(repo_b_, "demand", {1});
  SetOwners({}, {});
  Create(ModelControlMode::kExplicit, 0, {}, /*load_threads=*/1);
  const std::vector<std::string> keys_a = {PathKey(repo_)}, keys_b = {PathKey(repo_b_)};
  const NameScope a = NameScope::Of(keys_a), b = NameScope::Of(keys_b);
  auto gate = std::make_shared<Gate>();
  world_.load_gates["slow"] = gate;
  std::promise<Status> slow, next;
  manager_->Load(a, "slow", std::nullopt, [&](Status s) { slow.set_value(s); });
  gate->AwaitWaiters(1);  // a's only loader place is held
  manager_->Load(a, "next", std::nullopt, [&](Status s) { next.set_value(s); });
  // b's load and on-demand request are answered meanwhile.
  EXPECT_TRUE(Sync([&](auto cb) { manager_->Load(b, "fast", std::nullopt, cb); }).ok());
  std::promise<StatusOr<ModelHandle>> demand;
  ASSERT_TRUE(manager_->GetAfterLoad(
      b, "demand", "", [&](StatusOr<ModelHandle> h) { demand.set_value(std::move(h)); }));
  EXPECT_TRUE(demand.get_future().get().ok());
  // a's next load waits for a's own slow one (one at a time per tenant).
  auto next_done = next.get_future();
  EXPECT_EQ(next_done.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  gate->Open();
  EXPECT_TRUE(slow.get_future().get().ok());
  EXPECT_TRUE(next_done.get().ok());
}

TEST_F(ModelManagerTest, ShutdownStopsWarmupsAndLaterLoadsFailAtOnce) {
  // As many warmup runs as a config may ask for (model_config.h's bounds).
  AddModel("warm", {1},
           "model_warmup { name: \"w\" batch_size: 1 count: 1000 inputs { key: \"x\" "
           "value { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } }\n");
  AddModel("stuck", {1});
  AddModel("ready", {1});
  Create(ModelControlMode::kExplicit, 0, {"ready"}, /*load_threads=*/2);
  auto gate = std::make_shared<Gate>();
  world_.exec_gate = gate;  // the first warmup run is held
  std::promise<Status> warm;
  manager_->Load("warm", std::nullopt, [&](Status s) { warm.set_value(s); });
  gate->AwaitWaiters(1);
  // The held run keeps the load from ending by the deadline...
  EXPECT_FALSE(
      manager_->Shutdown(std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
  // ...and once it ends, the warmup stops there: the other 999 never run.
  gate->Open();
  Status s = warm.get_future().get();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("the server is stopping"), std::string::npos) << s.message();
  EXPECT_LE(world_.counters.executions.load(), 2);
  // Loads after that fail at once, and READY models keep serving.
  EXPECT_EQ(LoadSync("stuck").code(), StatusCode::kUnavailable);
  EXPECT_TRUE(manager_->Get("ready", "").ok());
  EXPECT_FALSE(manager_->GetAfterLoad("stuck", "", [](StatusOr<ModelHandle>) { FAIL(); }));
}

TEST_F(ModelManagerTest, ShutdownGivesUpOnALoadThatDoesNotReturnByItsDeadline) {
  AddModel("stuck", {1});
  Create(ModelControlMode::kExplicit);
  auto gate = std::make_shared<Gate>();
  world_.load_gates["stuck"] = gate;
  std::promise<Status> stuck;
  manager_->Load("stuck", std::nullopt, [&](Status s) { stuck.set_value(s); });
  gate->AwaitWaiters(1);
  EXPECT_FALSE(
      manager_->Shutdown(std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
  gate->Open();  // (the process would have exited; here the load ends and the manager goes)
  (void)stuck.get_future().get();
}

}  // namespace
}  // namespace mm
