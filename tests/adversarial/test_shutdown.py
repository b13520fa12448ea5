"""--exit-timeout-secs bounds shutdown from the first moment: a SIGTERM while
the start-up loads run (mode none loads every model before the server is
ready) stops them like any other load, instead of waiting until a slow
warmup ends (before: the signal was only looked at once start-up was over)."""
import signal
import time

import requests

from conftest import Server
from test_names import slow_model


def test_sigterm_during_startup_loads_stops_them(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    slow_model(repo)  # a warmup of 60 x 1.5 s
    s = Server([repo], "--enable-test-backends", "--exit-timeout-secs", "10").start(
        wait_ready=False)
    try:
        end = time.monotonic() + 60  # (the HTTP server answers while models load)
        while time.monotonic() < end:
            index = requests.post(s.base + "/v2/repository/index", json={}, timeout=10).json()
            if {(m["name"], m.get("state")) for m in index} & {("slow", "LOADING")}:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the slow load never started:\n" + s.text()[-3000:])
        start = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        code = s.proc.wait(30)
        assert time.monotonic() - start < 15, s.text()[-3000:]
        assert code == 0, s.text()[-3000:]
        assert "mmserve is ready" not in s.text()
    finally:
        s.stop()
