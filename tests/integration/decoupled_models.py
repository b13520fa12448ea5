"""The test-backend models test_decoupled.py and test_generate.py serve: the
repeat test backend (tests/backends/repeat, decoupled: IN's values one
response each) and a non-decoupled copy (the identity test backend)."""
from pathlib import Path

from conftest import Server

REPEAT_CONFIG = """
backend: "mmserve_test_repeat"
max_batch_size: 0
model_transaction_policy { decoupled: true }
"""


def write_model(repo: Path, name: str, config: str):
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(f'name: "{name}"\n' + config)


def serve_repeat_and_copy(repo: Path, copy_config: str):
    """A started server with models "repeat" and "copy"; the caller stops it
    (and should assert the exit code is 0)."""
    write_model(repo, "repeat", REPEAT_CONFIG)
    write_model(repo, "copy", copy_config)
    return Server([repo], "--enable-test-backends").start()
