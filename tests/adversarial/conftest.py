"""The hostile suite (issue 17): a hostile tenant, client or repository,
through the real interfaces. It reuses the integration fixtures (a real
mmserve process on free ports) and adds a multi-tenant setup.

The integration conftest is loaded under its own module name, so both suites
can run in one pytest process without two modules called `conftest`.
"""
import importlib.util
import sys
from pathlib import Path

_INTEGRATION = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"
_spec = importlib.util.spec_from_file_location("mmserve_integration_conftest", _INTEGRATION)
_base = importlib.util.module_from_spec(_spec)
sys.modules["mmserve_integration_conftest"] = _base
_spec.loader.exec_module(_base)

ROOT = _base.ROOT
EXAMPLES = _base.EXAMPLES
Server = _base.Server
binary = _base.binary
release_binary = _base.release_binary
wait_for_log = _base.wait_for_log
