"""The node helpers (plugins/plugin_utils/_workspace_node.py, _collect_node.py, _watchdog_node.py, and the jobs,
health and artifacts bundles) run on the node's Python,
which can be as old as 3.9 (the collection's floor for node-side code). Run them there, as the action
plugins do: ``python3 <helper> <command>`` with one JSON line and the payload on stdin."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from gpuops.testing import REPO

HELPERS = REPO / "collections" / "ansible_collections" / "gpu" / "ops" / "plugins" / "plugin_utils"


@pytest.fixture(scope="module")
def py39() -> str:
    for cand in [shutil.which("python3.9"), *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3")))]:
        if cand and subprocess.run([cand, "-c", "import sys; assert sys.version_info[:2] == (3, 9)"],
                                   capture_output=True).returncode == 0:
            return cand
    pytest.skip("no Python 3.9 on this machine")


def helper(py: str, name: str, command: str, args: dict, payload: bytes = b"", cwd: Path | None = None):
    proc = subprocess.run([py, str(HELPERS / f"_{name}_node.py"), command], input=json.dumps(args).encode() + b"\n"
                          + payload, capture_output=True, cwd=cwd, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def test_workspace_helper_on_python39(py39, tmp_path, monkeypatch):
    for k in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{k}_NAME", "t")
        monkeypatch.setenv(f"GIT_{k}_EMAIL", "t@example.com")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run("git init -q -b main && echo hi > a.txt && git add -A && git commit -q -m one", shell=True,
                   cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    tree = subprocess.run(["git", "rev-parse", "HEAD^{tree}"], cwd=repo, capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "update-ref", "refs/gpuops/commit", head], cwd=repo, check=True)
    bundle = subprocess.run(["git", "bundle", "create", "-", "refs/gpuops/commit"], cwd=repo, capture_output=True,
                            check=True).stdout
    dest = tmp_path / "node" / "ws"
    out = json.loads(helper(py39, "workspace", "apply", {
        "dest": str(dest), "commit": head, "tree": tree, "branch": "main", "tmp_dir": str(tmp_path / "t"),
        "bundles": [{"repo": "", "size": len(bundle)}]}, bundle))
    assert out["head"] == head and (dest / "a.txt").read_text() == "hi\n"
    probe = json.loads(helper(py39, "workspace", "probe", {"dest": str(dest), "want": {"commits": [head]}}))
    assert probe["head"] == head and probe["tree"] == tree and probe["has"] == {head: True}


def test_collect_helper_on_python39(py39, tmp_path):
    job = tmp_path / "jobs" / "j"
    (job / "outputs").mkdir(parents=True)
    (job / "status").write_text("failed\n")
    (job / "outputs" / "x.bin").write_bytes(os.urandom(5000))
    res = json.loads(helper(py39, "collect", "manifest", {"roots": [{"src": str(job), "dest": ""}],
                                                          "cache_dir": str(tmp_path / "c"), "write": True,
                                                          "job_dir": str(job)}))
    assert sorted(f[0] for f in res["files"]) == ["outputs/x.bin", "status"] and res["job"]["status"] == "failed"
    stream = helper(py39, "collect", "tar", {"files": [[str(job / "status"), "status"]]})
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r|") as tar:
        assert [(m.name, tar.extractfile(m).read()) for m in tar] == [("status", b"failed\n")]


def test_watchdog_helper_on_python39(py39, tmp_path):
    """arm -> the daemon (detached, one per node) -> an expired instance is destroyed with the instance's own key,
    over HTTP to a test server standing in for Vast; then the daemon exits and says so in its log."""
    import http.server
    import threading
    import time

    seen: list = []

    class Vast(http.server.BaseHTTPRequestHandler):
        def do_DELETE(self):  # noqa: N802 (http.server's naming)
            seen.append((self.path, self.headers.get("Authorization")))
            body = b'{"success": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Vast)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CONTAINER_ID": "42",
           "CONTAINER_API_KEY": "instance-key-42", "VAST_API_URL": f"http://127.0.0.1:{server.server_port}"}
    try:
        proc = subprocess.run([py39, str(HELPERS / "_watchdog_node.py"), "arm"], env=env, capture_output=True,
                              input=json.dumps({"provider": "vast", "instance_id": "42", "expires_at": time.time() + 2,
                                                "interval": 0.1, "destroy": collection_attr(
                                                    "module_utils.vast", "VastProvider").instance_credential,
                                                }).encode() + b"\n", check=False, timeout=30)
        out = json.loads(proc.stdout)
        assert out["changed"] and out["credential"] and out["pid"], (out, proc.stderr)
        end = time.monotonic() + 20
        while not seen and time.monotonic() < end:
            time.sleep(0.05)  # polling the test server's record, bounded
        assert seen == [("/api/v0/instances/42/", "Bearer instance-key-42")]
        log = tmp_path / ".bifrost" / "watchdog" / "watchdog.log"
        while time.monotonic() < end and '"destroyed"' not in log.read_text():
            time.sleep(0.05)
        events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
        assert events[:2] == ["armed", "started"] and events[-3:] == ["trigger", "destroying", "destroyed"], events
    finally:
        server.shutdown()
        state = tmp_path / ".bifrost" / "watchdog" / "state.json"
        pid = json.loads(state.read_text()).get("pid") if state.exists() else None
        if pid:  # it exits by itself after destroying; a failed test must not leave it behind
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def collection_attr(module: str, attr: str):
    """``attr`` of the collection's ``plugins.<module>`` (what the controller side sends or builds)."""
    import importlib
    import sys

    sys.path.insert(0, str(REPO / "collections"))
    try:
        return getattr(importlib.import_module(f"ansible_collections.gpu.ops.plugins.{module}"), attr)
    finally:
        sys.path.pop(0)


def bundle(name: str, tmp_path: Path) -> str:
    """The zip application the controller installs for ``name`` (built by the collection's own code)."""
    path = tmp_path / f"gpuops-{name}.pyz"
    path.write_bytes(collection_attr("plugin_utils._node_helper", "helper_source")(name)[0])
    return str(path)


def run_bundle(py: str, path: str, command: str, args: dict, env=None) -> dict:
    # -I -S: no site-packages, so nothing but the standard library and the bundle itself can be imported
    proc = subprocess.run([py, "-I", "-S", path, command], input=json.dumps(args).encode() + b"\n",
                          capture_output=True, check=False, env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout.decode().splitlines()[-1])


def test_jobs_bundle_on_python39_runs_a_job_with_its_own_runner(py39, tmp_path):
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    path, root = bundle("jobs", tmp_path), str(tmp_path / "bifrost")
    env = dict(os.environ, TMUX_TMPDIR=str(tmp_path))
    started = run_bundle(py39, path, "start", {
        "job_id": "old", "command": "python3 -c 'import sys; print(sys.version_info[:2])'", "workdir": str(tmp_path),
        "env": {}, "bootstrap": "skip", "bootstrap_timeout": 60, "kill_grace": 5, "shell": "/bin/bash",
        "root": root}, env)
    assert started["changed"], started
    done = run_bundle(py39, path, "wait", {"job_id": "old", "timeout": 30, "root": root}, env)
    assert done["done"] and done["job"]["status"] == "succeeded", done
    cmdline = Path(root, "jobs", "old", "metadata.json").read_text()
    assert '"runner_version"' in cmdline


def test_health_and_artifacts_bundles_on_python39(py39, tmp_path):
    health = run_bundle(py39, bundle("health", tmp_path), "check", {
        "min_score": 0, "expected_gpus": 0, "require_gpu": False, "workspace": str(tmp_path),
        "history_dir": str(tmp_path / "h"), "history": True, "breaker_failures": 3, "breaker_window": 300,
        "nvidia_smi": "nvidia-smi-not-here", "timeout": 5})
    assert not health.get("failed") and health["driver"]["available"] is False, health
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights")
    entry = {"name": "w", "src": str(src), "sha256": hashlib.sha256(b"weights").hexdigest(), "dest": "w.bin",
             "remote_src": True}
    (tmp_path / "ws").mkdir()
    staged = run_bundle(py39, bundle("artifacts", tmp_path), "stage", {
        "manifest": [entry], "cache_dir": str(tmp_path / "cache"), "link_dir": str(tmp_path / "ws"),
        "link_type": "symlink", "verify": "changed", "force": False, "timeout": 5, "retries": 0,
        "validate_certs": True, "lock_timeout": 10})
    assert not staged.get("failed") and staged["artifacts"][0]["cache"] == "copied", staged
    assert (tmp_path / "ws" / "w.bin").read_bytes() == b"weights"
