#!/usr/bin/env python3
"""bench/s3_fetch.py [--rounds 3] [--size-mib 256] [--small-mib 10] [--binary B]
[--no-multipart] [--moto-as-is]: models from object storage (issue 22), in
one run against one moto server (tests/integration/s3_server.py's
MotoServer, server mode, auth off), each figure a ratio against a baseline
measured in the same run, rounds interleaved (mmserve, baseline, mmserve,
...) so that both sides share the machine's noise; medians over the rounds.

1. fetch: model `m` = config.pbtxt + 1/model.onnx (y = x + c) + 1/weights.bin
   of SIZE MiB of random bytes, uploaded in a single PUT twice: as boto3
   does by default (with a CRC32 the store keeps, which mmserve checks) and
   without a checksum (only the ETag, its MD5, which mmserve checks); and,
   unless --no-multipart, once more in 8 MiB parts under another prefix (a
   multipart ETag and a composite checksum: nothing to check but the size).
   mmserve: a fresh server (explicit mode, an empty --model-cache-dir) per
   round; POST /v2/repository/models/m/load is timed, and the log gives the
   fetch ("fetched X from s3://... in T s") and when the version was READY.
   baseline: boto3's download_file (default TransferConfig: 8 MiB parts, 10
   threads) of the same weights.bin into a new file beside the cache dirs.
   Ratio: mmserve's fetch (the log's T) / boto3's download (target <= 1.1x);
   also the whole load request / boto3.
2. cold request: model `small` (the same, with a SMALL MiB weights.bin).
   mmserve: a fresh server (explicit mode, --load-on-demand, an empty cache)
   per pair: the first inference request (tritonclient HTTP) is timed.
   baseline: boto3's download_file of the model's three objects, one after
   the other, plus POST load of the same model on a fresh server over a local
   copy of the folder. Ratio: cold request / (download + local load);
   COLD_PER_ROUND pairs per round. The log's millisecond stamps split the
   request: to the fetch's start (listing, config, ONNX Runtime's Env), the
   fetch, from its end to READY.

Beside each figure: the CPU seconds moto and mmserve (or this process, for
boto3) spent in it, from /proc; moto is Python, one GIL.

moto answers a GET, ranged or not, by reading the whole object out of its
store (FakeKey.value) and slicing it: each ranged GET of a 256 MiB object
costs moto ~0.14 s of CPU whatever the range, so a client that asks for
more, smaller parts (boto3: 8 MiB) is slowed by the store, not by itself.
By default moto is started with a sitecustomize that keeps each object's
bytes once read (an immutable bytes object; a put replaces it), so that a
ranged GET costs moto what its range costs; --moto-as-is runs moto as
shipped.

Ends with a markdown table. Env: BENCH_KEEP=1 keeps the temporary folder.
"""
import argparse
import contextlib
import datetime
import http.client
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import boto3
import numpy as np
import tritonclient.http as httpclient
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from mmserve_process import MmserveProcess, cpu_s  # noqa: E402
from s3_server import MotoServer  # noqa: E402
from test_s3_repository import plus_model  # noqa: E402  (y = x + c)

BUCKET = "bench"
KEY_ID, SECRET = "benchkey", "benchsecret"  # moto's auth is off: any key works
COLD_PER_ROUND = 3  # cold-request pairs per round: ~0.1 s each, noisier than the fetch
FETCHED_RE = re.compile(r"model '([^']+)' version (\d+): fetched (.+?) from (\S+) in ([\d.]+) s")

# moto's FakeKey.value reads the whole object from its buffer on every GET;
# this keeps the bytes once read, so a ranged GET only copies its range.
MOTO_SHIM = '''
import threading
from moto.s3.models import FakeKey
_get, _set = FakeKey.value.fget, FakeKey.value.fset
_lock = threading.Lock()

def _cached_get(self):
    value = self.__dict__.get("_bench_bytes")
    if value is None:
        with _lock:  # parallel first GETs read it once
            value = self.__dict__.get("_bench_bytes")
            if value is None:
                value = self.__dict__["_bench_bytes"] = _get(self)
    return value

def _cached_set(self, new_value):
    self.__dict__.pop("_bench_bytes", None)
    _set(self, new_value)

FakeKey.value = property(_cached_get, _cached_set)
'''


def config(name):
    return f'name: "{name}"\nbackend: "onnxruntime"\nmax_batch_size: 0\n'.encode()


def random_file(path, size, seed):
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            left -= n


class Server(MmserveProcess):
    """One mmserve process over an S3 repository, ready."""

    def __init__(self, binary, repo, cache, endpoint, *extra):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_REGION="us-east-1", AWS_CONFIG_FILE="/nonexistent",
                   AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL",
                     "AWS_ENDPOINT_URL_S3"):
            env.pop(name, None)
        args = [binary, "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0",
                "--log-level", "info", "--model-repository", repo,
                "--model-control-mode", "explicit", *extra]
        if endpoint:
            args += ["--s3-endpoint", endpoint, "--model-cache-dir", cache]
        super().__init__(args, env)
        self.wait_ready()

    @property
    def url(self):
        return f"127.0.0.1:{self.port}"

    def post(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            conn.request("POST", path, body=b"{}", headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def wait_ready(self):
        end = time.monotonic() + 120
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/v2/health/ready")
                if conn.getresponse().status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            time.sleep(0.01)
        raise RuntimeError("mmserve never ready:\n" + self.text()[-3000:])

    def stamp(self, text):
        """The wall-clock time (time.time()) the server's log gives the first
        line that holds `text` ("[2026-12-05 03:18:20.222] ...", local time)."""
        _, line = self.wait_line(text)
        m = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]", line)
        return datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()

    def phases(self, model, started):
        """Seconds from `started` (time.time()) to the fetch's start, the fetch
        and from its end to READY, from the log's millisecond stamps."""
        fetching = self.stamp(f"model '{model}' version 1: fetching")
        fetched = self.stamp(f"model '{model}' version 1: fetched")
        ready = self.stamp(f"model '{model}' version 1 is READY")
        return {"before_fetch": fetching - started, "fetch_stamps": fetched - fetching,
                "after_fetch": ready - fetched}

    def fetched(self, model):
        """The model's fetch in seconds, as its log line gives it."""
        _, line = self.wait_line(f"model '{model}' version 1: fetched ")
        return float(FETCHED_RE.search(line).group(5))


def infer_plus(url, name):
    client = httpclient.InferenceServerClient(url, network_timeout=600)
    x = httpclient.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
    try:
        return float(client.infer(name, [x]).as_numpy("y")[0][0])
    finally:
        client.close()


class Bench:
    def __init__(self, args, tmp, moto):
        self.args, self.tmp, self.moto = args, tmp, moto
        self.s3 = boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1",
                               aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                               config=Config(s3={"addressing_style": "path"}))
        self.runs = 0

    def fresh(self, what):
        self.runs += 1
        path = self.tmp / "runs" / f"{self.runs:03d}-{what}"
        path.mkdir(parents=True)
        return path

    def moto_cpu(self):
        return cpu_s(self.moto.proc.pid)

    # ------------------------------------------------------------ figure 1
    def mmserve_fetch(self, prefix, model):
        run = self.fresh("mmserve")
        s = Server(self.args.binary, f"s3://{BUCKET}/{prefix}", run / "cache",
                   self.moto.endpoint)
        try:
            m0, c0 = self.moto_cpu(), s.cpu_s()
            started = time.time()
            t0 = time.monotonic()
            status, body = s.post(f"/v2/repository/models/{model}/load")
            wall = time.monotonic() - t0
            m1, c1 = self.moto_cpu(), s.cpu_s()
            assert status == 200, body
            fetch_s = s.fetched(model)
            assert infer_plus(s.url, model) == 1.0
            return {"fetch": fetch_s, "wall": wall, **s.phases(model, started),
                    "moto_cpu": m1 - m0, "client_cpu": c1 - c0}
        finally:
            s.stop()
            shutil.rmtree(run, ignore_errors=True)

    def boto3_download(self, keys):
        run = self.fresh("boto3")
        try:
            m0, c0 = self.moto_cpu(), time.process_time()
            t0 = time.monotonic()
            for key in keys:
                target = run / key.replace("/", "_")
                self.s3.download_file(BUCKET, key, str(target))
            wall = time.monotonic() - t0
            m1, c1 = self.moto_cpu(), time.process_time()
            return {"fetch": wall, "moto_cpu": m1 - m0, "client_cpu": c1 - c0}
        finally:
            shutil.rmtree(run, ignore_errors=True)

    # ------------------------------------------------------------ figure 2
    def mmserve_cold(self, prefix, model):
        run = self.fresh("cold")
        s = Server(self.args.binary, f"s3://{BUCKET}/{prefix}", run / "cache",
                   self.moto.endpoint, "--load-on-demand")
        try:
            m0, c0 = self.moto_cpu(), s.cpu_s()
            started = time.time()
            t0 = time.monotonic()
            y = infer_plus(s.url, model)
            wall = time.monotonic() - t0
            m1, c1 = self.moto_cpu(), s.cpu_s()
            assert y == 1.0, y
            fetch_s = s.fetched(model)
            return {"cold": wall, "fetch": fetch_s, **s.phases(model, started),
                    "moto_cpu": m1 - m0, "client_cpu": c1 - c0}
        finally:
            s.stop()
            shutil.rmtree(run, ignore_errors=True)

    def local_load(self, repo, model):
        s = Server(self.args.binary, repo, None, None)
        try:
            t0 = time.monotonic()
            status, body = s.post(f"/v2/repository/models/{model}/load")
            wall = time.monotonic() - t0
            assert status == 200, body
            t0 = time.monotonic()
            assert infer_plus(s.url, model) == 1.0
            first_infer = time.monotonic() - t0
            return {"load": wall, "first_infer": first_infer}
        finally:
            s.stop()


def upload_model(moto, s3, prefix, name, weights_path, single_part, local=None, crc32=True):
    files = {"config.pbtxt": config(name), "1/model.onnx": plus_model(1)}
    for path, data in files.items():
        moto.put(BUCKET, f"{prefix}/{name}/{path}", data)
    key = f"{prefix}/{name}/1/weights.bin"
    if single_part:
        client = s3 if crc32 else boto3.client(
            "s3", endpoint_url=moto.endpoint, region_name="us-east-1",
            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
            config=Config(s3={"addressing_style": "path"},
                          request_checksum_calculation="when_required"))
        with open(weights_path, "rb") as f:
            client.put_object(Bucket=BUCKET, Key=key, Body=f)
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=key)["Contents"][0]
        assert ("CRC32" in listed.get("ChecksumAlgorithm", [])) == crc32, listed
    else:
        from boto3.s3.transfer import TransferConfig
        s3.upload_file(str(weights_path), BUCKET, key, Config=TransferConfig(
            multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=4))
    if local is not None:
        d = local / name / "1"
        d.mkdir(parents=True)
        (local / name / "config.pbtxt").write_bytes(files["config.pbtxt"])
        (d / "model.onnx").write_bytes(files["1/model.onnx"])
        shutil.copyfile(weights_path, d / "weights.bin")
    return [f"{prefix}/{name}/{p}" for p in (*files, "1/weights.bin")], moto.etag(BUCKET, key)


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def ratio(a_rows, b_rows, a_key, b_key="fetch"):
    """Median of the per-round ratios (each round's pair shares its noise)."""
    return statistics.median(a[a_key] / b[b_key] for a, b in zip(a_rows, b_rows))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--small-mib", type=int, default=10)
    p.add_argument("--binary", type=Path, default=ROOT / "build" / "release" / "mmserve")
    p.add_argument("--no-multipart", action="store_true",
                   help="skip the row of the weights uploaded in parts (no MD5 to check)")
    p.add_argument("--moto-as-is", action="store_true",
                   help="moto as shipped: every GET reads the whole object")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="s3_fetch_"))
    moto = MotoServer(tmp / "moto")
    saved = os.environ.get("PYTHONPATH")
    try:
        if not args.moto_as_is:
            shim = tmp / "moto_shim"
            shim.mkdir()
            (shim / "sitecustomize.py").write_text(MOTO_SHIM)
            os.environ["PYTHONPATH"] = str(shim)  # for moto's process only
        try:
            moto.start()
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
        moto.create_bucket(BUCKET)
        bench = Bench(args, tmp, moto)

        t = time.monotonic()
        big, small = tmp / "big.bin", tmp / "small.bin"
        random_file(big, args.size_mib << 20, 1)
        random_file(small, args.small_mib << 20, 2)
        single_keys, single_etag = upload_model(moto, bench.s3, "single", "m", big, True)
        md5_keys, _ = upload_model(moto, bench.s3, "md5", "m", big, True, crc32=False)
        cases = [("single-part (CRC32 checked)", "single", single_keys[-1]),
                 ("single-part, no stored checksum (MD5 checked)", "md5", md5_keys[-1])]
        if not args.no_multipart:
            multi_keys, multi_etag = upload_model(moto, bench.s3, "multi", "m", big, False)
            assert "-" in multi_etag and "-" not in single_etag, (multi_etag, single_etag)
            cases.append((f"multipart, {multi_etag.split('-')[1]} parts (no MD5)", "multi",
                          multi_keys[-1]))
        local = tmp / "local"
        small_keys, _ = upload_model(moto, bench.s3, "cold", "small", small, True, local)
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(args.binary.stat().st_mtime))
        print(f"uploaded {args.size_mib} MiB x{len(cases)} and {args.small_mib} MiB in "
              f"{time.monotonic() - t:.1f} s ({os.cpu_count()} CPUs; moto "
              f"{'as shipped' if args.moto_as_is else 'with ranged GETs O(range)'}; "
              f"{args.binary}, built {built})\n", flush=True)

        # Warm-up, not measured: moto's first requests import its handlers (and
        # its first GET of each object fills the shim's copy), the page cache
        # takes the binary and ONNX Runtime's library.
        for _, _, key in cases:
            bench.s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=0-0")["Body"].read()
        bench.boto3_download(small_keys)
        bench.mmserve_cold("cold", "small")

        fetch = {prefix: ([], []) for _, prefix, _ in cases}
        cold, cold_base = [], []
        for r in range(args.rounds):
            for label, prefix, key in cases:
                fetch[prefix][0].append(bench.mmserve_fetch(prefix, "m"))
                fetch[prefix][1].append(bench.boto3_download([key]))
                a, b = fetch[prefix][0][-1], fetch[prefix][1][-1]
                print(f"round {r + 1} {label}: mmserve fetch {a['fetch']:.2f} s (load request "
                      f"{a['wall']:.2f} s: {a['before_fetch'] * 1e3:.0f} ms to the fetch's start, "
                      f"READY {a['after_fetch'] * 1e3:.0f} ms after its end; CPU mmserve "
                      f"{a['client_cpu']:.2f} s, moto {a['moto_cpu']:.2f} s) | boto3 "
                      f"{b['fetch']:.2f} s (CPU boto3 {b['client_cpu']:.2f} s, moto "
                      f"{b['moto_cpu']:.2f} s) | {a['fetch'] / b['fetch']:.2f}x", flush=True)
            for _ in range(COLD_PER_ROUND):
                c = bench.mmserve_cold("cold", "small")
                d = bench.boto3_download(small_keys)
                d.update(bench.local_load(local, "small"))
                d["sum"] = d["fetch"] + d["load"]
                cold.append(c)
                cold_base.append(d)
                print(f"round {r + 1} cold {args.small_mib} MiB: mmserve first request "
                      f"{c['cold'] * 1e3:.0f} ms ({c['before_fetch'] * 1e3:.0f} ms to the fetch, "
                      f"fetch {c['fetch_stamps'] * 1e3:.0f} ms, READY {c['after_fetch'] * 1e3:.0f} "
                      f"ms after it; CPU mmserve {c['client_cpu']:.2f} s, moto "
                      f"{c['moto_cpu']:.2f} s) | boto3 {d['fetch'] * 1e3:.0f} ms + local load "
                      f"{d['load'] * 1e3:.0f} ms (first infer after it "
                      f"{d['first_infer'] * 1e3:.1f} ms) | {c['cold'] / d['sum']:.2f}x", flush=True)

        n = args.rounds
        print(f"\n| what (median of {n} rounds; cold: of {n * COLD_PER_ROUND} pairs) | mmserve | "
              "baseline | ratio |")
        print("|---|---:|---:|---:|")
        for label, prefix, _ in cases:
            a, b = fetch[prefix]
            r = ratio(a, b, "fetch")
            print(f"| {args.size_mib} MiB weights.bin, {label}: fetch (log) vs boto3 "
                  f"download_file | {med(a, 'fetch'):.2f} s | {med(b, 'fetch'):.2f} s | "
                  f"{r:.2f}x ({'met' if r <= 1.1 else 'missed'}: <= 1.1x) |")
            print(f"| {args.size_mib} MiB, {label}: POST load (fetch + load) vs boto3 "
                  f"download_file | {med(a, 'wall'):.2f} s | {med(b, 'fetch'):.2f} s | "
                  f"{ratio(a, b, 'wall'):.2f}x |")
            print(f"| {args.size_mib} MiB, {label}: CPU s mmserve / boto3 (moto's) | "
                  f"{med(a, 'client_cpu'):.2f} ({med(a, 'moto_cpu'):.2f}) | "
                  f"{med(b, 'client_cpu'):.2f} ({med(b, 'moto_cpu'):.2f}) | |")
        print(f"| {args.small_mib} MiB model: cold first request vs boto3 download + local "
              f"POST load | {med(cold, 'cold') * 1e3:.0f} ms | "
              f"{med(cold_base, 'fetch') * 1e3:.0f} + {med(cold_base, 'load') * 1e3:.0f} = "
              f"{med(cold_base, 'sum') * 1e3:.0f} ms | "
              f"{ratio(cold, cold_base, 'cold', 'sum'):.2f}x |")
        print(f"| {args.small_mib} MiB model, cold request's parts: to the fetch's start (scan, "
              f"config, ONNX Runtime's Env) / fetch / READY after it | "
              f"{med(cold, 'before_fetch') * 1e3:.0f} / {med(cold, 'fetch_stamps') * 1e3:.0f} / "
              f"{med(cold, 'after_fetch') * 1e3:.0f} ms | local load "
              f"{med(cold_base, 'load') * 1e3:.0f} ms | |")
        print(f"| {args.small_mib} MiB model: its fetch (log) vs boto3 download of its 3 objects | "
              f"{med(cold, 'fetch') * 1e3:.0f} ms | {med(cold_base, 'fetch') * 1e3:.0f} ms | "
              f"{ratio(cold, cold_base, 'fetch'):.2f}x |")
        print("\nraw:", json.dumps({"fetch": fetch, "cold": cold, "cold_baseline": cold_base}))
    finally:
        with contextlib.suppress(Exception):
            moto.stop()
        if os.environ.get("BENCH_KEEP") == "1":
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
