"""Helpers for the hostile suite: tenants files, keys and repositories."""
import hashlib
import os
import shutil

from conftest import EXAMPLES

KEY_A = "team-a-key-0123456789abcdef"
KEY_B = "team-b-key-0123456789abcdef"
KEY_OPS = "ops-key-0123456789abcdef0123"


def stored(key, salt=None):
    """The stored form of `key`, made the way the server checks it."""
    salt = salt or os.urandom(16)
    return "sha256$" + salt.hex() + "$" + hashlib.sha256(salt + key.encode()).hexdigest()


def write_tenants(path, tenants):
    """Writes a tenants file: [{id, keys, repositories?, role?, quotas?}]."""
    lines = ["tenants:"]
    for t in tenants:
        lines.append(f"  - id: {t['id']}")
        lines.append("    api_keys: [" + ", ".join(f"'{stored(k)}'" for k in t["keys"]) + "]")
        if t.get("repositories"):
            lines.append("    repositories: [" + ", ".join(map(str, t["repositories"])) + "]")
        if t.get("role"):
            lines.append(f"    role: {t['role']}")
        if t.get("quotas"):
            lines.append("    quotas: {" + ", ".join(f"{k}: {v}" for k, v in t["quotas"].items())
                         + "}")
    path.write_text("\n".join(lines) + "\n")
    return path


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def grpc_auth(key):
    return {"authorization": f"Bearer {key}"}


def copy_model(src_name, repo, name=None):
    """Copies example model `src_name` into `repo` as `name`, renaming it in its config."""
    name = name or src_name
    dst = repo / name
    shutil.copytree(EXAMPLES / src_name, dst)
    config = dst / "config.pbtxt"
    if config.exists():
        config.write_text(config.read_text().replace(f'"{src_name}"', f'"{name}"'))
    return dst


def two_tenants(root, models_a=("add_sub",), models_b=("mlp_classifier",)):
    """team-a and team-b each own a repository of example models; ops is admin.
    Returns (tenants file, repo_a, repo_b)."""
    repo_a, repo_b = root / "a", root / "b"
    repo_a.mkdir(parents=True, exist_ok=True)
    repo_b.mkdir(parents=True, exist_ok=True)
    for m in models_a:
        copy_model(m, repo_a)
    for m in models_b:
        copy_model(m, repo_b)
    path = write_tenants(root / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repo_a]},
        {"id": "team-b", "keys": [KEY_B], "repositories": [repo_b]},
        {"id": "ops", "keys": [KEY_OPS], "role": "admin"},
    ])
    return path, repo_a, repo_b
