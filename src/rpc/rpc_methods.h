// The KServe v2 gRPC service (inference.GRPCInferenceService, with Triton's
// extensions) apart from any transport: which method a call's :path names,
// who may call it, and the protocol logic of every method that answers at
// once. Both gRPC transports (grpc++ in src/grpc, the native HTTP/2 one in
// src/http) decode a request message, call the method here and send what it
// fills in (or the Status it returns, as GrpcCodeFor says); ModelInfer and
// ModelStreamInfer run through InferenceService::Infer with the codec
// (rpc/grpc_codec.h), and their observing (rpc/observe.h).
//
// Thread-safety: every function may be called concurrently (InferenceService
// is). None blocks: repository load and unload answer through a callback.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "core/status.h"
#include "grpc_service.pb.h"
#include "service/inference_service.h"
#include "tenancy/tenants.h"

namespace mm::rpc {

// The methods of inference.GRPCInferenceService, in the service's order.
enum class Method : uint8_t {
  kServerLive,
  kServerReady,
  kModelReady,
  kServerMetadata,
  kModelMetadata,
  kModelInfer,
  kModelStreamInfer,
  kModelConfig,
  kModelStatistics,
  kRepositoryIndex,
  kRepositoryModelLoad,
  kRepositoryModelUnload,
  kSystemSharedMemoryStatus,
  kSystemSharedMemoryRegister,
  kSystemSharedMemoryUnregister,
  kCudaSharedMemoryStatus,
  kCudaSharedMemoryRegister,
  kCudaSharedMemoryUnregister,
  kTraceSetting,
  kLogSettings,
};
inline constexpr size_t kMethodCount = static_cast<size_t>(Method::kLogSettings) + 1;

// The method a gRPC request's :path names ("/inference.GRPCInferenceService/ModelInfer");
// nullopt for any other path. No allocation.
std::optional<Method> MethodFromPath(std::string_view path);
// The method's name in the service ("ModelInfer"); a literal.
std::string_view MethodName(Method m);
// The health checks (ServerLive, ServerReady) answer anyone; every other method authenticates
// first.
bool OpenToAnyone(Method m);

// The methods that answer at once: each reads `in` and fills `out`, or returns the error to send
// (then `out` may be partly filled and must not be sent). `tenant` is the caller, as
// InferenceService::Authenticate named it (null only for OpenToAnyone methods).
Status ServerLive(InferenceService& s, const Tenant* tenant, const inference::ServerLiveRequest& in,
                  inference::ServerLiveResponse* out);
Status ServerReady(InferenceService& s, const Tenant* tenant,
                   const inference::ServerReadyRequest& in, inference::ServerReadyResponse* out);
Status ModelReady(InferenceService& s, const Tenant* tenant, const inference::ModelReadyRequest& in,
                  inference::ModelReadyResponse* out);
Status ServerMetadata(InferenceService& s, const Tenant* tenant,
                      const inference::ServerMetadataRequest& in,
                      inference::ServerMetadataResponse* out);
Status ModelMetadata(InferenceService& s, const Tenant* tenant,
                     const inference::ModelMetadataRequest& in,
                     inference::ModelMetadataResponse* out);
Status ModelConfig(InferenceService& s, const Tenant* tenant,
                   const inference::ModelConfigRequest& in, inference::ModelConfigResponse* out);
Status ModelStatistics(InferenceService& s, const Tenant* tenant,
                       const inference::ModelStatisticsRequest& in,
                       inference::ModelStatisticsResponse* out);
// INVALID_ARGUMENT for a repository_name: mmserve lists every repository it serves.
Status RepositoryIndex(InferenceService& s, const Tenant* tenant,
                       const inference::RepositoryIndexRequest& in,
                       inference::RepositoryIndexResponse* out);
// Shared memory: every tenant registers and sees only its own regions
// (service/shared_memory.h); the owner is always the caller's tenant.
Status SystemSharedMemoryStatus(InferenceService& s, const Tenant* tenant,
                                const inference::SystemSharedMemoryStatusRequest& in,
                                inference::SystemSharedMemoryStatusResponse* out);
Status SystemSharedMemoryRegister(InferenceService& s, const Tenant* tenant,
                                  const inference::SystemSharedMemoryRegisterRequest& in,
                                  inference::SystemSharedMemoryRegisterResponse* out);
// An empty name unregisters every region of the tenant.
Status SystemSharedMemoryUnregister(InferenceService& s, const Tenant* tenant,
                                    const inference::SystemSharedMemoryUnregisterRequest& in,
                                    inference::SystemSharedMemoryUnregisterResponse* out);
// UNIMPLEMENTED: mmserve has no CUDA shared memory, trace or log settings over gRPC.
Status CudaSharedMemoryStatus(InferenceService& s, const Tenant* tenant,
                              const inference::CudaSharedMemoryStatusRequest& in,
                              inference::CudaSharedMemoryStatusResponse* out);
Status CudaSharedMemoryRegister(InferenceService& s, const Tenant* tenant,
                                const inference::CudaSharedMemoryRegisterRequest& in,
                                inference::CudaSharedMemoryRegisterResponse* out);
Status CudaSharedMemoryUnregister(InferenceService& s, const Tenant* tenant,
                                  const inference::CudaSharedMemoryUnregisterRequest& in,
                                  inference::CudaSharedMemoryUnregisterResponse* out);
Status TraceSetting(InferenceService& s, const Tenant* tenant,
                    const inference::TraceSettingRequest& in, inference::TraceSettingResponse* out);
Status LogSettings(InferenceService& s, const Tenant* tenant,
                   const inference::LogSettingsRequest& in, inference::LogSettingsResponse* out);

// Repository load/unload: validates `in` (errors go to `done` at once, on the caller's thread),
// then runs (InferenceService::LoadModel / UnloadModel); `done` is called exactly once, maybe
// from another thread. Their responses carry nothing: OK is the answer. `in` is read during the
// call only; `tenant` must stay alive until `done` has been called.
// Load: INVALID_ARGUMENT for a repository_name, a 'config' parameter that is not a string, and any
// 'file:' parameter (model files come from the repository).
void RepositoryModelLoad(InferenceService& s, const Tenant& tenant,
                         const inference::RepositoryModelLoadRequest& in,
                         std::function<void(Status)> done);
void RepositoryModelUnload(InferenceService& s, const Tenant& tenant,
                           const inference::RepositoryModelUnloadRequest& in,
                           std::function<void(Status)> done);

}  // namespace mm::rpc
