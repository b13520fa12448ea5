#!/usr/bin/env python3
"""Fixed-rate KServe v2 inference client, for bench/fairness.sh.

Sends single-row mlp_classifier requests (FP32 [1,16] "input" -> "probabilities"
[1,10], JSON both ways) to one model at a fixed rate, evenly spaced, on ONE
keep-alive HTTP connection, and times each request from the moment it is sent
to the moment its whole response has been read (perf_counter_ns). Standard
library only.

  rate_client.py --url http://127.0.0.1:PORT --model NAME --rate 100 --seconds 10
                 [--priority N] [--latencies FILE]

--priority N adds the request parameter "priority": N (the top-level
"parameters" object of the JSON body). Prints one line for the script to parse:

  RATE_RESULT sent=N ok=N failed=N late=N rate=R p50_us=.. p90_us=.. p99_us=.. max_us=..

ok: 200 with a well-formed 10-value "probabilities" output; failed: anything
else (non-200, malformed body, connection error; the connection is then
reopened). late: requests sent more than one interval after their slot (the
previous one overran; latency is still measured from the actual send, so a
late count above a handful means the rate was not held). A run with failed > 0
is invalid; the first failure is printed as RATE_FIRST_BAD.
"""

import argparse
import http.client
import json
import socket
import sys
import time
import urllib.parse


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list (empty: 0)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, -(-len(sorted_values) * p // 100) - 1))
    return sorted_values[int(k)]


class Connection:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.conn = None

    def get(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            self.conn.connect()
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.conn

    def reset(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", required=True, help="server base URL, http://HOST:PORT")
    ap.add_argument("--model", required=True)
    ap.add_argument("--rate", type=float, default=100.0, help="requests per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--priority", type=int, default=None)
    ap.add_argument("--latencies", help="write every successful latency (µs), one a line")
    args = ap.parse_args(argv)

    u = urllib.parse.urlsplit(args.url)
    path = f"/v2/models/{args.model}/infer"
    body = {"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                        "data": [(i - 7) * 0.125 for i in range(16)]}]}
    if args.priority is not None:
        body["parameters"] = {"priority": args.priority}
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}

    conn = Connection(u.hostname, u.port or 80)
    conn.get()  # connect outside the timed loop
    interval_ns = int(1e9 / args.rate)
    count = max(1, int(args.rate * args.seconds))
    latencies_ns = []
    failed = late = 0
    first_bad = None
    start = time.perf_counter_ns() + interval_ns
    for i in range(count):
        slot = start + i * interval_ns
        now = time.perf_counter_ns()
        if now < slot:
            time.sleep((slot - now) / 1e9)
        elif now - slot > interval_ns:
            late += 1
        t0 = time.perf_counter_ns()
        try:
            c = conn.get()
            c.request("POST", path, body=payload, headers=headers)
            resp = c.getresponse()
            data = resp.read()
            t1 = time.perf_counter_ns()
            status = resp.status
        except (OSError, http.client.HTTPException) as e:
            failed += 1
            first_bad = first_bad or f"request {i}: {type(e).__name__}: {e}"
            conn.reset()
            continue
        if status != 200:
            failed += 1
            first_bad = first_bad or f"request {i}: HTTP {status} {data[:200]!r}"
            continue
        try:
            out = json.loads(data)["outputs"][0]
            good = out["name"] == "probabilities" and len(out["data"]) == 10
        except (ValueError, KeyError, IndexError, TypeError):
            good = False
        if not good:
            failed += 1
            first_bad = first_bad or f"request {i}: unexpected body {data[:200]!r}"
            continue
        latencies_ns.append(t1 - t0)
    elapsed = (time.perf_counter_ns() - start) / 1e9
    conn.reset()

    lat_us = sorted(x / 1000.0 for x in latencies_ns)
    if args.latencies:
        with open(args.latencies, "w") as f:
            f.writelines(f"{x:.1f}\n" for x in (v / 1000.0 for v in latencies_ns))
    print(f"RATE_RESULT sent={count} ok={len(lat_us)} failed={failed} late={late} "
          f"rate={count / elapsed if elapsed > 0 else 0:.1f} "
          f"p50_us={percentile(lat_us, 50):.1f} p90_us={percentile(lat_us, 90):.1f} "
          f"p99_us={percentile(lat_us, 99):.1f} max_us={(lat_us[-1] if lat_us else 0):.1f}")
    if first_bad:
        print(f"RATE_FIRST_BAD {first_bad}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
