# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of gpu.ops.workspace_deploy: the local repository. PRIVATE to the collection.

Everything here reads the user's repository and never writes to its refs, index or object store:
the dirty snapshot and the refs a bundle needs live in a throw-away bare "scratch" repository that
borrows the real objects through ``objects/info/alternates``. Built bundles are cached under
``<git dir>/gpuops/bundles`` (keyed by tips and prerequisites) so parallel forks build each once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import zlib

SNAPSHOT_IDENTITY = {
    "GIT_AUTHOR_NAME": "gpu.ops", "GIT_AUTHOR_EMAIL": "gpuops@localhost", "GIT_AUTHOR_DATE": "@0 +0000",
    "GIT_COMMITTER_NAME": "gpu.ops", "GIT_COMMITTER_EMAIL": "gpuops@localhost", "GIT_COMMITTER_DATE": "@0 +0000",
}
BUNDLE_CACHE_TTL = 24 * 3600
# above this much history, a first deploy reuses git's compressed objects instead of re-packing everything
FULL_RECOMPRESS_MAX_KIB = 512 * 1024


class GitError(Exception):
    pass


def git_env(extra=None):
    env = dict(os.environ)
    for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
              "GIT_COMMON_DIR", "GIT_NAMESPACE"):
        env.pop(k, None)
    env.update({"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"})
    env.update(extra or {})
    return env


def run_git(args, cwd, env=None, raw=False, check=True):
    try:
        proc = subprocess.run(["git"] + list(args), cwd=cwd, env=env or git_env(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    except OSError as exc:
        raise GitError("git is not installed on the controller: %s" % exc) from exc
    if check and proc.returncode != 0:
        raise GitError("git %s: %s" % (" ".join(str(a) for a in args[:4]),
                                       proc.stderr.decode("utf-8", "replace").strip() or "exit %d" % proc.returncode))
    if raw:
        return proc
    return proc.stdout.decode("utf-8", "surrogateescape").strip()


def sanitize_url(url):
    """Drop credentials from a remote URL (https://user:token@host/x -> https://host/x)."""
    if not url:
        return url
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url)


class Scratch(object):
    """A temporary bare repository that sees ``objects_dir`` through alternates."""

    def __init__(self, objects_dir):
        self.dir = tempfile.mkdtemp(prefix="gpuops-scratch-")
        run_git(["init", "-q", "--bare", self.dir], cwd=self.dir)
        with open(os.path.join(self.dir, "objects", "info", "alternates"), "w") as fh:
            fh.write(objects_dir + "\n")
        self.objects = os.path.join(self.dir, "objects")
        self.alternate = objects_dir

    def env(self, extra=None):
        env = git_env({"GIT_DIR": self.dir})
        env.update(extra or {})
        return env

    def git(self, args, cwd=None, raw=False, check=True, env=None):
        return run_git(args, cwd or self.dir, env=self.env(env), raw=raw, check=check)

    def has_commit(self, sha):
        return bool(sha) and self.git(["cat-file", "-e", sha + "^{commit}"], raw=True, check=False).returncode == 0

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalRepo(object):
    def __init__(self, path):
        path = os.path.abspath(path)
        if not os.path.isdir(path):
            raise GitError("workspace source %s is not a directory" % path)
        # one git call: paths relative to ``path`` come back for the common dir and --git-path
        proc = run_git(["rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir", "--git-path",
                        "objects", "--git-path", "index"], cwd=path, raw=True, check=False)
        lines = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
        if proc.returncode != 0 or len(lines) != 5:
            raise GitError("workspace source %s is not inside a git repository (with a work tree)" % path)
        self.top, self.git_dir = lines[0], lines[1]
        self.common_dir, self.objects, self.index = (os.path.normpath(os.path.join(path, p)) for p in lines[2:])
        self._scratch = None

    def git(self, args, raw=False, check=True, env=None):
        return run_git(args, self.top, env=env, raw=raw, check=check)

    @property
    def scratch(self):
        if self._scratch is None:
            self._scratch = Scratch(self.objects)
        return self._scratch

    def close(self):
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None

    # ------------------------------------------------------------------ what is deployed
    def resolve(self, version):
        proc = self.git(["rev-parse", "-q", "--verify", version + "^{commit}"], raw=True, check=False)
        if proc.returncode != 0:
            raise GitError("version %r is not a commit in %s" % (version, self.top))
        return proc.stdout.decode().strip()

    def head(self):
        proc = self.git(["rev-parse", "-q", "--verify", "HEAD^{commit}"], raw=True, check=False)
        if proc.returncode != 0:
            raise GitError("%s has no commits yet; commit something before deploying" % self.top)
        return proc.stdout.decode().strip()

    def branch(self, version):
        if version == "HEAD":
            proc = self.git(["symbolic-ref", "-q", "--short", "HEAD"], raw=True, check=False)
            return proc.stdout.decode().strip() or None
        proc = self.git(["show-ref", "-q", "--verify", "refs/heads/" + version], raw=True, check=False)
        return version if proc.returncode == 0 else None

    def remote_url(self, branch):
        remote = None
        if branch:
            remote = self.git(["config", "--get", "branch.%s.remote" % branch], check=False) or None
        for name in ([remote] if remote else []) + ["origin"]:
            proc = self.git(["remote", "get-url", name], raw=True, check=False)
            if proc.returncode == 0:
                return sanitize_url(proc.stdout.decode().strip())
        return None

    def tree_of(self, commit):
        return self.scratch.git(["rev-parse", commit + "^{tree}"])

    # ------------------------------------------------------------------ uncommitted changes
    def snapshot(self, commit):
        """Snapshot the work tree (tracked changes + untracked, not ignored files) without touching the repo.

        Returns None when the work tree equals ``commit``; else a dict with the tree, a deterministic
        snapshot commit whose parent is ``commit``, the changed paths and the sha256 of the binary diff.
        """
        scratch = self.scratch
        index = os.path.join(scratch.dir, "snapshot.index")
        if os.path.exists(self.index):
            shutil.copyfile(self.index, index)  # keeps stat data: only changed files are hashed
        env = git_env({"GIT_INDEX_FILE": index, "GIT_OBJECT_DIRECTORY": scratch.objects,
                       "GIT_ALTERNATE_OBJECT_DIRECTORIES": self.objects})
        try:
            run_git(["add", "-A", "--", "."], self.top, env=env)
            tree = run_git(["write-tree"], self.top, env=env)
        finally:
            if os.path.exists(index):
                os.unlink(index)
        if tree == self.tree_of(commit):
            return None
        names = scratch.git(["diff-tree", "-r", "-z", "--no-renames", "--name-status", commit, tree], raw=True)
        parts = names.stdout.decode("utf-8", "surrogateescape").split("\0")
        changes = [{"status": parts[i], "path": parts[i + 1]} for i in range(0, len(parts) - 1, 2)]
        diff = scratch.git(["diff-tree", "-r", "-p", "--binary", "--full-index", "--no-renames", "--no-color",
                            commit, tree], raw=True).stdout
        snap = scratch.git(["commit-tree", tree, "-p", commit, "-m", "gpu.ops: uncommitted changes"],
                           env=SNAPSHOT_IDENTITY)
        return {"tree": tree, "commit": snap, "changes": changes, "diff_sha256": hashlib.sha256(diff).hexdigest(),
                "diff_bytes": len(diff)}

    def dirty_submodules(self):
        """Paths of submodules whose own work tree has changes (a snapshot records only their HEAD)."""
        out = self.git(["status", "--porcelain=v2", "-z", "--ignore-submodules=none", "--untracked-files=normal"],
                       raw=True).stdout.decode("utf-8", "surrogateescape")
        paths = []
        for rec in out.split("\0"):
            fields = rec.split(" ")
            if rec.startswith("1 ") and len(fields) >= 9 and fields[2].startswith("S") and fields[2][2:] != "..":
                paths.append(rec.split(" ", 8)[8])
        return paths

    # ------------------------------------------------------------------ submodules
    def submodules(self, tree, prefix="", repo_dir=None, scratch=None):
        """Submodules of ``tree`` (recursively), parents first: name, path, parent, commit, tree, objects."""
        scratch = scratch or self.scratch
        repo_dir = repo_dir or self.top
        listing = scratch.git(["ls-tree", "-r", "-z", tree], raw=True).stdout.decode("utf-8", "surrogateescape")
        links = []
        for rec in listing.split("\0"):
            if rec.startswith("160000 commit "):
                meta, path = rec.split("\t", 1)
                links.append((path, meta.split()[2]))
        if not links:
            return []
        names = {}
        proc = scratch.git(["config", "-z", "--blob", tree + ":.gitmodules", "--get-regexp", r"^submodule\..*\.path$"],
                           raw=True, check=False)
        for rec in proc.stdout.decode("utf-8", "surrogateescape").split("\0"):
            if "\n" in rec:
                key, value = rec.split("\n", 1)
                names[value] = key[len("submodule."):-len(".path")]
        out = []
        for path, commit in links:
            local = os.path.join(repo_dir, path)
            full = prefix + path
            proc = run_git(["rev-parse", "--show-toplevel"], local, raw=True, check=False) if os.path.isdir(local) \
                else None
            if proc is None or proc.returncode != 0 or \
                    os.path.realpath(proc.stdout.decode().strip()) != os.path.realpath(local):
                raise GitError("submodule %s is not initialized on the controller; run "
                               "'git submodule update --init --recursive' (or set workspace_submodules: false)" % full)
            objects = os.path.normpath(os.path.join(local, run_git(["rev-parse", "--git-path", "objects"], local)))
            sub_scratch = Scratch(objects)
            try:
                if not sub_scratch.has_commit(commit):
                    raise GitError("submodule %s: commit %s is not in the local submodule repository; run "
                                   "'git submodule update --init --recursive'" % (full, commit))
                sub_tree = sub_scratch.git(["rev-parse", commit + "^{tree}"])
                common = run_git(["rev-parse", "--git-common-dir"], local)
                item = {"name": names.get(path, path), "path": full, "parent": prefix[:-1], "commit": commit,
                        "tree": sub_tree, "objects": objects,
                        "cache_dir": os.path.join(os.path.normpath(os.path.join(local, common)), "gpuops", "bundles")}
                out.append(item)
                out.extend(self.submodules(sub_tree, prefix=full + "/", repo_dir=local, scratch=sub_scratch))
            finally:
                sub_scratch.close()
        return out


# ---------------------------------------------------------------------------------------------- bundles

def build_bundle(objects_dir, cache_dir, tips, prereqs, scratch=None):
    """A bundle with refs ``tips`` ({ref: sha}) that leaves out what ``prereqs`` reach.

    Prerequisites that are not in the local repository are dropped (the bundle then carries more).
    Returns (path, size, encoding) or (None, 0, None) when nothing is missing; encoding is None for a plain
    bundle file, "zlib" for a full bundle sent as one zlib stream (see _full_bundle_zlib). Cached: the same
    request reuses the file.
    """
    own = scratch is None
    scratch = scratch or Scratch(objects_dir)
    try:
        known = sorted(set(p for p in prereqs if p and scratch.has_commit(p)))
        key = hashlib.sha256(json.dumps([objects_dir, sorted(tips.items()), known]).encode()).hexdigest()[:32]
        os.makedirs(cache_dir, exist_ok=True)
        _prune(cache_dir)
        path = os.path.join(cache_dir, key + ".bundle")
        zpath = path + ".zlib"
        empty = path + ".empty"
        with open(os.path.join(cache_dir, key + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # forks deploying the same range wait for the first one's bundle
            for p, encoding in ((path, None), (zpath, "zlib")):
                if os.path.exists(p):
                    os.utime(p)
                    return p, os.path.getsize(p), encoding
            if os.path.exists(empty):
                return None, 0, None
            if not known and _pack_kib(scratch) <= FULL_RECOMPRESS_MAX_KIB:
                tmp = zpath + ".tmp.%d" % os.getpid()
                _full_bundle_zlib(scratch, tips, tmp)
                os.replace(tmp, zpath)
                return zpath, os.path.getsize(zpath), "zlib"
            for ref, sha in tips.items():
                scratch.git(["update-ref", ref, sha])
            tmp = path + ".tmp.%d" % os.getpid()
            proc = scratch.git(["bundle", "create", "-q", tmp] + sorted(tips) + ["^" + p for p in known],
                               raw=True, check=False)
            if proc.returncode != 0:
                err = proc.stderr.decode("utf-8", "replace").strip()
                if "empty bundle" in err:
                    open(empty, "w").close()
                    return None, 0, None
                raise GitError("git bundle create: " + err)
            os.replace(tmp, path)
            return path, os.path.getsize(path), None
    finally:
        if own:
            scratch.close()


def _pack_kib(scratch):
    """Size of the repository's objects (packed + loose, KiB), as git count-objects reports it."""
    out = run_git(["count-objects", "-v"], scratch.dir, env=git_env({"GIT_DIR": scratch.dir,
                                                                    "GIT_OBJECT_DIRECTORY": scratch.alternate}))
    sizes = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return int(sizes.get("size-pack", 0)) + int(sizes.get("size", 0))


def _full_bundle_zlib(scratch, tips, target):
    """A full bundle (v2: header + pack) whose pack stores objects uncompressed, written as one zlib stream.

    git compresses every object on its own; one stream over the whole pack also finds what similar files
    share, so a first deploy of a source tree is smaller on the wire than the per-object pack (and than
    ``rsync -z`` of the work tree). The node decompresses while it receives.
    """
    header = "# v2 git bundle\n" + "".join("%s %s\n" % (sha, ref) for ref, sha in sorted(tips.items())) + "\n"
    comp = zlib.compressobj(9)
    cmd = ["git", "-c", "pack.compression=0", "-c", "core.compression=0", "pack-objects", "--revs", "--stdout", "-q",
           "--no-reuse-object", "--delta-base-offset"]
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen(cmd, cwd=scratch.dir, env=scratch.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=devnull)
    proc.stdin.write(("\n".join(sorted(set(tips.values()))) + "\n").encode())
    proc.stdin.close()
    with open(target, "wb") as out:
        out.write(comp.compress(header.encode()))
        while True:
            chunk = proc.stdout.read(1 << 20)
            if not chunk:
                break
            out.write(comp.compress(chunk))
        out.write(comp.flush())
    proc.stdout.close()
    if proc.wait() != 0:
        raise GitError("git pack-objects failed (rc %d) for %s" % (proc.returncode, ", ".join(sorted(tips))))


def _prune(cache_dir):
    now = time.time()
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return
    for name in names:
        p = os.path.join(cache_dir, name)
        try:
            if now - os.path.getmtime(p) > BUNDLE_CACHE_TTL:
                os.unlink(p)
        except OSError:
            pass
