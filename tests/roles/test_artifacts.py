"""gpu.ops.artifacts on simulator nodes: controller files and HTTP sources served from the controller
(a real http.server on loopback, which the sim nodes reach), skip when verified, a corrupted cache
fetched again, a wrong upstream hash and an interrupted download.

Manifest rules, cache and link edge cases are unit tests in the collection
(tests/unit/plugins/module_utils/test_artifacts.py, tests/unit/plugins/modules/test_stage_artifacts.py).
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gpuops.testing import run_playbook, task_results

PLAYBOOKS = Path(__file__).parent / "playbooks"
TASK = "Stage artifacts into the node cache, verified by sha256, and link them into the workspace"
WEIGHTS = bytes(range(256)) * 4096 + b"weights"  # 1 MiB and a bit: more than one read chunk
WEIGHTS_SHA = hashlib.sha256(WEIGHTS).hexdigest()


def corrupted(body: bytes) -> bytes:
    return bytes(b ^ 0x5A for b in body[:64]) + body[64:]


class ArtifactServer:
    """Serves files by name: /NAME as is, /corrupt/NAME with other bytes (same length), /truncate/NAME with
    the full Content-Length but only half the body before the connection closes. Counts every request."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with owner.lock:
                    owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                mode, _, name = self.path.lstrip("/").rpartition("/")
                body = owner.files.get(name)
                if body is None or mode not in ("", "corrupt", "truncate"):
                    self.send_error(404)
                    return
                if mode == "corrupt":
                    body = corrupted(body)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                if mode == "truncate":
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if mode == "truncate" else body)
                if mode == "truncate":
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server():
    with ArtifactServer({"weights.bin": WEIGHTS, "data.jsonl": b'{"text": "hello"}\n' * 1000,
                         "tok.bin": bytes(range(256)) * 300}) as s:
        yield s


def results(proc, task_name: str = TASK) -> dict:
    return task_results(proc, task_name)


def stage(inv, manifest, *, args=None, **extra):
    return run_playbook(PLAYBOOKS / "artifacts.yml", inv, json_output=True,
                        extra_vars={"artifacts_manifest": manifest, **extra}, args=args)


def node_ls(node, path: str) -> list[str]:
    res = node.ssh(f"ls -A {path} 2>/dev/null || true")
    return sorted(res.stdout.split())


def test_molecule_artifacts(make_nodes, run_molecule, http_server):
    """converge (controller file + HTTP), idempotence (nothing downloaded again), verify, on RunPod and Vast."""
    nodes = make_nodes(1, "runpod", prefix="ma-rp") + make_nodes(1, "vast", prefix="ma-vast")
    run_molecule("artifacts", nodes, extra_env={"GPUOPS_TEST_HTTP_URL": http_server.url,
                                                "GPUOPS_TEST_HTTP_SHA256": WEIGHTS_SHA})
    assert http_server.hits == {"/weights.bin": 2}  # once per node, not again on the idempotence run


def test_manifest_is_validated_before_any_node_is_contacted(sim, tmp_path):
    # a host nobody listens on: a validation failure must come before any connection attempt
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  children:\n    gpu_nodes:\n      hosts:\n        nowhere:\n"
                   "          ansible_host: 127.0.0.1\n          ansible_port: 1\n")
    proc = stage(inv, [{"name": "a", "src": "https://h/x.bin", "sha256": "abc"},
                       {"name": "a", "src": "s3://b/k", "sha265": WEIGHTS_SHA}])
    res = results(proc)["nowhere"]
    assert proc.returncode == 2 and not res.get("unreachable")
    assert res["msg"].startswith("artifacts manifest is invalid (5 problem(s)): entry 1 (a): sha256 'abc'")
    assert res["errors"] == [
        "entry 1 (a): sha256 'abc' is not 64 hex digits",
        "entry 2 (a): unknown key(s) sha265 (known: name, src, sha256, dest, size, remote_src)",
        "entry 2 (a): missing required field(s) sha256",
        "entry 2 (a): duplicate name 'a' (also entry 1)",
        "entry 2 (a): src 's3://b/k': unsupported scheme 's3' (use http://, https:// or a file path)",
    ]


def test_stage_skip_corrupt_and_rehash(make_nodes, sim, tmp_path, http_server):
    node = make_nodes(1, "runpod", prefix="as-life")[0]
    node.ssh("mkdir -p ~/.bifrost/workspace")
    inv = sim.inventory([node], tmp_path / "inv.yml")
    local = tmp_path / "vocab.txt"
    local.write_bytes(b"hello\nworld\n" * 100)
    local_sha = hashlib.sha256(local.read_bytes()).hexdigest()
    manifest = [
        {"name": "weights", "src": f"{http_server.url}/weights.bin", "sha256": WEIGHTS_SHA, "dest": "models/w.bin",
         "size": len(WEIGHTS)},
        {"name": "vocab", "src": str(local), "sha256": local_sha, "dest": "models/vocab.txt"},
    ]

    # check mode: reports the work, writes nothing, downloads nothing
    proc = stage(inv, manifest, args=["--check"])
    res = results(proc)[node.name]
    assert proc.returncode == 0 and res["changed"] is True
    assert [a["cache"] for a in res["artifacts"]] == ["missing", "missing"]
    # nothing but the gpu.ops helper itself (tooling, like Ansible's remote tmp, installed once per version)
    assert node_ls(node, "~/.bifrost") == ["bin", "workspace"] and http_server.hits == {}
    assert [f.split("-")[1] for f in node_ls(node, "~/.bifrost/bin")] == ["artifacts"]

    # a controller file that does not match its manifest hash is refused before it is sent
    wrong = [manifest[0], dict(manifest[1], sha256=WEIGHTS_SHA, name="vocab2", dest="v2")]
    proc = stage(inv, wrong)
    res = results(proc)[node.name]
    assert proc.returncode == 2
    assert res["msg"] == f"artifact 'vocab2': controller file {local} has sha256 {local_sha}, the manifest says {WEIGHTS_SHA}"
    assert node_ls(node, "~/.bifrost") == ["bin", "workspace"] and http_server.hits == {}

    # stage for real: one download, one upload, two links
    proc = stage(inv, manifest)
    res = results(proc)[node.name]
    assert proc.returncode == 0, res.get("msg")
    assert res["changed"] and [(a["cache"], a["link"]) for a in res["artifacts"]] == [("fetched", "created"),
                                                                                    ("uploaded", "created")]
    assert res["uploaded"] == ["vocab"] and http_server.hits == {"/weights.bin": 1}
    assert "uploading vocab" in proc.stderr and "fetching 1 artifact(s) (1.0 MiB): weights" in proc.stderr
    sums = node.ssh("cd ~/.bifrost/workspace/models && sha256sum w.bin vocab.txt").stdout.split()
    assert sums[0::2] == [WEIGHTS_SHA, local_sha]
    assert node_ls(node, "~/.bifrost/cache/sha256") == sorted([WEIGHTS_SHA, local_sha])

    # rerun, this time from a catalog file (a mapping with an "artifacts" list): verified, skipped, nothing fetched
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(json.dumps({"artifacts": manifest}))  # JSON is YAML
    proc = stage(inv, [], artifacts_manifest_file=str(catalog))
    res = results(proc)[node.name]
    assert res["changed"] is False and [a["cache"] for a in res["artifacts"]] == ["hit", "hit"]
    assert http_server.hits == {"/weights.bin": 1}

    # the cached weights get overwritten (a job opened them for writing): fetched again
    obj = f"~/.bifrost/cache/sha256/{WEIGHTS_SHA}"
    node.ssh(f"chmod u+w {obj} && printf 'garbage' > {obj}")
    proc = stage(inv, manifest)
    res = results(proc)[node.name]
    w = res["artifacts"][0]
    assert (res["changed"], w["cache"], w["corrupt_sha256"]) == (True, "refetched", hashlib.sha256(b"garbage").hexdigest())
    assert http_server.hits == {"/weights.bin": 2}

    # bit rot that keeps size and mtime is invisible to the stamp; verify=always hashes and finds it
    node.ssh(f"chmod u+w {obj} && python3 -c \"import os,sys; p=os.path.expanduser(sys.argv[1]); st=os.stat(p); "
             f"f=open(p,'r+b'); f.write(b'X'); f.close(); os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))\" {obj}")
    proc = stage(inv, manifest, artifacts_verify="always")
    res = results(proc)[node.name]
    assert [a["cache"] for a in res["artifacts"]] == ["refetched", "hit"]
    assert all(a["hashed"] for a in res["artifacts"])
    assert http_server.hits == {"/weights.bin": 3}


def test_bad_sources_fail_cleanly(make_nodes, sim, tmp_path, http_server):
    node = make_nodes(1, "vast", prefix="as-bad")[0]
    node.ssh("mkdir -p ~/.bifrost/workspace")
    inv = sim.inventory([node], tmp_path / "inv.yml")
    data, tok = http_server.files["data.jsonl"], http_server.files["tok.bin"]
    data_sha, tok_sha = hashlib.sha256(data).hexdigest(), hashlib.sha256(tok).hexdigest()
    manifest = [
        {"name": "good", "src": f"{http_server.url}/weights.bin", "sha256": WEIGHTS_SHA},
        {"name": "upstream-changed", "src": f"{http_server.url}/corrupt/data.jsonl", "sha256": data_sha},
        {"name": "cut", "src": f"{http_server.url}/truncate/tok.bin", "sha256": tok_sha},
    ]
    proc = stage(inv, manifest, artifacts_retries=1)
    res = results(proc)[node.name]
    assert proc.returncode == 2
    bad_sha = hashlib.sha256(corrupted(data)).hexdigest()
    assert res["msg"].startswith("2 of 3 artifact(s) failed: ")
    assert (f"artifact 'upstream-changed' ({http_server.url}/corrupt/data.jsonl): sha256 mismatch after 2 downloads "
            f"of {http_server.url}/corrupt/data.jsonl: expected {data_sha}, got {bad_sha}") in res["msg"]
    assert (f"artifact 'cut' ({http_server.url}/truncate/tok.bin): download interrupted: received "
            f"{len(tok) // 2} of {len(tok)} bytes (gave up after 2 attempts)") in res["msg"]
    assert http_server.hits == {"/weights.bin": 1, "/corrupt/data.jsonl": 2, "/truncate/tok.bin": 2}
    # the good one is staged; nothing of the two bad ones is left or linked
    assert node_ls(node, "~/.bifrost/cache/sha256") == [WEIGHTS_SHA]
    assert node_ls(node, "~/.bifrost/cache/.partial") == []
    assert node_ls(node, "~/.bifrost/workspace") == ["weights.bin"]

    # the source is fixed: the interrupted artifact is downloaded (never taken from the partial one).
    # "again" names bytes already cached: content-addressed, so a hit that only gets its own link
    manifest[2]["src"] = f"{http_server.url}/tok.bin"
    again = {"name": "again", "src": f"{http_server.url}/corrupt/weights.bin", "sha256": WEIGHTS_SHA, "dest": "b.bin"}
    proc = stage(inv, manifest[::2] + [again])
    res = results(proc)[node.name]
    assert proc.returncode == 0, res.get("msg")
    assert [(a["cache"], a["link"]) for a in res["artifacts"]] == [("hit", "ok"), ("fetched", "created"),
                                                                  ("hit", "created")]
    assert node.ssh("sha256sum ~/.bifrost/workspace/tok.bin").stdout.split()[0] == tok_sha
    assert node.ssh("readlink ~/.bifrost/workspace/weights.bin ~/.bifrost/workspace/b.bin").stdout.split() == \
        [f"{res['cache_dir']}/sha256/{WEIGHTS_SHA}"] * 2
    assert http_server.hits == {"/weights.bin": 1, "/corrupt/data.jsonl": 2, "/truncate/tok.bin": 2, "/tok.bin": 1}

