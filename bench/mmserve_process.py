"""One mmserve process for the benchmarks: started with its ports chosen by
the kernel (--http-port 0 ...), its output kept line by line with the time
each line arrived, its CPU time read from /proc. bench/s3_fetch.py and
bench/repository_scale.py build their servers on it."""
import os
import re
import subprocess
import threading
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PORT_RE = re.compile(r"HTTP server listening on [^:]+:(\d+)")


def cpu_s(pid):
    """User + system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class MmserveProcess:
    """Starts `args` (an mmserve command line that asks for port 0) and waits
    until it listens; `log` holds its lines, `times` when each arrived."""

    def __init__(self, args, env=None, start_deadline_s=120):
        self.log = []
        self.times = []  # time.monotonic() of each line of `log`
        self.port = None
        self._seen = threading.Event()
        self.proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._seen.wait(start_deadline_s) or self.port is None:
            self.stop()
            raise RuntimeError("mmserve did not start:\n" + self.text()[-3000:])

    def _pump(self):
        for line in self.proc.stdout:
            self.times.append(time.monotonic())
            self.log.append(line)
            m = PORT_RE.search(line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._seen.set()
        self._seen.set()

    def text(self):
        return "".join(list(self.log))

    def count(self, text):
        return sum(text in line for line in list(self.log))

    def wait_line(self, text, deadline_s=60):
        """(arrival time, line) of the first line that holds `text`."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            for t, line in zip(list(self.times), list(self.log)):
                if text in line:
                    return t, line
            time.sleep(0.005)
        raise RuntimeError(f"never logged {text!r}:\n" + self.text()[-3000:])

    def wait_log(self, text, count=1, deadline_s=600):
        end = time.monotonic() + deadline_s
        while self.count(text) < count:
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError(f"never logged {text!r} x{count}:\n" + self.text()[-3000:])
            time.sleep(0.01)

    def cpu_s(self):
        return cpu_s(self.proc.pid)

    def stop(self, wait_s=60):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
