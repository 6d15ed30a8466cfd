# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the collect node helper: manifest, hash cache, retries, tar stream."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from ansible_collections.gpu.ops.plugins.plugin_utils import _collect_node as node


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def job(tmp_path):
    root = tmp_path / "jobs" / "j1"
    (root / "outputs" / "deep").mkdir(parents=True)
    (root / "job.log").write_bytes(b"hello\n")
    (root / "status").write_text("failed\n")
    (root / "exit_code").write_text("3\n")
    (root / "outputs" / "deep" / "w.bin").write_bytes(os.urandom(3000))
    (root / "outputs" / "skip.tmp").write_text("x")
    (root / "manifest.sha256").write_text("not ours")  # reserved name at the top
    os.symlink("deep/w.bin", str(root / "outputs" / "link"))
    ws = tmp_path / "ws"
    (ws / "ckpt").mkdir(parents=True)
    (ws / "ckpt" / "model.pt").write_bytes(b"weights")
    return tmp_path


def run_manifest(base, **extra):
    args = {"roots": [{"src": str(base / "jobs" / "j1"), "dest": ""},
                      {"src": "ckpt", "dest": "checkpoints"},
                      {"src": "nothing-here", "dest": "nothing-here", "required": False}],
            "base": str(base / "ws"), "exclude": ["*.tmp"], "cache_dir": str(base / "cache"), "write": True,
            "job_dir": str(base / "jobs" / "j1")}
    args.update(extra)
    return node.manifest(args)


def test_manifest_lists_regular_files_with_hashes_and_reasons(job):
    res = run_manifest(job)
    files = {f[0]: f for f in res["files"]}
    assert sorted(files) == ["checkpoints/model.pt", "exit_code", "job.log", "outputs/deep/w.bin", "status"]
    assert files["job.log"][5] == sha(b"hello\n")
    assert files["checkpoints/model.pt"][5] == sha(b"weights")
    reasons = {s["path"]: s["reason"] for s in res["skipped"]}
    assert reasons["outputs/link"] == "symlink"
    assert reasons["manifest.sha256"].startswith("reserved")
    assert [r["kind"] for r in res["roots"]] == ["dir", "dir", "missing"]
    assert res["job"]["status"] == "failed" and res["job"]["exit_code"] == "3"
    text = (job / "cache" / "manifest.sha256").read_text()
    assert text == "".join("%s  %s\n" % (files[p][5], p) for p in sorted(files))
    assert res["manifest"]["sha256"] == sha(text.encode())


def test_hash_cache_rehashes_only_changed_files(job):
    first = run_manifest(job)
    assert first["hashed_bytes"] > 0 and first["cached_bytes"] == 0
    second = run_manifest(job)
    assert second["hashed_bytes"] == 0
    assert second["files"] == first["files"]
    (job / "jobs" / "j1" / "job.log").write_bytes(b"hello again\n")
    third = run_manifest(job)
    assert third["hashed_bytes"] == len(b"hello again\n")
    assert {f[0]: f[5] for f in third["files"]}["job.log"] == sha(b"hello again\n")


def test_retry_rehashes_without_cache_and_merges_into_the_manifest(job):
    run_manifest(job)
    cache_file = job / "cache" / "hashes.json"
    cache = json.loads(cache_file.read_text())
    path = str(job / "jobs" / "j1" / "job.log")
    cache[path][4] = "0" * 64  # a stale/corrupt cache entry with a matching stat key
    cache_file.write_text(json.dumps(cache))
    lied = run_manifest(job)
    assert {f[0]: f[5] for f in lied["files"]}["job.log"] == "0" * 64
    fixed = run_manifest(job, only=["job.log"], nocache=["job.log"])
    assert [f[0] for f in fixed["files"]] == ["job.log"]
    assert fixed["files"][0][5] == sha(b"hello\n")
    text = (job / "cache" / "manifest.sha256").read_text()
    assert "%s  job.log\n" % sha(b"hello\n") in text and "0" * 64 not in text
    assert "outputs/deep/w.bin" in text  # the other entries stay
    assert fixed["manifest"]["sha256"] == sha(text.encode())


def test_check_mode_writes_nothing(job):
    res = run_manifest(job, write=False)
    assert res["manifest"]["path"] is None
    assert not (job / "cache").exists()


def test_manifest_line_escapes_like_sha256sum():
    assert node.manifest_line("ab", "a b") == "ab  a b\n"
    assert node.manifest_line("ab", "a\nb") == "\\ab  a\\nb\n"
    assert node.manifest_line("ab", "a\\b") == "\\ab  a\\\\b\n"


def test_single_file_root_lands_at_its_dest(job):
    res = node.manifest({"roots": [{"src": "ckpt/model.pt", "dest": "weights/final.pt"}], "base": str(job / "ws"),
                         "cache_dir": str(job / "c2"), "write": False})
    assert res["roots"][0]["kind"] == "file"
    assert res["files"][0][0] == "weights/final.pt" and res["files"][0][2] == "model.pt"


def test_tar_stream_round_trip(job):
    files = [[str(job / "jobs" / "j1" / "job.log"), "job.log"],
             [str(job / "jobs" / "j1" / "outputs" / "deep" / "w.bin"), "outputs/deep/w.bin"],
             [str(job / "gone"), "gone"]]
    buf = io.BytesIO()
    node.stream_tar({"files": files}, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r|") as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar}
    assert got["job.log"] == b"hello\n"
    assert got["outputs/deep/w.bin"] == (job / "jobs" / "j1" / "outputs" / "deep" / "w.bin").read_bytes()
    assert "gone" not in got


def test_main_speaks_json_lines(job):
    args = {"roots": [{"src": str(job / "ws" / "ckpt"), "dest": "c"}], "cache_dir": str(job / "c3"), "write": True}
    out = io.StringIO()
    assert node.main(["manifest"], io.BytesIO(json.dumps(args).encode() + b"\n"), out) == 0
    res = json.loads(out.getvalue())
    assert res["files"][0][0] == "c/model.pt"
    out = io.StringIO()
    node.main(["bogus"], io.BytesIO(b"{}\n"), out)
    assert json.loads(out.getvalue())["failed"] is True


def test_secret_env_files_are_never_listed(job):
    """A runner that died before reading its env file leaves it behind: the manifest never lists it (nor its
    temporary names), in the job root or in a job directory declared as a path; other files named env are kept."""
    secret = b'{"HF_TOKEN": "hf_secret"}'
    for name in ("env", "bootstrap.env", "env.tmp-123", "bootstrap.env.tmp-9"):
        (job / "jobs" / "j1" / name).write_bytes(secret)
    (job / "jobs" / "j1" / "outputs" / "env").write_text("a model output named env\n")
    other = job / "jobs" / "j2"
    other.mkdir()
    (other / "metadata.json").write_text("{}")
    (other / "env").write_bytes(secret)
    (job / "ws" / "ckpt" / "env").write_text("not a job dir\n")
    res = run_manifest(job, roots=[{"src": str(job / "jobs" / "j1"), "dest": ""},
                                   {"src": str(other), "dest": "j2"}, {"src": "ckpt", "dest": "checkpoints"}])
    listed = [f[0] for f in res["files"]]
    assert "outputs/env" in listed and "checkpoints/env" in listed and "j2/metadata.json" in listed
    for name in ("env", "bootstrap.env", "env.tmp-123", "bootstrap.env.tmp-9", "j2/env"):
        assert name not in listed
    reasons = {s["path"]: s["reason"] for s in res["skipped"]}
    assert reasons["env"] == reasons["j2/env"] == "secret env file (never collected)"
    assert b"hf_secret" not in (job / "cache" / "manifest.sha256").read_bytes()


def test_a_lost_job_is_collected_as_lost(job):
    """status says running but the job's tmux session is gone: the manifest reports (and records) lost, and the
    status file is listed with what it says after that, so the copy home says lost too."""
    (job / "jobs" / "j1" / "status").write_text("running\n")
    res = run_manifest(job, write=False)
    assert res["job"]["status"] == "lost" and (job / "jobs" / "j1" / "status").read_text() == "running\n"
    res = run_manifest(job)
    assert res["job"]["status"] == "lost" and (job / "jobs" / "j1" / "status").read_text() == "lost\n"
    assert "bifrost-j1" in (job / "jobs" / "j1" / "lost_reason").read_text()
    files = {f[0]: f[5] for f in res["files"]}
    assert files["status"] == sha(b"lost\n") and "lost_reason" in files
    # a job with a final status is left as it is
    (job / "jobs" / "j1" / "status").write_text("failed\n")
    assert run_manifest(job)["job"]["status"] == "failed"


# ------------------------------------------------------------------------------------- checkpoints (the other way)
def _call(command, args, payload=b""):
    out = io.StringIO()
    node.main([command], io.BytesIO(json.dumps(args).encode() + b"\n" + payload), out)
    return json.loads(out.getvalue())


def _tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_ckpt_prepare_prunes_all_but_the_kept_one_and_reports_what_it_holds(tmp_path):
    root = tmp_path / "ckpt"
    for step in ("step-10", "step-20", "step-30"):
        (root / step).mkdir(parents=True)
        (root / step / "model.bin").write_bytes(step.encode())
    (root / "notes.txt").write_text("not a checkpoint")
    plan = _call("ckpt_prepare", {"dest": str(root), "keep": "step-20", "prune": True, "check_mode": True})
    assert plan["pruned"] == ["step-10", "step-30"] and (root / "step-10").is_dir()  # check mode: nothing removed
    res = _call("ckpt_prepare", {"dest": str(root), "keep": "step-20", "prune": True})
    assert res == {"dir": str(root), "pruned": ["step-10", "step-30"], "have": {"model.bin": sha(b"step-20")}}
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt", "step-20"]
    fresh = _call("ckpt_prepare", {"dest": str(tmp_path / "new"), "keep": "", "prune": False})
    assert fresh["have"] == {} and (tmp_path / "new").is_dir()
    bad = _call("ckpt_prepare", {"dest": str(root), "keep": "../etc", "prune": True})
    assert bad["failed"] and "is not step-<N>" in bad["msg"]


def test_ckpt_receive_verifies_each_file_takes_only_what_was_announced_and_drops_the_rest(tmp_path):
    target = tmp_path / "ckpt" / "step-20"
    target.mkdir(parents=True)
    (target / "stale.bin").write_bytes(b"old")
    (target / "keep.bin").write_bytes(b"same")
    files = {"model.bin": sha(b"weights"), "opt/state.bin": sha(b"adam"), "keep.bin": sha(b"same")}
    res = _call("ckpt_receive", {"dest": str(tmp_path / "ckpt"), "name": "step-20", "files": files},
                _tar({"model.bin": b"weights", "opt/state.bin": b"adam", "../escape": b"x", "extra": b"y"}))
    assert res == {"received": ["model.bin", "opt/state.bin"], "bytes": 11}
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == [
        "keep.bin", "model.bin", "opt/state.bin"]
    assert not (tmp_path / "ckpt" / "escape").exists()
    bad = _call("ckpt_receive", {"dest": str(tmp_path / "ckpt"), "name": "step-20", "files": {"model.bin": sha(b"x")}},
                _tar({"model.bin": b"corrupted"}))
    assert bad["failed"] and "expected %s" % sha(b"x") in bad["msg"]
    assert (target / "model.bin").read_bytes() == b"weights"  # the bad copy never took the name
