"""deploy/prometheus/mmserve-rules.yml: valid for promtool, every rule tested
by tests/deploy/prometheus/mmserve-rules-test.yml (each alert firing when it
should and silent when it should not), every metric it reads one the server
exports, every alert with its runbook paragraph in docs/operations.md."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "mmserve-rules.yml"
TESTS = ROOT / "tests" / "deploy" / "prometheus" / "mmserve-rules-test.yml"
RUNBOOK = ROOT / "docs" / "operations.md"


def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: scripts/install-deps.sh installs it (Debian's prometheus)")
    return path


def rules():
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_promtool_checks_the_rules():
    r = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_unit_tests_pass():
    r = subprocess.run([promtool(), "test", "rules", str(TESTS)], capture_output=True, text=True,
                       cwd=TESTS.parent)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_every_alert_is_tested_and_has_a_runbook():
    tested = {t["alertname"] for g in yaml.safe_load(TESTS.read_text())["tests"]
              for t in g.get("alert_rule_test", [])}
    headings = {line[4:].strip() for line in RUNBOOK.read_text().splitlines()
                if line.startswith("### ")}
    alerts = [r for r in rules() if "alert" in r]
    assert alerts
    for rule in alerts:
        name = rule["alert"]
        assert name in tested, f"{name} has no promtool test"
        assert name in headings, f"{name} has no runbook paragraph in docs/operations.md"
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"
        assert rule["labels"]["severity"] in ("page", "ticket"), name


def test_every_metric_the_rules_read_is_one_the_server_exports():
    source = "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.cc"))
    exported = set(re.findall(r'"(mmserve_[a-z_]+)"', source))
    recorded = {r["record"] for r in rules() if "record" in r}
    used = set()
    for rule in rules():
        used |= set(re.findall(r"\b(mmserve_[a-z_]+)", rule["expr"]))
    for name in sorted(used):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert name in exported or base in exported, f"{name} is not a metric mmserve exports"
    for rule in rules():  # recording rules read only rules defined here
        for name in re.findall(r"\b(mmserve:[a-z0-9_:]+)", rule["expr"]):
            assert name in recorded, f"{name} is not recorded by the rules"
