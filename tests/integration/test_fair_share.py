"""Fair-share weights through the real interfaces: `--tenant-weight` and
`mmserve { tenant weight }` in config.pbtxt. (How the slots are shared under
a flood is tested in tests/unit/scheduler/execution_slots_test.cc on a fake clock, and
measured by bench/fairness.sh.)"""
import shutil
import subprocess

import numpy as np
import requests
import tritonclient.http as httpclient

from conftest import EXAMPLES, Server, binary


def run_briefly(*args):
    return subprocess.run([str(binary()), "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_a_bad_tenant_weight_stops_the_server_with_a_clear_error(tmp_path):
    for flag, words in (("team-a", "expected TENANT=WEIGHT"), ("=2", "expected TENANT=WEIGHT"),
                        ("team-a=", "expected TENANT=WEIGHT"), ("team-a=two", "expected TENANT=WEIGHT"),
                        ("team-a=0", "finite number > 0"), ("team-a=-1", "finite number > 0"),
                        ("team-a=nan", "finite number > 0")):
        out = run_briefly("--model-repository", tmp_path, "--tenant-weight", flag)
        assert out.returncode != 0, (flag, out.stdout)
        assert words in out.stdout + out.stderr, (flag, out.stdout + out.stderr)
    out = run_briefly("--model-repository", tmp_path, "--execution-nice", "20")
    assert out.returncode != 0 and "--execution-nice" in out.stdout + out.stderr, out


def test_weights_from_the_config_and_the_flag(tmp_path):
    for name, extra in (("weighted", 'mmserve { tenant: "team-a" weight: 2.5 }\n'),
                        ("bad_weight", "mmserve { weight: -1 }\n")):
        shutil.copytree(EXAMPLES / "add_sub", tmp_path / name)
        config = (EXAMPLES / "add_sub" / "config.pbtxt").read_text()
        config = config.replace('name: "add_sub"', f'name: "{name}"') + extra
        (tmp_path / name / "config.pbtxt").write_text(config)
    s = Server([tmp_path], "--tenant-weight", "team-a=3", "--tenant-weight", "shared=1").start()
    try:
        index = requests.post(s.base + "/v2/repository/index", json={}).json()
        states = {m["name"]: m for m in index}
        assert states["weighted"]["state"] == "READY", states
        assert states["bad_weight"]["state"] == "UNAVAILABLE", states
        assert "mmserve.weight is -1" in states["bad_weight"]["reason"], states
        client = httpclient.InferenceServerClient(s.url)
        try:
            inputs = [httpclient.InferInput("INPUT0", [4], "FP32"),
                      httpclient.InferInput("INPUT1", [4], "FP32")]
            inputs[0].set_data_from_numpy(np.array([1, 2, 3, 4], np.float32))
            inputs[1].set_data_from_numpy(np.array([10, 20, 30, 40], np.float32))
            out = client.infer("weighted", inputs)
            np.testing.assert_array_equal(out.as_numpy("OUTPUT0"), [11, 22, 33, 44])
        finally:
            client.close()
    finally:
        assert s.stop() == 0, s.text()[-3000:]
