# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node side of gpu.ops.workspace_deploy. PRIVATE to the collection, may change without notice.

The action plugin installs this file (it is never imported on the node) once per version as ``~/.bifrost/bin/gpuops-workspace-<hash>.py``
and runs it with ``python3 <file> <command>``. Standard library only, Python >= 3.9.

Protocol: stdin starts with one JSON line (the arguments); for ``apply`` the rest of stdin is the payload:
the git bundles back to back, their sizes listed in the arguments. The result is one JSON line on stdout;
a failure is ``{"failed": true, "msg": ...}`` with exit code 0, a crash is a traceback and a non-zero code.

Commands:
  probe   what the node has: HEAD, branch, the tree of the work tree, which wanted commits exist,
          submodule HEADs, untracked files that a clean would remove. Read-only.
  apply   fetch the bundles, check out the commit (fetch + checkout -f, i.e. reset --hard), lay the
          dirty snapshot's tree over it (HEAD stays the commit), update submodules, clean, verify,
          record the deploy in .git/gpuops/deployed.json, remove the bundles.
  remove  delete a workspace this helper deployed (one with .git/gpuops/deployed.json; anything else is refused):
          a home-lab or ssh host's per-run workspace once the run's results are home.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

STATE_FILE = "gpuops/deployed.json"
REF_PREFIX = "refs/gpuops/"


class HelperError(Exception):
    pass


def _env():
    env = dict(os.environ)
    # never prompt, never pick up a pager, keep messages parseable
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"})
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    env.pop("GIT_INDEX_FILE", None)
    return env


def git(args, cwd, check=True, env=None, text=True):
    """Run git; return stdout (stripped text). Raise HelperError with git's message on failure."""
    proc = subprocess.run(["git"] + list(args), cwd=cwd, env=env or _env(), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if check and proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise HelperError("git %s failed in %s: %s" % (" ".join(args[:3]), cwd, err or "exit %d" % proc.returncode))
    if not text:
        return proc
    return proc.stdout.decode("utf-8", "replace").strip()


def git_ok(args, cwd):
    return subprocess.run(["git"] + list(args), cwd=cwd, env=_env(), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0


def expand(path):
    return os.path.abspath(os.path.expanduser(path))


def is_repo_root(path):
    """True when ``path`` is the top of its own work tree (a checkout or an initialized submodule)."""
    if not os.path.exists(os.path.join(path, ".git")):
        return False
    top = git(["rev-parse", "--show-toplevel"], path, check=False, text=False)
    if top.returncode != 0:
        return False
    return os.path.realpath(top.stdout.decode("utf-8", "replace").strip()) == os.path.realpath(path)


def head_of(path):
    if not is_repo_root(path):
        return None
    out = git(["rev-parse", "-q", "--verify", "HEAD^{commit}"], path, check=False, text=False)
    return out.stdout.decode().strip() if out.returncode == 0 else None


def branch_of(path):
    out = git(["symbolic-ref", "-q", "--short", "HEAD"], path, check=False, text=False)
    return out.stdout.decode().strip() if out.returncode == 0 else None


def has_commit(path, sha):
    return bool(sha) and git_ok(["cat-file", "-e", sha + "^{commit}"], path)


def worktree_tree(path):
    """Tree id of the work tree for every path in the index (untracked files are not part of it).

    Uses a copy of the real index so stat data is reused and only changed files are hashed; the real
    index is not touched. Equal to the deployed tree exactly when the checkout is intact.
    """
    gitdir = git(["rev-parse", "--absolute-git-dir"], path)
    fd, tmp_index = tempfile.mkstemp(prefix="index.gpuops.", dir=gitdir)
    os.close(fd)
    try:
        real = os.path.join(gitdir, "index")
        if os.path.exists(real):
            shutil.copyfile(real, tmp_index)
        else:
            os.unlink(tmp_index)
        env = _env()
        env["GIT_INDEX_FILE"] = tmp_index
        git(["add", "-u", "--", "."], path, env=env)
        return git(["write-tree"], path, env=env)
    finally:
        if os.path.exists(tmp_index):
            os.unlink(tmp_index)


def clean_args(clean):
    args = ["clean", "-d"]
    if clean.get("ignored"):
        args.append("-x")
    for pat in clean.get("exclude") or []:
        args += ["-e", pat]
    return args


def clean_pending(path, clean):
    out = git(clean_args(clean) + ["-n"], path)
    return [line[len("Would remove "):] for line in out.splitlines() if line.startswith("Would remove ")]


def read_state(path):
    try:
        gitdir = git(["rev-parse", "--absolute-git-dir"], path)
        with open(os.path.join(gitdir, STATE_FILE)) as fh:
            return json.load(fh)
    except (OSError, ValueError, HelperError):
        return None


def write_state(path, state):
    gitdir = git(["rev-parse", "--absolute-git-dir"], path)
    target = os.path.join(gitdir, STATE_FILE)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".tmp.%d" % os.getpid()
    with open(tmp, "w") as fh:
        json.dump(state, fh, indent=1, sort_keys=True)
    os.replace(tmp, target)


def git_version():
    try:
        out = subprocess.run(["git", "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    except OSError:
        return None
    return out.stdout.decode().strip().replace("git version ", "") if out.returncode == 0 else None


# ---------------------------------------------------------------------------------------------- probe

def probe(args):
    dest = expand(args["dest"])
    want = args.get("want") or {}
    result = {"dest": dest, "home": expand("~"), "git": git_version(), "exists": os.path.isdir(dest), "is_repo": False, "head": None,
              "branch": None, "has": {}, "tree": None, "submodules": {}, "clean_pending": [], "state": None}
    if not result["git"]:
        return {"failed": True, "msg": "git is not installed on the node (it is needed to deploy the workspace)"}
    if not result["exists"] or not is_repo_root(dest):
        result["empty"] = not result["exists"] or not os.listdir(dest)
        return result
    result["is_repo"] = True
    result["head"] = head_of(dest)
    result["branch"] = branch_of(dest)
    for sha in want.get("commits") or []:
        result["has"][sha] = has_commit(dest, sha)
    result["state"] = read_state(dest)
    if result["head"]:
        result["tree"] = worktree_tree(dest)
    for sub in want.get("submodules") or []:
        sub_path = os.path.join(dest, sub["path"])
        info = {"head": head_of(sub_path), "has": False}
        if info["head"] is not None:
            info["has"] = has_commit(sub_path, sub["commit"])
            info["tree"] = worktree_tree(sub_path)
        result["submodules"][sub["path"]] = info
    clean = args.get("clean") or {}
    if clean.get("enabled"):
        result["clean_pending"] = clean_pending(dest, clean)
    return result


# ---------------------------------------------------------------------------------------------- apply

def read_payload(stream, bundles, tmpdir):
    """Write each bundle of the payload to its own file; return {repo path: file}.

    An entry is ``size`` bytes of stdin, or a file sent ahead (``path``, large bundles); encoding "zlib"
    means those bytes are one zlib stream of the bundle (first deploys), inflated while written.
    """
    files = {}
    for i, item in enumerate(bundles):
        target = os.path.join(tmpdir, "b%d.bundle" % i)
        source = open(expand(item["path"]), "rb") if item.get("path") else stream
        inflate = zlib.decompressobj() if item.get("encoding") == "zlib" else None
        remaining = int(item["size"])
        try:
            with open(target, "wb") as fh:
                while remaining:
                    chunk = source.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise HelperError("payload ended early: bundle %d is %d bytes short" % (i, remaining))
                    remaining -= len(chunk)
                    fh.write(inflate.decompress(chunk) if inflate else chunk)
                if inflate:
                    fh.write(inflate.flush())
                    if not inflate.eof:
                        raise HelperError("bundle %d: the zlib stream is incomplete" % i)
        except zlib.error as exc:
            raise HelperError("bundle %d: corrupt zlib stream: %s" % (i, exc)) from exc
        finally:
            if source is not stream:
                source.close()
                os.unlink(expand(item["path"]))
        files[item["repo"]] = target
    return files


def fetch_bundle(repo, bundle, git_dir=None):
    pre = ["--git-dir=" + git_dir] if git_dir else []
    proc = git(pre + ["fetch", "-q", "--no-recurse-submodules", "--no-write-fetch-head", bundle,
                      "+%s*:%s*" % (REF_PREFIX, REF_PREFIX)], repo, check=False, text=False)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        if "prerequisite" in err or "requires this ref" in err or "lacks these prerequisite" in err:
            raise HelperError("PREREQUISITE_MISSING: " + err)
        raise HelperError("git fetch of the bundle failed in %s: %s" % (repo, err))


def ensure_repo(dest):
    if os.path.isdir(dest) and is_repo_root(dest):
        return False
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise HelperError("%s exists and is not a git checkout; remove it or choose another workspace_dest" % dest)
    os.makedirs(dest, exist_ok=True)
    git(["-c", "init.defaultBranch=gpuops", "init", "-q", dest], os.path.dirname(dest) or "/")
    return True


def checkout(dest, commit, branch, tree):
    if branch and git_ok(["check-ref-format", "--branch", branch], dest):
        git(["checkout", "-q", "-f", "-B", branch, commit], dest)
    else:
        git(["checkout", "-q", "-f", "--detach", commit], dest)
    if tree:
        # lay the dirty snapshot over the commit: index + work tree become the tree, HEAD stays the commit
        git(["read-tree", "--reset", "-u", tree], dest)


def update_submodule(dest, sub, bundle):
    parent = os.path.join(dest, sub["parent"]) if sub.get("parent") else dest
    rel = sub["path"][len(sub["parent"]) + 1:] if sub.get("parent") else sub["path"]
    sub_path = os.path.join(dest, sub["path"])
    if bundle:
        modules_dir = os.path.join(git(["rev-parse", "--absolute-git-dir"], parent), "modules", sub["name"])
        if is_repo_root(sub_path):
            fetch_bundle(sub_path, bundle)
        elif os.path.isdir(modules_dir):
            # absorbed git dir without a checkout: give it the objects, submodule update checks out
            fetch_bundle(parent, bundle, git_dir=modules_dir)
        else:
            # first time: git clones the submodule from its configured URL, here the bundle
            git(["config", "submodule.%s.url" % sub["name"], bundle], parent)
    git(["-c", "protocol.file.allow=always", "submodule", "update", "--init", "--checkout", "--force", "--",
         rel], parent)
    if bundle and not has_commit(sub_path, sub["commit"]):
        raise HelperError("submodule %s: commit %s missing after update" % (sub["path"], sub["commit"]))


def apply(args, stream):
    tmp_root = expand(args.get("tmp_dir") or "~/.bifrost/tmp")
    os.makedirs(tmp_root, mode=0o700, exist_ok=True)
    tmpdir = tempfile.mkdtemp(prefix="workspace-", dir=tmp_root)
    try:
        result = _apply(args, stream, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    if os.path.exists(tmpdir):
        return {"failed": True, "msg": "could not remove the bundles in %s" % tmpdir}
    return result


def _apply(args, stream, tmpdir):
    t0 = time.monotonic()
    timings = {}
    dest = expand(args["dest"])
    bundles = read_payload(stream, args.get("bundles") or [], tmpdir)
    timings["receive"] = round(time.monotonic() - t0, 4)
    before = head_of(dest) if os.path.isdir(dest) else None
    created = ensure_repo(dest)
    if "" in bundles:
        fetch_bundle(dest, bundles[""])
    commit, tree = args["commit"], args.get("overlay_tree")
    if not has_commit(dest, commit):
        raise HelperError("commit %s is not on the node and no bundle carried it" % commit)
    t1 = time.monotonic()
    checkout(dest, commit, args.get("branch"), tree)
    timings["checkout"] = round(time.monotonic() - t1, 4)
    t1 = time.monotonic()
    for sub in args.get("submodules") or []:
        update_submodule(dest, sub, bundles.get(sub["path"]))
    timings["submodules"] = round(time.monotonic() - t1, 4)
    removed = []
    clean = args.get("clean") or {}
    if clean.get("enabled"):
        removed = clean_pending(dest, clean)
        if removed:
            git(clean_args(clean) + ["-f", "-q"], dest)
    # verify: HEAD is the commit, the work tree is the wanted tree, every submodule is at its commit
    head = head_of(dest)
    problems = []
    if head != commit:
        problems.append("HEAD is %s, expected %s" % (head, commit))
    got_tree = worktree_tree(dest)
    if got_tree != args["tree"]:
        problems.append("work tree is %s, expected %s" % (got_tree, args["tree"]))
    for sub in args.get("submodules") or []:
        sub_path = os.path.join(dest, sub["path"])
        sub_head = head_of(sub_path)
        if sub_head != sub["commit"]:
            problems.append("submodule %s is at %s, expected %s" % (sub["path"], sub_head, sub["commit"]))
        elif worktree_tree(sub_path) != sub["tree"]:
            problems.append("submodule %s has local changes after the update" % sub["path"])
    if problems:
        return {"failed": True, "msg": "workspace verification failed: " + "; ".join(problems)}
    state = dict(args.get("record") or {})
    state.update({"commit": commit, "tree": args["tree"], "overlay_tree": tree,
                  "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    write_state(dest, state)
    timings["total"] = round(time.monotonic() - t0, 4)
    return {"changed": True, "dest": dest, "head": head, "before": before,
            "created": created, "tree": got_tree, "branch": branch_of(dest), "cleaned": removed,
            "timings": timings}


def remove(args):
    dest = expand(args["dest"])
    if not os.path.exists(dest):
        return {"changed": False, "dest": dest, "msg": "%s is not there" % dest}
    if not os.path.isfile(os.path.join(dest, ".git", STATE_FILE)):
        raise HelperError("%s is not a workspace gpu.ops deployed (no .git/%s): left alone" % (dest, STATE_FILE))
    if not args.get("check_mode"):
        shutil.rmtree(dest)
    return {"changed": True, "dest": dest, "msg": "%s removed" % dest}


# ---------------------------------------------------------------------------------------------- main

def main(argv=None, stdin=None, stdout=None):
    argv = sys.argv[1:] if argv is None else argv
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout
    command = argv[0] if argv else ""
    header = stdin.readline()
    try:
        args = json.loads(header.decode("utf-8") if header else "{}")
        if command == "probe":
            result = probe(args)
        elif command == "apply":
            result = apply(args, stdin)
        elif command == "remove":
            result = remove(args)
        else:
            result = {"failed": True, "msg": "unknown command %r" % command}
    except HelperError as exc:
        result = {"failed": True, "msg": str(exc)}
    stdout.write(json.dumps(result) + "\n")
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
