# triton_python_backend_utils, part 2: business logic scripting (BLS) and
# custom metrics, as mmserve's Python backend provides them.
#
# Compiled into the mmserve binary beside pb_utils.py and run in the same
# module's namespace right after it (python_interpreter.cc), so everything
# pb_utils.py defines is in scope here. Both go through the model's host
# (backends/model_host.h) by way of `_mmserve_native` (python_host.h):
# bls_infer, is_model_ready and metric_*; the GIL is released while a call
# waits.

import threading

TRITONSERVER_MEMORY_GPU = 0
TRITONSERVER_MEMORY_CPU = 1


class PreferredMemory:
    """Where a BLS call's outputs should live. This server's tensors are on
    the CPU: the preference is accepted and outputs come in CPU memory."""

    def __init__(self, preferred_memory_type, preferred_device_id=0):
        self.preferred_memory_type = preferred_memory_type
        self.preferred_device_id = preferred_device_id


def _host_error(e):
    """A TritonModelException for a refusal of _mmserve_native."""
    message = e.args[0] if getattr(e, "args", None) else str(e)
    return TritonModelException(str(message))


def _require_host(what):
    if not _mmserve_native.host_available():
        raise TritonModelException(
            "%s: this server hosts no such calls for this model (it was loaded without a model "
            "host)" % what)


def is_model_ready(model_name, model_version=""):
    """Whether `model_name` (version `model_version`; "" for any) is ready for
    this model's tenant, as the server's readiness endpoint answers it."""
    if not isinstance(model_name, str):
        raise TritonModelException("is_model_ready: model_name must be a str")
    if isinstance(model_version, int) and not isinstance(model_version, bool):
        model_version = "" if model_version < 0 else str(model_version)
    if not isinstance(model_version, str):
        raise TritonModelException("is_model_ready: model_version must be a str")
    _require_host("pb_utils.is_model_ready")
    try:
        return bool(_mmserve_native.is_model_ready(model_name, model_version))
    except (ValueError, KeyError, RuntimeError) as e:
        raise _host_error(e) from None


def load_model(model_name, config="", files=None):
    raise TritonModelException(
        "BLS model loading (pb_utils.load_model) is not supported by this server; load "
        "models through the repository API (POST /v2/repository/models/%s/load)" % model_name)


def unload_model(model_name, unload_dependents=False):
    raise TritonModelException(
        "BLS model unloading (pb_utils.unload_model) is not supported by this server; unload "
        "models through the repository API (POST /v2/repository/models/%s/unload)" % model_name)


_METRIC_INCREMENT = 0
_METRIC_SET = 1
_METRIC_OBSERVE = 2


class MetricFamily:
    """A custom metric family, exported on the server's /metrics:
    MetricFamily(name, description, kind) with kind COUNTER, GAUGE or
    HISTOGRAM; its series are made with .Metric(labels={...}, buckets=[...]).
    Every series carries this model's `model` and `version` labels."""

    COUNTER = 0
    GAUGE = 1
    HISTOGRAM = 2

    def __init__(self, name, description, kind):
        if not isinstance(name, str):
            raise TritonModelException("MetricFamily: name must be a str")
        if not isinstance(description, str):
            raise TritonModelException("MetricFamily '%s': description must be a str" % name)
        if kind not in (MetricFamily.COUNTER, MetricFamily.GAUGE, MetricFamily.HISTOGRAM) or \
                isinstance(kind, bool):
            raise TritonModelException(
                "MetricFamily '%s': kind must be MetricFamily.COUNTER, GAUGE or HISTOGRAM, got %r"
                % (name, kind))
        _require_host("custom metrics (pb_utils.MetricFamily '%s')" % name)
        self._name = name
        self._description = description
        self._kind = kind

    def Metric(self, labels=None, buckets=None):
        return Metric(self, labels, buckets)


class Metric:
    """One series of a MetricFamily (made by MetricFamily.Metric)."""

    def __init__(self, family, labels=None, buckets=None):
        self._id = None
        if not isinstance(family, MetricFamily):
            raise TritonModelException("Metric: expected a MetricFamily")
        labels = {} if labels is None else labels
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise TritonModelException(
                "Metric of family '%s': labels must be a dict of str to str" % family._name)
        if buckets is not None:
            try:
                buckets = [float(b) for b in buckets]
            except (TypeError, ValueError):
                raise TritonModelException(
                    "Metric of family '%s': buckets must be a list of numbers" % family._name
                ) from None
        try:
            self._id = _mmserve_native.metric_create(family._name, family._description,
                                                     family._kind, labels, buckets or [])
        except (ValueError, KeyError, RuntimeError) as e:
            raise _host_error(e) from None
        self._family = family

    def _update(self, op, value):
        try:
            _mmserve_native.metric_update(self._id, op, float(value))
        except (ValueError, KeyError, RuntimeError) as e:
            raise _host_error(e) from None

    def increment(self, value):
        self._update(_METRIC_INCREMENT, value)

    def set(self, value):
        self._update(_METRIC_SET, value)

    def observe(self, value):
        self._update(_METRIC_OBSERVE, value)

    def value(self):
        """A counter's or gauge's value; a histogram's sum."""
        try:
            return _mmserve_native.metric_value(self._id)
        except (ValueError, KeyError, RuntimeError) as e:
            raise _host_error(e) from None

    def __del__(self):
        if getattr(self, "_id", None) is not None:
            try:
                _mmserve_native.metric_release(self._id)
            except Exception:
                pass


def _bls_tensor(item):
    """An output of a BLS response as a pb_utils.Tensor viewing its memory."""
    name, data_type, shape, buffer = item
    if data_type == 13:
        array = deserialize_bytes_tensor(buffer).reshape(shape)
    else:
        numpy_type = _NUMPY_BY_TRITON.get(data_type, np.uint16 if data_type == 14 else np.uint8)
        array = np.frombuffer(buffer, dtype=numpy_type).reshape(shape)
    return Tensor._mmserve_wrap(name, array, data_type)


def _bls_response(item):
    """(final, error code, message, outputs) from _mmserve_native as an InferenceResponse."""
    _, code, message, outputs = item
    if code is not None:
        return InferenceResponse(error=TritonError(message, code))
    return InferenceResponse(output_tensors=[_bls_tensor(o) for o in (outputs or [])])


def _bls_single(items, model_name):
    """One response out of a call's items: a non-decoupled exec's answer."""
    if len(items) == 1:
        return _bls_response(items[0])
    for item in items:
        if item[1] is not None:
            return _bls_response(item)
    return InferenceResponse(error=TritonError(
        "model '%s' is decoupled: it answered with %d responses; call "
        "exec(decoupled=True) (or async_exec(decoupled=True)) to receive them" %
        (model_name, sum(1 for i in items if i[3] is not None)), TritonError.UNSUPPORTED))


class _BlsResponseIterator:
    """The responses of exec(decoupled=True), as they come."""

    def __init__(self, call=None, responses=None):
        self._call = call
        self._responses = list(responses or [])

    def __iter__(self):
        return self

    def __next__(self):
        if self._call is None:
            if not self._responses:
                raise StopIteration
            return self._responses.pop(0)
        return _bls_response(self._call.next(True))  # StopIteration after the final one

    def cancel(self):
        """Accepted; this server does not cancel a BLS call under way: the
        callee runs to its end and its responses still come."""


# InferenceRequest's BLS methods (the class is pb_utils.py's).
def _bls_start(self):
    """Sends this request as a BLS call; the native call object."""
    if not self._model_name:
        raise TritonModelException("InferenceRequest: model_name is required for exec")
    _require_host("BLS calls (InferenceRequest.exec to model '%s')" % self._model_name)
    inputs = []
    for tensor in self._inputs:
        array = tensor.as_numpy()
        if tensor.triton_dtype() == 13:
            data = _serialize_bytes(array)
        else:
            data = np.ascontiguousarray(array)
        inputs.append((tensor.name(), tensor.triton_dtype(), list(array.shape), data))
    parameters = dict(self._parameters)
    if self._timeout:
        parameters["timeout"] = self._timeout
    version = "" if self._model_version < 0 else str(self._model_version)
    try:
        return _mmserve_native.bls_infer(self._model_name, version, self._request_id, inputs,
                                         self._requested, parameters)
    except (ValueError, KeyError, RuntimeError) as e:
        raise _host_error(e) from None

def _bls_exec(self, decoupled=False):
    """Runs this request on its model and waits (the GIL released): its
    InferenceResponse (an error is response.has_error()), or with
    decoupled=True an iterator of the responses as they come."""
    call = _bls_start(self)
    if decoupled:
        return _BlsResponseIterator(call)
    items = []
    while True:
        item = call.next(True)
        items.append(item)
        if item[0]:
            break
    return _bls_single(items, self._model_name)

async def _bls_async_exec(self, decoupled=False):
    """exec for `async def execute`: awaits the responses without
    blocking the event loop (several calls run at once with asyncio.gather)."""
    import asyncio
    call = _bls_start(self)
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()
    call.set_waker(lambda: loop.call_soon_threadsafe(arrived.set))
    items = []
    while True:
        item = call.next(False)
        if item is None:
            await arrived.wait()
            arrived.clear()
            continue
        items.append(item)
        if item[0]:
            break
    if decoupled:
        return _BlsResponseIterator(responses=[_bls_response(i) for i in items])
    return _bls_single(items, self._model_name)


InferenceRequest._start = _bls_start
InferenceRequest.exec = _bls_exec
InferenceRequest.async_exec = _bls_async_exec


# ----------------------------------------------------- async def execute
_loops = threading.local()


def _mmserve_run(coroutine):
    """Runs a coroutine (an `async def execute`; python_model.cc calls this)
    to its end on this thread's own event loop, kept for the next one."""
    import asyncio
    loop = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop
    return loop.run_until_complete(coroutine)
