"""The node helpers (plugins/plugin_utils/_workspace_node.py, _collect_node.py) run on the node's Python,
which can be as old as 3.9 (the collection's floor for node-side code). Run them there, as the action
plugins do: ``python3 <helper> <command>`` with one JSON line and the payload on stdin."""

from __future__ import annotations

import glob
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
