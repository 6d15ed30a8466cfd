# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the workspace deploy logic: local snapshot/bundles and the node helper, on local git repos."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import zlib

import pytest

from ansible_collections.gpu.ops.plugins.plugin_utils import _workspace_node as node
from ansible_collections.gpu.ops.plugins.plugin_utils._workspace_local import GitError, LocalRepo, build_bundle
from ansible_collections.gpu.ops.plugins.plugin_utils._workspace_local import sanitize_url


def git(cwd, *args):
    return subprocess.run(["git"] + list(args), cwd=str(cwd), check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(autouse=True)
def identity(monkeypatch):
    for k in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv("GIT_%s_NAME" % k, "Test")
        monkeypatch.setenv("GIT_%s_EMAIL" % k, "test@example.com")


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    (r / ".gitignore").write_text("ignored/\n")
    for i in range(5):
        (r / ("f%d.txt" % i)).write_text("line %d\n" % i)
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "one")
    return r


def commit(r, name, text, msg="change"):
    (r / name).write_text(text)
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", msg)
    return git(r, "rev-parse", "HEAD")


def call(command, args, payload=b""):
    out = io.StringIO()
    node.main([command], io.BytesIO(json.dumps(args).encode() + b"\n" + payload), out)
    return json.loads(out.getvalue())


def bundles_for(local, tips, prereqs, cache):
    return build_bundle(local.objects, str(cache), tips, prereqs, scratch=local.scratch)


def deploy(local, dest, tmp, probe_head=None, overlay=None):
    """Build what the action plugin would send and run the node helper's apply."""
    head = local.head()
    tips = {"refs/gpuops/commit": head}
    if overlay:
        tips["refs/gpuops/snapshot"] = overlay["commit"]
    path, size, encoding = bundles_for(local, tips, [probe_head] if probe_head else [], tmp / "cache")
    payload = open(path, "rb").read() if path else b""
    args = {"dest": str(dest), "commit": head, "branch": "main", "tree": overlay["tree"] if overlay else
            local.tree_of(head), "overlay_tree": overlay["tree"] if overlay else None,
            "bundles": [{"repo": "", "size": size, "encoding": encoding}] if path else [],
            "tmp_dir": str(tmp / "nodetmp")}
    return call("apply", args, payload), size


def test_sanitize_url_drops_credentials():
    assert sanitize_url("https://user:tok@github.com/a/b.git") == "https://github.com/a/b.git"
    assert sanitize_url("https://tok@host/x") == "https://host/x"
    assert sanitize_url("git@github.com:a/b.git") == "git@github.com:a/b.git"
    assert sanitize_url(None) is None


def test_first_deploy_then_incremental_then_up_to_date(repo, tmp_path):
    local = LocalRepo(str(repo))
    dest = tmp_path / "node" / "ws"
    first = call("probe", {"dest": str(dest)})
    assert first["exists"] is False and first["head"] is None
    res, full_size = deploy(local, dest, tmp_path)
    assert res["changed"] and res["head"] == local.head() and res["created"]
    assert (dest / "f3.txt").read_text() == "line 3\n"
    old = local.head()
    new = commit(repo, "f3.txt", "line 3 changed\n")
    local.close()
    local = LocalRepo(str(repo))
    res, delta_size = deploy(local, dest, tmp_path, probe_head=old)
    assert res["head"] == new and res["before"] == old
    assert delta_size < full_size
    assert (dest / "f3.txt").read_text() == "line 3 changed\n"
    probe = call("probe", {"dest": str(dest), "want": {"commits": [new]}})
    assert probe["head"] == new and probe["has"] == {new: True} and probe["branch"] == "main"
    assert probe["tree"] == local.tree_of(new)
    assert node.read_state(str(dest))["commit"] == new
    assert os.listdir(str(tmp_path / "nodetmp")) == []  # bundles removed
    local.close()


def test_tracked_change_on_node_shows_in_tree_and_is_reset(repo, tmp_path):
    local = LocalRepo(str(repo))
    dest = tmp_path / "ws"
    deploy(local, dest, tmp_path)
    (dest / "f0.txt").write_text("edited on the node\n")
    probe = call("probe", {"dest": str(dest)})
    assert probe["tree"] != local.tree_of(local.head())
    res, size = deploy(local, dest, tmp_path, probe_head=local.head())
    assert size == 0 and res["changed"]
    assert (dest / "f0.txt").read_text() == "line 0\n"
    local.close()


def test_snapshot_is_deterministic_and_leaves_the_repo_alone(repo, tmp_path):
    (repo / "f1.txt").write_text("dirty\n")
    (repo / "new.txt").write_text("untracked\n")
    (repo / "ignored").mkdir()
    (repo / "ignored" / "x").write_text("ignored\n")
    before_status = git(repo, "status", "--porcelain")
    before_objects = git(repo, "count-objects", "-v")
    local = LocalRepo(str(repo))
    snap = local.snapshot(local.head())
    again = LocalRepo(str(repo)).snapshot(local.head())
    assert snap["commit"] == again["commit"] and snap["diff_sha256"] == again["diff_sha256"]
    assert sorted((c["status"], c["path"]) for c in snap["changes"]) == [("A", "new.txt"), ("M", "f1.txt")]
    assert git(repo, "status", "--porcelain") == before_status
    assert git(repo, "count-objects", "-v") == before_objects
    dest = tmp_path / "ws"
    res, _size = deploy(local, dest, tmp_path, overlay=snap)
    assert res["head"] == local.head()  # HEAD stays the commit
    assert (dest / "f1.txt").read_text() == "dirty\n" and (dest / "new.txt").exists()
    assert not (dest / "ignored").exists()
    assert call("probe", {"dest": str(dest)})["tree"] == snap["tree"]
    (repo / "f1.txt").write_text("dirty twice\n")
    assert LocalRepo(str(repo)).snapshot(local.head())["diff_sha256"] != snap["diff_sha256"]
    local.close()


def test_clean_snapshot_is_none(repo):
    local = LocalRepo(str(repo))
    assert local.snapshot(local.head()) is None
    local.close()


def test_bundle_cache_and_empty_range(repo, tmp_path):
    local = LocalRepo(str(repo))
    head = local.head()
    a = build_bundle(local.objects, str(tmp_path / "c"), {"refs/gpuops/commit": head}, [])
    b = build_bundle(local.objects, str(tmp_path / "c"), {"refs/gpuops/commit": head}, [])
    assert a == b and a[1] > 0 and a[2] == "zlib"
    assert build_bundle(local.objects, str(tmp_path / "c"), {"refs/gpuops/commit": head}, [head]) == (None, 0, None)
    # an unknown prerequisite is dropped: the bundle then carries everything
    full = build_bundle(local.objects, str(tmp_path / "c2"), {"refs/gpuops/commit": head}, ["f" * 40])
    assert full[1:] == a[1:]
    local.close()


def test_full_bundle_is_one_zlib_stream_of_a_valid_bundle(repo, tmp_path):
    rng = random.Random(5)
    words = ["model", "batch", "loss", "step", "layer", "weight", "config", "tensor", "device", "optim"]
    for i in range(20):  # files sharing a vocabulary, not each other's lines: deltas do not help, one stream does
        (repo / ("mod%d.py" % i)).write_text("".join("%s_%d = %s.%s(%s)\n" % (
            rng.choice(words), rng.randint(0, 9), rng.choice(words), rng.choice(words), rng.choice(words))
            for _line in range(150)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "configs")
    local = LocalRepo(str(repo))
    head = local.head()
    path, size, encoding = build_bundle(local.objects, str(tmp_path / "c"), {"refs/gpuops/commit": head}, [])
    raw = zlib.decompress(open(path, "rb").read())
    assert raw.startswith(b"# v2 git bundle\n" + head.encode() + b" refs/gpuops/commit\n\n")
    (tmp_path / "plain.bundle").write_bytes(raw)
    assert "okay" in subprocess.run(["git", "bundle", "verify", str(tmp_path / "plain.bundle")], cwd=str(repo),
                                    capture_output=True, text=True, check=True).stderr
    plain = subprocess.run(["git", "bundle", "create", "-", "HEAD"], cwd=str(repo), capture_output=True,
                           check=True).stdout
    assert size < len(plain)
    local.close()


def test_apply_reports_missing_prerequisite(repo, tmp_path):
    local = LocalRepo(str(repo))
    old = local.head()
    commit(repo, "f2.txt", "x\n")
    local = LocalRepo(str(repo))
    path, size, encoding = build_bundle(local.objects, str(tmp_path / "c"), {"refs/gpuops/commit": local.head()},
                                        [old])
    assert encoding is None
    dest = tmp_path / "ws"
    args = {"dest": str(dest), "commit": local.head(), "tree": local.tree_of(local.head()),
            "bundles": [{"repo": "", "size": size}], "tmp_dir": str(tmp_path / "t")}
    res = call("apply", args, open(path, "rb").read())
    assert res["failed"] and res["msg"].startswith("PREREQUISITE_MISSING")
    local.close()


def test_refuses_a_non_git_directory(tmp_path, repo):
    dest = tmp_path / "ws"
    dest.mkdir()
    (dest / "precious").write_text("keep me")
    local = LocalRepo(str(repo))
    res, _size = deploy(local, dest, tmp_path)
    assert res["failed"] and "not a git checkout" in res["msg"]
    assert (dest / "precious").read_text() == "keep me"
    local.close()


def test_submodules_listed_recursively_and_uninitialized_ones_refused(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    git(sub, "init", "-q", "-b", "main")
    commit(sub, "s.txt", "s\n")
    sup = tmp_path / "sup"
    sup.mkdir()
    git(sup, "init", "-q", "-b", "main")
    commit(sup, "a.txt", "a\n")
    git(sup, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "lib/sub")
    git(sup, "commit", "-q", "-m", "add sub")
    local = LocalRepo(str(sup))
    subs = local.submodules(local.tree_of(local.head()))
    assert [(s["path"], s["name"], s["parent"]) for s in subs] == [("lib/sub", "lib/sub", "")]
    assert subs[0]["commit"] == git(sub, "rev-parse", "HEAD")
    git(sup, "submodule", "deinit", "-q", "-f", "lib/sub")
    with pytest.raises(GitError, match="not initialized"):
        local.submodules(local.tree_of(local.head()))
    local.close()


def test_not_a_repository(tmp_path):
    with pytest.raises(GitError, match="not inside a git repository"):
        LocalRepo(str(tmp_path))


def test_payload_from_stdin_and_from_a_file_sent_ahead(tmp_path):
    plain, packed = b"plain bundle bytes", zlib.compress(b"inflated on arrival")
    ahead = tmp_path / "ahead.bin"
    ahead.write_bytes(zlib.compress(b"sent ahead as a file"))
    work = tmp_path / "t"
    work.mkdir()
    bundles = [{"repo": "", "size": len(plain)},
               {"repo": "lib", "size": ahead.stat().st_size, "encoding": "zlib", "path": str(ahead)},
               {"repo": "x", "size": len(packed), "encoding": "zlib"}]
    files = node.read_payload(io.BytesIO(plain + packed), bundles, str(work))
    assert {k: open(v, "rb").read() for k, v in files.items()} == {
        "": plain, "lib": b"sent ahead as a file", "x": b"inflated on arrival"}
    assert not ahead.exists()  # moved into the work dir that apply removes
    with pytest.raises(node.HelperError, match="short"):
        node.read_payload(io.BytesIO(plain[:5]), bundles[:1], str(work))
    with pytest.raises(node.HelperError, match="zlib"):
        node.read_payload(io.BytesIO(packed[:-4]), [{"repo": "", "size": len(packed) - 4, "encoding": "zlib"}],
                          str(work))
