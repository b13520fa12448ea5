"""TorchScript models for the PyTorch backend's integration tests
(tests/integration/test_pytorch*.py), written the way users write them:
torch.nn modules scripted with torch.jit.script and saved with torch.jit.save,
beside a config.pbtxt in Triton's style (platform "pytorch_libtorch").

Each `write_*` function lays one model out in a repository folder
(<repo>/<name>/config.pbtxt, <repo>/<name>/<version>/model.pt) and returns the
scripted module, so a test computes its reference answers with torch, in the
test process, on the same inputs it sends. `reference(repo, name)` loads the
file the server loads instead (torch.jit.load), for the models where the file
itself is what is checked.

Names follow the lead's decisions (Triton's rules): inputs by forward argument
name, else `<name>__<index>`, else config order; outputs by `<name>__<index>`,
else config order, or by key for a returned dict.
"""
import os
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
from torch import Tensor, nn


def _quietly(fn, *args):
    """torch.jit.script/save/load warn that TorchScript is deprecated in
    favour of torch.export; Triton's PyTorch backend (and ours) serves
    TorchScript."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return fn(*args)


SEED = 20240611

# KServe dtype -> (config TYPE_, torch dtype, numpy dtype for the client).
# BF16 travels as ml_dtypes.bfloat16 in tritonclient; FP16/BF16 are compared
# as their raw 16-bit patterns.
DTYPES = {
    "BOOL": ("TYPE_BOOL", torch.bool, np.bool_),
    "UINT8": ("TYPE_UINT8", torch.uint8, np.uint8),
    "UINT16": ("TYPE_UINT16", torch.uint16, np.uint16),
    "UINT32": ("TYPE_UINT32", torch.uint32, np.uint32),
    "UINT64": ("TYPE_UINT64", torch.uint64, np.uint64),
    "INT8": ("TYPE_INT8", torch.int8, np.int8),
    "INT16": ("TYPE_INT16", torch.int16, np.int16),
    "INT32": ("TYPE_INT32", torch.int32, np.int32),
    "INT64": ("TYPE_INT64", torch.int64, np.int64),
    "FP16": ("TYPE_FP16", torch.float16, np.float16),
    "BF16": ("TYPE_BF16", torch.bfloat16, None),  # ml_dtypes.bfloat16
    "FP32": ("TYPE_FP32", torch.float32, np.float32),
    "FP64": ("TYPE_FP64", torch.float64, np.float64),
}


# ------------------------------------------------------------------ layout


def tensor_config(name, ios, kind):
    """`input [...]` / `output [...]` from (name, TYPE_X, dims) triples."""
    rows = ",\n".join(f'  {{ name: "{n}" data_type: {t} dims: [ {", ".join(map(str, d))} ] }}'
                      for n, t, d in ios)
    return f"{kind} [\n{rows}\n]\n"


def config(name, inputs, outputs, max_batch_size=0, extra="", platform="pytorch_libtorch"):
    return (f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {max_batch_size}\n'
            + tensor_config(name, inputs, "input") + tensor_config(name, outputs, "output") + extra)


def script(module):
    return _quietly(torch.jit.script, module)


def save(module, path):
    """Scripts `module` (unless it is scripted already) and saves it at
    `path` atomically (written aside, then renamed: a polling server never
    reads half a file). Returns the scripted module."""
    scripted = module if isinstance(module, torch.jit.ScriptModule) else script(module)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    _quietly(torch.jit.save, scripted, str(tmp))
    os.replace(tmp, path)
    return scripted


def write(repo, name, module, config_text, version=1, filename="model.pt"):
    """<repo>/<name>/<version>/<filename> and <repo>/<name>/config.pbtxt
    (no config when `config_text` is None). Returns the scripted module."""
    scripted = save(module, Path(repo) / name / str(version) / filename)
    if config_text is not None:
        (Path(repo) / name / "config.pbtxt").write_text(config_text)
    return scripted


def add_version_atomically(repo, name, version, module):
    """Writes <repo>/<name>/<version>/model.pt as a whole folder renamed into
    place, so a polling server sees the version complete or not at all."""
    staging = Path(repo) / f".staging-{name}-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    scripted = save(module, staging / "model.pt")
    os.rename(staging, Path(repo) / name / str(version))
    return scripted


def reference(repo, name, version=1, filename="model.pt"):
    """The module the server loads, loaded by torch in this process."""
    return load(Path(repo) / name / str(version) / filename)


def load(path):
    """torch.jit.load, without its deprecation warning."""
    return _quietly(torch.jit.load, str(path)).eval()


# ------------------------------------------------------- naming conventions


class TwoArgs(nn.Module):
    """Non-commutative in its arguments, so a swapped mapping shows."""

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return x - 2.0 * y


class TwoArgsTwoOutputs(nn.Module):
    def forward(self, a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor]:
        return a - b, a * b + 1.0


def write_forward_arguments(repo, name="forward_args"):
    """FORWARD_ARGUMENT: the config names the inputs by forward's argument
    names, listed in the opposite order (y before x): names, not positions,
    decide. One output, in config order."""
    cfg = config(name, [("y", "TYPE_FP32", [4]), ("x", "TYPE_FP32", [4])],
                 [("out", "TYPE_FP32", [4])])
    return write(repo, name, TwoArgs(), cfg)


def write_named_index(repo, name="named_index"):
    """NAMED_INDEX: INPUT__1 listed before INPUT__0 (forward(a, b)), and the
    tuple's outputs OUTPUT__1 before OUTPUT__0: the index in the name decides."""
    cfg = config(name, [("INPUT__1", "TYPE_FP32", [4]), ("INPUT__0", "TYPE_FP32", [4])],
                 [("OUTPUT__1", "TYPE_FP32", [4]), ("OUTPUT__0", "TYPE_FP32", [4])])
    return write(repo, name, TwoArgsTwoOutputs(), cfg)


def write_config_order(repo, name="config_order", names=("first", "second"),
                       out_names=("difference", "product_plus_one")):
    """STRICT_CONFIG_ORDERING: names that are neither forward arguments nor
    `<name>__<index>`: the i-th config input is the i-th argument, the i-th
    config output the i-th element of the returned tuple."""
    cfg = config(name, [(names[0], "TYPE_FP32", [4]), (names[1], "TYPE_FP32", [4])],
                 [(out_names[0], "TYPE_FP32", [4]), (out_names[1], "TYPE_FP32", [4])])
    return write(repo, name, TwoArgsTwoOutputs(), cfg)


# ------------------------------------------------------------ input and output kinds


class DictInput(nn.Module):
    def forward(self, inputs: Dict[str, Tensor]) -> Tensor:
        return inputs["alpha"] * 2.0 - inputs["beta"]


def write_dict_input(repo, name="dict_input"):
    """One Dict(str, Tensor) argument: keys are the config input names."""
    cfg = config(name, [("beta", "TYPE_FP32", [-1]), ("alpha", "TYPE_FP32", [-1])],
                 [("OUTPUT__0", "TYPE_FP32", [-1])])
    return write(repo, name, DictInput(), cfg)


class ListOutput(nn.Module):
    def forward(self, x: Tensor) -> List[Tensor]:
        return [x + 1.0, x * 2.0, -x]


def write_list_output(repo, name="list_output"):
    """A returned List[Tensor]: outputs by `<name>__<index>`, listed out of
    order."""
    cfg = config(name, [("INPUT__0", "TYPE_FP32", [-1])],
                 [("times__1", "TYPE_FP32", [-1]), ("neg__2", "TYPE_FP32", [-1]),
                  ("plus__0", "TYPE_FP32", [-1])])
    return write(repo, name, ListOutput(), cfg)


class DictOutput(nn.Module):
    def forward(self, x: Tensor, y: Tensor) -> Dict[str, Tensor]:
        return {"sum": x + y, "difference": x - y, "product": x * y}


def write_dict_output(repo, name="dict_output"):
    """A returned Dict[str, Tensor]: outputs matched by key, in an order of
    their own (the dict's order differs)."""
    cfg = config(name, [("x", "TYPE_FP32", [-1]), ("y", "TYPE_FP32", [-1])],
                 [("product", "TYPE_FP32", [-1]), ("sum", "TYPE_FP32", [-1]),
                  ("difference", "TYPE_FP32", [-1])])
    return write(repo, name, DictOutput(), cfg)


class Strings(nn.Module):
    """List[str] in; a List[str] and a Tensor out."""

    def forward(self, words: List[str]) -> Tuple[List[str], Tensor]:
        out: List[str] = []
        lengths: List[int] = []
        for w in words:
            out.append(w.upper() + "!")
            lengths.append(len(w))
        return out, torch.tensor(lengths, dtype=torch.int64)


def write_strings(repo, name="strings"):
    """TYPE_STRING (BYTES) in and out through List[str] (1-D, no batching)."""
    cfg = config(name, [("words", "TYPE_STRING", [-1])],
                 [("shout__0", "TYPE_STRING", [-1]), ("lengths__1", "TYPE_INT64", [-1])])
    return write(repo, name, Strings(), cfg)


class Shout(nn.Module):
    def forward(self, words: List[str]) -> List[str]:
        return [w.upper() for w in words]


def write_strings_batched(repo, name="strings_batched", extra=""):
    """A batching List[str] model, as Triton requires it: each request row is
    one string (dims [ 1 ] with reshape [ ]); the batch reaches forward as one
    list of every request's strings, and each answer gets its own back."""
    cfg = (f'name: "{name}"\nplatform: "pytorch_libtorch"\nmax_batch_size: 8\n'
           'input [ { name: "words" data_type: TYPE_STRING dims: [ 1 ] reshape: { shape: [ ] } } ]\n'
           'output [ { name: "shout" data_type: TYPE_STRING dims: [ 1 ] reshape: { shape: [ ] } } ]\n'
           + extra)
    return write(repo, name, Shout(), cfg)


class DtypeIdentity(nn.Module):
    """OUTPUT__0 is the input itself (the server must copy an output that
    aliases its input), OUTPUT__1 a transposed, non-contiguous view of it,
    OUTPUT__2 a fresh tensor (flipped rows). Pure data movement: the results
    are bit-exact for every dtype."""

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        return x, x.t(), x.flip(0)


def dtype_model_name(dtype):
    return f"identity_{dtype.lower()}"


def write_dtype_identity(repo, dtype):
    """identity_<dtype>: INPUT__0 [-1, -1] -> OUTPUT__0..2, all of `dtype`."""
    t = DTYPES[dtype][0]
    name = dtype_model_name(dtype)
    cfg = config(name, [("INPUT__0", t, [-1, -1])],
                 [("OUTPUT__0", t, [-1, -1]), ("OUTPUT__1", t, [-1, -1]),
                  ("OUTPUT__2", t, [-1, -1])])
    return write(repo, name, DtypeIdentity(), cfg)


class IntArithmetic(nn.Module):
    """Integer and boolean compute (not only movement): exact results."""

    def forward(self, a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        return a * 3 - b, a > b, torch.bitwise_xor(a, b)


def write_int_arithmetic(repo, name="int_arithmetic"):
    cfg = config(name, [("a", "TYPE_INT32", [-1]), ("b", "TYPE_INT32", [-1])],
                 [("OUTPUT__0", "TYPE_INT32", [-1]), ("OUTPUT__1", "TYPE_BOOL", [-1]),
                  ("OUTPUT__2", "TYPE_INT32", [-1])])
    return write(repo, name, IntArithmetic(), cfg)


# ----------------------------------------------------------------- compute


class Mlp(nn.Module):
    def __init__(self, width=16, hidden=64, classes=10):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(),
                                    nn.Linear(hidden, hidden), nn.ReLU(),
                                    nn.Linear(hidden, classes))

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.layers(x), dim=-1)


def mlp_module(seed=SEED):
    torch.manual_seed(seed)
    return script(Mlp().eval())


def write_mlp(repo, name="mlp", max_batch_size=8, extra=""):
    """INPUT__0 FP32 [16] -> OUTPUT__0 FP32 [10] (softmax), batching."""
    cfg = config(name, [("INPUT__0", "TYPE_FP32", [16])], [("OUTPUT__0", "TYPE_FP32", [10])],
                 max_batch_size=max_batch_size, extra=extra)
    return write(repo, name, mlp_module(), cfg)


def write_traced_mlp(repo, name="traced_mlp"):
    """The MLP exported with torch.jit.trace (as many users export), not
    scripted: INPUT__0 FP32 [16] -> OUTPUT__0 FP32 [10], batching."""
    torch.manual_seed(SEED + 1)
    traced = _quietly(torch.jit.trace, Mlp().eval(), torch.randn(2, 16))
    cfg = config(name, [("INPUT__0", "TYPE_FP32", [16])], [("OUTPUT__0", "TYPE_FP32", [10])],
                 max_batch_size=8)
    return write(repo, name, traced, cfg)


class Elementwise(nn.Module):
    """Row-independent, element-wise and exactly rounded (IEEE + - * and
    comparisons, no reduction, no BLAS): a row's bits are the same whether it
    runs alone or in a batch, so a batched answer must equal the unbatched
    one bit for bit."""

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        return torch.relu(x * 2.5 - 1.0) + x * x, (x > 0.0).to(torch.int32)


def write_elementwise(repo, name, extra="", max_batch_size=8):
    """INPUT__0 FP32 [32] -> OUTPUT__0 FP32 [32], OUTPUT__1 INT32 [32]."""
    cfg = config(name, [("INPUT__0", "TYPE_FP32", [32])],
                 [("OUTPUT__0", "TYPE_FP32", [32]), ("OUTPUT__1", "TYPE_INT32", [32])],
                 max_batch_size=max_batch_size, extra=extra)
    return write(repo, name, Elementwise(), cfg)


class AliasRows(nn.Module):
    """Returns its (batched) input itself and a flipped copy: the first
    output aliases the batch's input buffer."""

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        return x, x.flip(1)


def write_alias_rows(repo, name, extra=""):
    """INPUT__0 INT64 [5] -> OUTPUT__0 (the input), OUTPUT__1 (flipped), batching."""
    cfg = config(name, [("INPUT__0", "TYPE_INT64", [5])],
                 [("OUTPUT__0", "TYPE_INT64", [5]), ("OUTPUT__1", "TYPE_INT64", [5])],
                 max_batch_size=8, extra=extra)
    return write(repo, name, AliasRows(), cfg)


class Offset(nn.Module):
    """y = x + k, k a buffer: each version answers with its own k."""

    def __init__(self, k: float):
        super().__init__()
        self.register_buffer("k", torch.tensor([k], dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.k


def write_offset(repo, name, version, k, extra=""):
    """x FP32 [4] -> y FP32 [4] = x + k (config written once)."""
    cfg_path = Path(repo) / name / "config.pbtxt"
    if not cfg_path.exists():
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(config(name, [("x", "TYPE_FP32", [4])], [("y", "TYPE_FP32", [4])],
                                   extra=extra))
    return add_version_atomically(repo, name, version, Offset(float(k)))


class Big(nn.Module):
    """A model whose weights are `floats` FP32 values: a known footprint."""

    def __init__(self, floats: int):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(floats), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.weight[: x.shape[0]]


def write_big(repo, name, floats, extra=""):
    """INPUT__0 FP32 [4] -> OUTPUT__0 = x + weight[:4]; weight has `floats`
    values (4 * floats bytes)."""
    torch.manual_seed(SEED)
    cfg = config(name, [("INPUT__0", "TYPE_FP32", [4])], [("OUTPUT__0", "TYPE_FP32", [4])],
                 extra=extra)
    return write(repo, name, Big(floats), cfg)


def write_cnn(repo, name="cnn", extra=""):
    """The example CNN (scripts/make_example_models.py) under another name."""
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("make_models",
                                                  root / "scripts" / "make_example_models.py")
    make_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_models)
    cfg = make_models.IMAGE_CNN_TORCH_CONFIG.replace('name: "image_cnn_torch"', f'name: "{name}"')
    return write(repo, name, _quietly(make_models.image_cnn_torch_module), cfg + extra)


# ---------------------------------------------------------------- failures

RAISE_MESSAGE = "mmserve test: x holds a negative value"


class Raiser(nn.Module):
    """Raises (a torch.jit exception in libtorch) when any input value is
    negative; doubles the input otherwise."""

    def forward(self, x: Tensor) -> Tensor:
        if bool((x < 0.0).any()):
            raise ValueError("mmserve test: x holds a negative value")
        return x * 2.0


def write_raiser(repo, name="raiser", extra=""):
    cfg = config(name, [("INPUT__0", "TYPE_FP32", [-1])], [("OUTPUT__0", "TYPE_FP32", [-1])],
                 extra=extra)
    return write(repo, name, Raiser(), cfg)


class LongRaiser(nn.Module):
    """Raises a 6,010-character message on any input."""

    def __init__(self):
        super().__init__()
        self.message: str = "begin " + "y" * 6000 + " end"

    def forward(self, x: Tensor) -> Tensor:
        raise ValueError(self.message)


def write_long_raiser(repo, name="long_raiser"):
    cfg = config(name, [("INPUT__0", "TYPE_FP32", [-1])], [("OUTPUT__0", "TYPE_FP32", [-1])])
    return write(repo, name, LongRaiser(), cfg)


class ReadsFile(nn.Module):
    """Reads a file of the server's (torch.from_file) into its answer."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.from_file("/etc/passwd", False, 16, dtype=torch.uint8).to(torch.float32) + x


def read_a_file(path: str) -> Tensor:
    return torch.from_file(path, False, 16, dtype=torch.uint8)


class ReadsFileInside(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return read_a_file("/etc/passwd").to(torch.float32) + x


class ReadsFileNested(nn.Module):
    """The read two calls down: a submodule calling a free function."""

    def __init__(self):
        super().__init__()
        self.inner = ReadsFileInside()

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x)


class SavesFile(nn.Module):
    """Writes its input to a file (torch.save is scriptable)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x: Tensor) -> Tensor:
        torch.save(x, self.path)
        return x


class SavesFileAtLoad(nn.Module):
    """Writes a file from __setstate__, which torch.jit.load runs: loading
    the archive is enough."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool]:
        return (self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:
        self.path = state[0]
        self.training = state[1]
        torch.save(torch.zeros(1), self.path)

    def forward(self, x: Tensor) -> Tensor:
        return x


class WritesThroughFromFileAtLoad(nn.Module):
    """torch.from_file(path, shared=True) maps a file, creating it: writing
    the tensor writes the file. From __setstate__, loading is enough."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.mapped = torch.zeros(16, dtype=torch.uint8)

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool]:
        return (self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:
        self.path = state[0]
        self.training = state[1]
        self.mapped = torch.from_file(self.path, True, 16, dtype=torch.uint8)
        self.mapped.fill_(65)

    def forward(self, x: Tensor) -> Tensor:
        return x


def write_reaching_outside(repo):
    """reads_file, reads_file_nested, saves_file, saves_at_load: modules whose
    code reaches outside the model (a tenant's upload must not read or write
    the server's files). saves_file (when run) and saves_at_load (when
    loaded: never load it here) would write <repo>/<name>/owned.pt."""
    owned = lambda name: str(Path(repo) / name / "owned.pt")  # noqa: E731
    for name, module in (("reads_file", ReadsFile()), ("reads_file_nested", ReadsFileNested()),
                         ("saves_file", SavesFile(owned("saves_file"))),
                         ("saves_at_load", SavesFileAtLoad(owned("saves_at_load")))):
        write(repo, name, module, config(name, [("x", "TYPE_FP32", [16])],
                                         [("y", "TYPE_FP32", [16])]))


# Spellings of `torch.save(` that libtorch's TorchScript parser accepts in an
# archive's code (each checked to load and write its file with torch here):
# a hand-edited archive hides the operator's name from a naive text search.
DISGUISED_SAVES = {
    "spaces": "torch . save (",
    "tab": "torch.\tsave(",
    "form_feed": "torch.\x0csave(",
    "carriage_return": "torch.\rsave(",
    "vertical_tab": "torch.\x0bsave(",
    "continued_line": "torch.\\\n        save(",
    "comment_between": "(torch.  # a comment\n        save)(",
    "parenthesized_module": "(torch).save(",
}


def edit_archive_code(path, old, new):
    """Replaces `old` by `new` in the archive's code files (rewritten with
    zipfile, as a user editing the archive would)."""
    original = path.with_name(path.name + ".orig")
    os.replace(path, original)
    edited = 0
    with zipfile.ZipFile(original) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith(".py") and old.encode() in data:
                data = data.replace(old.encode(), new.encode())
                edited += 1
            zout.writestr(info, data)
    original.unlink()
    assert edited, f"no code file of {path} holds {old!r}"


# The same for `torch.from_file(`, which writes through a shared mapping.
DISGUISED_FROM_FILES = {
    "plain": "torch.from_file(",
    "spaces": "torch . from_file (",
    "parenthesized": "(torch.from_file)(",
    "comment_between": "(torch.from_file  # a comment\n        )(",
}


def write_disguised_from_file(repo, name, spelling):
    """WritesThroughFromFileAtLoad with torch.from_file spelt `spelling`:
    loading it creates <repo>/<name>/owned.pt."""
    write(repo, name, WritesThroughFromFileAtLoad(str(Path(repo) / name / "owned.pt")),
          config(name, [("x", "TYPE_FP32", [16])], [("y", "TYPE_FP32", [16])]))
    if spelling != "torch.from_file(":
        edit_archive_code(Path(repo) / name / "1" / "model.pt", "torch.from_file(", spelling)


def write_disguised_save(repo, name, spelling):
    """SavesFileAtLoad with torch.save spelt `spelling` in its code: loading
    it writes <repo>/<name>/owned.pt."""
    write(repo, name, SavesFileAtLoad(str(Path(repo) / name / "owned.pt")),
          config(name, [("x", "TYPE_FP32", [16])], [("y", "TYPE_FP32", [16])]))
    edit_archive_code(Path(repo) / name / "1" / "model.pt", "torch.save(", spelling)


def write_upper_case_code(repo, name):
    """SavesFileAtLoad, torch.save spelt plainly, but its code records renamed
    CODE/....PY: libtorch finds records case-insensitively (miniz), so the
    archive still loads, and writes <repo>/<name>/owned.pt."""
    write(repo, name, SavesFileAtLoad(str(Path(repo) / name / "owned.pt")),
          config(name, [("x", "TYPE_FP32", [16])], [("y", "TYPE_FP32", [16])]))
    path = Path(repo) / name / "1" / "model.pt"
    original = path.with_name(path.name + ".orig")
    os.replace(path, original)
    renamed = 0
    with zipfile.ZipFile(original) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            record = info.filename
            if "/code/" in record and record.endswith(".py"):
                record = record.replace("/code/", "/CODE/")[:-3] + ".PY"
                renamed += 1
            zout.writestr(zipfile.ZipInfo(record, info.date_time), data)
    original.unlink()
    assert renamed, "no code record"


def write_corrupt(repo, name="corrupt"):
    """A model.pt that is not a zip archive at all, with a valid config."""
    path = Path(repo) / name / "1" / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a TorchScript archive\n" * 64)
    (Path(repo) / name / "config.pbtxt").write_text(
        config(name, [("x", "TYPE_FP32", [4])], [("OUTPUT__0", "TYPE_FP32", [4])]))
    return path


def write_newer_version(repo, name="from_the_future", version_record=b"99\n"):
    """A valid TwoArgs archive whose `<archive>/version` record says 99: a
    file from a PyTorch newer than the server's libtorch. The zip is rewritten
    entry by entry with zipfile, the version record replaced."""
    cfg = config(name, [("x", "TYPE_FP32", [4]), ("y", "TYPE_FP32", [4])],
                 [("out", "TYPE_FP32", [4])])
    path = Path(repo) / name / "1" / "model.pt"
    write(repo, name, TwoArgs(), cfg)
    original = path.with_name("original.pt.bak")
    os.replace(path, original)
    replaced = 0
    with zipfile.ZipFile(original) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            parts = info.filename.split("/")
            if len(parts) == 2 and parts[1] == "version":
                data = version_record
                replaced += 1
            zout.writestr(info, data)
    original.unlink()
    assert replaced == 1, "no version record in the archive"
    return path


def write_without_config(repo, name="no_config"):
    """model.pt (forward(Tensor x, Tensor y) -> Tensor) and no config.pbtxt."""
    return write(repo, name, TwoArgs(), None)


def write_wrong_input_count(repo, name="wrong_count", count=1):
    """forward takes 2 tensors (x, y); the config declares `count` inputs."""
    names = ["x", "y", "z"][:count]
    cfg = config(name, [(n, "TYPE_FP32", [4]) for n in names], [("out", "TYPE_FP32", [4])])
    return write(repo, name, TwoArgs(), cfg)


def write_kind_gpu(repo, name="on_gpu"):
    """The MLP with `instance_group [{ kind: KIND_GPU }]`."""
    return write_mlp(repo, name, extra='instance_group [ { name: "g" count: 1 kind: KIND_GPU } ]\n')
