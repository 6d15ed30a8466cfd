# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifest validation, the content-addressed cache, streaming and linking of module_utils/artifacts."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from ansible_collections.gpu.ops.plugins.module_utils import artifacts as art

SHA_A = hashlib.sha256(b"a").hexdigest()
SHA_B = hashlib.sha256(b"b").hexdigest()


def entry(**kw):
    e = {"name": "m", "src": "https://h.example/models/m.bin", "sha256": SHA_A}
    e.update(kw)
    return e


# ------------------------------------------------------------------------------------------ manifest
def test_valid_entries_are_normalized():
    entries, errors = art.validate_manifest([
        entry(),
        {"name": "d", "src": "data/train.jsonl", "sha256": "SHA256:" + SHA_B.upper(), "dest": "data//train.jsonl",
         "size": "12"},
        {"name": "n", "src": "/mnt/nfs/x.tar", "sha256": SHA_B, "remote_src": "yes", "dest": "/scratch/x.tar"},
        {"name": "q", "src": "http://h/dl?file=a%20b.bin&x=1", "sha256": SHA_A, "dest": "q.bin"},
    ])
    assert errors == []
    assert entries[0] == {"name": "m", "src": "https://h.example/models/m.bin", "sha256": SHA_A, "dest": "m.bin",
                          "size": None, "remote_src": False, "kind": "url"}
    assert (entries[1]["sha256"], entries[1]["dest"], entries[1]["size"], entries[1]["kind"]) == \
        (SHA_B, "data/train.jsonl", 12, "path")
    assert entries[2]["remote_src"] is True and entries[2]["dest"] == "/scratch/x.tar"


def test_default_dest_is_the_unquoted_file_name():
    assert art.default_dest("https://h/a/b/tiny%20llama.gguf?dl=1") == "tiny llama.gguf"
    assert art.default_dest("files/tok.json") == "tok.json"
    assert art.default_dest("https://h/dir/") == ""


@pytest.mark.parametrize("raw,fragment", [
    ({"src": "https://h/x", "sha256": SHA_A}, "entry 1: missing required field(s) name"),
    ({"name": "x", "sha256": SHA_A}, "entry 1 (x): missing required field(s) src"),
    ({"name": "x", "src": "https://h/x"}, "missing required field(s) sha256"),
    (entry(sha256="abc"), "sha256 'abc' is not 64 hex digits"),
    (entry(sha256=SHA_A[:-1] + "g"), "is not 64 hex digits"),
    (entry(sha265=SHA_A), "unknown key(s) sha265 (known: name, src, sha256, dest, size, remote_src)"),
    (entry(src="s3://bucket/key"), "unsupported scheme 's3'"),
    (entry(src="ftp://h/x"), "unsupported scheme 'ftp'"),
    (entry(src="https:///nohost"), "URL without a host"),
    (entry(name="bad name"), "name 'bad name' must be"),
    (entry(name="-x"), "must be 1-128 letters"),
    (entry(size=-1), "size -1 is not a number of bytes"),
    (entry(size="big"), "size 'big' is not a number"),
    (entry(size=True), "size True is not a number"),
    (entry(dest="../../etc/passwd"), "dest '../../etc/passwd' leaves the link directory"),
    (entry(dest="models/"), "must name a file"),
    (entry(src="https://h/dir/"), "dest is needed"),
    (entry(remote_src=True), "remote_src applies to file paths, not URLs"),
    (entry(src="rel/x", remote_src=True), "must be absolute"),
    (entry(remote_src="maybe"), "remote_src 'maybe' is not a boolean"),
    ("just-a-string", "entry 1: expected a mapping"),
])
def test_each_problem_is_reported_with_its_entry(raw, fragment):
    dummy, errors = art.validate_manifest([raw])
    assert any(fragment in e for e in errors), errors


def test_duplicates_and_all_problems_at_once():
    dummy, errors = art.validate_manifest([
        entry(name="a", dest="m/x"),
        entry(name="b", dest="m//x"),
        entry(name="a", dest="y", sha256="nope"),
    ])
    assert "entry 2 (b): dest 'm//x' is also used by entry 1" in errors
    assert "entry 3 (a): duplicate name 'a' (also entry 1)" in errors
    assert "entry 3 (a): sha256 'nope' is not 64 hex digits" in errors
    assert len(errors) == 3


def test_manifest_shape():
    assert art.validate_manifest(None) == ([], [])
    assert art.validate_manifest([]) == ([], [])
    assert art.validate_manifest({"name": "x"})[1] == ["the manifest must be a list of artifacts, got dict"]


# ------------------------------------------------------------------------------------------ cache
def put(cache, content):
    cache.ensure()
    sha = hashlib.sha256(content).hexdigest()
    part = cache.new_partial(sha)
    with open(part, "wb") as fh:
        fh.write(content)
    cache.commit(part, sha)
    return sha


def test_commit_makes_a_read_only_verified_object(tmp_path):
    cache = art.Cache(str(tmp_path / "c"))
    sha = put(cache, b"hello")
    assert os.stat(cache.path(sha)).st_mode & 0o777 == 0o444
    assert os.listdir(cache.partial) == []
    assert cache.check(sha) == ("verified", sha, 5, False)  # stamp matches: not hashed again
    assert cache.check(sha, rehash=True) == ("verified", sha, 5, True)
    assert cache.check(SHA_B)[0] == "missing"


def test_rewritten_object_is_detected_by_its_stamp(tmp_path):
    cache = art.Cache(str(tmp_path / "c"))
    sha = put(cache, b"hello")
    os.chmod(cache.path(sha), 0o644)
    with open(cache.path(sha), "wb") as fh:
        fh.write(b"HELLO!")
    state, actual, size, hashed = cache.check(sha)
    assert (state, actual, size, hashed) == ("corrupt", hashlib.sha256(b"HELLO!").hexdigest(), 6, True)


def test_same_size_same_mtime_corruption_needs_rehash(tmp_path):
    cache = art.Cache(str(tmp_path / "c"))
    sha = put(cache, b"hello")
    st = os.stat(cache.path(sha))
    os.chmod(cache.path(sha), 0o644)
    with open(cache.path(sha), "r+b") as fh:
        fh.write(b"j")
    os.utime(cache.path(sha), ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.check(sha)[0] == "verified"  # the stamp is trusted: verify=changed
    assert cache.check(sha, rehash=True)[0] == "corrupt"  # verify=always


def test_missing_stamp_is_rehashed_and_recorded_unless_told_not_to(tmp_path):
    cache = art.Cache(str(tmp_path / "c"))
    sha = put(cache, b"hello")
    os.unlink(cache.stamp_path(sha))
    assert cache.check(sha, record=False)[3] is True
    assert cache.read_stamp(sha) is None
    assert cache.check(sha)[3] is True
    assert cache.check(sha)[3] is False


def test_discard_and_clean_partials(tmp_path):
    cache = art.Cache(str(tmp_path / "c"))
    sha = put(cache, b"x")
    for name in (sha + ".1.aa.part", sha + ".2.bb.part", SHA_B + ".3.cc.part"):
        open(os.path.join(cache.partial, name), "w").close()
    assert cache.clean_partials(sha) == 2
    assert os.listdir(cache.partial) == [SHA_B + ".3.cc.part"]
    cache.discard(sha)
    cache.discard(sha)  # twice is fine
    assert cache.check(sha)[0] == "missing"


def test_lock_is_exclusive_and_times_out(tmp_path):
    pytest.importorskip("fcntl")
    a, b = art.Cache(str(tmp_path)), art.Cache(str(tmp_path))
    a.lock(1)
    try:
        with pytest.raises(art.ArtifactError) as exc:
            b.lock(0.1)
        assert "another run holds the artifact cache lock" in exc.value.msg
    finally:
        a.unlock()
    b.lock(0.1)
    b.unlock()


# ------------------------------------------------------------------------------------------ streaming
def test_stream_hashes_and_counts(tmp_path):
    data = os.urandom(3 * art.CHUNK + 5)
    sha, n = art.stream_to(io.BytesIO(data), str(tmp_path / "f"), len(data))
    assert (sha, n) == (hashlib.sha256(data).hexdigest(), len(data))
    with pytest.raises(OSError):  # never writes over an existing file
        art.stream_to(io.BytesIO(b""), str(tmp_path / "f"))


def test_short_body_is_an_interrupted_download(tmp_path):
    with pytest.raises(art.ArtifactError) as exc:
        art.stream_to(io.BytesIO(b"x" * 10), str(tmp_path / "f"), 100)
    assert exc.value.transient and exc.value.msg == "download interrupted: received 10 of 100 bytes"


def test_backoff_and_human():
    assert art.backoff_delays(5) == [1, 2, 4, 8, 16]
    assert art.backoff_delays(8)[-1] == 30
    assert [art.human(n) for n in (5, 2048, 3 << 30, None)] == ["5 B", "2.0 KiB", "3.0 GiB", "?"]


# ------------------------------------------------------------------------------------------ links
def test_links_are_created_kept_and_replaced(tmp_path):
    target = tmp_path / "obj"
    target.write_text("x")
    other = tmp_path / "other"
    other.write_text("y")
    dest = str(tmp_path / "ws" / "models" / "m.bin")
    assert art.ensure_link(dest, str(target), check_mode=True) == "created"
    assert not os.path.lexists(dest)
    assert art.ensure_link(dest, str(target)) == "created"
    assert os.readlink(dest) == str(target)
    assert art.ensure_link(dest, str(target)) == "ok"
    assert art.ensure_link(dest, str(other)) == "updated" and os.readlink(dest) == str(other)


def test_regular_files_and_directories_are_protected(tmp_path):
    target = tmp_path / "obj"
    target.write_text("x")
    f = tmp_path / "f"
    f.write_text("user data")
    with pytest.raises(art.ArtifactError) as exc:
        art.ensure_link(str(f), str(target))
    assert "exists and is not a link to the cache; set force" in exc.value.msg
    assert f.read_text() == "user data"
    assert art.ensure_link(str(f), str(target), force=True) == "updated"
    d = tmp_path / "d"
    d.mkdir()
    with pytest.raises(art.ArtifactError):
        art.ensure_link(str(d), str(target), force=True)


def test_hardlinks(tmp_path):
    target = tmp_path / "obj"
    target.write_text("x")
    dest = str(tmp_path / "h")
    assert art.ensure_link(dest, str(target), link_type="hardlink") == "created"
    assert os.path.samefile(dest, str(target)) and not os.path.islink(dest)
    assert art.ensure_link(dest, str(target), link_type="hardlink") == "ok"
