"""The web console in a real browser (issue 25): headless Chromium, driven by
Selenium through Debian's chromedriver, against a real server with a tenants
file. A user tenant's key is refused with the server's 403 message; an
admin's key shows the models; traffic draws a chart; unload and load work
from the page; a failed load shows its error in the row; a model named like
an HTML tag is shown as text and runs nothing; the key lives in
sessionStorage only; log out forgets it. Screenshots of each step go to
$MMSERVE_TEST_ARTIFACTS (else build/test-artifacts/console/)."""
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
import requests

from conftest import EXAMPLES, ROOT, Server
from test_tenancy import write_tenants

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

KEY_ADMIN = "ops-browser-key-0123456789abcdef"
KEY_USER = "team-a-browser-key-0123456789ab"
HOSTILE = "<img src=x onerror=window.__xss=1>"
TIMEOUT_S = 60  # a hang guard only: every wait polls a condition


def artifacts_dir() -> Path:
    path = Path(os.environ.get("MMSERVE_TEST_ARTIFACTS")
                or ROOT / "build" / "test-artifacts" / "console")
    path.mkdir(parents=True, exist_ok=True)
    return path


def copy_model(src, repo, name):
    shutil.copytree(src, repo / name)
    config = repo / name / "config.pbtxt"
    text = config.read_text()
    config.write_text(text.replace(f'name: "{src.name}"', f"name: {json.dumps(name)}"))


@pytest.fixture(scope="module")
def console_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("console_browser")
    shared, team = root / "shared", root / "team"
    shared.mkdir()
    team.mkdir()
    copy_model(EXAMPLES / "add_sub", shared, "add_sub")
    copy_model(EXAMPLES / "mlp_classifier", shared, "mlp_classifier")
    copy_model(EXAMPLES / "add_sub", shared, HOSTILE)
    # A model whose load fails (its model file is not ONNX): not loaded at
    # start; the page's load button must show the server's error.
    copy_model(EXAMPLES / "add_sub", shared, "broken")
    (shared / "broken" / "1" / "model.onnx").write_bytes(b"this is not an onnx model")
    copy_model(EXAMPLES / "add_sub", team, "team_model")
    # A drift baseline for add_sub's INPUT0 so that the drift card has rows.
    feature = {"edges": [0.5], "expected": [0.5, 0.5]}
    (shared / "add_sub" / "drift_baseline.json").write_text(json.dumps(
        {"version": 1, "bins": 2, "inputs": {"INPUT0": {"features": [feature] * 4}}}))
    tenants = write_tenants(root / "tenants.yaml", [
        {"id": "ops", "keys": [KEY_ADMIN], "role": "admin"},
        {"id": "team-a", "keys": [KEY_USER], "repositories": [team],
         "quotas": {"max_concurrency": 4, "requests_per_second": 500, "burst": 50}},
    ])
    loads = []
    for name in ("add_sub", "mlp_classifier", HOSTILE, "team_model"):
        loads += ["--load-model", name]
    s = Server([shared, team], "--tenants", tenants, "--model-control-mode", "explicit", *loads,
               "--model-memory-budget", str(1 << 30), "--drift-sample-rate", "1",
               "--drift-min-rows", "8", "--drift-check-ms", "100").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


@pytest.fixture()
def driver():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            pytest.fail(f"{path} is not installed (scripts/install-deps.sh --test installs "
                        "chromium and chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mmserve-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-extensions",
                "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


# ---------------------------------------------------------------- helpers

def wait(driver, condition, message, timeout=TIMEOUT_S):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: condition(d), message)


def shot(driver, name, saved):
    path = artifacts_dir() / name
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    saved.append(path)


def by_id(driver, element_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


ROW_JS = """
const rows = Array.from(document.querySelectorAll('tr.model-row'));
return rows.map((r) => ({model: r.dataset.model, state: r.dataset.state,
                         rate: parseFloat(r.dataset.rate),
                         text: r.querySelector('.model-name') ?
                               r.querySelector('.model-name').textContent : null,
                         error: Array.from(r.querySelectorAll('.row-error'))
                                  .filter((e) => !e.hidden).map((e) => e.textContent).join('')}));
"""


def rows(driver):
    return {r["model"]: r for r in driver.execute_script(ROW_JS)}


def row_element(driver, name):
    from selenium.webdriver.common.by import By

    for row in driver.find_elements(By.CSS_SELECTOR, "tr.model-row"):
        if row.get_attribute("data-model") == name:
            return row
    raise AssertionError(f"no row for {name!r}: {sorted(rows(driver))}")


def click_button(driver, name, css):
    from selenium.webdriver.common.by import By

    button = row_element(driver, name).find_element(By.CSS_SELECTOR, css)
    wait(driver, lambda d: button.is_displayed() and button.is_enabled(),
         f"{css} of {name} never became clickable")
    button.click()


def wait_state(driver, name, want):
    wait(driver, lambda d: rows(d).get(name, {}).get("state") == want,
         f"{name} never showed {want}: {rows(driver).get(name)}")


def login(driver, key):
    field = by_id(driver, "login-key")
    field.clear()
    field.send_keys(key)
    by_id(driver, "login-submit").click()


def storage(driver):
    return driver.execute_script("""
        const all = (s) => Array.from({length: s.length}, (_, i) => [s.key(i), s.getItem(s.key(i))]);
        return {session: all(sessionStorage), local: all(localStorage), cookie: document.cookie,
                url: location.href};""")


class Traffic:
    """Sends add_sub inferences with the admin key until stopped."""

    def __init__(self, server, name):
        self.url = f"{server.base}/v2/models/{name}/infer"
        self.stop_event = threading.Event()
        self.sent = 0
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        body = {"inputs": [
            {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]},
            {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
        with requests.Session() as session:
            while not self.stop_event.is_set() and self.sent < 5000:
                r = session.post(self.url, json=body, timeout=30,
                                 headers={"Authorization": f"Bearer {KEY_ADMIN}"})
                if r.status_code != 200:
                    self.errors.append(r.text)
                self.sent += 1
                self.stop_event.wait(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(60)


# ---------------------------------------------------------------- the test

def test_console_in_a_browser(console_server, driver):
    from selenium.webdriver.common.by import By

    saved = []
    base = console_server.base

    # 1. A closed server: the page asks for a key.
    driver.get(base + "/console/")
    wait(driver, lambda d: by_id(d, "login").is_displayed(), "no login form")
    assert not by_id(driver, "app").is_displayed()
    assert by_id(driver, "login-key").get_attribute("type") == "password"
    shot(driver, "01-login.png", saved)

    # 2. A user tenant's key: the server's 403 message, and no models.
    login(driver, KEY_USER)
    wait(driver, lambda d: by_id(d, "login-error").is_displayed()
         and by_id(d, "login-error").text.strip(), "no error for a non-admin key")
    error = by_id(driver, "login-error").text
    assert "403" in error and "admin" in error.lower(), error
    assert "team-a" in error, error  # the server's own message names the tenant
    assert not by_id(driver, "app").is_displayed()
    assert driver.find_elements(By.CSS_SELECTOR, "tr.model-row") == []
    assert all(KEY_USER not in v for _, v in storage(driver)["session"])
    shot(driver, "02-forbidden.png", saved)

    # 3. The admin's key: the models table, every model READY.
    login(driver, KEY_ADMIN)
    expected = {"add_sub", "mlp_classifier", "team_model", HOSTILE}
    wait(driver, lambda d: by_id(d, "models").is_displayed()
         and all(rows(d).get(n, {}).get("state") == "READY" for n in expected),
         f"models never all READY: {rows(driver)}")
    assert not by_id(driver, "login").is_displayed()
    assert rows(driver)["broken"]["state"] == "UNAVAILABLE"
    for section in ("memory", "tenants", "workers", "drift", "charts"):
        assert by_id(driver, section).is_displayed(), section
    tenant_text = by_id(driver, "tenants").text
    assert "ops" in tenant_text and "team-a" in tenant_text, tenant_text
    assert by_id(driver, "logout").is_displayed()
    # The key: in this tab's sessionStorage only, never in the URL, a cookie,
    # localStorage or the page.
    s = storage(driver)
    assert KEY_ADMIN not in s["url"] and KEY_ADMIN not in s["cookie"], s
    assert any(v == KEY_ADMIN for _, v in s["session"]), s
    assert all(KEY_ADMIN not in v for _, v in s["local"]), s
    assert KEY_ADMIN not in driver.page_source
    shot(driver, "03-models.png", saved)

    # 4. Traffic to add_sub: its row's rate and its charts follow.
    with Traffic(console_server, "add_sub") as traffic:
        row_element(driver, "add_sub").find_element(By.CSS_SELECTOR, ".model-name").click()
        charts = by_id(driver, "charts")
        wait(driver, lambda d: charts.get_attribute("data-model") == "add_sub"
             and int(charts.get_attribute("data-points")) >= 2
             and float(charts.get_attribute("data-last-rate")) > 0
             and rows(d)["add_sub"]["rate"] > 0
             and traffic.sent >= 50,
             "add_sub's chart never showed traffic: " + json.dumps({
                 k: charts.get_attribute(k) for k in ("data-model", "data-points",
                                                      "data-last-rate")}))
        assert "selected" in row_element(driver, "add_sub").get_attribute("class")
        # The drift baseline's PSI rows appear for add_sub once enough rows came.
        wait(driver, lambda d: "INPUT0" in by_id(d, "drift").text, "no drift rows for add_sub")
    assert traffic.sent >= 50 and not traffic.errors, traffic.errors[:3]
    shot(driver, "04-chart.png", saved)

    # 5. Unload from the page.
    click_button(driver, "add_sub", "button.unload")
    wait_state(driver, "add_sub", "UNAVAILABLE")
    shot(driver, "05-unloaded.png", saved)

    # 6. Load it again.
    click_button(driver, "add_sub", "button.load")
    wait_state(driver, "add_sub", "READY")
    assert rows(driver)["add_sub"]["error"] == ""
    wait(driver, lambda d: not row_element(d, "add_sub").find_elements(
        By.CSS_SELECTOR, ".load-progress"), "the progress bar stayed after READY")
    shot(driver, "06-reloaded.png", saved)

    # A load that fails: the server's error in the row, the model not READY.
    click_button(driver, "broken", "button.load")
    wait(driver, lambda d: rows(d)["broken"]["error"], "no error shown for a failed load")
    assert "load failed" in rows(driver)["broken"]["error"], rows(driver)["broken"]
    assert rows(driver)["broken"]["state"] != "READY"

    # The hostile model's name is text: no element was made from it, no script ran.
    hostile = rows(driver)[HOSTILE]
    assert hostile["text"] == HOSTILE and hostile["state"] == "READY", hostile
    assert driver.execute_script("return typeof window.__xss") == "undefined"
    assert driver.execute_script("return document.querySelectorAll('img').length") == 0
    # Nothing the page did broke its Content-Security-Policy.
    violations = [e for e in driver.get_log("browser")
                  if "Content Security Policy" in e.get("message", "")
                  or "Refused to" in e.get("message", "")]
    assert not violations, violations

    # Log out: the login form again, the key forgotten.
    by_id(driver, "logout").click()
    wait(driver, lambda d: by_id(d, "login").is_displayed(), "no login form after log out")
    assert not by_id(driver, "app").is_displayed()
    s = storage(driver)
    assert all(KEY_ADMIN not in v for _, v in s["session"] + s["local"]), s
    assert driver.find_elements(By.CSS_SELECTOR, "tr.model-row") == []
    assert len(saved) == 6


def test_open_server_needs_no_login_and_a_lost_connection_shows(tmp_path, driver):
    """Without a tenants file the overview answers without a key: the page
    skips the login (and has nothing to log out of). A server that stops
    answering turns the page's "connection lost" state on."""
    copy_model(EXAMPLES / "add_sub", tmp_path, "add_sub")
    s = Server([tmp_path], "--model-control-mode", "explicit", "--load-model", "add_sub").start()
    try:
        driver.get(s.base + "/console/")
        wait(driver, lambda d: rows(d).get("add_sub", {}).get("state") == "READY",
             f"no READY add_sub row: {rows(driver)}")
        assert not by_id(driver, "login").is_displayed()
        assert not by_id(driver, "logout").is_displayed()
        assert not by_id(driver, "conn-lost").is_displayed()
        assert storage(driver)["session"] == []
    finally:
        code = s.stop()
    assert code == 0, s.text()[-3000:]
    wait(driver, lambda d: by_id(d, "conn-lost").is_displayed(), "no connection-lost banner")
    assert "lost" in by_id(driver, "conn").text
