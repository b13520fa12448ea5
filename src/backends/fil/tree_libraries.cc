#include "backends/fil/tree_libraries.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <map>
#include <memory>
#include <string_view>

#include "core/thread_annotations.h"

// Default paths: build/fil.env, compiled in by src/backends/fil/engine.cmake.
#ifndef MMSERVE_FIL_XGBOOST_LIBRARY
#define MMSERVE_FIL_XGBOOST_LIBRARY ""
#endif
#ifndef MMSERVE_FIL_LIGHTGBM_LIBRARY
#define MMSERVE_FIL_LIGHTGBM_LIBRARY ""
#endif
#ifndef MMSERVE_FIL_TREELITE_LIBRARY
#define MMSERVE_FIL_TREELITE_LIBRARY ""
#endif

namespace mm::fil {
namespace {

// What each library is called in messages and flags.
struct LibraryName {
  const char* display;       // "XGBoost"
  const char* flag;          // "xgboost-library"
  const char* default_path;  // from build/fil.env
  // Where an installed copy keeps it, under <binary's folder>/../lib/fil (the
  // container image's layout, deploy/container/stage.sh): the fallback when
  // the build's path is not on this machine.
  const char* installed_path;
};
constexpr LibraryName kXGBoostName{"XGBoost", "xgboost-library", MMSERVE_FIL_XGBOOST_LIBRARY,
                                   "xgboost/lib/libxgboost.so"};
constexpr LibraryName kLightGBMName{"LightGBM", "lightgbm-library", MMSERVE_FIL_LIGHTGBM_LIBRARY,
                                    "lightgbm/lib/lib_lightgbm.so"};
constexpr LibraryName kTreeliteName{"Treelite", "treelite-library", MMSERVE_FIL_TREELITE_LIBRARY,
                                    "treelite/lib/libtreelite.so"};

// The library's path when no flag names one: the build's, else the installed
// layout's when that one exists.
std::string DefaultPath(const LibraryName& name) {
  std::error_code ec;
  std::string built(name.default_path);
  if (!built.empty() && std::filesystem::is_regular_file(built, ec)) return built;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    std::filesystem::path installed =
        exe.parent_path().parent_path() / "lib" / "fil" / name.installed_path;
    if (std::filesystem::is_regular_file(installed, ec)) return installed.string();
  }
  return built;  // missing: the caller's message names it
}

Status NotFoundHint(const LibraryName& name, std::string_view why) {
  return FailedPrecondition(std::string(name.display) + " library " + std::string(why) +
                            "; run scripts/install-deps.sh or name it with "
                            "--backend-config=fil," +
                            name.flag + "=PATH");
}

// dlopen'ed handle plus dlsym with a message naming library and symbol.
class Symbols {
 public:
  Symbols(void* handle, std::string path) : handle_(handle), path_(std::move(path)) {}
  template <typename Fn>
  void Get(const char* symbol, Fn* out) {
    void* p = dlsym(handle_, symbol);
    if (p == nullptr && missing_.empty()) missing_ = symbol;
    *out = reinterpret_cast<Fn>(p);
  }
  // A symbol the library may lack (found in it or its dependencies).
  template <typename Fn>
  void GetOptional(const char* symbol, Fn* out) {
    *out = reinterpret_cast<Fn>(dlsym(handle_, symbol));
  }
  Status status(const LibraryName& name) const {
    if (missing_.empty()) return OkStatus();
    return FailedPrecondition(std::string(name.display) + " library " + path_ + " has no symbol " +
                              missing_ + ": expected " + name.display +
                              "'s C API (the version scripts/install-deps.sh installs)");
  }

 private:
  void* handle_;
  std::string path_;
  std::string missing_;
};

void LogFromLibrary(const char* library, const char* message) {
  std::string_view text(message == nullptr ? "" : message);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  if (!text.empty()) spdlog::debug("fil: {}: {}", library, text);
}
void XGBoostLog(const char* message) { LogFromLibrary("XGBoost", message); }
void LightGBMLog(const char* message) { LogFromLibrary("LightGBM", message); }
void TreeliteLog(const char* message) { LogFromLibrary("Treelite", message); }

// One opened table per distinct path, for the life of the process.
template <typename Library>
class OpenedLibraries {
 public:
  template <typename Fill>
  StatusOr<const Library*> Open(const LibraryName& name, const std::filesystem::path& requested,
                                Fill fill) {
    std::string path = requested.empty() ? DefaultPath(name) : requested.string();
    if (path.empty()) return NotFoundHint(name, "was not found when mmserve was built");
    MutexLock lock(mu_);
    if (auto it = opened_.find(path); it != opened_.end()) return it->second;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      return NotFoundHint(name, "not found at " + path);
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (handle == nullptr) {
      const char* why = dlerror();
      return NotFoundHint(name, "at " + path + " could not be opened (" +
                                    std::string(why == nullptr ? "unknown reason" : why) + ")");
    }
    auto library = std::make_unique<Library>();
    library->path = path;
    Symbols symbols(handle, path);
    Status status = fill(symbols, *library);
    if (!status.ok()) return status;            // stays mapped (RTLD_NODELETE); retried next time
    const Library* result = library.release();  // never freed: models may outlive any owner
    opened_.emplace(path, result);
    return result;
  }

 private:
  Mutex mu_;
  std::map<std::string, const Library*> opened_ MM_GUARDED_BY(mu_);
};

template <typename Library>
OpenedLibraries<Library>& Opened() {
  static auto* opened = new OpenedLibraries<Library>();  // never destroyed (contract 1)
  return *opened;
}

}  // namespace

std::string LastError(const char* (*get_last_error)()) {
  const char* message = get_last_error == nullptr ? nullptr : get_last_error();
  if (message == nullptr || *message == '\0') return "(no message)";
  std::string_view text(message);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  return std::string(text);
}

StatusOr<const XGBoostLibrary*> OpenXGBoostLibrary(const std::filesystem::path& path) {
  return Opened<XGBoostLibrary>().Open(
      kXGBoostName, path, [](Symbols& s, XGBoostLibrary& lib) -> Status {
        capi::XGBoostVersionFn version = nullptr;
        s.Get("XGBoostVersion", &version);
        s.Get("XGBGetLastError", &lib.get_last_error);
        s.GetOptional("omp_set_num_threads", &lib.omp_set_num_threads);
        s.Get("XGBRegisterLogCallback", &lib.register_log_callback);
        s.Get("XGBoosterCreate", &lib.booster_create);
        s.Get("XGBoosterFree", &lib.booster_free);
        s.Get("XGBoosterLoadModelFromBuffer", &lib.load_model_from_buffer);
        s.Get("XGBoosterSetParam", &lib.set_param);
        s.Get("XGBoosterGetNumFeature", &lib.get_num_feature);
        s.Get("XGBoosterSaveJsonConfig", &lib.save_json_config);
        s.Get("XGBoosterPredictFromDense", &lib.predict_from_dense);
        s.Get("XGProxyDMatrixCreate", &lib.proxy_dmatrix_create);
        s.Get("XGDMatrixFree", &lib.dmatrix_free);
        MM_RETURN_IF_ERROR(s.status(kXGBoostName));
        int major = 0, minor = 0, patch = 0;
        version(&major, &minor, &patch);
        lib.version =
            std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
        // 3.x: the C API above, and JSON/UBJSON models of every XGBoost since 1.0.
        if (major != 3) {
          return FailedPrecondition("XGBoost library " + lib.path + " is version " + lib.version +
                                    ": expected 3.x (scripts/install-deps.sh installs 3.2.0)");
        }
        return OkStatus();
      });
}

StatusOr<const LightGBMLibrary*> OpenLightGBMLibrary(const std::filesystem::path& path) {
  return Opened<LightGBMLibrary>().Open(
      kLightGBMName, path, [](Symbols& s, LightGBMLibrary& lib) -> Status {
        s.Get("LGBM_GetLastError", &lib.get_last_error);
        s.GetOptional("omp_set_num_threads", &lib.omp_set_num_threads);
        s.Get("LGBM_RegisterLogCallback", &lib.register_log_callback);
        s.Get("LGBM_BoosterLoadModelFromString", &lib.load_model_from_string);
        s.Get("LGBM_BoosterFree", &lib.booster_free);
        s.Get("LGBM_BoosterGetNumFeature", &lib.get_num_feature);
        s.Get("LGBM_BoosterGetNumClasses", &lib.get_num_classes);
        s.Get("LGBM_BoosterNumberOfTotalModel", &lib.number_of_total_model);
        s.Get("LGBM_BoosterPredictForMat", &lib.predict_for_mat);
        return s.status(kLightGBMName);
      });
}

StatusOr<const TreeliteLibrary*> OpenTreeliteLibrary(const std::filesystem::path& path) {
  return Opened<TreeliteLibrary>().Open(
      kTreeliteName, path, [](Symbols& s, TreeliteLibrary& lib) -> Status {
        capi::TreeliteRegisterCallbackFn register_log = nullptr, register_warning = nullptr;
        s.Get("TreeliteRegisterLogCallback", &register_log);
        s.Get("TreeliteRegisterWarningCallback", &register_warning);
        s.Get("TreeliteGetLastError", &lib.get_last_error);
        s.GetOptional("omp_set_num_threads", &lib.omp_set_num_threads);
        s.Get("TreeliteDeserializeModelFromBytes", &lib.deserialize_from_bytes);
        s.Get("TreeliteLoadXGBoostModelLegacyBinaryFromMemoryBuffer",
              &lib.load_xgboost_legacy_binary);
        s.Get("TreeliteFreeModel", &lib.free_model);
        s.Get("TreeliteQueryNumTree", &lib.query_num_tree);
        s.Get("TreeliteQueryNumFeature", &lib.query_num_feature);
        s.Get("TreeliteGetInputType", &lib.get_input_type);
        s.Get("TreeliteGetOutputType", &lib.get_output_type);
        s.Get("TreeliteGetHeaderField", &lib.get_header_field);
        s.Get("TreeliteGetTreeField", &lib.get_tree_field);
        s.Get("TreeliteSerializeModelToPyBuffer", &lib.serialize_to_pybuffer);
        s.Get("TreeliteGTILParseConfig", &lib.gtil_parse_config);
        s.Get("TreeliteGTILDeleteConfig", &lib.gtil_delete_config);
        s.Get("TreeliteGTILGetOutputShape", &lib.gtil_get_output_shape);
        s.Get("TreeliteGTILPredict", &lib.gtil_predict);
        MM_RETURN_IF_ERROR(s.status(kTreeliteName));
        // Treelite's callbacks are process-wide.
        register_log(&TreeliteLog);
        register_warning(&TreeliteLog);
        return OkStatus();
      });
}

void PrepareThisThread(const XGBoostLibrary& library) {
  thread_local const XGBoostLibrary* prepared = nullptr;
  if (prepared == &library) return;
  if (library.omp_set_num_threads != nullptr) library.omp_set_num_threads(1);
  library.register_log_callback(&XGBoostLog);
  prepared = &library;
}

void* ThisThreadProxy(const XGBoostLibrary& library) {
  struct Proxy {
    const XGBoostLibrary* library = nullptr;
    void* handle = nullptr;
    ~Proxy() {
      if (handle != nullptr) library->dmatrix_free(handle);
    }
  };
  thread_local Proxy proxy;
  if (proxy.library != &library) {
    if (proxy.handle != nullptr) proxy.library->dmatrix_free(proxy.handle);
    proxy.handle = nullptr;
    proxy.library = &library;
    if (library.proxy_dmatrix_create(&proxy.handle) != 0) proxy.handle = nullptr;
  }
  return proxy.handle;
}

void PrepareThisThread(const LightGBMLibrary& library) {
  thread_local const LightGBMLibrary* prepared = nullptr;
  if (prepared == &library) return;
  if (library.omp_set_num_threads != nullptr) library.omp_set_num_threads(1);
  library.register_log_callback(&LightGBMLog);
  prepared = &library;
}

void PrepareThisThread(const TreeliteLibrary& library) {
  thread_local const TreeliteLibrary* prepared = nullptr;
  if (prepared == &library) return;
  if (library.omp_set_num_threads != nullptr) library.omp_set_num_threads(1);
  prepared = &library;
}

}  // namespace mm::fil
