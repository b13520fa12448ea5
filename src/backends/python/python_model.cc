#include "python_model.h"

#include <google/protobuf/util/json_util.h>
#include <pybind11/embed.h>
#include <pybind11/stl.h>
#include <spdlog/spdlog.h>

#include <string>
#include <utility>

#include "core/bytes_tensor.h"
#include "core/shape.h"
#include "python_host.h"
#include "python_interpreter.h"
#include "repository/model_config.h"

namespace py = pybind11;

namespace mm {

extern const std::string_view kMlflowPyfuncSource;  // pb_utils_source.cc (generated)
// The name tracebacks give the built-in MLflow pyfunc model.py.
constexpr std::string_view kMlflowPyfuncFile = "<mmserve built-in>/mlflow_pyfunc.py";

namespace {

// The parts of the pb_utils module and of the model's config every instance
// of a model uses. Holds Python objects: destroyed with the GIL held.
constexpr int kDataTypes = static_cast<int>(DataType::kBf16) + 1;

struct ModelState {
  std::string label;  // "model 'm' version 1"
  inference::ModelConfig config;
  py::object make_request;        // pb_utils.InferenceRequest._mmserve_make
  py::object wrap_tensor;         // pb_utils.Tensor._mmserve_wrap
  py::object collect;             // pb_utils._mmserve_collect
  py::object describe;            // pb_utils._mmserve_describe
  py::object specs;               // pb_utils._mmserve_output_specs(config)
  py::object output_names;        // the config's output names (a list)
  py::object numpy_array;         // numpy.array
  py::object numpy_frombuffer;    // numpy.frombuffer
  py::object object_dtype;        // numpy.object_
  py::object dtypes[kDataTypes];  // numpy dtypes by DataType (none for BF16)

  ~ModelState() {
    py::gil_scoped_acquire gil;
    make_request = wrap_tensor = collect = describe = specs = output_names = numpy_array =
        numpy_frombuffer = object_dtype = py::object();
    for (auto& dtype : dtypes) dtype = py::object();
  }
};

// The exception's type, message and last frames; the whole traceback goes to
// the log, under `what` ("execute raised").
std::string Describe(py::error_already_set& e, const py::object& describe, const std::string& label,
                     std::string_view what) {
  std::string summary = e.what();
  std::string full = summary;
  try {
    if (!describe) throw py::cast_error("pb_utils is not installed");
    if (e.trace() && e.value()) PyException_SetTraceback(e.value().ptr(), e.trace().ptr());
    py::tuple t = describe(e.value());
    summary = t[0].cast<std::string>();
    full = t[1].cast<std::string>();
  } catch (const py::error_already_set&) {
    PyErr_Clear();
  } catch (const py::cast_error&) {
  }
  spdlog::error("{}: {}:\n{}", label, what, full);
  return summary;
}

// numpy's name for a data type; null for those numpy has none for (BF16).
const char* NumpyName(DataType type) {
  switch (type) {
    case DataType::kBool:
      return "bool";
    case DataType::kUint8:
      return "uint8";
    case DataType::kUint16:
      return "uint16";
    case DataType::kUint32:
      return "uint32";
    case DataType::kUint64:
      return "uint64";
    case DataType::kInt8:
      return "int8";
    case DataType::kInt16:
      return "int16";
    case DataType::kInt32:
      return "int32";
    case DataType::kInt64:
      return "int64";
    case DataType::kFp16:
      return "float16";
    case DataType::kFp32:
      return "float32";
    case DataType::kFp64:
      return "float64";
    default:
      return nullptr;
  }
}

// A response tensor's bytes: a buffer (Python's buffer protocol) of the
// object the model's output became, released with the GIL. The buffer
// protocol, not numpy's C structs, so that any numpy (the environment's 2.x
// as Debian's 1.24) works.
struct HeldBuffer {
  Py_buffer view{};
  ~HeldBuffer() {
    py::gil_scoped_acquire gil;
    PyBuffer_Release(&view);
  }
};

// Points `t.data` into `object`'s bytes (C-contiguous) and keeps them alive.
void TakeBuffer(const py::object& object, Tensor& t) {
  auto held = std::make_shared<HeldBuffer>();
  if (PyObject_GetBuffer(object.ptr(), &held->view, PyBUF_C_CONTIGUOUS) != 0) {
    held->view.obj = nullptr;  // nothing to release
    throw py::error_already_set();
  }
  t.data = {static_cast<const std::byte*>(held->view.buf), static_cast<size_t>(held->view.len)};
  t.owner = std::move(held);
}

Status FromTritonErrorCode(int code, std::string message) {
  switch (code) {
    case 2:
      return NotFound(std::move(message));
    case 3:
      return InvalidArgument(std::move(message));
    case 4:
      return Unavailable(std::move(message));
    case 5:
      return Unimplemented(std::move(message));
    case 6:
      return AlreadyExists(std::move(message));
    case 7:
      return Cancelled(std::move(message));
    default:  // UNKNOWN, INTERNAL
      return Internal(std::move(message));
  }
}

py::object ParameterValueToPython(const ParameterValue& value) {
  return std::visit(
      [](const auto& v) -> py::object {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) {
          return py::bool_(v);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          return py::int_(v);
        } else if constexpr (std::is_same_v<T, double>) {
          return py::float_(v);
        } else {
          return py::str(v);
        }
      },
      value);
}

// Fills `response` from the checked outputs pb_utils._mmserve_collect made:
// (name, type, shape, contiguous ndarray or serialized BYTES).
Status TakeOutputs(const py::handle& outputs, InferResponse& response) {
  py::list list = py::reinterpret_borrow<py::list>(outputs);
  response.outputs.resize(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    py::tuple item = list[i];
    Tensor& t = response.outputs[i];
    t.name = item[0].cast<std::string>();
    t.dtype = static_cast<DataType>(item[1].cast<int>());
    t.shape = item[2].cast<std::vector<int64_t>>();
    TakeBuffer(item[3], t);
    // Never a reply the server would take for a broken worker.
    if (const size_t size = DataTypeSize(t.dtype); size > 0) {
      auto count = ElementCount(t.shape, "output '" + t.name + "'");
      if (!count.ok()) return count.status();
      if (t.data.size() != static_cast<size_t>(*count) * size) {
        return Internal("output '" + t.name + "' holds " + std::to_string(t.data.size()) +
                        " bytes; expected " + std::to_string(*count * size) + " for shape " +
                        ShapeToString(t.shape));
      }
    }
  }
  return OkStatus();
}

// A decoupled request's sender as pb_utils sees it: InferenceResponseSender
// of such a request calls send(response or None, request, final), from any
// Python thread. The response is checked and taken as execute's returned
// ones are; the native sender writes it with the GIL released. Answers None,
// or the error's message (pb_utils raises it as a TritonModelException).
class NativeSender {
 public:
  NativeSender(std::shared_ptr<ModelState> state, std::shared_ptr<ResponseSender> sender)
      : state_(std::move(state)), sender_(std::move(sender)) {}

  py::object Send(const py::object& response, const py::object& request, bool final) {
    const ModelState& s = *state_;
    StatusOr<std::unique_ptr<InferResponse>> r = std::unique_ptr<InferResponse>();
    if (!response.is_none()) {
      py::list responses, requests;
      responses.append(response);
      requests.append(request);
      py::list collected = s.collect(responses, requests, s.specs);
      py::tuple item = collected[0];
      if (!item[0].is_none()) {
        r = FromTritonErrorCode(item[0].cast<int>(), s.label + ": " + item[1].cast<std::string>());
      } else {
        auto taken = std::make_unique<InferResponse>();
        Status outputs = TakeOutputs(item[1], *taken);
        if (outputs.ok()) {
          r = std::move(taken);
        } else {
          r = outputs.WithContext(s.label);
        }
      }
    }
    Status sent;
    {
      py::gil_scoped_release release;
      sent = sender_->Send(std::move(r), final);
    }
    if (sent.ok()) return py::none();
    return py::str(sent.message());
  }

  // Whether the request's client went away (a round trip to the server, the
  // GIL released).
  bool IsCancelled() {
    py::gil_scoped_release release;
    return sender_->cancelled();
  }

 private:
  const std::shared_ptr<ModelState> state_;
  const std::shared_ptr<ResponseSender> sender_;
};

class PythonInstance final : public ModelInstance {
 public:
  PythonInstance(std::shared_ptr<ModelState> state, py::object model)
      : state_(std::move(state)), model_(std::move(model)) {
    execute_ = model_.attr("execute");
  }

  ~PythonInstance() override {
    py::gil_scoped_acquire gil;
    if (py::hasattr(model_, "finalize")) {
      try {
        model_.attr("finalize")();
      } catch (py::error_already_set& e) {
        Describe(e, state_->describe, state_->label, "finalize raised");
      }
    }
    execute_ = model_ = py::object();
  }

  Status Execute(const InferRequest& request, InferResponse& response) override {
    const InferRequest* requests[] = {&request};
    InferResponse* responses[] = {&response};
    Status results[1];
    MM_RETURN_IF_ERROR(ExecuteList(requests, responses, results));
    return results[0];
  }

  // execute(requests); an `async def execute` runs to its end on this
  // thread's event loop (pb_utils_host.py's _mmserve_run). GIL held.
  py::object RunExecute(const py::list& requests) {
    py::object returned = execute_(requests);
    if (PyCoro_CheckExact(returned.ptr())) {
      returned = py::module_::import("triton_python_backend_utils").attr("_mmserve_run")(returned);
    }
    return returned;
  }

  // Triton's decoupled mode: each request's response sender (pb_utils
  // get_response_sender) answers, now or later from any Python thread;
  // execute must return None.
  Status ExecuteDecoupled(std::span<const std::shared_ptr<ResponseSender>> senders) override {
    py::gil_scoped_acquire gil;
    const ModelState& s = *state_;
    try {
      py::list list(senders.size());
      for (size_t i = 0; i < senders.size(); ++i) {
        // Inputs copied: the model may read them after execute returned.
        auto made = MakeRequest(senders[i]->request(), /*copy_inputs=*/true);
        if (!made.ok()) return made.status().WithContext(s.label);
        made->attr("_mmserve_native") =
            py::cast(std::make_shared<NativeSender>(state_, senders[i]));
        list[i] = std::move(*made);
      }
      py::object returned;
      try {
        returned = RunExecute(list);
      } catch (py::error_already_set& e) {
        return Internal(s.label + ": execute raised " +
                        Describe(e, s.describe, s.label, "execute raised"));
      }
      if (!returned.is_none()) {
        return Internal("Python model '" + s.config.name() +
                        "' is using the decoupled mode and the execute function must return None.");
      }
      return OkStatus();
    } catch (py::error_already_set& e) {
      return Internal(s.label + ": " + Describe(e, s.describe, s.label, "the Python backend"));
    } catch (const py::cast_error& e) {
      return Internal(s.label + ": unexpected value from the Python backend: " + e.what());
    }
  }

  Status ExecuteList(std::span<const InferRequest* const> requests,
                     std::span<InferResponse* const> responses,
                     std::span<Status> results) override {
    py::gil_scoped_acquire gil;
    const ModelState& s = *state_;
    try {
      py::list list(requests.size());
      for (size_t i = 0; i < requests.size(); ++i) {
        auto made = MakeRequest(*requests[i]);
        if (!made.ok()) return made.status().WithContext(s.label);
        list[i] = std::move(*made);
      }
      py::object returned;
      try {
        returned = RunExecute(list);
      } catch (py::error_already_set& e) {
        return Internal(s.label + ": execute raised " +
                        Describe(e, s.describe, s.label, "execute raised"));
      }
      py::list collected = s.collect(returned, list, s.specs);
      for (size_t i = 0; i < requests.size(); ++i) {
        py::tuple item = collected[i];
        if (!item[0].is_none()) {
          results[i] = FromTritonErrorCode(item[0].cast<int>(),
                                           s.label + ": " + item[1].cast<std::string>());
          continue;
        }
        results[i] = TakeOutputs(item[1], *responses[i]).WithContext(s.label);
        if (!results[i].ok()) responses[i]->outputs.clear();
      }
      return OkStatus();
    } catch (py::error_already_set& e) {
      return Internal(s.label + ": " + Describe(e, s.describe, s.label, "the Python backend"));
    } catch (const py::cast_error& e) {
      return Internal(s.label + ": unexpected value from the Python backend: " + e.what());
    }
  }

 private:
  StatusOr<py::object> MakeRequest(const InferRequest& request, bool copy_inputs = false) {
    const ModelState& s = *state_;
    py::list inputs(request.inputs.size());
    for (size_t i = 0; i < request.inputs.size(); ++i) {
      const Tensor& t = request.inputs[i];
      std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
      py::object array;
      if (t.dtype == DataType::kBytes) {
        MM_ASSIGN_OR_RETURN(int64_t count, ElementCount(t.shape, "input '" + t.name + "'"));
        MM_ASSIGN_OR_RETURN(auto elements,
                            SplitBytesTensor(t.data, count, "input '" + t.name + "'"));
        py::list items(elements.size());
        for (size_t j = 0; j < elements.size(); ++j) {
          items[j] = py::bytes(elements[j].data(), elements[j].size());
        }
        array = s.numpy_array(items, s.object_dtype).attr("reshape")(py::cast(shape));
      } else {
        const int type = static_cast<int>(t.dtype);
        if (type < 0 || type >= kDataTypes || !s.dtypes[type]) {
          return InvalidArgument("input '" + t.name + "' has data type " +
                                 std::string(DataTypeName(t.dtype)) +
                                 ", which numpy (and so the Python backend) cannot represent");
        }
        // A view of the request's bytes: no copy (in a worker, the shared
        // memory region the server wrote the batch into).
        py::object memory = py::reinterpret_steal<py::object>(
            PyMemoryView_FromMemory(reinterpret_cast<char*>(const_cast<std::byte*>(t.data.data())),
                                    static_cast<Py_ssize_t>(t.data.size()), PyBUF_WRITE));
        if (!memory) throw py::error_already_set();
        array = s.numpy_frombuffer(memory, s.dtypes[type]).attr("reshape")(py::cast(shape));
        if (copy_inputs) array = array.attr("copy")();
      }
      inputs[i] = s.wrap_tensor(t.name, std::move(array), static_cast<int>(t.dtype));
    }
    py::list requested;
    if (request.outputs.empty()) {
      requested = py::list(s.output_names);  // a copy the model may change
    } else {
      for (const auto& out : request.outputs) requested.append(py::str(out.name));
    }
    py::dict parameters;
    for (const auto& [key, value] : request.parameters) {
      parameters[py::str(key)] = ParameterValueToPython(value);
    }
    return s.make_request(std::move(inputs), std::move(requested), py::str(request.id),
                          std::move(parameters));
  }

  const std::shared_ptr<ModelState> state_;
  py::object model_;    // the TritonPythonModel object
  py::object execute_;  // its bound execute
};

// What a Python step's failure becomes: a load error naming the step.
Status LoadError(py::error_already_set& e, const ModelState& state, std::string_view step) {
  return InvalidArgument(state.label + ": " + std::string(step) + ": " +
                         Describe(e, state.describe, state.label, step));
}

StatusOr<inference::ModelConfig> AutoComplete(const py::object& cls, const py::module_& pb,
                                              const py::module_& json, ModelState& state) {
  inference::ModelConfig config = state.config;
  if (!py::hasattr(cls, "auto_complete_config")) return config;
  py::object wrapped = pb.attr("ModelConfig")(json.attr("loads")(ModelConfigToJson(config)));
  py::object returned;
  std::string out;
  try {
    returned = cls.attr("auto_complete_config")(wrapped);
    out = pb.attr("_mmserve_config_json")(returned).cast<std::string>();
  } catch (py::error_already_set& e) {
    return LoadError(e, state, "auto_complete_config failed");
  }
  inference::ModelConfig completed;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto parsed = google::protobuf::util::JsonStringToMessage(out, &completed, options);
  if (!parsed.ok()) {
    return InvalidArgument(state.label + ": the config auto_complete_config returned is not a " +
                           "model config: " + std::string(parsed.message()));
  }
  return completed;
}

}  // namespace

StatusOr<std::unique_ptr<LoadedModel>> LoadPythonModel(
    const LoadSpec& spec, const std::filesystem::path& model_file,
    const std::vector<std::filesystem::path>& site_packages) {
  auto state = std::make_shared<ModelState>();
  state->label = "model '" + spec.model_name + "' version " + std::to_string(spec.version);
  state->config = spec.config;
  if (state->config.name().empty()) state->config.set_name(spec.model_name);
  if (state->config.backend().empty()) state->config.set_backend("python");

  // pb_utils' BLS calls and metrics go to this model's host (a worker holds one model).
  SetPythonModelHost(spec.host);
  py::gil_scoped_acquire gil;
  try {
    // The environment's site-packages as site directories (their .pth files
    // apply), moved in front of the interpreter's own.
    py::list path = py::module_::import("sys").attr("path");
    if (!site_packages.empty()) {
      py::list before = py::module_::import("builtins").attr("list")(path);
      py::object addsitedir = py::module_::import("site").attr("addsitedir");
      for (const auto& dir : site_packages) addsitedir(dir.string());
      py::list added;
      for (const auto& entry : path) {
        if (!before.contains(entry)) added.append(entry);
      }
      for (const auto& dir : site_packages) {
        if (!added.contains(py::str(dir.string()))) added.append(py::str(dir.string()));
      }
      py::list rest;
      for (const auto& entry : before) {
        if (!added.contains(entry)) rest.append(entry);
      }
      path.attr("clear")();
      for (const auto& entry : added) path.append(entry);
      for (const auto& entry : rest) path.append(entry);
    }
    const py::str version_dir(spec.version_dir.string());
    if (!path.contains(version_dir)) path.append(version_dir);

    MM_RETURN_IF_ERROR(InstallPbUtils().WithContext(state->label));
    py::module_ pb = py::module_::import("triton_python_backend_utils");
    py::module_ json = py::module_::import("json");
    py::module_ numpy = py::module_::import("numpy");
    state->describe = pb.attr("_mmserve_describe");
    state->make_request = pb.attr("InferenceRequest").attr("_mmserve_make");
    state->wrap_tensor = pb.attr("Tensor").attr("_mmserve_wrap");
    state->collect = pb.attr("_mmserve_collect");
    state->numpy_array = numpy.attr("array");
    state->object_dtype = numpy.attr("object_");
    state->numpy_frombuffer = numpy.attr("frombuffer");
    // The native half of a decoupled request's response sender (once per
    // interpreter: pybind11 registers a type once).
    static bool sender_registered = false;
    if (!sender_registered) {
      py::class_<NativeSender, std::shared_ptr<NativeSender>>(pb, "_MmserveNativeSender")
          .def("send", &NativeSender::Send)
          .def("is_cancelled", &NativeSender::IsCancelled);
      sender_registered = true;
    }
    for (int type = 0; type < kDataTypes; ++type) {
      if (const char* name = NumpyName(static_cast<DataType>(type))) {
        state->dtypes[type] = numpy.attr("dtype")(name);
      }
    }

    py::object cls;
    try {
      py::module_ util = py::module_::import("importlib.util");
      py::object module;
      if (model_file.empty()) {
        // The built-in MLflow pyfunc model.py, run from the binary.
        module = py::module_::import("types").attr("ModuleType")("model");
        py::object code =
            py::module_::import("builtins")
                .attr("compile")(py::str(kMlflowPyfuncSource.data(), kMlflowPyfuncSource.size()),
                                 std::string(kMlflowPyfuncFile), "exec");
        py::module_::import("builtins").attr("exec")(code, module.attr("__dict__"));
      } else {
        py::object module_spec = util.attr("spec_from_file_location")("model", model_file.string());
        module = util.attr("module_from_spec")(module_spec);
        module_spec.attr("loader").attr("exec_module")(module);
      }
      cls = py::getattr(module, "TritonPythonModel", py::none());
    } catch (py::error_already_set& e) {
      return LoadError(e, *state,
                       "cannot import " + (model_file.empty() ? std::string(kMlflowPyfuncFile)
                                                              : model_file.filename().string()));
    }
    if (cls.is_none()) {
      return InvalidArgument(
          state->label + ": " +
          (model_file.empty() ? std::string(kMlflowPyfuncFile) : model_file.filename().string()) +
          " defines no class TritonPythonModel");
    }
    MM_ASSIGN_OR_RETURN(inference::ModelConfig config, AutoComplete(cls, pb, json, *state));
    if (config.name().empty()) config.set_name(spec.model_name);
    if (config.backend().empty()) config.set_backend("python");
    if (config.instance_group_size() == 0) config.add_instance_group()->set_count(1);
    MM_RETURN_IF_ERROR(ValidateModelConfig(config).WithContext(state->label));
    state->config = config;

    const std::string config_json = ModelConfigToJson(config);
    state->specs = pb.attr("_mmserve_output_specs")(json.attr("loads")(config_json));
    py::list names;
    for (const auto& output : config.output()) names.append(py::str(output.name()));
    state->output_names = names;

    auto model = std::make_unique<LoadedModel>();
    model->config = config;
    model->batch_as_list = config.has_dynamic_batching();
    model->inline_safe = false;
    const int64_t count = InstanceCount(config);
    for (int64_t i = 0; i < count; ++i) {
      py::object object;
      try {
        object = cls();
        if (!py::hasattr(object, "execute")) {
          return InvalidArgument(state->label + ": TritonPythonModel has no execute method");
        }
        if (py::hasattr(object, "initialize")) {
          // Triton's args: every value a string.
          py::dict args;
          args["model_config"] = config_json;
          args["model_instance_kind"] = "CPU";
          args["model_instance_name"] = static_cast<size_t>(i) < spec.instance_names.size()
                                            ? spec.instance_names[i]
                                            : spec.model_name + "_0_" + std::to_string(i);
          args["model_instance_device_id"] = "0";
          args["model_repository"] = spec.model_dir.string();
          args["model_version"] = std::to_string(spec.version);
          args["model_name"] = spec.model_name;
          object.attr("initialize")(args);
        }
      } catch (py::error_already_set& e) {
        return LoadError(e, *state, "initialize failed");
      }
      model->instances.push_back(std::make_unique<PythonInstance>(state, std::move(object)));
    }
    return model;
  } catch (py::error_already_set& e) {
    return Internal(state->label + ": " +
                    Describe(e, state->describe, state->label, "the Python backend failed"));
  }
}

}  // namespace mm
