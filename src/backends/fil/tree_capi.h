// The few C functions of XGBoost, LightGBM and Treelite that the engines call,
// declared here because the PyPI wheels we take the libraries from carry no
// headers. Each is a function-pointer type filled by dlsym (tree_libraries.h).
// The signatures are the libraries' documented, stable C APIs:
//   XGBoost 3.2   include/xgboost/c_api.h       (dmlc/xgboost, tag v3.2.0)
//   LightGBM 4.7  include/LightGBM/c_api.h      (microsoft/LightGBM, tag v4.7.0)
//   Treelite 4.8  include/treelite/c_api.h      (dmlc/treelite, tag 4.8.1)
// Every function returns 0 on success and -1 on failure; the reason is the
// library's thread-local last error (XGBGetLastError, LGBM_GetLastError,
// TreeliteGetLastError). Private to src/backends/fil/.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mm::fil::capi {

// OpenMP's, from the copy of libgomp each library loaded (XGBoost and Treelite
// carry their own): sets the calling thread's team size.
using OmpSetNumThreadsFn = void (*)(int num_threads);

// ---------------------------------------------------------------- XGBoost
using BoosterHandle = void*;
using bst_ulong = uint64_t;  // NOLINT: XGBoost's name
using XGBoostVersionFn = void (*)(int* major, int* minor, int* patch);
using XGBGetLastErrorFn = const char* (*)();
using XGBRegisterLogCallbackFn = int (*)(void (*callback)(const char*));
using XGBoosterCreateFn = int (*)(const void* dmats[], bst_ulong len, BoosterHandle* out);
using XGBoosterFreeFn = int (*)(BoosterHandle handle);
using XGBoosterLoadModelFromBufferFn = int (*)(BoosterHandle handle, const void* buf,
                                               bst_ulong len);
using XGBoosterSetParamFn = int (*)(BoosterHandle handle, const char* name, const char* value);
using XGBoosterGetNumFeatureFn = int (*)(BoosterHandle handle, bst_ulong* out);
using XGBoosterSaveJsonConfigFn = int (*)(BoosterHandle handle, bst_ulong* out_len,
                                          const char** out_str);
// values: a __array_interface__ JSON naming the caller's dense rows; m: a
// proxy DMatrix (XGProxyDMatrixCreate) that the call points at the rows, or
// NULL for a new one per call (its Context reads the cgroup's CPU quota from
// /sys/fs/cgroup at each construction); out_result: a thread-local buffer
// of the booster's, valid until the next prediction on this thread.
using XGBoosterPredictFromDenseFn = int (*)(BoosterHandle handle, const char* values,
                                            const char* config, void* m,
                                            const bst_ulong** out_shape, bst_ulong* out_dim,
                                            const float** out_result);

using XGProxyDMatrixCreateFn = int (*)(void** out);
using XGDMatrixFreeFn = int (*)(void* handle);

// ---------------------------------------------------------------- LightGBM
constexpr int kLgbmDtypeFloat32 = 0;     // C_API_DTYPE_FLOAT32
constexpr int kLgbmDtypeFloat64 = 1;     // C_API_DTYPE_FLOAT64
constexpr int kLgbmPredictNormal = 0;    // C_API_PREDICT_NORMAL (objective's transform)
constexpr int kLgbmPredictRawScore = 1;  // C_API_PREDICT_RAW_SCORE
using LGBM_GetLastErrorFn = const char* (*)();
using LGBM_RegisterLogCallbackFn = int (*)(void (*callback)(const char*));
using LGBM_BoosterLoadModelFromStringFn = int (*)(const char* model_str, int* out_num_iterations,
                                                  void** out);
using LGBM_BoosterFreeFn = int (*)(void* handle);
using LGBM_BoosterGetNumFeatureFn = int (*)(void* handle, int* out_len);
using LGBM_BoosterGetNumClassesFn = int (*)(void* handle, int* out_len);
using LGBM_BoosterNumberOfTotalModelFn = int (*)(void* handle, int* out_models);
using LGBM_BoosterPredictForMatFn = int (*)(void* handle, const void* data, int data_type,
                                            int32_t nrow, int32_t ncol, int is_row_major,
                                            int predict_type, int start_iteration,
                                            int num_iteration, const char* parameter,
                                            int64_t* out_len, double* out_result);

// ---------------------------------------------------------------- Treelite
using TreeliteModelHandle = void*;
using TreeliteGTILConfigHandle = void*;
struct TreelitePyBufferFrame {
  void* buf;
  char* format;
  size_t itemsize;
  size_t nitem;
};
using TreeliteGetLastErrorFn = const char* (*)();
using TreeliteRegisterCallbackFn = int (*)(void (*callback)(const char*));
using TreeliteDeserializeModelFromBytesFn = int (*)(const char* bytes, size_t bytes_len,
                                                    TreeliteModelHandle* out);
using TreeliteLoadXGBoostModelLegacyBinaryFromMemoryBufferFn = int (*)(const void* buf, size_t len,
                                                                       const char* config_json,
                                                                       TreeliteModelHandle* out);
using TreeliteFreeModelFn = int (*)(TreeliteModelHandle handle);
using TreeliteQueryNumTreeFn = int (*)(TreeliteModelHandle handle, size_t* out);
using TreeliteQueryNumFeatureFn = int (*)(TreeliteModelHandle handle, int* out);
using TreeliteGetInputTypeFn = int (*)(TreeliteModelHandle handle, const char** out_str);
using TreeliteGetHeaderFieldFn = int (*)(TreeliteModelHandle handle, const char* name,
                                         TreelitePyBufferFrame* out_frame);
using TreeliteGetTreeFieldFn = int (*)(TreeliteModelHandle handle, uint64_t tree_id,
                                       const char* name, TreelitePyBufferFrame* out_frame);
// The frames point into the model's own arrays (no copy); the frame list is
// thread-local to the library, valid until the next call on this thread.
using TreeliteSerializeModelToPyBufferFn = int (*)(TreeliteModelHandle handle,
                                                   TreelitePyBufferFrame** out_frames,
                                                   size_t* out_num_frames);
using TreeliteGTILParseConfigFn = int (*)(const char* config_json, TreeliteGTILConfigHandle* out);
using TreeliteGTILDeleteConfigFn = int (*)(TreeliteGTILConfigHandle handle);
using TreeliteGTILGetOutputShapeFn = int (*)(TreeliteModelHandle model, uint64_t num_row,
                                             TreeliteGTILConfigHandle config, const uint64_t** out,
                                             uint64_t* out_ndim);
using TreeliteGTILPredictFn = int (*)(TreeliteModelHandle model, const void* input,
                                      const char* input_type, uint64_t num_row, void* output,
                                      TreeliteGTILConfigHandle config);

}  // namespace mm::fil::capi
