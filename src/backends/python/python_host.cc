#include "python_host.h"

#include <pybind11/stl.h>

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "core/data_type.h"
#include "core/thread_annotations.h"

namespace py = pybind11;

namespace mm {

namespace {

Mutex host_mu;
std::shared_ptr<ModelHost>& HostSlot() MM_REQUIRES(host_mu) {
  static auto* host = new std::shared_ptr<ModelHost>;  // never destroyed: used at exit
  return *host;
}

std::shared_ptr<ModelHost> Host() {
  MutexLock lock(host_mu);
  return HostSlot();
}

std::shared_ptr<ModelHost> HostOrThrow() {
  auto host = Host();
  if (host == nullptr) {
    throw std::runtime_error(
        "this server hosts no BLS calls or custom metrics for this model (it was loaded without "
        "a model host)");
  }
  return host;
}

// pb_utils.TritonError's codes.
int TritonErrorCode(StatusCode code) {
  switch (code) {
    case StatusCode::kNotFound:
      return 2;
    case StatusCode::kInvalidArgument:
    case StatusCode::kPayloadTooLarge:
      return 3;
    case StatusCode::kUnavailable:
    case StatusCode::kResourceExhausted:
    case StatusCode::kDeadlineExceeded:
      return 4;
    case StatusCode::kUnimplemented:
      return 5;
    case StatusCode::kAlreadyExists:
      return 6;
    case StatusCode::kCancelled:
      return 7;
    default:
      return 1;  // INTERNAL
  }
}

// Raises the Python exception a host refusal maps to.
[[noreturn]] void Throw(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      throw py::value_error(status.message());
    case StatusCode::kNotFound:
      throw py::key_error(status.message());
    default:
      throw std::runtime_error(status.message());
  }
}

// A Python object's bytes (buffer protocol, C-contiguous), held while a
// request views them; released with the GIL on whatever thread drops it.
struct HeldBuffer {
  Py_buffer view{};
  ~HeldBuffer() {
    if (view.obj == nullptr) return;
    py::gil_scoped_acquire gil;
    PyBuffer_Release(&view);
  }
};

// A response tensor's bytes, shown to Python read-only; keeps the response alive.
struct ResponseBuffer {
  std::shared_ptr<const InferResponse> response;
  std::span<const std::byte> data;
};

// The waker's last reference may drop on the host's thread without the GIL
// (a call answered after Python let go of it): py::object needs the GIL.
struct GilDeleter {
  void operator()(py::object* p) const {
    py::gil_scoped_acquire gil;
    delete p;
  }
};

// One BLS call's responses, in arrival order. The host's callback fills it
// on its thread; Python takes them (next) on the caller's.
class BlsCall {
 public:
  struct Item {
    bool final = false;
    Status error;
    std::shared_ptr<const InferResponse> response;  // null: an error or the final flag alone
  };

  void Push(StatusOr<std::unique_ptr<InferResponse>> response, bool final) {
    Item item;
    item.final = final;
    if (!response.ok()) {
      item.error = response.status();
    } else {
      item.response = std::shared_ptr<const InferResponse>(std::move(*response));
    }
    std::shared_ptr<py::object> waker;
    {
      MutexLock lock(mu_);
      items_.push_back(std::move(item));
      ready_.NotifyAll();
      waker = waker_;
      if (final) waker_.reset();
    }
    if (waker != nullptr) Wake(std::move(waker));
  }

  // Python's next (GIL held).
  py::object Next(bool block) {
    Item item;
    bool over = false;
    bool none = false;
    {
      py::gil_scoped_release release;
      MutexLock lock(mu_);
      if (!ended_) {
        while (block && items_.empty()) ready_.Wait(lock);
      }
      if (ended_) {
        over = true;
      } else if (items_.empty()) {
        none = true;
      } else {
        item = std::move(items_.front());
        items_.pop_front();
        if (item.final) ended_ = true;
      }
    }
    if (over) throw py::stop_iteration();
    if (none) return py::none();
    py::object code = py::none();
    std::string message;
    py::object outputs = py::none();
    if (!item.error.ok()) {
      code = py::int_(TritonErrorCode(item.error.code()));
      message = item.error.message();
    } else if (item.response != nullptr) {
      py::list list;
      for (const Tensor& t : item.response->outputs) {
        auto buffer = std::make_unique<ResponseBuffer>();
        buffer->response = item.response;
        buffer->data = t.data;
        list.append(py::make_tuple(t.name, static_cast<int>(t.dtype), py::cast(t.shape),
                                   py::cast(std::move(buffer))));
      }
      outputs = std::move(list);
    }
    return py::make_tuple(item.final, code, message, outputs);
  }

  // asyncio: `waker` is called on the host's thread per arrival.
  void SetWaker(py::object waker) {
    std::shared_ptr<py::object> held(new py::object(std::move(waker)), GilDeleter{});
    bool pending = false;
    {
      MutexLock lock(mu_);
      pending = !items_.empty();
      if (!ended_ && !(pending && items_.back().final)) waker_ = held;
    }
    if (pending) Wake(held);
  }

 private:
  static void Wake(std::shared_ptr<py::object> waker) {
    py::gil_scoped_acquire gil;
    try {
      (*waker)();
    } catch (py::error_already_set&) {
      PyErr_Clear();  // a loop closed meanwhile: nobody waits
    }
  }

  Mutex mu_;
  CondVar ready_;
  std::deque<Item> items_ MM_GUARDED_BY(mu_);
  bool ended_ MM_GUARDED_BY(mu_) = false;  // the final item was taken
  std::shared_ptr<py::object> waker_ MM_GUARDED_BY(mu_);
};

Parameters ToParameters(const py::dict& dict) {
  Parameters out;
  for (const auto& [key, value] : dict) {
    const std::string name = py::str(key);
    if (py::isinstance<py::bool_>(value)) {
      out[name] = value.cast<bool>();
    } else if (py::isinstance<py::int_>(value)) {
      out[name] = value.cast<int64_t>();
    } else if (py::isinstance<py::float_>(value)) {
      out[name] = value.cast<double>();
    } else if (py::isinstance<py::str>(value)) {
      out[name] = value.cast<std::string>();
    } else {
      throw py::value_error("parameter '" + name + "' is a " +
                            std::string(py::str(value.get_type().attr("__name__"))) +
                            "; expected a bool, int, float or str");
    }
  }
  return out;
}

std::shared_ptr<BlsCall> Infer(const std::string& model, const std::string& version,
                               const std::string& request_id, const py::list& inputs,
                               const std::vector<std::string>& outputs,
                               const py::dict& parameters) {
  auto host = HostOrThrow();
  auto request = std::make_unique<InferRequest>();
  request->model_name = model;
  request->model_version = version;
  request->id = request_id;
  request->parameters = ToParameters(parameters);
  for (const auto& item : inputs) {
    py::tuple t = py::reinterpret_borrow<py::tuple>(item);
    Tensor tensor;
    tensor.name = t[0].cast<std::string>();
    tensor.dtype = static_cast<DataType>(t[1].cast<int>());
    tensor.shape = t[2].cast<std::vector<int64_t>>();
    auto held = std::make_shared<HeldBuffer>();
    if (PyObject_GetBuffer(t[3].ptr(), &held->view, PyBUF_C_CONTIGUOUS) != 0) {
      held->view.obj = nullptr;
      throw py::error_already_set();
    }
    tensor.data = {static_cast<const std::byte*>(held->view.buf),
                   static_cast<size_t>(held->view.len)};
    tensor.owner = std::move(held);
    request->inputs.push_back(std::move(tensor));
  }
  for (const auto& name : outputs) request->outputs.push_back({name, {}});
  auto call = std::make_shared<BlsCall>();
  {
    py::gil_scoped_release release;  // the host may answer at once, on this thread
    host->Infer(std::move(request), [call](StatusOr<std::unique_ptr<InferResponse>> response,
                                           bool final) { call->Push(std::move(response), final); });
  }
  return call;
}

}  // namespace

void SetPythonModelHost(std::shared_ptr<ModelHost> host) {
  {
    MutexLock lock(host_mu);
    HostSlot().swap(host);
  }
  host.reset();  // the one it replaces, outside the lock
}

void RegisterPythonHostBindings(py::module_& m) {
  py::class_<ResponseBuffer>(m, "ResponseBuffer", py::buffer_protocol())
      .def_buffer([](ResponseBuffer& b) -> py::buffer_info {
        static std::byte empty{};
        void* data = const_cast<std::byte*>(b.data.empty() ? &empty : b.data.data());
        return py::buffer_info(data, 1, py::format_descriptor<uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(b.data.size())}, {1},
                               /*readonly=*/true);
      })
      .def("__len__", [](const ResponseBuffer& b) { return b.data.size(); });
  py::class_<BlsCall, std::shared_ptr<BlsCall>>(m, "BlsCall")
      .def("next", &BlsCall::Next, py::arg("block"))
      .def("set_waker", &BlsCall::SetWaker, py::arg("waker"));
  m.def("host_available", [] { return Host() != nullptr; });
  m.def("bls_infer", &Infer, py::arg("model"), py::arg("version"), py::arg("request_id"),
        py::arg("inputs"), py::arg("outputs"), py::arg("parameters"));
  m.def(
      "is_model_ready",
      [](const std::string& model, const std::string& version) {
        auto host = HostOrThrow();
        py::gil_scoped_release release;
        return host->ModelReady(model, version);
      },
      py::arg("model"), py::arg("version"));
  m.def(
      "metric_create",
      [](const std::string& family, const std::string& description, int kind,
         const std::map<std::string, std::string>& labels, const std::vector<double>& buckets) {
        auto host = HostOrThrow();
        if (kind < 0 || kind > 2) {
          throw py::value_error("metric family '" + family + "': kind " + std::to_string(kind) +
                                " is not one of MetricFamily.COUNTER, GAUGE, HISTOGRAM");
        }
        MetricSpec spec{family, description, static_cast<MetricKind>(kind), labels, buckets};
        StatusOr<uint64_t> id = InvalidArgument("");
        {
          py::gil_scoped_release release;
          id = host->CreateMetric(spec);
        }
        if (!id.ok()) Throw(id.status());
        return *id;
      },
      py::arg("family"), py::arg("description"), py::arg("kind"), py::arg("labels"),
      py::arg("buckets"));
  m.def(
      "metric_update",
      [](uint64_t id, int op, double value) {
        auto host = HostOrThrow();
        if (op < 0 || op > 2) throw py::value_error("unknown metric operation");
        Status s;
        {
          py::gil_scoped_release release;
          s = host->UpdateMetric(id, static_cast<MetricOp>(op), value);
        }
        if (!s.ok()) Throw(s);
      },
      py::arg("id"), py::arg("op"), py::arg("value"));
  m.def(
      "metric_value",
      [](uint64_t id) {
        auto host = HostOrThrow();
        StatusOr<double> v = 0.0;
        {
          py::gil_scoped_release release;
          v = host->MetricValue(id);
        }
        if (!v.ok()) Throw(v.status());
        return *v;
      },
      py::arg("id"));
  m.def(
      "metric_release",
      [](uint64_t id) {
        if (auto host = Host()) {
          py::gil_scoped_release release;
          host->ReleaseMetric(id);
        }
      },
      py::arg("id"));
}

}  // namespace mm
