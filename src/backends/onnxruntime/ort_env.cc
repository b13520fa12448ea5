#include "backends/onnxruntime/ort_env.h"

#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>

#include "core/thread_annotations.h"

namespace mm {
namespace {

struct EnvHolder {
  Mutex mu;
  Ort::Env* env MM_GUARDED_BY(mu) = nullptr;  // reachable, so not a leak
};

// Never destroyed, like the Env it holds.
EnvHolder& Holder() {
  static EnvHolder* holder = new EnvHolder;
  return *holder;
}

// Protocol-buffer wire format, just enough to write a tiny ONNX model.
void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void PutInt(std::string& out, int field, uint64_t v) {
  PutVarint(out, static_cast<uint64_t>(field) << 3);
  PutVarint(out, v);
}
void PutBytes(std::string& out, int field, const std::string& bytes) {
  PutVarint(out, (static_cast<uint64_t>(field) << 3) | 2);
  PutVarint(out, bytes.size());
  out += bytes;
}

// ModelProto of y = Identity(x), x and y FP32 [1], IR 9, opset 17.
std::string TinyIdentityModel() {
  std::string dim, shape, tensor, type, x, y, node, graph, opset, model;
  PutInt(dim, 1, 1);           // Dimension.dim_value
  PutBytes(shape, 1, dim);     // TensorShapeProto.dim
  PutInt(tensor, 1, 1);        // TypeProto.Tensor.elem_type = FLOAT
  PutBytes(tensor, 2, shape);  // TypeProto.Tensor.shape
  PutBytes(type, 1, tensor);   // TypeProto.tensor_type
  PutBytes(x, 1, "x");         // ValueInfoProto.name
  PutBytes(x, 2, type);        // ValueInfoProto.type
  PutBytes(y, 1, "y");
  PutBytes(y, 2, type);
  PutBytes(node, 1, "x");         // NodeProto.input
  PutBytes(node, 2, "y");         // NodeProto.output
  PutBytes(node, 4, "Identity");  // NodeProto.op_type
  PutBytes(graph, 1, node);       // GraphProto.node
  PutBytes(graph, 2, "warmup");   // GraphProto.name
  PutBytes(graph, 11, x);         // GraphProto.input
  PutBytes(graph, 12, y);         // GraphProto.output
  PutInt(opset, 2, 17);           // OperatorSetIdProto.version (domain "")
  PutInt(model, 1, 9);            // ModelProto.ir_version
  PutBytes(model, 7, graph);      // ModelProto.graph
  PutBytes(model, 8, opset);      // ModelProto.opset_import
  return model;
}

void WarmUpOnce(Ort::Env& env) {
  try {
    const std::string bytes = TinyIdentityModel();
    Ort::SessionOptions options;
    options.SetIntraOpNumThreads(1);
    options.SetInterOpNumThreads(1);
    Ort::Session session(env, bytes.data(), bytes.size(), options);
  } catch (const std::exception& e) {
    spdlog::debug("onnxruntime warm-up session failed (harmless): {}", e.what());
  }
}

}  // namespace

StatusOr<Ort::Env*> SharedOrtEnv() {
  EnvHolder& holder = Holder();
  MutexLock lock(holder.mu);
  if (holder.env == nullptr) {
    // ONNX Runtime's Linux build records telemetry by default: a thread writing
    // to an SQLite file in ~/.cache shared by every process, plus a
    // /tmp/mat-debug-PID.log per process, ~13% of the server's CPU while
    // loading models and ~5 ms on a session creation's p99 (docs/benchmarks.md).
    // A server must not phone home or write outside its own paths: off,
    // before the first Env, as documented; the user may still set it.
    setenv("ORT_DISABLE_TELEMETRY", "1", /*overwrite=*/0);
    try {
      holder.env = new Ort::Env(ORT_LOGGING_LEVEL_WARNING, "mmserve");
      holder.env->DisableTelemetryEvents();
    } catch (const std::exception& e) {
      return Internal(std::string("cannot create the ONNX Runtime environment: ") + e.what());
    }
  }
  return holder.env;
}

void WarmUpOrtRuntime(Ort::Env& env) {
  static std::once_flag warmed;
  std::call_once(warmed, [&env] { WarmUpOnce(env); });
}

}  // namespace mm
