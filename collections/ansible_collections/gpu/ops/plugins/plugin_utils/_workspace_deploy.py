# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of a workspace deploy: what the node lacks goes as git bundles. PRIVATE, may change.

Round trips per node: one probe; when something is missing, one more command that carries the bundles on stdin
and applies + verifies them. Nothing is sent when the node already has the wanted state. Used by the
gpu.ops.workspace_deploy action (the task's connection) and the gpuops CLI's ``exec`` (plain ssh), each with a
transport from ``_node_helper``.
"""

from __future__ import annotations

import os
import shlex
import time

from ansible_collections.gpu.ops.plugins.plugin_utils._workspace_local import GitError, build_bundle

PROGRESS_BYTES = 8 << 20
INLINE_MAX = 256 << 20


def _short(sha):
    return sha[:12] if sha else None


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


class Deployer(object):
    """Deploy over ``transport`` with the ``workspace`` node ``helper``."""

    def __init__(self, transport, helper, check_mode=False, progress=None):
        self.transport = transport
        self.helper = helper
        self.check_mode = check_mode
        self.progress = progress or (lambda msg: None)

    # ------------------------------------------------------------------------------------------
    def _local_state(self, args, repo, result):
        """What should be on the node: commit, tree, overlay, submodules, provenance."""
        version = args["version"]
        commit = repo.resolve(version)
        branch = repo.branch(version)
        is_head = commit == repo.head()
        snap = repo.snapshot(commit) if is_head and args["dirty"] != "ignore" else None
        changes = snap["changes"] if snap else []
        shown = ", ".join("%s %s" % (c["status"], c["path"]) for c in changes[:10])
        more = " (+%d more)" % (len(changes) - 10) if len(changes) > 10 else ""
        if snap and args["dirty"] == "fail":
            raise GitError("%s has %d uncommitted or untracked change(s): %s%s. Commit them, or set "
                           "workspace_dirty: ship to deploy them, or warn to deploy HEAD only"
                           % (repo.top, len(changes), shown, more))
        if snap and args["dirty"] == "warn":
            result.setdefault("warnings", []).append(
                "%d uncommitted or untracked change(s) in %s are NOT deployed (set workspace_dirty: ship to ship "
                "them): %s%s" % (len(changes), repo.top, shown, more))
        ship = bool(snap) and args["dirty"] == "ship"
        tree = snap["tree"] if ship else repo.tree_of(commit)
        subs = repo.submodules(tree) if args["submodules"] else []
        # a snapshot records a submodule's HEAD, not its own uncommitted files: say so (one status, only with subs)
        dirty_subs = repo.dirty_submodules() if subs and is_head and args["dirty"] != "ignore" else []
        if dirty_subs:
            result.setdefault("warnings", []).append(
                "submodule(s) with uncommitted changes, deployed at their HEAD commit only: %s" % ", ".join(dirty_subs))
        provenance = {
            "commit": commit, "branch": branch, "version": version, "repo": repo.top,
            "remote_url": repo.remote_url(branch), "dirty": bool(snap), "dirty_shipped": ship,
            "dirty_files": len(changes), "dirty_diff_sha256": snap["diff_sha256"] if snap else None,
            "overlay_tree": snap["tree"] if ship else None, "tree": tree,
            "submodules": [{"path": s["path"], "commit": s["commit"]} for s in subs],
        }
        result["dirty_changes"] = changes[:200]
        result["dirty_submodules"] = dirty_subs
        return {"commit": commit, "branch": branch, "tree": tree, "snapshot": snap if ship else None,
                "subs": subs, "provenance": provenance}

    def local_state(self, args, repo):
        """(what every node should get, the warnings and dirty facts for the result): the same for every node of a
        run, so a caller deploying to many nodes works it out once (one git status, one snapshot)."""
        result = {}
        return self._local_state(args, repo, result), result

    def deploy(self, result, args, repo, host, timings, t0, local=None, known=None):
        """Bring the node's workspace to the wanted commit (and dirty layer); returns the result. ``local``: a
        :meth:`local_state` already worked out for this repository and these arguments. ``known``: what this
        controller deployed there last (``{head, dest, home, branch}`` from an earlier result): when the commit is a
        new one, the probe's round trip is skipped and the bundle is built against that head (a node that lost it
        answers PREREQUISITE_MISSING, and everything is sent)."""
        if local is None:
            want = self._local_state(args, repo, result)
        else:
            want, facts = local
            result.update((k, list(v) if isinstance(v, list) else v) for k, v in facts.items())
        commit, snap, subs = want["commit"], want["snapshot"], want["subs"]
        timings["local"] = round(time.monotonic() - t0, 4)
        clean = {"enabled": args["clean"], "ignored": args["clean_ignored"], "exclude": args["clean_exclude"]}
        helper = self.helper

        t1 = time.monotonic()
        if known and known.get("head") and known["head"] != commit and not subs and not clean["enabled"] \
                and known.get("dest") and known.get("home"):
            probe = {"dest": known["dest"], "home": known["home"], "head": known["head"],
                     "branch": known.get("branch"), "has": {}, "submodules": {}, "tree": None, "clean_pending": [],
                     "skipped": True}
        else:
            wanted_commits = [commit] + ([snap["commit"]] if snap else [])
            probe = helper.run("probe", {"dest": args["dest"], "clean": clean,
                                         "want": {"commits": wanted_commits,
                                                  "submodules": [{"path": s["path"], "commit": s["commit"]}
                                                                 for s in subs]}})
        timings["probe"] = round(time.monotonic() - t1, 4)
        if probe.get("failed"):
            return dict(result, failed=True, msg=probe["msg"])
        dest = probe["dest"]
        provenance = dict(want["provenance"], dest=dest)
        sub_state = probe.get("submodules") or {}
        stale_subs = [s["path"] for s in subs
                      if (sub_state.get(s["path"]) or {}).get("head") != s["commit"]
                      or (sub_state.get(s["path"]) or {}).get("tree") != s["tree"]]
        reasons = []
        if probe.get("head") != commit:
            reasons.append("HEAD %s -> %s" % (_short(probe.get("head")) or "(none)", _short(commit)))
        elif probe.get("tree") != want["tree"]:
            reasons.append("work tree differs from %s" % ("the dirty snapshot" if snap else "the commit"))
        if want["branch"] and probe.get("branch") != want["branch"] and probe.get("head"):
            reasons.append("branch %s -> %s" % (probe.get("branch"), want["branch"]))
        if stale_subs:
            reasons.append("submodules: %s" % ", ".join(stale_subs))
        if probe.get("clean_pending"):
            reasons.append("%d untracked path(s) to clean" % len(probe["clean_pending"]))
        out = dict(result, changed=bool(reasons), dest=dest, commit=commit, branch=want["branch"],
                   before=probe.get("head"), provenance=provenance, reasons=reasons, bundle_bytes=0,
                   submodules=provenance["submodules"], dirty=provenance["dirty"],
                   dirty_shipped=provenance["dirty_shipped"], dirty_diff_sha256=provenance["dirty_diff_sha256"],
                   remote_url=provenance["remote_url"], clean_pending=probe.get("clean_pending") or [],
                   timings=timings, home=probe.get("home"), probe_skipped=bool(probe.get("skipped")))
        out["diff"] = {"before": "commit: %s\ntree: %s\n" % (probe.get("head"), probe.get("tree")),
                       "after": "commit: %s\ntree: %s\n" % (commit, want["tree"])}
        if not reasons or self.check_mode:
            timings["total"] = round(time.monotonic() - t0, 4)
            return out

        t1 = time.monotonic()
        payload = self._bundles(repo, want, probe, full=False)
        timings["bundle"] = round(time.monotonic() - t1, 4)
        applied = self._apply(helper, args, want, clean, payload, probe, host, provenance, timings)
        if applied.get("failed") and str(applied.get("msg", "")).startswith("PREREQUISITE_MISSING"):
            # the node changed between probe and apply: send everything
            payload = self._bundles(repo, want, probe, full=True)
            applied = self._apply(helper, args, want, clean, payload, probe, host, provenance, timings)
        if applied.get("failed"):
            return dict(out, failed=True, msg=applied["msg"], changed=False)
        out.update(bundle_bytes=sum(b["size"] for b in payload), head=applied["head"], created=applied["created"],
                   cleaned=applied.get("cleaned") or [], node_timings=applied.get("timings"))
        out["bundles"] = [{"repo": b["repo"] or ".", "size": b["size"], "encoding": b["encoding"] or "bundle"}
                          for b in payload]
        if applied["head"] != commit:
            return dict(out, failed=True, msg="node HEAD %s does not match local %s" % (applied["head"], commit))
        timings["total"] = round(time.monotonic() - t0, 4)
        return out

    def _bundles(self, repo, want, probe, full):
        """The bundles the node lacks: [{repo, size, path}] (repo '' is the workspace itself)."""
        out = []
        has = probe.get("has") or {}
        tips = {"refs/gpuops/commit": want["commit"]}
        if want["snapshot"]:
            tips["refs/gpuops/snapshot"] = want["snapshot"]["commit"]
        if not all(has.get(sha) for sha in tips.values()):
            prereqs = [] if full else [probe.get("head")] + [sha for sha, ok in has.items() if ok]
            path, size, encoding = build_bundle(repo.objects, os.path.join(repo.common_dir, "gpuops", "bundles"),
                                                tips, prereqs, scratch=repo.scratch)
            if path:
                out.append({"repo": "", "size": size, "path": path, "encoding": encoding})
        sub_state = probe.get("submodules") or {}
        for sub in want["subs"]:
            state = sub_state.get(sub["path"]) or {}
            if state.get("has"):
                continue
            prereqs = [] if full else [state.get("head")]
            path, size, encoding = build_bundle(sub["objects"], sub["cache_dir"],
                                                {"refs/gpuops/commit": sub["commit"]}, prereqs)
            if path:
                out.append({"repo": sub["path"], "size": size, "path": path, "encoding": encoding})
        return out

    def _apply(self, helper, args, want, clean, payload, probe, host, provenance, timings):
        total = sum(b["size"] for b in payload)
        if total >= PROGRESS_BYTES:
            # progress on stderr: stdout may be a machine-read document (json callbacks)
            self.progress("%s: sending %.1f MiB of git bundles for %s"
                          % (host, total / 1048576.0, want["commit"][:12]))
        t1 = time.monotonic()
        sent = []
        # a put_file writes as the login user: under become everything goes inline, through the become-aware helper
        as_file = self.transport.become() is None
        for b in payload:
            if b["size"] > INLINE_MAX and as_file:
                # large first deploys go as a file (streamed from disk by the connection), the rest inline
                remote = "%s/.bifrost/tmp/gpuops-%s-%d.bundle" % (probe["home"], want["commit"][:12], os.getpid())
                self.transport.execute("mkdir -p %s/.bifrost/tmp" % shlex.quote(probe["home"]), b" ",
                                       sudoable=False)  # no become here (see as_file)
                self.transport.put_file(b["path"], remote)
                sent.append({"repo": b["repo"], "size": b["size"], "encoding": b["encoding"], "path": remote})
            else:
                sent.append({"repo": b["repo"], "size": b["size"], "encoding": b["encoding"]})
        data = b"".join(_read(b["path"]) for b in payload if b["size"] <= INLINE_MAX or not as_file)
        apply_args = {
            "dest": args["dest"], "commit": want["commit"], "branch": want["branch"], "tree": want["tree"],
            "overlay_tree": want["snapshot"]["tree"] if want["snapshot"] else None, "clean": clean,
            "bundles": sent,
            "submodules": [{"name": s["name"], "path": s["path"], "parent": s["parent"], "commit": s["commit"],
                            "tree": s["tree"]} for s in want["subs"]],
            "record": provenance,
        }
        applied = helper.run("apply", apply_args, payload=data)
        timings["apply"] = round(time.monotonic() - t1, 4)
        return applied
