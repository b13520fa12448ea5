# triton_python_backend_utils, as mmserve's Python backend provides it.
#
# This file is compiled into the mmserve binary (pb_utils_source.cc.in) and
# installed into the embedded interpreter as the module
# `triton_python_backend_utils` before any model.py is imported, so
# `import triton_python_backend_utils as pb_utils` works with no install path.
# Its API follows Triton's Python backend documentation; the names starting
# with `_mmserve` are the backend's own glue (python_model.cc calls them).
#
# `_mmserve_native` is the backend's built-in C++ module (python_interpreter.cc):
# log(level, message, file, line) writes to the worker's log.
#
# BLS calls (InferenceRequest.exec / async_exec, is_model_ready) and custom
# metrics (MetricFamily, Metric) are in pb_utils_host.py, run in this
# module's namespace right after this file.

import json
import struct
import sys
import threading
import traceback

import numpy as np

import _mmserve_native

# ----------------------------------------------------------- data types
# Triton's TRITONSERVER_DataType numbers (the same as mmserve's DataType).
_NUMPY_BY_TRITON = {
    1: np.bool_,
    2: np.uint8,
    3: np.uint16,
    4: np.uint32,
    5: np.uint64,
    6: np.int8,
    7: np.int16,
    8: np.int32,
    9: np.int64,
    10: np.float16,
    11: np.float32,
    12: np.float64,
    13: np.object_,
}
_TRITON_BY_CONFIG_NAME = {
    "TYPE_BOOL": 1,
    "TYPE_UINT8": 2,
    "TYPE_UINT16": 3,
    "TYPE_UINT32": 4,
    "TYPE_UINT64": 5,
    "TYPE_INT8": 6,
    "TYPE_INT16": 7,
    "TYPE_INT32": 8,
    "TYPE_INT64": 9,
    "TYPE_FP16": 10,
    "TYPE_FP32": 11,
    "TYPE_FP64": 12,
    "TYPE_STRING": 13,
    "TYPE_BF16": 14,
}
_CONFIG_NAME_BY_TRITON = {v: k for k, v in _TRITON_BY_CONFIG_NAME.items()}

# Config data type -> numpy type, as Triton's module has it (TYPE_BOOL is bool).
TRITON_STRING_TO_NUMPY = {name: (bool if number == 1 else _NUMPY_BY_TRITON[number])
                          for name, number in _TRITON_BY_CONFIG_NAME.items()
                          if number in _NUMPY_BY_TRITON}

# Request flags (request.flags()), as Triton's sequence batcher sets them.
TRITONSERVER_REQUEST_FLAG_SEQUENCE_START = 1
TRITONSERVER_REQUEST_FLAG_SEQUENCE_END = 2
# Response flags (response_sender.send).
TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
# Request release flags (request.set_release_flags).
TRITONSERVER_REQUEST_RELEASE_ALL = 1
TRITONSERVER_REQUEST_RELEASE_RESCHEDULE = 2


def triton_to_numpy_type(data_type):
    """The numpy type of a Triton data type number (11 -> np.float32)."""
    return _NUMPY_BY_TRITON.get(data_type)


def numpy_to_triton_type(data_type):
    """The Triton data type number of a numpy dtype or type (np.float32 -> 11);
    None when Triton has none."""
    try:
        dt = np.dtype(data_type)
    except TypeError:
        return None
    if dt == np.object_ or dt.type == np.bytes_:
        return 13
    for number, numpy_type in _NUMPY_BY_TRITON.items():
        if number != 13 and dt == numpy_type:
            return number
    return None


def triton_string_to_numpy(triton_type_string):
    """The numpy type of a config data type ("TYPE_FP32" -> np.float32)."""
    return TRITON_STRING_TO_NUMPY[triton_type_string]


def serialize_byte_tensor(input_tensor):
    """A BYTES array as Triton's serialized form (4-byte little-endian length,
    then the bytes, per element, in C order), as a 1-D uint8 array; None for an
    empty array."""
    if input_tensor.size == 0:
        return None
    return np.frombuffer(_serialize_bytes(input_tensor), dtype=np.uint8)


def deserialize_bytes_tensor(encoded_tensor):
    """Triton's serialized BYTES form as a 1-D numpy object array of bytes."""
    buf = bytes(encoded_tensor)
    items = []
    offset = 0
    while offset < len(buf):
        (length,) = struct.unpack_from("<I", buf, offset)
        offset += 4
        items.append(buf[offset:offset + length])
        offset += length
    out = np.empty(len(items), dtype=np.object_)
    out[:] = items
    return out


def _serialize_bytes(array):
    parts = []
    for item in array.reshape(-1):
        if isinstance(item, (bytes, np.bytes_)):
            data = bytes(item)
        elif isinstance(item, bytearray):
            data = bytes(item)
        else:
            data = str(item).encode("utf-8")
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


# --------------------------------------------------------------- errors
class TritonError:
    """An error for one response (InferenceResponse(error=...)); `code` is one of
    the constants below, INTERNAL by default."""

    UNKNOWN = 0
    INTERNAL = 1
    NOT_FOUND = 2
    INVALID_ARG = 3
    UNAVAILABLE = 4
    UNSUPPORTED = 5
    ALREADY_EXISTS = 6
    CANCELLED = 7

    def __init__(self, message, code=INTERNAL):
        self._message = message
        self._code = code

    def message(self):
        return self._message

    def code(self):
        return self._code

    def __str__(self):
        return str(self._message)

    def __repr__(self):
        return "TritonError(%r, code=%r)" % (self._message, self._code)


class TritonModelException(Exception):
    """Raised by this module for a misuse the model can handle."""

    def __init__(self, msg):
        super().__init__(msg)
        self._msg = msg

    def message(self):
        return self._msg


# --------------------------------------------------------------- tensors
class _DLPackCapsule:
    # numpy.from_dlpack wants an object with __dlpack__; a bare capsule has none.
    def __init__(self, capsule):
        self._capsule = capsule

    def __dlpack__(self, stream=None):
        return self._capsule

    def __dlpack_device__(self):
        return (1, 0)  # kDLCPU: this server's tensors are on the CPU


class Tensor:
    """A named tensor: Tensor(name, numpy_array). BYTES tensors are numpy object
    arrays of bytes (or str, encoded as UTF-8 when sent)."""

    def __init__(self, name, numpy_array, triton_dtype=None):
        if not isinstance(name, str):
            raise TritonModelException("Tensor name must be a str, got %s" % type(name).__name__)
        if not isinstance(numpy_array, np.ndarray):
            raise TritonModelException(
                "Tensor '%s': expected a numpy.ndarray, got %s" % (name, type(numpy_array).__name__))
        if numpy_array.dtype.type == np.str_ or numpy_array.dtype == np.void:
            raise TritonModelException(
                "Tensor '%s': numpy dtype %s is not supported by the Python backend; use "
                "np.object_ (an array of bytes) instead" % (name, numpy_array.dtype))
        if triton_dtype is not None:
            numpy_type = triton_to_numpy_type(triton_dtype)
            if numpy_type is None:
                raise TritonModelException(
                    "Tensor '%s': unknown Triton data type %r" % (name, triton_dtype))
            if numpy_array.dtype != numpy_type:
                numpy_array = numpy_array.view(numpy_type)
        else:
            triton_dtype = numpy_to_triton_type(numpy_array.dtype)
            if triton_dtype is None:
                raise TritonModelException(
                    "Tensor '%s': numpy dtype %s has no Triton data type" % (name, numpy_array.dtype))
        self._name = name
        self._array = numpy_array
        self._triton_dtype = triton_dtype

    @classmethod
    def _mmserve_wrap(cls, name, array, triton_dtype):
        tensor = cls.__new__(cls)
        tensor._name = name
        tensor._array = array
        tensor._triton_dtype = triton_dtype
        return tensor

    def name(self):
        return self._name

    def as_numpy(self):
        return self._array

    def shape(self):
        return list(self._array.shape)

    def triton_dtype(self):
        return self._triton_dtype

    def is_cpu(self):
        return True

    def to_dlpack(self):
        if self._triton_dtype == 13:
            raise TritonModelException(
                "Tensor '%s': a BYTES tensor cannot be shared through DLPack" % self._name)
        array = self._array
        if not array.flags.writeable:
            array = array.copy()  # numpy exports only writeable arrays
        return array.__dlpack__()

    @staticmethod
    def from_dlpack(name, dlpack):
        """A Tensor viewing a DLPack capsule's (or an object with __dlpack__,
        such as a torch tensor's) memory, without a copy."""
        source = dlpack if hasattr(dlpack, "__dlpack__") else _DLPackCapsule(dlpack)
        try:
            array = np.from_dlpack(source)
        except (TypeError, BufferError, RuntimeError) as e:
            raise TritonModelException("Tensor '%s': from_dlpack: %s" % (name, e)) from None
        return Tensor(name, array)

    def __repr__(self):
        return "Tensor(%r, dtype=%s, shape=%s)" % (self._name, self._array.dtype,
                                                   list(self._array.shape))


# -------------------------------------------------------------- requests
class InferenceResponse:
    """The response to one request: InferenceResponse(output_tensors=[...],
    error=None)."""

    def __init__(self, output_tensors=None, error=None, parameters=None):
        if output_tensors is None:
            output_tensors = []
        if not isinstance(output_tensors, (list, tuple)):
            raise TritonModelException('"output_tensors" must be a list.')
        if error is not None and not isinstance(error, TritonError):
            if isinstance(error, str):
                error = TritonError(error)
            else:
                raise TritonModelException('"error" must be a TritonError or None.')
        self._output_tensors = list(output_tensors)
        self._error = error
        self._parameters = parameters

    def output_tensors(self):
        return self._output_tensors

    def has_error(self):
        return self._error is not None

    def error(self):
        return self._error

    def parameters(self):
        """The response's parameters as a JSON string (the model's own: this
        server does not send response parameters to the client yet)."""
        if isinstance(self._parameters, str):
            return self._parameters
        return json.dumps(self._parameters if self._parameters is not None else {})


class InferenceResponseSender:
    """A request's response sender. For a decoupled model, `send` sends zero or
    more responses, then the final flag (with the last response, or alone:
    send(flags=TRITONSERVER_RESPONSE_COMPLETE_FINAL)), from any Python thread,
    during execute or after it returned; a send after the final raises
    TritonModelException. For a model that is not decoupled, `send` may be
    called once with the response and TRITONSERVER_RESPONSE_COMPLETE_FINAL,
    with `execute` returning None."""

    def __init__(self, request):
        self._request = request
        self._closed = False
        self._lock = threading.Lock()

    def _send_decoupled(self, native, response, flags):
        if response is not None and not isinstance(response, InferenceResponse):
            raise TritonModelException("send: expected an InferenceResponse or None")
        if flags not in (0, TRITONSERVER_RESPONSE_COMPLETE_FINAL):
            raise TritonModelException(
                "Unable to send response. Unsupported flag provided: %r (expected 0 or "
                "TRITONSERVER_RESPONSE_COMPLETE_FINAL)" % (flags,))
        final = flags == TRITONSERVER_RESPONSE_COMPLETE_FINAL
        if response is None and not final:
            raise TritonModelException(
                "Unable to send response. A response is needed unless flags is "
                "TRITONSERVER_RESPONSE_COMPLETE_FINAL")
        with self._lock:
            if self._closed:
                raise TritonModelException(
                    "Unable to send response. Response sender has been closed.")
            if final:
                self._closed = True
        error = native.send(response, self._request, final)
        if error is not None:
            raise TritonModelException(error)

    def send(self, response=None, flags=0):
        native = getattr(self._request, "_mmserve_native", None)
        if native is not None:
            return self._send_decoupled(native, response, flags)
        if self._closed:
            raise TritonModelException(
                "the response sender of this request is closed: its final response was sent")
        if response is not None and not isinstance(response, InferenceResponse):
            raise TritonModelException("send: expected an InferenceResponse or None")
        if self._request._sent is not None and response is not None:
            raise TritonModelException(
                "send: this model is not decoupled; it sends exactly one response per request")
        if response is not None:
            self._request._sent = response
        if flags & TRITONSERVER_RESPONSE_COMPLETE_FINAL:
            self._closed = True
        elif response is not None:
            raise TritonModelException(
                "send: this model is not decoupled; send its one response with "
                "flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL")

    def is_cancelled(self):
        """Whether the request's client went away (a decoupled model's: asked
        of the server; else always False: a client's cancellation does not
        reach a running execute)."""
        native = getattr(self._request, "_mmserve_native", None)
        if native is not None and not self._closed:
            return native.is_cancelled()
        return False


class InferenceRequest:
    """A request: those execute(requests) receives, or, made by model code, a
    BLS call to another model of this server (exec / async_exec), which runs
    as a client of this model's tenant would (its names, quotas and usage)."""

    def __init__(self, request_id="", correlation_id=0, inputs=None,
                 requested_output_names=None, model_name="", model_version=-1, flags=0,
                 timeout=0, preferred_memory=None, trace=None, parameters=None):
        if not isinstance(model_name, str):
            raise TritonModelException("InferenceRequest: model_name must be a str")
        if not isinstance(request_id, str):
            raise TritonModelException("InferenceRequest: request_id must be a str")
        if not isinstance(correlation_id, (int, str)):
            raise TritonModelException("Correlation ID must be integer or string")
        inputs = list(inputs or [])
        for tensor in inputs:
            if not isinstance(tensor, Tensor):
                raise TritonModelException(
                    "InferenceRequest: inputs must be pb_utils.Tensor objects, got %s" %
                    type(tensor).__name__)
        requested = list(requested_output_names or [])
        if not all(isinstance(n, str) for n in requested):
            raise TritonModelException("InferenceRequest: requested_output_names must be strs")
        if not isinstance(model_version, int) or isinstance(model_version, bool):
            raise TritonModelException("InferenceRequest: model_version must be an int")
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0:
            raise TritonModelException(
                "InferenceRequest: timeout must be an int of microseconds >= 0")
        if parameters is None:
            parameters = {}
        elif isinstance(parameters, str):
            parameters = json.loads(parameters)
        if not isinstance(parameters, dict):
            raise TritonModelException("InferenceRequest: parameters must be a dict")
        for key, value in parameters.items():
            if not isinstance(key, str) or not isinstance(value, (bool, int, float, str)):
                raise TritonModelException(
                    "InferenceRequest: parameter %r must map a str to a bool, int, float or str" %
                    (key,))
        self._model_name = model_name
        self._inputs = inputs
        self._requested = requested
        self._request_id = request_id
        self._correlation_id = correlation_id
        self._model_version = model_version
        self._flags = flags
        self._timeout = timeout
        self._preferred_memory = preferred_memory
        self._parameters = parameters
        self._sent = None
        self._sender = None

    @classmethod
    def _mmserve_make(cls, inputs, requested, request_id, parameters):
        request = cls.__new__(cls)
        request._model_name = ""
        request._inputs = inputs
        request._requested = requested
        request._request_id = request_id
        request._correlation_id = 0
        request._model_version = -1
        request._flags = 0
        request._timeout = 0
        request._parameters = parameters
        request._sent = None
        request._sender = None
        return request

    def inputs(self):
        return self._inputs

    def requested_output_names(self):
        return self._requested

    def request_id(self):
        return self._request_id

    def correlation_id(self):
        return self._correlation_id

    def flags(self):
        return self._flags

    def timeout(self):
        return self._timeout

    def model_name(self):
        return self._model_name

    def model_version(self):
        return self._model_version

    def parameters(self):
        """The request's parameters as a JSON string."""
        if isinstance(self._parameters, str):
            return self._parameters
        return json.dumps(self._parameters)

    def is_cancelled(self):
        """Whether the request's client went away: for a decoupled model, as its
        response sender says; else False (a client's cancellation does not
        reach a running execute)."""
        if getattr(self, "_mmserve_native", None) is not None:
            return self.get_response_sender().is_cancelled()
        return False

    def set_release_flags(self, flags):
        raise TritonModelException(
            "request rescheduling (set_release_flags) is not supported by this server yet")

    def get_response_sender(self):
        if self._sender is None:
            self._sender = InferenceResponseSender(self)
        return self._sender

def get_input_tensor_by_name(inference_request, name):
    for tensor in inference_request.inputs():
        if tensor.name() == name:
            return tensor
    return None


def get_output_tensor_by_name(inference_response, name):
    for tensor in inference_response.output_tensors():
        if tensor.name() == name:
            return tensor
    return None


def get_input_config_by_name(model_config, name):
    for properties in model_config.get("input", []):
        if properties.get("name") == name:
            return properties
    return None


def get_output_config_by_name(model_config, name):
    for properties in model_config.get("output", []):
        if properties.get("name") == name:
            return properties
    return None


def using_decoupled_model_transaction_policy(model_config):
    """Whether a config dict (args["model_config"], parsed) is decoupled."""
    return bool(model_config.get("model_transaction_policy", {}).get("decoupled", False))


# ---------------------------------------------------------------- logger
class LogLevel:
    INFO = 0
    WARNING = 1
    ERROR = 2
    VERBOSE = 3


class Logger:
    """Writes to the server's log, naming the model and the caller's file:line."""

    INFO = LogLevel.INFO
    WARNING = LogLevel.WARNING
    ERROR = LogLevel.ERROR
    VERBOSE = LogLevel.VERBOSE

    @staticmethod
    def _emit(message, level, depth):
        frame = sys._getframe(depth)
        _mmserve_native.log(int(level), str(message), frame.f_code.co_filename, frame.f_lineno)

    @staticmethod
    def log(message, level=LogLevel.INFO):
        Logger._emit(message, level, 2)

    @staticmethod
    def log_info(message):
        Logger._emit(message, LogLevel.INFO, 2)

    @staticmethod
    def log_warn(message):
        Logger._emit(message, LogLevel.WARNING, 2)

    @staticmethod
    def log_error(message):
        Logger._emit(message, LogLevel.ERROR, 2)

    @staticmethod
    def log_verbose(message):
        Logger._emit(message, LogLevel.VERBOSE, 2)


# ----------------------------------------------------- auto-complete config
class ModelConfig:
    """The config auto_complete_config(auto_complete_model_config) receives and
    returns (Triton's JSON form, as a dict)."""

    _INPUT_KEYS = ("name", "data_type", "dims", "optional", "format", "reshape",
                   "is_shape_tensor", "allow_ragged_batch")
    _OUTPUT_KEYS = ("name", "data_type", "dims", "reshape", "label_filename",
                    "is_shape_tensor")

    def __init__(self, model_config):
        if isinstance(model_config, str):
            model_config = json.loads(model_config)
        self._model_config = model_config
        self._model_config.setdefault("input", [])
        self._model_config.setdefault("output", [])
        self._model_config.setdefault("max_batch_size", 0)

    def as_dict(self):
        return self._model_config

    def _name(self):
        return self._model_config.get("name", "")

    def set_max_batch_size(self, max_batch_size):
        if not isinstance(max_batch_size, int) or isinstance(max_batch_size, bool):
            raise ValueError("set_max_batch_size: expected an int, got %r" % (max_batch_size,))
        if max_batch_size < 0:
            raise ValueError("set_max_batch_size: max_batch_size must be >= 0, got %d for model "
                             "'%s'" % (max_batch_size, self._name()))
        current = self._model_config.get("max_batch_size", 0)
        if current not in (0, max_batch_size) and max_batch_size < current:
            raise ValueError(
                "configuration specified max_batch_size %d for model '%s', but auto-complete "
                "sets %d, which is smaller" % (current, self._name(), max_batch_size))
        self._model_config["max_batch_size"] = max_batch_size

    def set_dynamic_batching(self):
        if not self._model_config.get("dynamic_batching"):
            self._model_config["dynamic_batching"] = {}

    def set_model_transaction_policy(self, transaction_policy_dict):
        if not isinstance(transaction_policy_dict, dict):
            raise ValueError("set_model_transaction_policy: expected a dict")
        for key in transaction_policy_dict:
            if key != "decoupled":
                raise ValueError("model transaction property in auto-complete-config function "
                                 "for model '%s' contains property other than 'decoupled': %r"
                                 % (self._name(), key))
        policy = self._model_config.setdefault("model_transaction_policy", {})
        for key, value in transaction_policy_dict.items():
            if key in policy and policy[key] != value:
                raise ValueError("unable to modify '%s' in model transaction policy for model "
                                 "'%s': the configuration says %r" % (key, self._name(), policy[key]))
            policy[key] = value

    def _add(self, kind, tensor, allowed):
        if not isinstance(tensor, dict):
            raise ValueError("add_%s: expected a dict, got %s" % (kind, type(tensor).__name__))
        for key in tensor:
            if key not in allowed:
                raise ValueError("%s '%s' in auto-complete-config function for model '%s' "
                                 "contains property %r; expected only %s"
                                 % (kind, tensor.get("name", ""), self._name(), key,
                                    ", ".join(allowed)))
        for key in ("name", "data_type", "dims"):
            if key not in tensor:
                raise ValueError("%s in auto-complete-config function for model '%s' is missing "
                                 "the '%s' property" % (kind, self._name(), key))
        tensor = dict(tensor)
        tensor["dims"] = [int(d) for d in tensor["dims"]]
        for current in self._model_config[kind]:
            if current.get("name") == tensor["name"]:
                current_type = current.get("data_type", "TYPE_INVALID")
                if current_type not in ("", "TYPE_INVALID") and current_type != tensor["data_type"]:
                    raise ValueError("unable to modify the data_type field of %s '%s' of model "
                                     "'%s': the configuration says %s, auto-complete %s"
                                     % (kind, tensor["name"], self._name(), current_type,
                                        tensor["data_type"]))
                current_dims = [int(d) for d in current.get("dims", [])]
                if current_dims and current_dims != tensor["dims"]:
                    raise ValueError("unable to modify the dims field of %s '%s' of model '%s': "
                                     "the configuration says %s, auto-complete %s"
                                     % (kind, tensor["name"], self._name(), current_dims,
                                        tensor["dims"]))
                current.update(tensor)
                return
        self._model_config[kind].append(tensor)

    def add_input(self, input):
        self._add("input", input, self._INPUT_KEYS)

    def add_output(self, output):
        self._add("output", output, self._OUTPUT_KEYS)


# ------------------------------------------------------ the backend's glue
# Everything below is called by python_model.cc, never by model code.

def _mmserve_describe(exc):
    """(summary, full): the exception's type and message with its last three
    frames, and the whole traceback."""
    tb = [f for f in traceback.extract_tb(exc.__traceback__)
          if not f.filename.startswith("<frozen importlib")]
    frames = "; ".join("%s:%d in %s" % (f.filename.rsplit("/", 1)[-1], f.lineno, f.name)
                       for f in tb[-3:])
    head = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    summary = head if not frames else "%s (at %s)" % (head, frames)
    full = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    return summary, full


def _mmserve_config_json(config_object):
    if not isinstance(config_object, ModelConfig):
        raise TritonModelException(
            "auto_complete_config must return the auto_complete_model_config it received "
            "(a pb_utils.ModelConfig), got %s" % type(config_object).__name__)
    return json.dumps(config_object.as_dict())


def _mmserve_output_specs(model_config):
    """{name: (triton type number, dims, batching)} for the outputs of a config dict."""
    batching = int(model_config.get("max_batch_size", 0)) > 0
    specs = {}
    for output in model_config.get("output", []):
        dims = output.get("dims", [])
        reshape = output.get("reshape")
        if reshape is not None:
            dims = reshape.get("shape", [])
        specs[output["name"]] = (_TRITON_BY_CONFIG_NAME.get(output.get("data_type"), 0),
                                 [int(d) for d in dims], batching)
    return specs


def _check_output(tensor, spec):
    array = tensor.as_numpy()
    name = tensor.name()
    expected_type, dims, batching = spec
    actual_type = tensor.triton_dtype()
    if actual_type != expected_type:
        return None, "output '%s' has data type %s (numpy %s), but the model config says %s" % (
            name, _CONFIG_NAME_BY_TRITON.get(actual_type, actual_type), array.dtype,
            _CONFIG_NAME_BY_TRITON.get(expected_type, expected_type))
    expected = ([-1] if batching else []) + dims
    shape = list(array.shape)
    if len(shape) != len(expected) or any(e != -1 and e != s for e, s in zip(expected, shape)):
        return None, "output '%s' has shape %s, but the model config says %s" % (
            name, shape, expected)
    if actual_type == 13:
        return (name, actual_type, shape, _serialize_bytes(array)), None
    return (name, actual_type, shape, np.ascontiguousarray(array)), None


_NO_RESPONSE = object()

def _mmserve_collect(responses, requests, specs):
    """Checks what execute returned against its requests and the config. For
    each request: (None, [(name, type, shape, ndarray or serialized bytes)...]) or
    (TritonError code, message)."""
    if responses is None:
        # Each request answered through its response sender, or not at all.
        responses = [r._sent if r._sent is not None else _NO_RESPONSE for r in requests]
    if not isinstance(responses, (list, tuple)):
        return [(TritonError.INTERNAL,
                 "execute returned %s; expected a list with one InferenceResponse per request" %
                 type(responses).__name__)] * len(requests)
    if len(responses) != len(requests):
        return [(TritonError.INTERNAL,
                 "execute returned %d responses for %d requests; expected one InferenceResponse "
                 "per request" % (len(responses), len(requests)))] * len(requests)
    results = []
    for response, request in zip(responses, requests):
        if response is _NO_RESPONSE:
            results.append((TritonError.INTERNAL,
                            "execute returned None and sent no response for this request; "
                            "expected a list with one InferenceResponse per request, or one "
                            "response sent through its response sender"))
            continue
        if not isinstance(response, InferenceResponse):
            results.append((TritonError.INTERNAL,
                            "execute returned a %s where an InferenceResponse was expected" %
                            type(response).__name__))
            continue
        error = response.error()
        if error is not None:
            code = error.code() if isinstance(error.code(), int) else TritonError.INTERNAL
            results.append((code, str(error.message())))
            continue
        by_name = {}
        for tensor in response.output_tensors():
            if not isinstance(tensor, Tensor):
                by_name = "the response holds a %s where a pb_utils.Tensor was expected" % (
                    type(tensor).__name__)
                break
            by_name[tensor.name()] = tensor
        if isinstance(by_name, str):
            results.append((TritonError.INTERNAL, by_name))
            continue
        wanted = request.requested_output_names()
        outputs = []
        failure = None
        for name in wanted:
            tensor = by_name.get(name)
            if tensor is None:
                failure = "output '%s' was requested, but the response has no such tensor " \
                          "(it has: %s)" % (name, ", ".join(sorted(by_name)) or "none")
                break
            spec = specs.get(name)
            if spec is None:
                failure = "output '%s' is not an output of the model config" % name
                break
            checked, failure = _check_output(tensor, spec)
            if failure is not None:
                break
            outputs.append(checked)
        if failure is not None:
            results.append((TritonError.INTERNAL, failure))
        else:
            results.append((None, outputs))
    return results
