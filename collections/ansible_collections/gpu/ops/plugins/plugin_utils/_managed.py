# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Managed runs on the controller: checkpoints, preemption, recoveries. PRIVATE to the collection, may change.

Checkpoint convention (the example job's): ``$GPUOPS_CHECKPOINT_DIR/step-<N>/`` holds the files of the checkpoint
at step N and, written last, the marker ``COMPLETE``. During training the pipeline syncs the directory home with
gpu.ops.collect_results into ``<run_dir>/checkpoints/<host>/steps/``; ``collect.json`` there lists every file the
controller holds sha256-verified. A checkpoint is usable on the controller only when its directory has COMPLETE
and every one of its files is verified and unchanged since: a directory caught while it was being written (no
COMPLETE yet, or a file that changed under the sync and failed verification) is never pushed to a node.
"""

from __future__ import annotations

import json
import os
import re

STEP_DIR_RE = re.compile(r"^step-(\d+)$")
MARKER = "COMPLETE"
SYNC_SUBDIR = "steps"
# provider states that mean the platform took the instance away (RunPod spot EXITED/TERMINATED, Vast outbid)
GONE_STATES = ("stopped", "terminated", "error", "missing")


def host_sync_dir(run_dir, host):
    """Where the controller keeps the synced checkpoints of one node (by host name: a replacement node keeps the
    name of the node it replaces, and so its history)."""
    return os.path.join(run_dir, "checkpoints", host)


def _verified(sync_dir):
    try:
        with open(os.path.join(sync_dir, "collect.json")) as fh:
            return (json.load(fh) or {}).get("files") or {}
    except (OSError, ValueError):
        return {}


def usable_checkpoints(sync_dir):
    """{step: local path} of the complete, verified checkpoints the controller holds for one node."""
    root = os.path.join(sync_dir, SYNC_SUBDIR)
    verified = _verified(sync_dir)
    out = {}
    try:
        names = os.listdir(root)
    except OSError:
        return out
    for name in names:
        m = STEP_DIR_RE.match(name)
        path = os.path.join(root, name)
        if not m or not os.path.isfile(os.path.join(path, MARKER)):
            continue
        if all(_file_verified(verified, sync_dir, os.path.join(dirpath, f))
               for dirpath, _dirs, files in os.walk(path) for f in files):
            out[int(m.group(1))] = path
    return out


def _file_verified(verified, sync_dir, full):
    rel = os.path.relpath(full, sync_dir).replace(os.sep, "/")
    rec = verified.get(rel)
    if not rec:
        return False
    try:
        st = os.stat(full)
    except OSError:
        return False
    return rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns


def select_checkpoint(run_dir, hosts):
    """The checkpoint every rank restarts from: the newest step that is usable for every host that has synced
    checkpoints at all (ranks of one job checkpoint at the same steps). Returns ``{"step": N, "sources": {host:
    path}}``; step 0 (no source) means no usable checkpoint: the job starts from scratch."""
    per_host = {h: usable_checkpoints(host_sync_dir(run_dir, h)) for h in hosts}
    with_any = {h: steps for h, steps in per_host.items() if steps}
    if not with_any:
        return {"step": 0, "sources": {}}
    common = set.intersection(*(set(steps) for steps in with_any.values()))
    if not common:
        return {"step": 0, "sources": {}}
    step = max(common)
    first = next(iter(with_any.values()))[step]
    # a host that never synced one (it had no checkpoint dir) starts from the first host's copy
    return {"step": step, "sources": {h: per_host[h].get(step, first) for h in hosts}}


def provider_state(provider, instance_id, environ):
    """(state, detail) of an instance from its provider's API: running, pending, stopped, terminated, error,
    missing (gone from the account), or unknown (no key, the API failed: the caller decides by SSH alone)."""
    from ansible_collections.gpu.ops.plugins.module_utils.provider import ApiError

    try:
        api = _provider(provider, environ)
        if api is None:
            return "unknown", "no API key for %s in the controller's environment" % provider
        inst = api.get(str(instance_id))
    except ApiError as exc:
        return "unknown", "%s API: %s" % (provider, exc)
    if inst is None:
        return "missing", "%s %s no longer exists" % (provider, instance_id)
    detail = "%s %s is %s (%s)%s" % (provider, instance_id, inst.status, inst.provider_status,
                                     (": " + inst.status_message) if inst.status_message else "")
    return inst.status, detail


def _provider(name, environ):
    """The provider ``name`` built from the controller's environment, or None (unknown, or no API key)."""
    from ansible_collections.gpu.ops.plugins.module_utils import registry

    cls = registry.find(name)
    return cls.from_env(environ, {"timeout": 10.0, "deadline": 20.0}) if cls is not None else None


def recovery_lines(recoveries):
    """One summary line per recovery or restart."""
    lines = []
    for r in recoveries or []:
        what = {"preemption": "preempted", "lost": "lost", "job_failed": "job failed"}.get(r.get("kind"), r.get("kind"))
        replaced = ", ".join("%s %s -> %s" % (k, v.get("old"), v.get("new")) for k, v in sorted(
            (r.get("replaced") or {}).items()))
        lines.append("  recovery %s: %s %s at %s; %s; restarted from %s%s" % (
            r.get("n"), ", ".join(r.get("hosts") or []) or "-", what, r.get("detected_at"),
            ("replaced " + replaced) if replaced else "no node replaced",
            ("checkpoint step %s" % r["checkpoint_step"]) if r.get("checkpoint_step") else "scratch (no checkpoint)",
            (", %ss lost" % r["time_lost_s"]) if r.get("time_lost_s") is not None else ""))
    return lines
