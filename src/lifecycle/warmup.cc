#include "lifecycle/warmup.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "core/bytes_tensor.h"
#include "core/shape.h"
#include "core/small_float.h"
#include "repository/model_config.h"
#include "repository/repository_file.h"

namespace mm {

namespace {

namespace fs = std::filesystem;
using WarmupInput = inference::ModelWarmup::Input;

// Largest total input data of one sample (ValidateModelConfig's bound, kept
// here too for input_data_file contents).
constexpr uint64_t kMaxSampleBytes = ConfigBounds::kMaxWarmupSampleBytes;
constexpr std::string_view kMaxSampleBytesText = "64 MiB (67108864 bytes)";
static_assert(kMaxSampleBytes == uint64_t{64} << 20);
// random_data is reproducible: every sample starts from this seed.
constexpr std::mt19937::result_type kRandomSeed = 20240611;

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string TypeName(inference::DataType type) {
  return inference::DataType_IsValid(type) ? inference::DataType_Name(type)
                                           : "data type " + std::to_string(static_cast<int>(type));
}

// One input of a sample after validation, before its data exists.
struct PlannedInput {
  const inference::ModelInput* spec = nullptr;
  const WarmupInput* warmup = nullptr;
  DataType dtype = DataType::kInvalid;
  Shape shape;
  int64_t elements = 0;
  uint64_t bytes = 0;  // size of the data buffer
  fs::path file;       // canonical input_data_file; empty for generated data
};

Status CheckDims(const inference::ModelInput& spec, const WarmupInput& warmup) {
  for (int d = 0; d < warmup.dims_size(); ++d) {
    if (warmup.dims(d) < 0) {
      return InvalidArgument("dims[" + std::to_string(d) + "] is " +
                             std::to_string(warmup.dims(d)) + "; expected a size >= 0");
    }
  }
  Shape want(spec.dims().begin(), spec.dims().end());
  Shape got(warmup.dims().begin(), warmup.dims().end());
  if (got.size() != want.size()) {
    return InvalidArgument("dims " + ShapeToString(got) + " have " + std::to_string(got.size()) +
                           " dimensions; the config's " + ShapeToString(want, true) + " has " +
                           std::to_string(want.size()));
  }
  if (!ShapeMatches(want, got)) {
    return InvalidArgument("dims " + ShapeToString(got) + " do not match the config's " +
                           ShapeToString(want, true));
  }
  return OkStatus();
}

// The canonical path of `name` under <model_dir>/warmup/, which must exist,
// be a regular file and stay inside that folder after symlinks are resolved.
StatusOr<fs::path> ResolveDataFile(const fs::path& model_dir, const std::string& name) {
  const fs::path dir = model_dir / "warmup";
  const fs::path rel(name);
  if (name.empty()) return InvalidArgument("input_data_file is empty; expected a file name");
  if (rel.has_root_path()) {
    return InvalidArgument("input_data_file " + Quote(name) +
                           " is absolute; expected a path relative to " + dir.string());
  }
  for (const auto& part : rel) {
    if (part == "..") {
      return InvalidArgument("input_data_file " + Quote(name) + " contains '..'; expected a " +
                             "path inside " + dir.string());
    }
  }
  const fs::path path = dir / rel;
  std::error_code ec;
  fs::path file = fs::canonical(path, ec);
  if (ec) {
    return InvalidArgument(
        "input_data_file " + path.string() + " cannot be used: " +
        (ec == std::errc::no_such_file_or_directory ? "it does not exist" : ec.message()));
  }
  fs::path canonical_dir = fs::canonical(dir, ec);
  if (ec) return InvalidArgument("warmup folder " + dir.string() + ": " + ec.message());
  fs::path inside = file.lexically_relative(canonical_dir);
  if (inside.empty() || *inside.begin() == "..") {
    return InvalidArgument("input_data_file " + path.string() + " resolves to " + file.string() +
                           ", outside " + canonical_dir.string());
  }
  if (!fs::is_regular_file(file, ec)) {
    return InvalidArgument("input_data_file " + path.string() + " is not a regular file");
  }
  return file;
}

StatusOr<PlannedInput> PlanInput(const inference::ModelConfig& config,
                                 const inference::ModelInput& spec, const WarmupInput& warmup,
                                 uint32_t batch_size, const fs::path& model_dir) {
  PlannedInput plan;
  plan.spec = &spec;
  plan.warmup = &warmup;
  if (warmup.data_type() != spec.data_type()) {
    return InvalidArgument("expected " + TypeName(spec.data_type()) + ", got " +
                           TypeName(warmup.data_type()));
  }
  plan.dtype = static_cast<DataType>(spec.data_type());
  if (plan.dtype != DataType::kBytes && DataTypeSize(plan.dtype) == 0) {
    return InvalidArgument(TypeName(spec.data_type()) + " cannot be generated for warmup");
  }
  MM_RETURN_IF_ERROR(CheckDims(spec, warmup));
  if (config.max_batch_size() > 0) plan.shape.push_back(batch_size);
  plan.shape.insert(plan.shape.end(), warmup.dims().begin(), warmup.dims().end());
  auto too_big = [&](std::string need) {
    return InvalidArgument("shape " + ShapeToString(plan.shape) + " needs " + need +
                           " bytes; a warmup sample may hold at most " +
                           std::string(kMaxSampleBytesText) + " of input data");
  };
  // Dims are >= 0 here, so the only failure is an element count past int64.
  auto count = ElementCount(plan.shape, "shape");
  if (!count.ok()) return too_big("more than " + std::to_string(kMaxSampleBytes));
  plan.elements = *count;

  // Bytes of generated data; a BYTES element is at least its 4-byte prefix.
  const uint64_t elem = plan.dtype == DataType::kBytes ? 4 : DataTypeSize(plan.dtype);
  const auto n = static_cast<uint64_t>(plan.elements);
  if (n > kMaxSampleBytes / elem) {
    return too_big("more than " + std::to_string(kMaxSampleBytes));
  }
  plan.bytes = n * elem;

  switch (warmup.input_data_type_case()) {
    case WarmupInput::kZeroData:
    case WarmupInput::kRandomData:
      break;
    case WarmupInput::kInputDataFile: {
      MM_ASSIGN_OR_RETURN(plan.file, ResolveDataFile(model_dir, warmup.input_data_file()));
      std::error_code ec;
      const uintmax_t size = fs::file_size(plan.file, ec);
      if (ec) {
        return InvalidArgument("input_data_file " + plan.file.string() + ": " + ec.message());
      }
      if (plan.dtype == DataType::kBytes) {
        // The element count is checked when the file is split.
        if (size < plan.bytes) {
          return InvalidArgument("input_data_file " + plan.file.string() + " holds " +
                                 std::to_string(size) + " bytes, too few for " + std::to_string(n) +
                                 " BYTES elements of 4 bytes or more");
        }
        if (size > kMaxSampleBytes) return too_big(std::to_string(size));
        plan.bytes = size;
      } else if (size != plan.bytes) {
        return InvalidArgument("input_data_file " + plan.file.string() + " holds " +
                               std::to_string(size) + " bytes; expected " +
                               std::to_string(plan.bytes) + " (" + std::to_string(n) +
                               " elements of " + TypeName(spec.data_type()) + ")");
      }
      break;
    }
    case WarmupInput::INPUT_DATA_TYPE_NOT_SET:
      return InvalidArgument(
          "no data; expected exactly one of zero_data, random_data or input_data_file");
  }
  return plan;
}

template <typename T>
void Store(std::span<std::byte> out, int64_t i, T value) {
  std::memcpy(out.data() + i * sizeof(T), &value, sizeof(T));
}

template <typename T>
void FillIntegers(std::span<std::byte> out, int64_t n, std::mt19937& rng) {
  for (int64_t i = 0; i < n; ++i) Store<T>(out, i, static_cast<T>(rng() % 100));
}

// Values valid for the type: floats in [0, 1), integers in [0, 100), BOOL 0/1.
// BYTES elements stay zero-length (the buffer is already all zeros).
void FillRandom(DataType dtype, int64_t n, std::span<std::byte> out, std::mt19937& rng) {
  switch (dtype) {
    case DataType::kBool:
      for (int64_t i = 0; i < n; ++i) Store<uint8_t>(out, i, rng() & 1);
      break;
    case DataType::kUint8:
      return FillIntegers<uint8_t>(out, n, rng);
    case DataType::kUint16:
      return FillIntegers<uint16_t>(out, n, rng);
    case DataType::kUint32:
      return FillIntegers<uint32_t>(out, n, rng);
    case DataType::kUint64:
      return FillIntegers<uint64_t>(out, n, rng);
    case DataType::kInt8:
      return FillIntegers<int8_t>(out, n, rng);
    case DataType::kInt16:
      return FillIntegers<int16_t>(out, n, rng);
    case DataType::kInt32:
      return FillIntegers<int32_t>(out, n, rng);
    case DataType::kInt64:
      return FillIntegers<int64_t>(out, n, rng);
    case DataType::kFp16:
      // k / 1024 for k in [0, 1024): exact in FP16, whose 10 fraction bits suffice.
      for (int64_t i = 0; i < n; ++i)
        Store<uint16_t>(out, i, DoubleToHalf(static_cast<double>(rng() >> 22) / 1024));
      break;
    case DataType::kBf16:
      // k / 256 for k in [0, 256): exact in BF16, whose 8 significant bits suffice.
      for (int64_t i = 0; i < n; ++i) {
        Store<uint16_t>(out, i, DoubleToBf16(static_cast<float>(rng() >> 24) / 256.0f));
      }
      break;
    case DataType::kFp32:
      for (int64_t i = 0; i < n; ++i) Store<float>(out, i, (rng() >> 8) * 0x1p-24f);
      break;
    case DataType::kFp64:
      for (int64_t i = 0; i < n; ++i) Store<double>(out, i, rng() * 0x1p-32);
      break;
    case DataType::kBytes:
    case DataType::kInvalid:
      break;
  }
}

Status ReadDataFile(const PlannedInput& plan, std::span<std::byte> out) {
  // Through the repository's door: a file swapped for a FIFO or a device
  // since it was planned is refused, never waited on.
  auto content = ReadRepositoryFile(plan.file, RepositoryFileKind::kWarmupData);
  if (!content.ok()) return content.status().WithContext("input_data_file");
  if (content->size() != out.size()) {
    return InvalidArgument("input_data_file " + plan.file.string() + " could not be read whole (" +
                           std::to_string(out.size()) + " bytes expected, " +
                           std::to_string(content->size()) + " found)");
  }
  if (!out.empty()) std::memcpy(out.data(), content->data(), out.size());
  if (plan.dtype == DataType::kBytes) {
    MM_RETURN_IF_ERROR(
        SplitBytesTensor(out, plan.elements, "input_data_file " + plan.file.string()).status());
  }
  return OkStatus();
}

// Validates `sample` against `config` and builds its request.
StatusOr<InferRequest> BuildSample(const inference::ModelConfig& config,
                                   const inference::ModelWarmup& sample,
                                   const fs::path& model_dir) {
  if (sample.name().empty()) return InvalidArgument("name is empty; expected a sample name");
  const bool batching = config.max_batch_size() > 0;
  const uint32_t limit = batching ? static_cast<uint32_t>(config.max_batch_size()) : 1;
  if (sample.batch_size() < 1 || sample.batch_size() > limit) {
    return InvalidArgument("batch_size is " + std::to_string(sample.batch_size()) +
                           "; expected 1 to " + std::to_string(limit) +
                           (batching ? " (max_batch_size)" : " (the model does not batch)"));
  }
  // Every warmup input must be a config input (sorted for a stable first error).
  std::vector<std::string_view> names;
  for (const auto& [name, input] : sample.inputs()) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (std::string_view name : names) {
    auto known = std::any_of(config.input().begin(), config.input().end(),
                             [&](const inference::ModelInput& in) { return in.name() == name; });
    if (!known) return InvalidArgument("input " + Quote(name) + " is not an input of the model");
  }

  std::vector<PlannedInput> plans;
  plans.reserve(config.input_size());
  uint64_t total = 0;
  for (const auto& spec : config.input()) {
    const std::string what = "input " + Quote(spec.name());
    auto it = sample.inputs().find(spec.name());
    if (it == sample.inputs().end()) {
      if (spec.optional()) continue;
      return InvalidArgument(what + " has no warmup data; every non-optional input needs some");
    }
    auto plan = PlanInput(config, spec, it->second, sample.batch_size(), model_dir);
    if (!plan.ok()) return plan.status().WithContext(what);
    total += plan->bytes;  // each is at most kMaxSampleBytes: no overflow
    if (total > kMaxSampleBytes) {
      return InvalidArgument("the inputs need " + std::to_string(total) +
                             " bytes or more; a warmup sample may hold at most " +
                             std::string(kMaxSampleBytesText) + " of input data");
    }
    plans.push_back(std::move(*plan));
  }

  InferRequest request;
  request.model_name = config.name();
  request.inputs.reserve(plans.size());
  std::mt19937 rng(kRandomSeed);
  for (const auto& plan : plans) {
    auto buffer = std::make_shared<ByteBuffer>(plan.bytes);  // zeros
    if (plan.warmup->input_data_type_case() == WarmupInput::kRandomData) {
      FillRandom(plan.dtype, plan.elements, buffer->span(), rng);
    } else if (plan.warmup->input_data_type_case() == WarmupInput::kInputDataFile) {
      Status read = ReadDataFile(plan, buffer->span());
      if (!read.ok()) return read.WithContext("input " + Quote(plan.spec->name()));
    }
    Tensor& tensor = request.inputs.emplace_back();
    tensor.name = plan.spec->name();
    tensor.dtype = plan.dtype;
    tensor.shape = plan.shape;
    AttachBuffer(tensor, std::move(buffer));
  }
  return request;
}

}  // namespace

Status RunWarmup(const inference::ModelConfig& config, const std::filesystem::path& model_dir,
                 ModelInstance& instance, const std::atomic<bool>* cancel) {
  for (int i = 0; i < config.model_warmup_size(); ++i) {
    const auto& sample = config.model_warmup(i);
    const std::string context =
        "model " + Quote(config.name()) + " warmup sample " +
        (sample.name().empty() ? "#" + std::to_string(i) : Quote(sample.name()));
    auto request = BuildSample(config, sample, model_dir);
    if (!request.ok()) return request.status().WithContext(context);
    const uint32_t runs = std::max<uint32_t>(sample.count(), 1);
    for (uint32_t r = 0; r < runs; ++r) {
      if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) {
        return Unavailable(context + " was cancelled after " + std::to_string(r) + " of " +
                           std::to_string(runs) + " runs: the server is stopping");
      }
      InferResponse response;
      Status status = instance.Execute(*request, response);
      if (!status.ok()) return status.WithContext(context);
    }
  }
  return OkStatus();
}

}  // namespace mm
