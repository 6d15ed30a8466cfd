# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node side of gpu.ops.stage_artifacts. PRIVATE to the collection, may change without notice.

The ``__main__`` of the ``artifacts`` helper (a zip application with ``artifacts``, see ``_node_helper``),
installed once per version as ``~/.bifrost/bin/gpuops-artifacts-<hash>.pyz``. Standard library only,
Python >= 3.9. One command, ``stage``: with ``check_mode`` the plan (what is cached and verified, what is missing,
which controller files need uploading), without it fetch, verify, commit and link under the cache lock.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import sys
import time
from urllib.error import HTTPError, URLError
from urllib.request import HTTPSHandler, Request, build_opener

from ansible_collections.gpu.ops.plugins.module_utils import artifacts as art
from ansible_collections.gpu.ops.plugins.module_utils._node_protocol import NodeError, serve


def _http_get(url, p):
    # stdlib only (this runs on the node without Ansible); validate_certs=false is the user's explicit opt-out
    context = ssl.create_default_context() if p["validate_certs"] else ssl._create_unverified_context()
    opener = build_opener(HTTPSHandler(context=context))
    try:
        return opener.open(Request(url, headers={"User-Agent": "gpu.ops stage_artifacts"}), timeout=p["timeout"])
    except HTTPError as e:
        raise art.ArtifactError("HTTP %s %s" % (e.code, e.reason), transient=e.code in art.TRANSIENT_HTTP) from e
    except URLError as e:
        raise art.ArtifactError("cannot connect: %s" % (e.reason,), transient=True) from e
    except (socket.timeout, http.client.HTTPException, ConnectionError) as e:
        raise art.ArtifactError("connection failed: %s" % (e,), transient=True) from e


def download_once(cache, entry, p):
    """One HTTP download into a temp file; returns (sha256, bytes). The temp file never survives a failure."""
    part = cache.new_partial(entry["sha256"])
    try:
        resp = _http_get(entry["src"], p)
        try:
            length = art.content_length(resp)
            need = length if length is not None else entry.get("size")
            if need:
                free = art.free_bytes(cache.partial)
                if free < need:
                    raise art.ArtifactError("needs %s but only %s is free in %s" % (art.human(need), art.human(free),
                                                                                    cache.partial))
            try:
                actual, n = art.stream_to(resp, part, length)
            except (socket.timeout, http.client.HTTPException, ConnectionError) as e:
                raise art.ArtifactError("download interrupted: %s" % (e,), transient=True) from e
        finally:
            resp.close()
        return actual, n, part
    except BaseException:
        try:
            os.unlink(part)
        except OSError:
            pass
        raise


def download_with_retries(cache, entry, p, stats):
    delays = art.backoff_delays(p["retries"])
    while True:
        stats["attempts"] += 1
        try:
            return download_once(cache, entry, p)
        except art.ArtifactError as e:
            if not e.transient or not delays:
                if e.transient:
                    e.msg = "%s (gave up after %d attempts)" % (e.msg, stats["attempts"])
                raise
            time.sleep(delays.pop(0))


def fetch_url(cache, entry, p, stats):
    """Download, verify, commit. A mismatch is fetched once more, then it is an error naming both hashes."""
    got = []
    while True:
        actual, n, part = download_with_retries(cache, entry, p, stats)
        stats["bytes"] += n
        if actual == entry["sha256"]:
            cache.commit(part, entry["sha256"])
            return n
        os.unlink(part)
        got.append(actual)
        if len(got) == 2:
            extra = "" if got[0] == got[1] else " (first download: %s)" % got[0]
            raise art.ArtifactError("sha256 mismatch after 2 downloads of %s: expected %s, got %s%s"
                                    % (entry["src"], entry["sha256"], got[1], extra))


def take_file(cache, entry, src, stats, move):
    """A node-local file (uploaded or remote_src): verify its content, then commit a private copy."""
    part = cache.new_partial(entry["sha256"])
    try:
        if move and _same_fs(src, cache.partial):
            os.rename(src, part)
        else:
            art.copy_to(src, part)
        actual, n = art.sha256_file(part)
        stats["bytes"] += n
        if actual != entry["sha256"]:
            raise art.ArtifactError("sha256 mismatch for %s: expected %s, got %s" % (src, entry["sha256"], actual))
        cache.commit(part, entry["sha256"])
        return n
    finally:
        for path in ([part, src] if move else [part]):
            try:
                os.unlink(path)
            except OSError:
                pass


def _same_fs(a, b):
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def stage(cache, entry, p, link_dir):
    started = time.monotonic()
    sha = entry["sha256"]
    dest = entry["dest"] if entry["dest"].startswith("/") else os.path.join(link_dir, entry["dest"])
    res = {"name": entry["name"], "sha256": sha, "src": entry["src"], "cache_path": cache.path(sha), "dest": dest,
           "size": entry.get("size"), "cache": "hit", "link": "none", "hashed": False, "bytes": 0, "attempts": 0}
    stats = {"attempts": 0, "bytes": 0}
    check = p["check_mode"]
    upload = (p["uploads"] or {}).get(entry["name"])
    try:
        state, actual, size, hashed = cache.check(sha, rehash=p["verify"] == "always", record=not check)
        res["hashed"] = hashed
        if state == "corrupt":
            res["corrupt_sha256"] = actual
            if not check:
                cache.discard(sha)
        if state == "verified":
            res["size"] = size
            if upload:  # staged meanwhile (another run); the upload is not needed
                _unlink(upload)
        elif check:
            res["cache"] = "missing"
        else:
            cache.clean_partials(sha)
            if entry["kind"] == "url":
                res["size"] = fetch_url(cache, entry, p, stats)
                res["cache"] = "refetched" if state == "corrupt" else "fetched"
            elif entry["remote_src"]:
                if not os.path.isfile(entry["src"]):
                    raise art.ArtifactError("%s does not exist on the node" % entry["src"])
                res["size"] = take_file(cache, entry, entry["src"], stats, move=False)
                res["cache"] = "copied"
            elif upload:
                res["size"] = take_file(cache, entry, upload, stats, move=True)
                res["cache"] = "uploaded"
            else:
                raise art.ArtifactError("the controller file %s was not uploaded (the action plugin uploads it)" % entry["src"])
            res["hashed"] = True
        res["link"] = art.ensure_link(dest, cache.path(sha), p["link_type"], p["force"], check_mode=check)
    except art.ArtifactError as e:
        res["cache"] = "failed" if res["cache"] == "hit" else res["cache"]
        res["error"] = e.msg
    except (OSError, IOError) as e:
        res["cache"] = "failed"
        res["error"] = "%s: %s" % (getattr(e, "filename", None) or dest, e.strerror or e)
    res["bytes"] = stats["bytes"]
    res["attempts"] = stats["attempts"]
    res["seconds"] = round(time.monotonic() - started, 3)
    return res


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def check_args(p, entries, errors):
    if errors:
        raise NodeError("artifacts manifest is invalid (%d problem(s)): %s" % (len(errors), "; ".join(errors)))
    if p["retries"] < 0 or p["timeout"] < 1 or p["lock_timeout"] < 0:
        raise NodeError("retries and lock_timeout must be >= 0 and timeout >= 1")
    if any(not e["dest"].startswith("/") for e in entries) and not os.path.isdir(p["link_dir"]):
        raise NodeError("link_dir %s does not exist: deploy the workspace first (gpu.ops.workspace) or set "
                        "link_dir to an existing directory" % p["link_dir"])


def needs_upload(cache, entries, uploads):
    """Controller files the node does not have: reported so the action plugin uploads them (no lock, no writes)."""
    return [e["name"] for e in entries
            if e["kind"] == "path" and not e["remote_src"] and e["name"] not in uploads
            and cache.check(e["sha256"], record=False)[0] != "verified"]


def stage_all(p):
    p = dict(p, cache_dir=os.path.expanduser(p["cache_dir"]), link_dir=os.path.expanduser(p["link_dir"]),
             uploads=p.get("uploads") or {}, check_mode=bool(p.get("check_mode")))
    entries, errors = art.validate_manifest(p["manifest"])
    check_args(p, entries, errors)
    cache = art.Cache(p["cache_dir"])
    result = {"changed": False, "cache_dir": p["cache_dir"], "link_dir": p["link_dir"], "artifacts": [],
              "needs_upload": needs_upload(cache, entries, p["uploads"]), "uploaded": []}
    if not p["check_mode"]:
        try:
            cache.ensure()
            cache.lock(p["lock_timeout"])
        except art.ArtifactError as e:
            return dict(result, failed=True, msg=e.msg)
        except OSError as e:
            return dict(result, failed=True, msg="cannot use the cache %s: %s" % (p["cache_dir"], e))
    try:
        for e in entries:
            if e["name"] in result["needs_upload"] and not p["check_mode"]:
                res = {"name": e["name"], "sha256": e["sha256"], "src": e["src"], "cache": "failed", "link": "none",
                       "error": "the controller file %s was not uploaded" % e["src"]}
            else:
                res = stage(cache, e, p, p["link_dir"])
            result["artifacts"].append(res)
    finally:
        cache.unlock()
    return summarize(result, len(entries))


def summarize(result, count):
    result["changed"] = any(r["cache"] in ("fetched", "refetched", "uploaded", "copied", "missing")
                            or r["link"] in ("created", "updated") for r in result["artifacts"])
    result["uploaded"] = [r["name"] for r in result["artifacts"] if r["cache"] == "uploaded"]
    failed = [r for r in result["artifacts"] if r.get("error")]
    if failed:
        msg = "; ".join("artifact %r (%s): %s" % (r["name"], r["src"], r["error"]) for r in failed)
        result.update(failed=True, msg="%d of %d artifact(s) failed: %s" % (len(failed), count, msg))
    return result


def main(argv=None):
    return serve({"stage": stage_all}, argv)


if __name__ == "__main__":
    sys.exit(main())
