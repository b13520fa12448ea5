"""GPU check of mmserve's PyTorch backend (issue 20), run on a GPU machine.

Makes TorchScript models with the machine's own torch, serves them with an
mmserve built for that torch (scripts/pytorch_gpu_bundle.sh: KIND_GPU and
KIND_CPU instances of the same weights, a KIND_GPU group of two instances,
dynamic batching), sends requests over HTTP/JSON (no client library needed
there) and compares with torch run here on the GPU and on the CPU. Prints one
PASS/FAIL line per check and exits non-zero on any failure.

  LD_LIBRARY_PATH=BUNDLE/lib:<torch>/lib python3 scripts/pytorch_gpu_check.py BUNDLE/bin/mmserve
"""
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import torch

REPO = "/tmp/gpu_repo"
failures = []


def check(name, ok, detail=""):
    print(("PASS " if ok else "FAIL ") + name + (": " + detail if detail else ""), flush=True)
    if not ok:
        failures.append(name)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(64, 256)
        self.b = torch.nn.Linear(256, 10)

    def forward(self, x):
        return torch.softmax(self.b(torch.relu(self.a(x))), dim=1)


class Cnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(16)
        self.c2 = torch.nn.Conv2d(16, 32, 3, padding=1)
        self.fc = torch.nn.Linear(32 * 8 * 8, 10)

    def forward(self, image):
        x = torch.max_pool2d(torch.relu(self.bn(self.c1(image))), 2)
        x = torch.max_pool2d(torch.relu(self.c2(x)), 2)
        return self.fc(torch.flatten(x, 1)), x.mean(dim=(2, 3))


def write(name, module, config):
    os.makedirs(f"{REPO}/{name}/1", exist_ok=True)
    torch.jit.script(module).save(f"{REPO}/{name}/1/model.pt")
    with open(f"{REPO}/{name}/config.pbtxt", "w") as f:
        f.write(config)


def main():
    torch.manual_seed(7)
    print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0), flush=True)
    mlp, cnn = Mlp().eval(), Cnn().eval()
    mlp_io = ('input [{name: "INPUT__0" data_type: TYPE_FP32 dims: [64]}]\n'
              'output [{name: "OUTPUT__0" data_type: TYPE_FP32 dims: [10]}]\n')
    for kind in ("GPU", "CPU"):
        write(f"mlp_{kind.lower()}", mlp,
              'platform: "pytorch_libtorch"\nmax_batch_size: 8\n' + mlp_io +
              f'instance_group [{{kind: KIND_{kind} count: 1}}]\n'
              'dynamic_batching { max_queue_delay_microseconds: 2000 }\n'
              'parameters { key: "ENABLE_CACHE_CLEANING" value: { string_value: "true" } }\n')
    # The same GPU model in worker processes: each worker keeps its group's
    # kind and GPU (two instances on GPU 0).
    write("mlp_gpu_worker", mlp,
          'platform: "pytorch_libtorch"\nmax_batch_size: 8\n' + mlp_io +
          'instance_group [{kind: KIND_GPU count: 2 gpus: [0]}]\n'
          'mmserve { isolation: PROCESS }\n')
    write("cnn_gpu", cnn,
          'backend: "pytorch"\nmax_batch_size: 4\n'
          'input [{name: "image" data_type: TYPE_FP32 dims: [3, 32, 32]}]\n'
          'output [{name: "LOGITS__0" data_type: TYPE_FP32 dims: [10]},'
          ' {name: "FEATURES__1" data_type: TYPE_FP32 dims: [32]}]\n'
          'instance_group [{kind: KIND_GPU count: 2 gpus: [0]}]\n')

    port = free_port()
    binary = sys.argv[1]
    log = open("/tmp/mmserve_gpu.log", "w")
    server = subprocess.Popen(
        [binary, "--model-repository", REPO, "--http-port", str(port), "--http-address", "127.0.0.1",
         "--grpc-port", str(free_port()), "--metrics-port", str(free_port())],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def get(path):
        with urllib.request.urlopen(base + path, timeout=60) as r:
            return r.status, r.read()

    def infer(model, inputs):
        body = json.dumps({"inputs": inputs}).encode()
        req = urllib.request.Request(base + f"/v2/models/{model}/infer", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return {"error": e.read().decode()}

    try:
        for _ in range(600):
            try:
                if get("/v2/health/ready")[0] == 200:
                    break
            except Exception:
                pass
            if server.poll() is not None:
                break
            time.sleep(0.2)
        index = json.loads(urllib.request.urlopen(urllib.request.Request(
            base + "/v2/repository/index", data=b"{}", method="POST"), timeout=30).read())
        states = {m["name"]: (m.get("state"), m.get("reason", "")) for m in index}
        for name in ("mlp_gpu", "mlp_cpu", "cnn_gpu", "mlp_gpu_worker"):
            check(f"{name} READY", states.get(name, ("?",))[0] == "READY", str(states.get(name)))

        x = torch.rand(5, 64)
        with torch.inference_mode():
            want_gpu = mlp.cuda()(x.cuda()).cpu()
            want_cpu = mlp.cpu()(x)
        inputs = [{"name": "INPUT__0", "datatype": "FP32", "shape": [5, 64], "data": x.flatten().tolist()}]
        for name, want in (("mlp_gpu", want_gpu), ("mlp_cpu", want_cpu),
                           ("mlp_gpu_worker", want_gpu)):
            got = infer(name, inputs)
            if "outputs" not in got:
                check(f"{name} infer", False, str(got)[:400])
                continue
            out = torch.tensor(got["outputs"][0]["data"]).reshape(5, 10)
            diff = (out - want).abs().max().item()
            check(f"{name} matches torch on its device", diff <= 1e-6, f"max abs diff {diff:.3g}")
        got = infer("mlp_gpu", inputs)
        if "outputs" in got:
            diff = (torch.tensor(got["outputs"][0]["data"]).reshape(5, 10) - want_cpu).abs().max().item()
            check("mlp_gpu close to CPU torch", diff <= 1e-4, f"max abs diff {diff:.3g}")

        # Dynamic batching on the GPU: 16 concurrent single requests, each answer its own row.
        rows = torch.rand(16, 64)
        with torch.inference_mode():
            want_rows = mlp.cuda()(rows.cuda()).cpu()
        def one(i):
            return infer("mlp_gpu", [{"name": "INPUT__0", "datatype": "FP32", "shape": [1, 64],
                                      "data": rows[i].tolist()}])
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(one, range(16)))
        worst = 0.0
        ok = True
        for i, a in enumerate(answers):
            if "outputs" not in a:
                ok = False
                detail = str(a)[:300]
                break
            worst = max(worst, (torch.tensor(a["outputs"][0]["data"]) - want_rows[i]).abs().max().item())
        check("mlp_gpu batched answers", ok and worst <= 1e-5, f"max abs diff {worst:.3g}" if ok else detail)

        img = torch.rand(2, 3, 32, 32)
        with torch.inference_mode():
            logits, feats = cnn.cuda()(img.cuda())
        got = infer("cnn_gpu", [{"name": "image", "datatype": "FP32", "shape": [2, 3, 32, 32],
                                 "data": img.flatten().tolist()}])
        if "outputs" in got:
            outs = {o["name"]: torch.tensor(o["data"]) for o in got["outputs"]}
            d1 = (outs["LOGITS__0"].reshape(2, 10) - logits.cpu()).abs().max().item()
            d2 = (outs["FEATURES__1"].reshape(2, 32) - feats.cpu()).abs().max().item()
            check("cnn_gpu tuple outputs match torch on the GPU", max(d1, d2) <= 1e-4, f"{d1:.3g} {d2:.3g}")
        else:
            check("cnn_gpu infer", False, str(got)[:400])

        smi = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
                             capture_output=True, text=True).stdout
        check("mmserve holds GPU memory", str(server.pid) in smi, smi.strip().replace("\n", "; "))
        workers = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True,
                                 text=True).stdout.split()
        on_gpu = [w for w in workers if w in smi]
        check("both worker processes of mlp_gpu_worker hold GPU memory", len(on_gpu) >= 2,
              f"workers {workers}, on the GPU {on_gpu}")
        _, stats = get("/v2/models/mlp_gpu/stats")
        s = json.loads(stats)["model_stats"][0]
        check("statistics counted", s["inference_count"] >= 21,
              f"inference_count {s['inference_count']} execution_count {s['execution_count']}")
        print("execution_count", s["execution_count"], "for", s["inference_count"], "inferences", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        print("---- server log (tail) ----")
        print("".join(open("/tmp/mmserve_gpu.log").readlines()[-25:]))
    print("GPU CHECK:", "PASS" if not failures else "FAIL " + ", ".join(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
