# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node side of gpu.ops.collect_results. PRIVATE to the collection, may change without notice.

Installed by the action plugin as ``~/.bifrost/bin/gpuops-collect-<hash>.py``; standard library only,
Python >= 3.9. Arguments arrive as one JSON line on stdin.

Commands:
  manifest  list the regular files under the job directory and the declared paths, sha256 each one
            (reusing a per-job hash cache keyed by size/mtime/ctime/inode, hashing in threads), write the
            manifest (``sha256sum`` format, paths as laid out on the controller) and answer with it as JSON.
  tar       stream the listed files as one uncompressed tar on stdout (the fallback when rsync is missing).
  ckpt_prepare  the other direction, for gpu.ops.checkpoint_push: make a run's checkpoint directory, remove every
            ``step-*`` but the one kept, answer with its absolute path and the sha256 of the files the kept
            checkpoint already has here.
  ckpt_receive  unpack a tar stream (after the arguments on stdin) into the kept checkpoint: only the files
            announced, each verified against its sha256 before it takes its name; files not announced are removed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

RESERVED = ("manifest.sha256", "collect.json")
# Files of a job directory that hold secrets: the env files the runner deletes once read (left behind when a
# runner died first) and their temporary names while being written. Never collected.
SECRET_FILES = ("env", "bootstrap.env")
JOB_MARKERS = ("metadata.json", "bootstrap.json")
# as in module_utils/_job_runner.py (this helper is installed on its own and imports nothing of the collection)
ACTIVE_STATUSES = ("starting", "bootstrapping", "running")
SESSION_PREFIX = "bifrost-"
CHUNK = 1 << 20


def expand(path, base=None):
    path = os.path.expanduser(path)
    if base and not os.path.isabs(path):
        path = os.path.join(os.path.expanduser(base), path)
    return os.path.abspath(path)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def manifest_line(sha, path):
    """One line in ``sha256sum`` format (names with a backslash or newline are escaped as sha256sum does)."""
    if "\\" in path or "\n" in path:
        return "\\%s  %s\n" % (sha, path.replace("\\", "\\\\").replace("\n", "\\n"))
    return "%s  %s\n" % (sha, path)


def manifest_text(files):
    """files: iterable of (dest path, sha256)."""
    return "".join(manifest_line(sha, path) for path, sha in sorted(files))


def excluded(rel, patterns):
    name = os.path.basename(rel)
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def join_dest(*parts):
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def secret_file(name):
    return any(name == s or name.startswith(s + ".tmp-") for s in SECRET_FILES)


def is_job_dir(root):
    """The job root (no dest), or a declared path that is a job directory."""
    return not root["dest"] or any(os.path.exists(os.path.join(root["abs"], m)) for m in JOB_MARKERS)


def walk_root(index, root, patterns, skipped):
    """Yield (dest path, root index, path relative to the root's dir, abs path, stat) for regular files."""
    path = root["abs"]
    if root["kind"] == "file":
        st = os.lstat(path)
        yield join_dest(root["dest"]), index, os.path.basename(path), path, st
        return
    job_dir = is_job_dir(root)
    for dirpath, dirnames, filenames in os.walk(path):
        rel_dir = os.path.relpath(dirpath, path)
        rel_dir = "" if rel_dir == "." else rel_dir
        for d in list(dirnames):
            full = os.path.join(dirpath, d)
            rel = join_dest(rel_dir, d)
            if os.path.islink(full):
                skipped.append({"path": join_dest(root["dest"], rel), "reason": "symlink"})
                dirnames.remove(d)
            elif excluded(rel, patterns):
                dirnames.remove(d)
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = join_dest(rel_dir, name)
            dest = join_dest(root["dest"], rel)
            if excluded(rel, patterns):
                continue
            if not root["dest"] and not rel_dir and name in RESERVED:
                skipped.append({"path": dest, "reason": "reserved name (written by collect)"})
                continue
            if job_dir and not rel_dir and secret_file(name):
                skipped.append({"path": dest, "reason": "secret env file (never collected)"})
                continue
            try:
                st = os.lstat(full)
            except OSError as exc:
                skipped.append({"path": dest, "reason": "unreadable: %s" % exc})
                continue
            if stat.S_ISLNK(st.st_mode):
                skipped.append({"path": dest, "reason": "symlink"})
            elif not stat.S_ISREG(st.st_mode):
                skipped.append({"path": dest, "reason": "not a regular file"})
            elif not os.access(full, os.R_OK):
                skipped.append({"path": dest, "reason": "unreadable: permission denied"})
            else:
                yield dest, index, rel, full, st


def load_cache(path):
    try:
        with open(path) as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def read_small(path, limit=4096):
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace").strip()
    except OSError:
        return None


def session_alive(name):
    """True/False whether tmux session ``name`` has a live pane; None when tmux cannot say."""
    if not shutil.which("tmux"):
        return False  # no tmux: no session either
    env = dict(os.environ)
    env.pop("TMUX", None)
    env.pop("TMUX_PANE", None)
    try:
        res = subprocess.run(["tmux", "list-panes", "-s", "-t", "=%s:" % name, "-F", "#{pane_dead}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=20,
                             universal_newlines=True, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    # non-zero: no server or no such session (as gpu.ops.job_info reads it)
    return res.returncode == 0 and "0" in res.stdout.split()


def job_info(job_abs, write):
    """The job's status as gpu.ops.job_info computes it: a status that is not final while the job's tmux session
    is gone is ``lost`` (recorded in the status file when ``write``, as job_info/job_wait do)."""
    status_file = os.path.join(job_abs, "status")
    raw = read_small(status_file)
    status = raw
    if raw in ACTIVE_STATUSES and session_alive(SESSION_PREFIX + os.path.basename(job_abs)) is False:
        status = read_small(status_file)  # it may have finished between the two looks
        if status in ACTIVE_STATUSES:
            status = "lost"
            if write:
                reason = os.path.join(job_abs, "lost_reason")
                if read_small(reason) is None:
                    _atomic_write(reason, ("the tmux session %s%s is gone and the job recorded no final status\n"
                                           % (SESSION_PREFIX, os.path.basename(job_abs))).encode())
                _atomic_write(status_file, b"lost\n")
    return {"dir": job_abs, "exists": os.path.isdir(job_abs), "status": status,
            "exit_code": read_small(os.path.join(job_abs, "exit_code"))}


def classify_root(item, base):
    """A source as the manifest describes it: src, abs, dest, required and kind (dir, file, symlink, missing)."""
    src_abs = expand(item["src"], base)
    root = {"src": item["src"], "abs": src_abs, "dest": item.get("dest") or "", "required": bool(item.get("required"))}
    if os.path.islink(src_abs):
        root["kind"] = "symlink"
    elif os.path.isdir(src_abs):
        root["kind"] = "dir"
    elif os.path.isfile(src_abs):
        root["kind"] = "file"
    else:
        root["kind"] = "missing"
    return root


def hash_entries(entries, cache, nocache, skipped):
    """{dest: sha256} of the walked entries, from the cache where size/mtime/ctime/inode match, else hashed in
    threads; plus the bytes taken from the cache and the dests hashed now."""
    todo, results, cached_bytes = [], {}, 0
    for dest, _idx, _rel, full, st in entries:
        key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        hit = cache.get(full)
        if dest not in nocache and isinstance(hit, list) and len(hit) == 5 and hit[:4] == key:
            results[dest] = hit[4]
            cached_bytes += st.st_size
        else:
            todo.append((dest, full))
    hashed = {}
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1, len(todo)))) as pool:
            futures = {dest: pool.submit(sha256_file, full) for dest, full in todo}
            for dest, fut in futures.items():
                try:
                    hashed[dest] = fut.result()
                except OSError as exc:
                    skipped.append({"path": dest, "reason": "unreadable: %s" % exc})
    results.update(hashed)
    return results, cached_bytes, hashed


def manifest(args):
    t0 = time.monotonic()
    base = args.get("base") or "~"
    patterns = args.get("exclude") or []
    only = set(args["only"]) if args.get("only") is not None else None
    nocache = set(args.get("nocache") or [])
    skipped = []
    # the job's status first: a job found lost is recorded as lost before its status file is listed
    job = job_info(expand(args["job_dir"], base), args.get("write")) if args.get("job_dir") else None
    roots = [classify_root(item, base) for item in args.get("roots") or []]
    entries = []
    for i, root in enumerate(roots):
        if root["kind"] in ("dir", "file"):
            for entry in walk_root(i, root, patterns, skipped):
                if only is None or entry[0] in only:
                    entries.append(entry)
        elif root["kind"] == "symlink":
            skipped.append({"path": root["dest"] or root["src"], "reason": "symlink"})

    cache_dir = expand(args.get("cache_dir") or "~/.bifrost/cache/collect/default")
    cache_file = os.path.join(cache_dir, "hashes.json")
    cache = load_cache(cache_file)
    t_walk = time.monotonic() - t0
    results, cached_bytes, hashed = hash_entries(entries, cache, nocache, skipped)
    files, new_cache, hashed_bytes = [], {}, 0
    for dest, idx, rel, full, st in entries:
        if dest not in results:
            continue
        sha = results[dest]
        files.append([dest, idx, rel, st.st_size, st.st_mtime_ns, sha])
        new_cache[full] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, sha]
        if dest in hashed:
            hashed_bytes += st.st_size
    files.sort()
    out = {"roots": roots, "files": files, "skipped": skipped, "hashed_bytes": hashed_bytes,
           "cached_bytes": cached_bytes, "home": expand("~"),
           "tools": {"rsync": bool(shutil.which("rsync"))}}
    if job is not None:
        out["job"] = job
    entries_file = os.path.join(cache_dir, "entries.json")
    if only is None:
        listed = dict((f[0], f[5]) for f in files)
    else:
        # a retry of some files: merge their fresh hashes into the full manifest of the last run
        listed = load_cache(entries_file)
        for gone in only - set(f[0] for f in files):
            listed.pop(gone, None)
        listed.update((f[0], f[5]) for f in files)
        cache.update(new_cache)
        new_cache = cache
    text = manifest_text(listed.items()).encode("utf-8", "surrogateescape")
    out["manifest"] = {"sha256": hashlib.sha256(text).hexdigest(), "path": None}
    if args.get("write"):
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        target = os.path.join(cache_dir, "manifest.sha256")
        _atomic_write(target, text)
        _atomic_write(entries_file, json.dumps(listed).encode())
        _atomic_write(cache_file, json.dumps(new_cache).encode())
        out["manifest"]["path"] = target
    out["timings"] = {"walk": round(t_walk, 4), "total": round(time.monotonic() - t0, 4)}
    return out


def _atomic_write(path, data):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def stream_tar(args, out):
    """Write the listed files ([abs path, name in the archive]) as a tar stream to ``out``."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for full, name in args.get("files") or []:
            try:
                fh = open(full, "rb")
            except OSError:
                continue  # vanished or unreadable: the controller finds it missing and reports it
            with fh:
                info = tar.gettarinfo(arcname=name, fileobj=fh)
                if not info.isfile():
                    continue
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, fh)


def tree_hashes(root):
    """{path relative to root: sha256} of the regular files under ``root`` (symlinks are not followed)."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                out[os.path.relpath(full, root)] = sha256_file(full)
    return out


def _ckpt_name(keep):
    if keep and (keep != os.path.basename(keep) or not keep.startswith("step-")):
        raise ValueError("checkpoint name %r is not step-<N>" % keep)
    return keep


def ckpt_prepare(args):
    root = expand(args["dest"])
    keep = _ckpt_name(args.get("keep") or "")
    check = bool(args.get("check_mode"))
    pruned = []
    if os.path.isdir(root) and args.get("prune"):
        pruned = sorted(n for n in os.listdir(root) if n.startswith("step-") and n != keep)
        for name in pruned if not check else ():
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    if not check:
        os.makedirs(root, mode=0o700, exist_ok=True)
    kept = os.path.join(root, keep) if keep else None
    have = tree_hashes(kept) if kept and os.path.isdir(kept) else {}
    return {"dir": root, "pruned": pruned, "have": have}


def _receive_member(tar, member, target, want):
    """Write one announced regular file under a temporary name, verify it, then give it its name."""
    full = os.path.join(target, member.name)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    tmp = full + ".gpuops-partial"
    h = hashlib.sha256()
    src = tar.extractfile(member)
    with open(tmp, "wb") as fh:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            h.update(chunk)
            fh.write(chunk)
    if h.hexdigest() != want:
        os.unlink(tmp)
        raise ValueError("%s arrived with sha256 %s, expected %s" % (member.name, h.hexdigest(), want))
    os.replace(tmp, full)
    return member.size


def ckpt_receive(args, stdin):
    target = os.path.join(expand(args["dest"]), _ckpt_name(args["name"]))
    files = args.get("files") or {}
    got, size = [], 0
    with tarfile.open(fileobj=stdin, mode="r|") as tar:
        for member in tar:
            name = os.path.normpath(member.name)
            if not member.isfile() or name not in files or name.startswith(("/", "..")) or name in got:
                continue  # only what was announced, never outside the checkpoint
            size += _receive_member(tar, member, target, files[name])
            got.append(name)
    for rel in set(tree_hashes(target)) - set(files):  # the checkpoint holds exactly what was chosen
        os.unlink(os.path.join(target, rel))
    return {"received": sorted(got), "bytes": size}


def main(argv=None, stdin=None, stdout=None):
    argv = sys.argv[1:] if argv is None else argv
    stdin = stdin or sys.stdin.buffer
    command = argv[0] if argv else ""
    header = stdin.readline()
    args = json.loads(header.decode("utf-8") if header else "{}")
    if command == "tar":
        stream_tar(args, stdout or sys.stdout.buffer)
        return 0
    stdout = stdout or sys.stdout
    if command == "manifest":
        result = manifest(args)
    elif command in ("ckpt_prepare", "ckpt_receive"):
        try:
            result = ckpt_prepare(args) if command == "ckpt_prepare" else ckpt_receive(args, stdin)
        except (OSError, ValueError, tarfile.TarError) as exc:
            result = {"failed": True, "msg": "%s: %s" % (command, exc)}
    else:
        result = {"failed": True, "msg": "unknown command %r" % command}
    stdout.write(json.dumps(result) + "\n")
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
