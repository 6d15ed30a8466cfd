# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node side of gpu.ops.stage_artifacts (``_artifacts_node.stage_all``, what the artifacts helper runs) against
a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ansible_collections.gpu.ops.plugins.action.stage_artifacts import ARGUMENT_SPEC
from ansible_collections.gpu.ops.plugins.module_utils._node_protocol import NodeError
from ansible_collections.gpu.ops.plugins.plugin_utils import _artifacts_node

DEFAULTS = dict((k, v.get("default")) for k, v in ARGUMENT_SPEC.items())

BODY = os.urandom(200000)
SHA = hashlib.sha256(BODY).hexdigest()
BAD = bytes(b ^ 0xFF for b in BODY[:10]) + BODY[10:]


class Server(object):
    """Routes: /ok, /bad (other bytes), /short (Content-Length larger than the body), /404, /flaky (503 once)."""

    def __init__(self):
        self.hits = {}
        self.flaky_left = 1
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                if self.path == "/flaky" and owner.flaky_left:
                    owner.flaky_left -= 1
                    self.send_error(503)
                    return
                if self.path == "/404":
                    self.send_error(404)
                    return
                body = BAD if self.path == "/bad" else BODY
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if self.path == "/short" else body)

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def dirs(tmp_path):
    (tmp_path / "ws").mkdir()
    return {"cache_dir": str(tmp_path / "cache"), "link_dir": str(tmp_path / "ws")}


def run(capsys, **args):
    """The answer of the artifacts helper's ``stage`` as the action plugin gets it (with the action's defaults)."""
    del capsys
    try:
        res = _artifacts_node.stage_all(dict(DEFAULTS, **args))
    except NodeError as exc:
        res = {"failed": True, "msg": str(exc)}
    res = json.loads(json.dumps(res))  # the answer travels as one JSON line
    res["_rc"] = 1 if res.get("failed") else 0
    return res


def art(url, **kw):
    e = {"name": "model", "src": url, "sha256": SHA, "dest": "models/model.bin"}
    e.update(kw)
    return e


def objects(dirs):
    d = os.path.join(dirs["cache_dir"], "sha256")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def partials(dirs):
    d = os.path.join(dirs["cache_dir"], ".partial")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_fetch_verify_link_then_skip(server, dirs, capsys):
    res = run(capsys, manifest=[art(server.url + "/ok")], **dirs)
    assert res["_rc"] == 0 and res["changed"] is True
    a = res["artifacts"][0]
    assert (a["cache"], a["link"], a["bytes"], a["attempts"], a["size"]) == ("fetched", "created", len(BODY), 1, len(BODY))
    dest = os.path.join(dirs["link_dir"], "models", "model.bin")
    assert os.readlink(dest) == a["cache_path"] == os.path.join(dirs["cache_dir"], "sha256", SHA)
    with open(dest, "rb") as fh:
        assert fh.read() == BODY
    assert os.stat(a["cache_path"]).st_mode & 0o222 == 0
    again = run(capsys, manifest=[art(server.url + "/ok")], **dirs)
    assert again["changed"] is False and again["artifacts"][0]["cache"] == "hit"
    assert again["artifacts"][0]["hashed"] is False and server.hits == {"/ok": 1}


def test_wrong_upstream_hash_is_fetched_twice_then_fails_naming_both(server, dirs, capsys):
    res = run(capsys, manifest=[art(server.url + "/bad")], **dirs)
    assert res["_rc"] == 1 and server.hits["/bad"] == 2
    assert ("artifact 'model' (%s/bad): sha256 mismatch after 2 downloads of %s/bad: expected %s, got %s"
            % (server.url, server.url, SHA, hashlib.sha256(BAD).hexdigest())) in res["msg"]
    assert objects(dirs) == [] and partials(dirs) == []
    assert not os.path.lexists(os.path.join(dirs["link_dir"], "models", "model.bin"))


def test_short_body_is_never_counted(server, dirs, capsys):
    res = run(capsys, manifest=[art(server.url + "/short")], retries=0, **dirs)
    assert res["_rc"] == 1
    assert "download interrupted: received %d of %d bytes (gave up after 1 attempts)" % (len(BODY) // 2, len(BODY)) \
        in res["msg"]
    assert objects(dirs) == [] and partials(dirs) == []
    # a leftover of a killed run is cleaned and the good source is fetched, not taken from the leftover
    with open(os.path.join(dirs["cache_dir"], ".partial", SHA + ".99.dead.part"), "wb") as fh:
        fh.write(BODY[:100])
    res = run(capsys, manifest=[art(server.url + "/ok")], **dirs)
    assert res["artifacts"][0]["cache"] == "fetched" and partials(dirs) == []


def test_transient_errors_are_retried_permanent_ones_not(server, dirs, capsys):
    res = run(capsys, manifest=[art(server.url + "/flaky")], retries=2, **dirs)
    assert res["_rc"] == 0 and res["artifacts"][0]["attempts"] == 2 and server.hits["/flaky"] == 2
    res = run(capsys, manifest=[art(server.url + "/404", name="gone", sha256="0" * 64)], retries=3, **dirs)
    assert res["_rc"] == 1 and server.hits["/404"] == 1
    assert "artifact 'gone' (%s/404): HTTP 404 Not Found" % server.url in res["msg"]


def test_connection_refused_gives_up(dirs, capsys):
    s = Server()
    url = s.url
    s.close()
    res = run(capsys, manifest=[art(url + "/ok")], retries=0, **dirs)
    assert res["_rc"] == 1 and "cannot connect" in res["msg"] and "gave up after 1 attempts" in res["msg"]


def test_corrupt_cache_is_refetched(server, dirs, capsys):
    run(capsys, manifest=[art(server.url + "/ok")], **dirs)
    obj = os.path.join(dirs["cache_dir"], "sha256", SHA)
    os.chmod(obj, 0o644)
    with open(obj, "wb") as fh:
        fh.write(b"bit rot")
    res = run(capsys, manifest=[art(server.url + "/ok")], **dirs)
    a = res["artifacts"][0]
    assert (res["changed"], a["cache"], a["corrupt_sha256"]) == (True, "refetched", hashlib.sha256(b"bit rot").hexdigest())
    with open(obj, "rb") as fh:
        assert fh.read() == BODY
    assert server.hits["/ok"] == 2


def test_check_mode_plans_without_writing(server, dirs, capsys):
    res = run(capsys, manifest=[art(server.url + "/ok")], check_mode=True, **dirs)
    assert res["_rc"] == 0 and res["changed"] is True
    assert (res["artifacts"][0]["cache"], res["artifacts"][0]["link"]) == ("missing", "created")
    assert not os.path.exists(dirs["cache_dir"]) and os.listdir(dirs["link_dir"]) == [] and server.hits == {}


def test_node_local_sources_and_uploads(tmp_path, dirs, capsys):
    src = tmp_path / "nfs.bin"
    src.write_bytes(BODY)
    res = run(capsys, manifest=[art(str(src), remote_src=True)], **dirs)
    assert res["_rc"] == 0 and res["artifacts"][0]["cache"] == "copied" and src.exists()
    # a controller file: reported as needing upload, then taken from the upload (moved, not copied)
    other = hashlib.sha256(b"tok").hexdigest()
    manifest = [{"name": "tok", "src": "files/tok.json", "sha256": other, "dest": "tok.json"}]
    plan = run(capsys, manifest=manifest, check_mode=True, **dirs)
    assert plan["needs_upload"] == ["tok"]
    up = tmp_path / "upload"
    up.write_bytes(b"tok")
    res = run(capsys, manifest=manifest, uploads={"tok": str(up)}, **dirs)
    assert res["_rc"] == 0 and res["uploaded"] == ["tok"] and not up.exists()
    assert run(capsys, manifest=manifest, **dirs)["changed"] is False
    # a node file whose content does not match names both hashes
    src.write_bytes(b"changed")
    wanted = hashlib.sha256(b"what the catalog says").hexdigest()
    res = run(capsys, manifest=[art(str(src), remote_src=True, name="n2", sha256=wanted, dest="n2")], **dirs)
    assert res["_rc"] == 1
    assert "sha256 mismatch for %s: expected %s, got %s" % (src, wanted, hashlib.sha256(b"changed").hexdigest()) \
        in res["msg"]
    assert wanted not in objects(dirs) and partials(dirs) == []


def test_link_dir_must_exist_and_manifest_is_checked(tmp_path, capsys):
    res = run(capsys, manifest=[art("http://127.0.0.1:9/x")], cache_dir=str(tmp_path / "c"),
              link_dir=str(tmp_path / "nope"))
    assert res["_rc"] == 1 and "link_dir %s does not exist: deploy the workspace first" % (tmp_path / "nope") in res["msg"]
    res = run(capsys, manifest=[art("http://127.0.0.1:9/x", sha256="x")], cache_dir=str(tmp_path / "c"))
    assert res["_rc"] == 1 and res["msg"].startswith("artifacts manifest is invalid (1 problem(s)): entry 1 (model)")
    assert not (tmp_path / "c").exists()
