# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of collect: bring a job's files and declared outputs home, verified. PRIVATE, may change.

One command on the node builds the sha256 manifest; the files the controller does not already hold
verified come over one stream per source (rsync on the connection's SSH ControlPath, or one tar stream from the
node helper); every received file is hashed and compared with the manifest; mismatches are re-hashed on
the node and fetched again, then reported. ``collect.json`` in the destination remembers what is verified,
so a rerun copies nothing that is already there.

Used by the gpu.ops.collect_results action (over the task's connection) and by the gpuops CLI's ``exec`` and
``sync`` (over plain ssh): both pass a transport from ``_node_helper``.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shlex
import shutil
import subprocess
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.gpu.ops.plugins.module_utils._job_runner import JOB_ID_RE
from ansible_collections.gpu.ops.plugins.plugin_utils._collect_node import SECRET_FILES, manifest_text

STATE = "collect.json"
MANIFEST = "manifest.sha256"
PROGRESS_BYTES = 64 << 20


class CollectError(Exception):
    pass


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def hash_many(paths):
    """{path: sha256 or None (missing/unreadable)}, hashed in threads (hashlib releases the GIL)."""
    def one(p):
        try:
            return sha256_file(p)
        except OSError:
            return None
    if not paths:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1, len(paths)))) as pool:
        return dict(zip(paths, pool.map(one, paths)))


def local_path(dest_dir, rel):
    full = os.path.normpath(os.path.join(dest_dir, rel))
    if full != dest_dir and not full.startswith(dest_dir.rstrip(os.sep) + os.sep):
        raise CollectError("refusing a path outside the destination: %r" % rel)
    return full


def atomic_json(path, data):
    tmp = path + ".tmp.%d" % os.getpid()
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def normalize_paths(items, strict_dest=True):
    """paths option -> [{src, dest, required}]; a string is {src: it}. dest defaults to the basename."""
    out = []
    for item in items:
        if isinstance(item, str):
            item = {"src": item}
        if not isinstance(item, dict) or not item.get("src"):
            raise CollectError("each entry of paths must be a path or a dict with src (and optional dest, "
                               "required); got %r" % (item,))
        unknown = set(item) - {"src", "dest", "required"}
        if unknown:
            raise CollectError("unknown key(s) %s in paths entry %r" % (", ".join(sorted(unknown)), item))
        src = str(item["src"])
        dest = str(item.get("dest") or posixpath.basename(src.rstrip("/")) or "")
        norm = posixpath.normpath(dest)
        if strict_dest and (not dest or norm.startswith("..") or posixpath.isabs(norm) or norm == "."):
            raise CollectError("paths entry %r: dest must be a relative path inside the host directory" % (item,))
        out.append({"src": src, "dest": norm, "required": bool(item.get("required", False))})
    return out


def home_relative(src, base):
    """The node path as rsync's remote side sees it (relative paths start in the login directory, the home),
    or None when only the node's shell could say (~user)."""
    path = src if src.startswith(("/", "~")) else posixpath.join(base, src)
    if path == "~":
        return "."
    if path.startswith("~/"):
        return path[2:]
    if path.startswith("~"):
        return None
    return path


def _sha_or_none(path):
    try:
        return sha256_file(path)
    except OSError:
        return None


def read_state(path):
    """collect.json of an earlier collect into this destination ({} when there is none or it is unreadable)."""
    try:
        with open(path) as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def file_record(full, sha):
    """What collect.json remembers of a verified file: its sha256 and the size and mtime it had when verified."""
    st = os.stat(full)
    return {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Run(object):
    """One host's collect: the options, the sources and what the steps found (warnings, missing, timings)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.t0 = time.monotonic()
        self.timings = {}
        self.warnings = []
        self.missing = []


class RsyncStream(object):
    """One rsync pull; each received file is hashed (in ``pool``) while the next ones are still arriving.

    rsync writes a file under a temporary name and renames it when complete, and its receiver works file by
    file: when the next name is logged the previous file is in place. A hash taken too early only costs a
    re-hash: every hash that does not match the manifest is taken again after rsync has exited.
    """

    def __init__(self, cmd, data, local_root, prefix, pool, single=None):
        self.local_root, self.prefix, self.pool, self.single = local_root, prefix, pool, single
        self.hashes = {}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._err = []
        self._last = None
        self._threads = [threading.Thread(target=self._read_out), threading.Thread(target=self._read_err)]
        if data is not None:
            self._threads.append(threading.Thread(target=self._write, args=(data,)))
        for t in self._threads:
            t.daemon = True
            t.start()

    def _write(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.close()
        except OSError:
            pass

    def _read_err(self):
        self._err.append(self.proc.stderr.read())

    def _read_out(self):
        for line in self.proc.stdout:
            name = line.rstrip(b"\n").decode("utf-8", "surrogateescape")
            if not name or name.endswith("/"):
                continue
            if self._last is not None:
                self._hash(self._last)
            self._last = name

    def _hash(self, name):
        rel = self.single or "/".join(p for p in (self.prefix, name) if p)
        try:
            full = local_path(self.local_root, rel)
        except CollectError:
            return
        self.hashes[rel] = self.pool.submit(_sha_or_none, full)

    def wait(self):
        """(rc, stderr, {dest path: sha256}) once rsync has exited and every hash is done."""
        rc = self.proc.wait()
        for t in self._threads:
            t.join()
        if self._last is not None:
            self._hash(self._last)
        return rc, b"".join(self._err).decode("utf-8", "replace"), {k: f.result() for k, f in self.hashes.items()}


class Collector(object):
    """Collect over ``transport`` with the ``collect`` node ``helper``; ``progress`` prints a line for big
    transfers (stderr in Ansible: stdout may be a machine-read document)."""

    def __init__(self, transport, helper, check_mode=False, progress=None):
        self.transport = transport
        self._helper = helper
        self.check_mode = check_mode
        self.progress = progress or (lambda msg: None)

    # ------------------------------------------------------------------------------------------
    def collect(self, result, args, host):
        """Collect for one host (``result``: what the task's result holds so far); returns the result."""
        job_id = args.get("job_id") or None
        if job_id and not JOB_ID_RE.match(job_id):
            raise CollectError("job_id %r is not a valid job id (letters, digits, - and _; at most 128, first a letter "
                               "or digit)" % job_id)
        roots = []
        job_dir = posixpath.join(args["jobs_dir"], job_id) if job_id else None
        if job_dir:
            roots.append({"src": job_dir, "dest": "", "required": False})
        roots.extend(normalize_paths(args["paths"]))
        key = hashlib.sha256(json.dumps([roots, args["exclude"], args["base_dir"]]).encode()).hexdigest()[:12]
        dest_dir = os.path.abspath(os.path.expanduser(args["dest"]))
        run = Run(args=args, roots=roots, job_id=job_id, job_dir=job_dir, dest_dir=dest_dir,
                  state_path=os.path.join(dest_dir, STATE), host=host,
                  margs={"roots": roots, "base": args["base_dir"], "exclude": args["exclude"],
                         "cache_dir": "~/.bifrost/cache/collect/%s-%s" % (job_id or "paths", key),
                         "job_dir": job_dir, "write": not self.check_mode})
        # files arrive one after the other: two hashing threads keep up with any link without crowding the stream
        pool = self._pool = ThreadPoolExecutor(max_workers=2)
        try:
            return self._collect(result, run)
        finally:
            pool.shutdown(wait=True)

    def _collect(self, result, run):
        node, streamed = self._manifest(run)
        self._check_sources(run, node)
        verified, todo, early_fetched = self._local_check(run, node, streamed)
        todo_bytes = sum(f[3] for f in todo)
        method = self._method(run.args["transfer"], node)
        out = dict(result, dest=run.dest_dir, job=node.get("job"), missing=run.missing, skipped_files=node["skipped"],
                   files=len(node["files"]), bytes=sum(f[3] for f in node["files"]), fetched=0, fetched_bytes=0,
                   to_fetch=[f[0] for f in todo][:200], to_fetch_count=len(todo), to_fetch_bytes=todo_bytes,
                   transfer=method, changed=bool(todo or early_fetched), mismatched=[], timings=run.timings,
                   manifest_sha256=node["manifest"]["sha256"], node_manifest=node["manifest"]["path"])
        if run.warnings:
            out["warnings"] = run.warnings
        if self.check_mode:
            run.timings["total"] = round(time.monotonic() - run.t0, 4)
            return out

        os.makedirs(run.dest_dir, exist_ok=True)
        if todo_bytes >= PROGRESS_BYTES:
            # progress on stderr: stdout may be a machine-read document (json callbacks)
            self.progress("%s: fetching %d file(s), %.1f MiB via %s"
                          % (run.host, len(todo), todo_bytes / 1048576.0, method))
        fetch = self._fetch_verified(run, node, method, todo, verified)
        fetch["fetched"] += len(early_fetched)
        fetch["fetched_bytes"] += sum(f[3] for f in early_fetched)
        state = self._write_state(run, node, verified, fetch)
        out.update(fetched=fetch["fetched"], fetched_bytes=fetch["fetched_bytes"], mismatched=fetch["bad"],
                   attempts=fetch["attempt"] + 1, changing=state["changing"], verified=len(state["files"]),
                   manifest=os.path.join(run.dest_dir, MANIFEST), node_timings=node.get("timings"))
        if run.warnings:
            out["warnings"] = run.warnings
        return self._verdict(run, out, fetch)

    def _manifest(self, run):
        """The node's manifest; on a first collect into this destination, rsync copies every source meanwhile
        (both take about as long; the manifest then checks what arrived). Returns (node answer, early hashes)."""
        t1 = time.monotonic()
        early = None
        if not self.check_mode and not os.path.exists(run.state_path) and self.transport.become() is None \
                and run.args["transfer"] in ("auto", "rsync") and self.transport.ssh_argv() and shutil.which("rsync"):
            early = threading.Thread(target=self._early_copy, args=(run.roots, run.args, run.dest_dir))
            early.daemon = True
            self._early = {}
            early.start()
        try:
            node = self._helper.run("manifest", run.margs)
            run.timings["manifest"] = round(time.monotonic() - t1, 4)
        finally:
            if early is not None:
                early.join()
        if early is not None:
            run.timings["early_copy"] = round(time.monotonic() - t1, 4)
        if node.get("failed"):
            raise CollectError(node.get("msg"))
        return node, (self._early if early is not None else {})

    def _check_sources(self, run, node):
        """Warnings for what is missing or skipped; fail on required sources that are missing and on two sources
        that land on the same path."""
        run.missing = [r["src"] for r in node["roots"] if r["kind"] == "missing"]
        required_missing = [r["src"] for r in node["roots"] if r["kind"] == "missing" and r["required"]]
        job = node.get("job")
        if job is not None and not job["exists"]:
            run.warnings.append("job directory %s does not exist on the node (the job never started?); collecting "
                                "what exists" % job["dir"])
        for src in run.missing:
            if src != run.job_dir:
                run.warnings.append("%s does not exist on the node; skipped" % src)
        for item in node["skipped"]:
            if item["reason"] != "symlink":
                run.warnings.append("not collected: %s (%s)" % (item["path"], item["reason"]))
        if required_missing:
            raise CollectError("required path(s) missing on the node: %s" % ", ".join(required_missing))
        seen = {}
        for f in node["files"]:
            if f[0] in seen:
                raise CollectError("two sources map to %s in the destination (%s and %s); give the paths entries "
                                   "distinct dest values" % (f[0], node["roots"][seen[f[0]]]["src"],
                                                             node["roots"][f[1]]["src"]))
            seen[f[0]] = f[1]

    def _local_check(self, run, node, streamed):
        """What the controller already holds verified. Returns (verified {path: record}, manifest rows to fetch,
        rows the early copy brought). A file recorded in collect.json with the same sha256, size and mtime counts as
        verified without hashing it again, unless verify=always."""
        t1 = time.monotonic()
        verified = dict(read_state(run.state_path).get("files") or {})
        dest_dir = run.dest_dir
        wanted = set(f[0] for f in node["files"])
        for rel in streamed:
            if rel not in wanted:  # copied early but not part of the manifest (excluded, reserved, new): remove
                try:
                    os.unlink(local_path(dest_dir, rel))
                except OSError:
                    pass
        early_fetched = [f for f in node["files"] if f[0] in streamed]
        trust_cache = run.args["verify"] != "always"
        todo, recheck = [], []
        for f in node["files"]:
            rel, size, sha = f[0], f[3], f[5]
            full = local_path(dest_dir, rel)
            if streamed.get(rel) == sha:
                verified[rel] = file_record(full, sha)
                continue
            rec = verified.get(rel)
            try:
                st = os.stat(full)
            except OSError:
                st = None
            if trust_cache and st and rec and rec.get("sha256") == sha and rec.get("size") == st.st_size == size \
                    and rec.get("mtime_ns") == st.st_mtime_ns:
                continue
            if st and st.st_size == size:
                recheck.append(f)  # present but not known verified: hash it before fetching again
            else:
                todo.append(f)
        hashes = hash_many([local_path(dest_dir, f[0]) for f in recheck])
        for f in recheck:
            full = local_path(dest_dir, f[0])
            if hashes.get(full) == f[5]:
                verified[f[0]] = file_record(full, f[5])
            else:
                verified.pop(f[0], None)
                todo.append(f)
        run.timings["local_check"] = round(time.monotonic() - t1, 4)
        return verified, todo, early_fetched

    def _fetch_verified(self, run, node, method, todo, verified):
        """Fetch ``todo`` and verify each file; re-hash mismatches on the node and fetch them again, up to
        verify_retries times. Returns {fetched, fetched_bytes, attempt, bad, changing, by_dest}."""
        fetched, fetched_bytes, attempt, bad = 0, 0, 0, []
        by_dest = {f[0]: f for f in node["files"]}
        changed_on_node = set()  # files whose content changed on the node during this collect (still written)
        pending = todo
        t1 = time.monotonic()
        while pending:
            got = self._transfer(method, node["roots"], pending, run.dest_dir, run.args["compress"])
            fetched += len(pending)
            fetched_bytes += sum(f[3] for f in pending)
            bad = []
            for f in pending:
                if got.get(f[0]) == f[5]:
                    verified[f[0]] = file_record(local_path(run.dest_dir, f[0]), f[5])
                else:
                    verified.pop(f[0], None)
                    bad.append({"path": f[0], "expected": f[5], "got": got.get(f[0])})
            if not bad or attempt >= run.args["verify_retries"]:
                break
            attempt += 1
            # re-hash on the node without the cache: a changed hash means the file is being written (or the cache
            # was stale); the same hash means the copy here went wrong. Either way, fetch it again.
            again = self._helper.run("manifest", dict(run.margs, only=[b["path"] for b in bad],
                                                      nocache=[b["path"] for b in bad]))
            node["manifest"] = again["manifest"]
            fresh = {f[0]: f for f in again["files"]}
            for b in bad:
                if b["path"] not in fresh:
                    run.warnings.append("%s vanished on the node during collect" % b["path"])
                    by_dest.pop(b["path"], None)
                elif fresh[b["path"]][5] != by_dest[b["path"]][5]:
                    changed_on_node.add(b["path"])
            by_dest.update(fresh)
            bad = [b for b in bad if b["path"] in fresh]
            pending = [fresh[b["path"]] for b in bad]
        run.timings["transfer_verify"] = round(time.monotonic() - t1, 4)
        # files still changing on the node (a running job's log) cannot be verified: warn, keep the copy, retry next
        # time. A file that stayed the same on the node and still does not verify here is a real failure.
        return {"fetched": fetched, "fetched_bytes": fetched_bytes, "attempt": attempt, "by_dest": by_dest,
                "changing": [b for b in bad if b["path"] in changed_on_node],
                "bad": [b for b in bad if b["path"] not in changed_on_node]}

    def _write_state(self, run, node, verified, fetch):
        """manifest.sha256 and collect.json in the destination."""
        files = sorted(fetch["by_dest"].values())
        text = manifest_text((f[0], f[5]) for f in files)
        with open(os.path.join(run.dest_dir, MANIFEST), "w") as fh:
            fh.write(text)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        changing = fetch["changing"]
        state = {"host": run.host, "job_id": run.job_id, "job": node.get("job"), "collected_at": now,
                 "node_manifest": node["manifest"]["path"],
                 "manifest_sha256": hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest(),
                 "roots": [{k: r[k] for k in ("src", "abs", "dest", "kind")} for r in node["roots"]],
                 "missing": run.missing, "skipped": node["skipped"], "mismatched": fetch["bad"],
                 "changing": [c["path"] for c in changing],
                 "files": {k: v for k, v in verified.items() if k in fetch["by_dest"]}}
        atomic_json(run.state_path, state)
        run.timings["total"] = round(time.monotonic() - run.t0, 4)
        if state["manifest_sha256"] != node["manifest"]["sha256"]:
            run.warnings.append("the manifest written here differs from the node's (%s)" % node["manifest"]["path"])
        if changing:
            run.warnings.append("%d file(s) kept changing on the node while being copied (is the job still running?): "
                                "%s. The copies here are not verified; the next collect fetches them again"
                                % (len(changing), ", ".join(c["path"] for c in changing[:10])))
        return state

    def _verdict(self, run, out, fetch):
        bad = fetch["bad"]
        if not bad:
            return out
        named = "; ".join("%s (node %s, here %s)" % (b["path"], b["expected"][:12], (b["got"] or "nothing")[:12])
                          for b in bad[:10])
        msg = ("checksum mismatch after %d attempt(s) for %d file(s) that did not change on the node: %s. "
               "The copy here does not match the node's file (written to or blocked on the controller, or "
               "corrupted); verified files are kept and a rerun fetches only these"
               % (fetch["attempt"] + 1, len(bad), named))
        if run.args["on_mismatch"] == "fail":
            return dict(out, failed=True, msg=msg)
        out.setdefault("warnings", []).append(msg)
        return out

    # ------------------------------------------------------------------------------------------ transfer
    def _method(self, wanted, node):
        ssh = self.transport.ssh_argv()
        if wanted == "auto":
            if ssh and node["tools"]["rsync"] and shutil.which("rsync"):
                return "rsync"
            wanted = "tar" if ssh else "fetch"
        if wanted == "fetch" and self.transport.become() is not None:
            raise CollectError("transfer=fetch reads files as the login user, not the become user; use an ssh "
                               "connection (rsync or tar honour passwordless sudo) or collect without become")
        if wanted in ("rsync", "tar") and not ssh:
            raise CollectError("transfer=%s needs the ssh connection (this host uses %s)"
                               % (wanted, self.transport.name))
        if wanted == "rsync" and not (node["tools"]["rsync"] and shutil.which("rsync")):
            raise CollectError("transfer=rsync but rsync is missing on the %s"
                               % ("node" if not node["tools"]["rsync"] else "controller"))
        return wanted

    def _transfer(self, method, roots, files, dest_dir, compress):
        """Copy ``files`` (manifest rows) into dest_dir; return {dest path: sha256 of what arrived}."""
        if method == "tar":
            return self._tar(roots, files, dest_dir)
        if method == "rsync":
            got = self._rsync(roots, files, dest_dir, compress)
            # a hash taken while a file was still being replaced is taken again now that rsync is done
            for f in files:
                if got.get(f[0]) != f[5]:
                    got[f[0]] = _sha_or_none(local_path(dest_dir, f[0]))
            return got
        for f in files:
            root = roots[f[1]]
            src = root["abs"] if root["kind"] == "file" else posixpath.join(root["abs"], f[2])
            full = local_path(dest_dir, f[0])
            os.makedirs(os.path.dirname(full), exist_ok=True)
            self.transport.fetch_file(src, full)
        paths = {f[0]: local_path(dest_dir, f[0]) for f in files}
        hashes = hash_many(list(paths.values()))
        return {rel: hashes.get(full) for rel, full in paths.items()}

    def _rsync_base(self, compress):
        ssh = " ".join(shlex.quote(a) for a in self.transport.ssh_argv())
        host = self.transport.host()
        host = "[%s]" % host if ":" in host else host
        sudo = self.transport.stream_become("collect_results (rsync)")
        path = ["--rsync-path=%s rsync" % " ".join(sudo)] if sudo else []
        return host, ["rsync", "-rt", "--partial", "-s", "--out-format=%n", "-e", ssh] + path + (
            ["-z"] if compress else [])

    def _rsync(self, roots, files, dest_dir, compress):
        host, base = self._rsync_base(compress)
        base.append("-I")  # the listed files are wanted whatever their size and mtime say
        groups = {}
        for f in files:
            groups.setdefault(f[1], []).append(f)
        got = {}
        for idx, group in groups.items():
            root = roots[idx]
            if root["kind"] == "file":
                target = local_path(dest_dir, group[0][0])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                stream = RsyncStream(base + ["%s:%s" % (host, root["abs"]), target], None, dest_dir, "", self._pool,
                                     single=group[0][0])
            else:
                target = local_path(dest_dir, root["dest"]) if root["dest"] else dest_dir
                os.makedirs(target, exist_ok=True)
                data = b"\0".join(f[2].encode("utf-8", "surrogateescape") for f in group)
                stream = RsyncStream(base + ["--from0", "--files-from=-", "%s:%s/" % (host, root["abs"]), target + "/"],
                                     data, dest_dir, root["dest"], self._pool)
            rc, err, hashes = stream.wait()
            got.update(hashes)
            # 23/24: some files vanished or could not be read; verification reports which
            if rc not in (0, 23, 24):
                raise CollectError("rsync from %s failed (rc %d): %s" % (root["abs"], rc, err.strip()[-1500:]))
        return got

    def _early_copy(self, roots, args, dest_dir):
        """Copy whole source directories while the node builds the manifest (first collect only).

        Best effort: a source that is a file, missing, or unreachable this way is left to the manifest-driven
        fetch. Files already here with the same size and mtime are skipped by rsync (an interrupted earlier
        run resumes); the local check hashes them.
        """
        try:
            host, base = self._rsync_base(args["compress"])
            os.makedirs(dest_dir, exist_ok=True)
            for root in roots:
                remote = home_relative(root["src"], args["base_dir"])
                if remote is None:
                    continue
                excludes = ["--exclude=" + p for p in args["exclude"]]
                # never bring a job's secret env file over, not even for a moment (the manifest leaves it out too)
                excludes += ["--exclude=/%s%s" % (name, tail) for name in SECRET_FILES for tail in ("", ".tmp-*")]
                if not root["dest"]:
                    excludes += ["--exclude=/%s" % STATE, "--exclude=/%s" % MANIFEST]
                target = local_path(dest_dir, root["dest"]) if root["dest"] else dest_dir
                stream = RsyncStream(base + excludes + ["%s:%s/" % (host, remote.rstrip("/")), target + "/"], None,
                                     dest_dir, root["dest"], self._pool)
                _rc, _err, hashes = stream.wait()
                self._early.update(hashes)
        except (OSError, CollectError):
            pass

    def _tar(self, roots, files, dest_dir):
        listing = []
        for f in files:
            root = roots[f[1]]
            listing.append([root["abs"] if root["kind"] == "file" else posixpath.join(root["abs"], f[2]), f[0]])
        cmd = self._helper.stream_argv("tar", "collect_results (tar)")
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdin.write(json.dumps({"files": listing}).encode("utf-8", "surrogateescape") + b"\n")
        proc.stdin.close()
        got = {}
        expected = {f[0] for f in files}
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    if member.name not in expected or not member.isfile():
                        continue
                    full = local_path(dest_dir, member.name)
                    os.makedirs(os.path.dirname(full), exist_ok=True)
                    src = tar.extractfile(member)
                    h = hashlib.sha256()
                    tmp = full + ".gpuops-partial"
                    with open(tmp, "wb") as fh:
                        while True:
                            chunk = src.read(1 << 20)
                            if not chunk:
                                break
                            h.update(chunk)
                            fh.write(chunk)
                    os.replace(tmp, full)
                    os.utime(full, (member.mtime, member.mtime))
                    got[member.name] = h.hexdigest()
        except tarfile.TarError as exc:
            got["__error__"] = str(exc)
        err = proc.stderr.read().decode("utf-8", "replace")
        rc = proc.wait()
        if rc != 0 and not got:
            raise CollectError("tar stream from the node failed (rc %d): %s" % (rc, err.strip()[-1500:]))
        got.pop("__error__", None)
        return got
