// The three tree libraries, opened on demand: dlopen(RTLD_NOW | RTLD_LOCAL |
// RTLD_NODELETE) of each at the first model that needs it, dlsym of every
// function the engines call (tree_capi.h), never closed.
//
// Contract:
//  1. Open*Library is thread-safe: concurrent first loads open a library once.
//     The tables live until the process exits (they are never freed, so a
//     model may outlive any owner).
//  2. An empty path means the build's default (build/fil.env, compiled in);
//     each distinct path is opened once.
//  3. Failure (file missing, not a library, a symbol missing, a version we
//     do not drive) is FAILED_PRECONDITION naming the path and what to do;
//     a failed open is retried by the next call (the operator may have fixed
//     the path).
//  4. Engines call PrepareThisThread (below) on every thread that loads or
//     predicts: one OpenMP thread, and the library's log routed to spdlog at
//     debug level, not to stdout (LightGBM's Fatal messages still reach
//     stderr: it prints them before throwing).
// Private to src/backends/fil/.
#pragma once

#include <filesystem>
#include <string>

#include "backends/fil/tree_capi.h"
#include "core/status.h"

namespace mm::fil {

struct XGBoostLibrary {
  std::string path;
  // Its libgomp's; null if the library has no OpenMP.
  capi::OmpSetNumThreadsFn omp_set_num_threads = nullptr;
  std::string version;  // "3.2.0"
  capi::XGBGetLastErrorFn get_last_error;
  capi::XGBRegisterLogCallbackFn register_log_callback;
  capi::XGBoosterCreateFn booster_create;
  capi::XGBoosterFreeFn booster_free;
  capi::XGBoosterLoadModelFromBufferFn load_model_from_buffer;
  capi::XGBoosterSetParamFn set_param;
  capi::XGBoosterGetNumFeatureFn get_num_feature;
  capi::XGBoosterSaveJsonConfigFn save_json_config;
  capi::XGBoosterPredictFromDenseFn predict_from_dense;
  capi::XGProxyDMatrixCreateFn proxy_dmatrix_create;
  capi::XGDMatrixFreeFn dmatrix_free;
};

struct LightGBMLibrary {
  std::string path;
  // Its libgomp's; null if the library has no OpenMP.
  capi::OmpSetNumThreadsFn omp_set_num_threads = nullptr;
  // LightGBM's C API has no version function; the version is the wheel's,
  // from build/fil.env's folder name.
  capi::LGBM_GetLastErrorFn get_last_error;
  capi::LGBM_RegisterLogCallbackFn register_log_callback;
  capi::LGBM_BoosterLoadModelFromStringFn load_model_from_string;
  capi::LGBM_BoosterFreeFn booster_free;
  capi::LGBM_BoosterGetNumFeatureFn get_num_feature;
  capi::LGBM_BoosterGetNumClassesFn get_num_classes;
  capi::LGBM_BoosterNumberOfTotalModelFn number_of_total_model;
  capi::LGBM_BoosterPredictForMatFn predict_for_mat;
};

struct TreeliteLibrary {
  std::string path;
  // Its libgomp's; null if the library has no OpenMP.
  capi::OmpSetNumThreadsFn omp_set_num_threads = nullptr;
  // Treelite 4.8's wheel exports no version function either.
  capi::TreeliteGetLastErrorFn get_last_error;
  capi::TreeliteDeserializeModelFromBytesFn deserialize_from_bytes;
  capi::TreeliteLoadXGBoostModelLegacyBinaryFromMemoryBufferFn load_xgboost_legacy_binary;
  capi::TreeliteFreeModelFn free_model;
  capi::TreeliteQueryNumTreeFn query_num_tree;
  capi::TreeliteQueryNumFeatureFn query_num_feature;
  capi::TreeliteGetInputTypeFn get_input_type;
  capi::TreeliteGetInputTypeFn get_output_type;  // same signature
  capi::TreeliteGetHeaderFieldFn get_header_field;
  capi::TreeliteGetTreeFieldFn get_tree_field;
  capi::TreeliteSerializeModelToPyBufferFn serialize_to_pybuffer;
  capi::TreeliteGTILParseConfigFn gtil_parse_config;
  capi::TreeliteGTILDeleteConfigFn gtil_delete_config;
  capi::TreeliteGTILGetOutputShapeFn gtil_get_output_shape;
  capi::TreeliteGTILPredictFn gtil_predict;
};

StatusOr<const XGBoostLibrary*> OpenXGBoostLibrary(const std::filesystem::path& path);
StatusOr<const LightGBMLibrary*> OpenLightGBMLibrary(const std::filesystem::path& path);
StatusOr<const TreeliteLibrary*> OpenTreeliteLibrary(const std::filesystem::path& path);

// Called on the thread of every load and prediction (a thread-local check
// after the first): one OpenMP thread for this thread's parallel regions in
// the library's libgomp (the library's own nthread settings leave some of its
// loops on every core: XGBoost's model parsing took 2-10x longer on a busy
// machine), and the library's log to spdlog (XGBoost and LightGBM keep their
// log callback per thread; Treelite's, set when it is opened, is global).
void PrepareThisThread(const XGBoostLibrary& library);
void PrepareThisThread(const LightGBMLibrary& library);
void PrepareThisThread(const TreeliteLibrary& library);

// This thread's proxy DMatrix for XGBoosterPredictFromDense (its `m`), made
// at the thread's first prediction and freed when the thread ends; null if
// XGBoost could not make one (the caller then passes null). One per thread,
// so that a prediction need not construct one: XGBoost's Context reads the
// cgroup's CPU quota files at each construction (6.8% of the server's CPU
// serving thousands of small models). A thread predicts one batch at a time,
// and the proxy holds nothing of a prediction after it returns.
void* ThisThreadProxy(const XGBoostLibrary& library);

// The library's last error on this thread, or "(no message)".
std::string LastError(const char* (*get_last_error)());

}  // namespace mm::fil
