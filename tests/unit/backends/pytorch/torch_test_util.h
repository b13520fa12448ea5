// Helpers for the PyTorch backend's tests: TorchScript modules made in C++
// (no Python), saved into a temporary model repository, loaded through
// TorchBackend, and requests built over plain vectors.
#pragma once

#include <caffe2/serialize/inline_container.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>
#include <torch/script.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/pytorch/torch_backend.h"
#include "core/bytes_tensor.h"
#include "core/infer_request.h"

namespace mm::torch_test {

namespace fs = std::filesystem;

// A folder under the test temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("mm_torch_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

// A module whose class body is `source` (TorchScript: def forward(self, ...)).
inline torch::jit::Module MakeModule(const std::string& source) {
  torch::jit::Module module("m");
  module.define(source);
  return module;
}

inline inference::ModelConfig ParseConfig(const std::string& text) {
  inference::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

// <dir>/<name>/1/model.pt saved from `module`; the spec to load it with
// `config_text` (has_config false when `config_text` is null).
inline LoadSpec SaveModel(const TempDir& dir, const std::string& name, torch::jit::Module& module,
                          const char* config_text) {
  LoadSpec spec;
  spec.model_name = name;
  spec.version = 1;
  spec.model_dir = dir.path() / name;
  spec.version_dir = spec.model_dir / "1";
  fs::create_directories(spec.version_dir);
  module.save((spec.version_dir / "model.pt").string());
  if (config_text != nullptr) {
    spec.config = ParseConfig(config_text);
    spec.has_config = true;
  }
  spec.config.set_name(name);
  return spec;
}

// Rewrites the archive at `path`: `from` becomes `to` in its code files
// (code/**.py), and their debug records go (their offsets would no longer
// match). How a test writes a module that calls an operator this process's
// libtorch no longer has (torch_sandbox.h): saved with a stand-in call, then
// edited, as a hand-made archive would be.
inline void RewriteCode(const fs::path& path, const std::string& from, const std::string& to) {
  std::vector<std::pair<std::string, std::string>> records;
  {
    caffe2::serialize::PyTorchStreamReader reader(path.string());
    for (const std::string& name : reader.getAllRecords()) {
      if (name.ends_with(".debug_pkl")) continue;
      auto [data, size] = reader.getRecord(name);
      std::string bytes(static_cast<const char*>(data.get()), size);
      if (name.find("code/") != std::string::npos && name.ends_with(".py")) {
        const size_t at = bytes.find(from);
        EXPECT_NE(at, std::string::npos) << "'" << from << "' not in " << name << ":\n" << bytes;
        if (at != std::string::npos) bytes.replace(at, from.size(), to);
      }
      // The writer adds these itself.
      if (name == "version" || name == ".data/version" || name == "byteorder" ||
          name == ".format_version" || name == ".storage_alignment") {
        continue;
      }
      records.emplace_back(name, std::move(bytes));
    }
  }
  caffe2::serialize::PyTorchStreamWriter writer(path.string());
  for (const auto& [name, bytes] : records) writer.writeRecord(name, bytes.data(), bytes.size());
  writer.writeEndOfFile();
}

inline StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) {
  auto backend = TorchBackend::Create({});
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  if (!backend.ok()) return backend.status();
  return (*backend)->Load(spec);
}

inline std::unique_ptr<LoadedModel> MustLoad(const LoadSpec& spec) {
  auto model = Load(spec);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? std::move(model).value() : nullptr;
}

inline void ExpectLoadError(const LoadSpec& spec, StatusCode code, const std::string& needle) {
  auto model = Load(spec);
  ASSERT_FALSE(model.ok()) << "loaded, expected an error containing: " << needle;
  EXPECT_EQ(model.status().code(), code) << model.status().ToString();
  EXPECT_NE(model.status().message().find(needle), std::string::npos)
      << "'" << needle << "' not in: " << model.status().message();
}

template <typename T>
Tensor View(const std::string& name, DataType dtype, Shape shape, const std::vector<T>& values) {
  Tensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data = std::as_bytes(std::span<const T>(values));
  return t;
}

inline std::string Serialize(const std::vector<std::string>& elements) {
  std::string out;
  for (const auto& e : elements) AppendBytesElement(e, out);
  return out;
}

inline Tensor BytesView(const std::string& name, Shape shape, const std::string& serialized) {
  Tensor t;
  t.name = name;
  t.dtype = DataType::kBytes;
  t.shape = std::move(shape);
  t.data = std::as_bytes(std::span<const char>(serialized));
  return t;
}

inline std::vector<std::string> Deserialize(const Tensor& t) {
  int64_t count = 1;
  for (int64_t d : t.shape) count *= d;
  auto split = SplitBytesTensor(t.data, count, t.name);
  EXPECT_TRUE(split.ok()) << split.status().ToString();
  if (!split.ok()) return {};
  return {split->begin(), split->end()};
}

template <typename T>
std::vector<T> Values(const Tensor& t) {
  std::vector<T> out(t.data.size() / sizeof(T));
  if (!t.data.empty()) std::memcpy(out.data(), t.data.data(), t.data.size());
  return out;
}

inline const Tensor* FindOutput(const InferResponse& response, const std::string& name) {
  for (const auto& t : response.outputs) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

// Runs `request` on instance 0 of `model`.
inline StatusOr<InferResponse> Execute(LoadedModel& model, const InferRequest& request) {
  InferResponse response;
  Status status = model.instances.at(0)->Execute(request, response);
  if (!status.ok()) return status;
  return response;
}

inline InferResponse MustRun(LoadedModel& model, const InferRequest& request) {
  auto response = Execute(model, request);
  EXPECT_TRUE(response.ok()) << response.status().ToString();
  return response.ok() ? std::move(response).value() : InferResponse();
}

}  // namespace mm::torch_test
