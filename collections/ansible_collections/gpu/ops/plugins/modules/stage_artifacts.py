#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stage_artifacts
short_description: Stage models and datasets on a node from a manifest, verified by SHA-256
version_added: 0.1.0
description:
  - Brings every artifact of O(manifest) into a content-addressed cache on the node (default C(~/.bifrost/cache),
    one file per SHA-256) and links it into the workspace (O(link_dir)/C(dest)).
  - "Sources: an C(http://) or C(https://) URL, downloaded by the node; a file on the controller (a path; relative
    paths are searched like M(ansible.builtin.copy) does, in the role's or playbook's C(files/)), uploaded over the
    task's connection; or a file already on the node (C(remote_src: true))."
  - The whole manifest is checked on the controller before any node is contacted (required fields, unknown keys,
    duplicate names and destinations, SHA-256 format, URL schemes, that local files exist).
  - A file already in the cache and verified is not fetched again. Verification hashes the file and records its size,
    mtime and inode; later runs hash again only when those changed (O(verify=changed)) or always (O(verify=always)).
  - Downloads go to a temporary name, are hashed while they stream, and become the cached file only by an atomic
    rename after the hash matched, so an interrupted download never counts as done. Connection errors, short
    bodies and HTTP 408/425/429/5xx are retried O(retries) times with exponential backoff.
  - A download whose hash does not match is fetched once more; when it still does not match, the task fails naming
    the artifact, the source and both hashes. A cached file that no longer matches its hash is fetched again.
  - One writer at a time per node (a lock file in the cache, waited on with backoff up to O(lock_timeout)).
  - This is an action plugin with a module part; the controller side validates, plans with one call to the node,
    uploads controller files when the node needs them, then stages with a second call. When everything is already
    in place the first call is the only one and the task reports no change.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  manifest:
    description:
      - The artifacts. Each entry is a mapping with the keys below; other keys are an error.
      - C(name) (required) unique name, letters, digits, C(.), C(_), C(-).
      - C(src) (required) URL (C(http)/C(https)), controller file path, or node file path with C(remote_src).
      - C(sha256) (required) 64 hex digits (a C(sha256:) prefix is accepted).
      - C(dest) link path, relative to O(link_dir) (or absolute). Default the file name at the end of C(src).
      - C(size) expected size in bytes (optional), used to check free space before a download.
      - C(remote_src) (default V(false)) C(src) is an absolute path on the node.
    type: list
    elements: dict
    required: true
  cache_dir:
    description: The cache on the node.
    type: path
    default: ~/.bifrost/cache
  link_dir:
    description:
      - Directory the relative C(dest) paths are linked into; it must exist (deploy the workspace first).
        Subdirectories of C(dest) are created.
    type: path
    default: ~/.bifrost/workspace
  link_type:
    description:
      - V(symlink) links to the cache file. V(hardlink) makes the link the same file (cache and O(link_dir) must be on
        one filesystem); it survives cache pruning and suits tools that refuse symlinks.
    type: str
    choices: [symlink, hardlink]
    default: symlink
  verify:
    description:
      - V(changed) hashes a cached file again only when its size, mtime or inode changed since it was verified.
      - V(always) hashes every cached file on every run (catches corruption that keeps size and mtime).
    type: str
    choices: [changed, always]
    default: changed
  force:
    description: Replace a regular file at a C(dest) with the link (a directory is never replaced).
    type: bool
    default: false
  timeout:
    description: Socket timeout in seconds for each HTTP request.
    type: int
    default: 60
  retries:
    description: Retries of a download after a connection error, a short body or HTTP 408/425/429/5xx.
    type: int
    default: 3
  validate_certs:
    description: Verify HTTPS certificates.
    type: bool
    default: true
  lock_timeout:
    description: Seconds to wait for another run that holds the cache lock on the node.
    type: int
    default: 600
  uploads:
    description:
      - Set by the action plugin, not by users. Maps an artifact name to the file on the node that holds its
        uploaded controller-side copy.
    type: dict
    default: {}
notes:
  - Needs Python 3.9 or later on the node, nothing outside the standard library.
  - Run it after the workspace is deployed (M(gpu.ops.workspace_deploy)); links are untracked files in the checkout,
    so add their paths to C(.gitignore) (or to the deploy's C(clean_exclude)) if the deploy cleans untracked files.
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Hashes what it needs to know, reports what would be fetched, uploaded and linked, writes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
"""

EXAMPLES = r"""
- name: Stage a model and a dataset into the workspace
  gpu.ops.stage_artifacts:
    manifest:
      - name: tinyllama
        src: https://models.example.org/tinyllama-1.1b-chat.Q4_K_M.gguf
        sha256: 9fecc3b3cd76bba89d504f29b616eedf7da85b96540e490ca5824d3f7d2776a0
        dest: models/tinyllama.gguf
        size: 668788096
      - name: tokenizer
        src: files/tokenizer.json        # on the controller
        sha256: 2f1c4f3e0f0d5a7c9d3b9e2c0c1f7a4a6a3c0e5e1b2d4f6a8c0e2f4a6b8d0e2f
        dest: models/tokenizer.json

- name: Catalog kept in a YAML file next to the playbook
  gpu.ops.stage_artifacts:
    manifest: "{{ lookup('ansible.builtin.file', 'artifacts.yml') | from_yaml }}"
"""

RETURN = r"""
artifacts:
  description: One entry per manifest entry, in manifest order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Artifact name.
      type: str
    sha256:
      description: Expected (and, once staged, actual) SHA-256.
      type: str
    src:
      description: Source as given.
      type: str
    size:
      description: Size in bytes of the cached file, when known.
      type: int
    cache_path:
      description: The cached file on the node.
      type: str
    dest:
      description: The link on the node.
      type: str
    cache:
      description:
        - V(hit) already cached and verified; V(fetched) downloaded; V(refetched) the cached file did not match its hash
          and was fetched again; V(uploaded) copied from the controller; V(copied) from a node path; V(missing) in check
          mode, would be fetched; V(failed).
      type: str
    link:
      description: V(ok), V(created), V(updated), or V(none) when the artifact failed.
      type: str
    hashed:
      description: Whether the file was hashed during this run (a verify or a fetch).
      type: bool
    bytes:
      description: Bytes downloaded or copied during this run.
      type: int
    attempts:
      description: Downloads made (a retry after an error or a hash mismatch counts).
      type: int
    seconds:
      description: Time spent on this artifact.
      type: float
    corrupt_sha256:
      description: Hash of the cached file that no longer matched (then fetched again).
      type: str
    error:
      description: Why the artifact failed.
      type: str
cache_dir:
  description: Cache directory on the node (expanded).
  returned: always
  type: str
link_dir:
  description: Link directory on the node (expanded).
  returned: always
  type: str
needs_upload:
  description: Names of controller-side artifacts the node does not have (the action plugin uploads these).
  returned: always
  type: list
  elements: str
uploaded:
  description: Names of artifacts uploaded from the controller during this run (set by the action plugin).
  returned: always
  type: list
  elements: str
"""

import http.client
import os
import socket
import time
from urllib.error import HTTPError, URLError

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url
from ansible_collections.gpu.ops.plugins.module_utils import artifacts as art


def _http_get(url, p):
    try:
        return open_url(url, timeout=p["timeout"], validate_certs=p["validate_certs"], http_agent="gpu.ops stage_artifacts")
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


def stage(module, cache, entry, p, link_dir):
    started = time.monotonic()
    sha = entry["sha256"]
    dest = entry["dest"] if entry["dest"].startswith("/") else os.path.join(link_dir, entry["dest"])
    res = {"name": entry["name"], "sha256": sha, "src": entry["src"], "cache_path": cache.path(sha), "dest": dest,
           "size": entry.get("size"), "cache": "hit", "link": "none", "hashed": False, "bytes": 0, "attempts": 0}
    stats = {"attempts": 0, "bytes": 0}
    check = module.check_mode
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
                raise art.ArtifactError("the controller file %s was not uploaded (the module runs through its action "
                                        "plugin, which uploads it)" % entry["src"])
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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            manifest=dict(type="list", elements="dict", required=True),
            cache_dir=dict(type="path", default="~/.bifrost/cache"),
            link_dir=dict(type="path", default="~/.bifrost/workspace"),
            link_type=dict(type="str", choices=["symlink", "hardlink"], default="symlink"),
            verify=dict(type="str", choices=["changed", "always"], default="changed"),
            force=dict(type="bool", default=False),
            timeout=dict(type="int", default=60),
            retries=dict(type="int", default=3),
            validate_certs=dict(type="bool", default=True),
            lock_timeout=dict(type="int", default=600),
            uploads=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    p = module.params
    entries, errors = art.validate_manifest(p["manifest"])
    if errors:
        module.fail_json(msg="artifacts manifest is invalid (%d problem(s)): %s" % (len(errors), "; ".join(errors)),
                         errors=errors)
    if p["retries"] < 0 or p["timeout"] < 1 or p["lock_timeout"] < 0:
        module.fail_json(msg="retries and lock_timeout must be >= 0 and timeout >= 1")
    link_dir = p["link_dir"]
    result = dict(changed=False, cache_dir=p["cache_dir"], link_dir=link_dir, artifacts=[], needs_upload=[],
                  uploaded=[])
    if any(not e["dest"].startswith("/") for e in entries) and not os.path.isdir(link_dir):
        module.fail_json(msg="link_dir %s does not exist: deploy the workspace first (gpu.ops.workspace) or set "
                             "link_dir to an existing directory" % link_dir, **result)

    cache = art.Cache(p["cache_dir"])
    # controller files the node does not have: reported so the action plugin uploads them (no lock, no writes)
    for e in entries:
        if e["kind"] == "path" and not e["remote_src"] and e["name"] not in (p["uploads"] or {}):
            if cache.check(e["sha256"], record=False)[0] != "verified":
                result["needs_upload"].append(e["name"])

    if not module.check_mode:
        try:
            cache.ensure()
            cache.lock(p["lock_timeout"])
        except art.ArtifactError as e:
            module.fail_json(msg=e.msg, **result)
        except OSError as e:
            module.fail_json(msg="cannot use the cache %s: %s" % (p["cache_dir"], e), **result)
    try:
        for e in entries:
            if e["name"] in result["needs_upload"] and not module.check_mode:
                res = {"name": e["name"], "sha256": e["sha256"], "src": e["src"], "cache": "failed", "link": "none",
                       "error": "the controller file %s was not uploaded" % e["src"]}
            else:
                res = stage(module, cache, e, p, link_dir)
            result["artifacts"].append(res)
    finally:
        cache.unlock()

    result["changed"] = any(r["cache"] in ("fetched", "refetched", "uploaded", "copied", "missing")
                            or r["link"] in ("created", "updated") for r in result["artifacts"])
    result["uploaded"] = [r["name"] for r in result["artifacts"] if r["cache"] == "uploaded"]
    failed = [r for r in result["artifacts"] if r.get("error")]
    if failed:
        msg = "; ".join("artifact %r (%s): %s" % (r["name"], r["src"], r["error"]) for r in failed)
        module.fail_json(msg="%d of %d artifact(s) failed: %s" % (len(failed), len(entries), msg), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
