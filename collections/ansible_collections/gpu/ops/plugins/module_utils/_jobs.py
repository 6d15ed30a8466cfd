# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node-side logic of gpu.ops.job, gpu.ops.job_bootstrap, gpu.ops.job_info and gpu.ops.job_wait.

PRIVATE to the collection, may change without notice. Standard library only (this runs on the node, Python >= 3.9,
inside the ``jobs`` helper: ``plugins/plugin_utils/_jobs_node.py``). The process in each tmux session is
``_job_runner``, started from that same installed helper (``<python> <helper> runner run|bootstrap JOB_DIR``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

from ansible_collections.gpu.ops.plugins.module_utils import _job_runner as runner
from ansible_collections.gpu.ops.plugins.module_utils._job_runner import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    JOB_ID_RE,
    read_bootstrap_flag,
    read_json,
    read_text,
    write_atomic,
)

DEFAULT_ROOT = "~/.bifrost"
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEP_FILES = ("uv.lock", "pyproject.toml", "requirements.txt", ".python-version")


class JobError(Exception):
    """A problem to report to the user as a task failure."""


# ---------------------------------------------------------------------------------------------- names and paths
def validate_job_id(job_id):
    if job_id == "":
        raise JobError("invalid job_id '': the job id is empty (set tmux_job_id, or job_id for the modules)")
    if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
        raise JobError("invalid job_id %r: use letters, digits, '-' and '_' (at most 128, first a letter or digit); "
                       "tmux session names cannot hold '.' or ':'" % (job_id,))
    return job_id


def validate_env(env):
    bad = [k for k in (env or {}) if not ENV_NAME_RE.match(str(k))]
    if bad:
        raise JobError("invalid environment variable names: %s" % ", ".join(sorted(bad)))
    return dict((str(k), "" if v is None else str(v)) for k, v in (env or {}).items())


def session_name(job_id):
    return runner.SESSION_PREFIX + job_id


def bootstrap_session_name(job_id):
    return runner.SESSION_PREFIX + job_id + runner.BOOTSTRAP_SUFFIX


class Paths(object):
    """Where jobs live, and the command that starts the runner (``runner`` + ``run|bootstrap JOB_DIR``): on a node
    the installed helper (``[python, helper, "runner"]``), elsewhere (unit tests) the runner's own file."""

    def __init__(self, root=None, runner_argv=None):
        self.root = os.path.abspath(os.path.expanduser(root or DEFAULT_ROOT))
        self.jobs = os.path.join(self.root, "jobs")
        self.cache = os.path.join(self.root, "cache")
        self.runner_argv = list(runner_argv or [sys.executable, os.path.abspath(runner.__file__)])

    def job_dir(self, job_id):
        return os.path.join(self.jobs, validate_job_id(job_id))

    def ensure(self):
        for d in (self.root, self.jobs, self.cache):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.jobs, 0o700)


def expand(path):
    return os.path.abspath(os.path.expanduser(path))


# ---------------------------------------------------------------------------------------------- tmux
def tmux_bin():
    path = shutil.which("tmux")
    if not path:
        raise JobError("tmux is not installed on this node (apt-get install tmux / dnf install tmux)")
    return path


# A client that reaches a server which is just exiting (its last session ended, e.g. a bootstrap that
# finished at once) gets one of these; trying again starts a fresh server.
TMUX_SERVER_RACE = ("server exited unexpectedly", "lost server", "server exited")


def tmux_new_session(name, workdir, argv, attempts=6):
    cmd = [tmux_bin(), "new-session", "-d", "-s", name, "-c", workdir, "-x", "220", "-y", "50"] + list(argv)
    delay = 0.05
    for attempt in range(1, attempts + 1):
        # not module.run_command: tmux must run without TMUX/TMUX_PANE, which environ_update cannot remove
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                             env=runner.tmux_env(), timeout=30, universal_newlines=True, check=False)
        if res.returncode == 0:
            return
        err = (res.stderr or res.stdout).strip()
        if attempt > 1 and err.startswith("duplicate session"):
            return  # job names are unique: the session is the one an earlier attempt created
        if attempt == attempts or not any(m in err for m in TMUX_SERVER_RACE):
            raise JobError("tmux new-session -s %s failed (rc %d): %s" % (name, res.returncode, err))
        time.sleep(delay)  # backoff before asking a fresh server
        delay *= 2


def live_sessions():
    """Names of sessions whose pane still runs; one tmux call for any number of jobs."""
    if not shutil.which("tmux"):
        return set()
    try:
        res = subprocess.run(["tmux", "list-panes", "-a", "-F", "#{session_name}\t#{pane_dead}"],  # pylint: disable=ansible-bad-function
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=runner.tmux_env(), timeout=20,
                             universal_newlines=True, check=False)
    except (OSError, subprocess.SubprocessError):
        return set()
    if res.returncode != 0:  # "no server running": no sessions
        return set()
    alive = set()
    for line in res.stdout.splitlines():
        name, _sep, dead = line.partition("\t")
        if dead.strip() == "0":
            alive.add(name)
    return alive


# ---------------------------------------------------------------------------------------------- reading jobs
def tail_lines(path, n):
    """The last ``n`` lines of a file without reading all of it."""
    if n <= 0:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            block = 8192
            data = b""
            pos = size
            while pos > 0 and data.count(b"\n") <= n:
                step = min(block, pos)
                pos -= step
                fh.seek(pos)
                data = fh.read(step) + data
                block *= 2
    except OSError:
        return []
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")  # not splitlines(): a progress bar's \r redraws a line, it does not start one
    if lines and lines[-1] == "":
        lines.pop()
    return [runner.last_line(line) if "\r" in line or "\x1b" in line else line for line in lines[-n:]]


def _int_file(path):
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _str_file(path):
    text = read_text(path)
    return text.strip() if text is not None else None


def bootstrap_state(job_dir, job_id, sessions):
    """none | running | done | failed | timeout | lost, with exit code and whether it was a cached skip."""
    flag = read_bootstrap_flag(job_dir)
    planned = os.path.exists(os.path.join(job_dir, "bootstrap.json"))
    info = {"session": bootstrap_session_name(job_id), "log": os.path.join(job_dir, "bootstrap.log"),
            "exit_code": None, "cached": False}
    if flag is not None:
        info["exit_code"] = flag["exit_code"]
        info["cached"] = bool(flag.get("cached"))
        if flag["ok"]:
            info["state"] = "done"
        else:
            info["state"] = "timeout" if flag["reason"] == "timeout" else "failed"
            info["reason"] = flag["reason"]
    elif not planned:
        info["state"] = "none"
    elif info["session"] in sessions:
        info["state"] = "running"
    elif read_bootstrap_flag(job_dir) is not None:
        return bootstrap_state(job_dir, job_id, sessions)
    else:
        info["state"] = "lost"
    return info


def read_job(job_dir, sessions=None, log_lines=0, bootstrap_log_lines=0, persist=False):
    """Status of one job from its files; ``sessions`` is a live_sessions() snapshot taken after a first look.

    Never infers success: ``succeeded`` needs the runner's final status and an exit code of 0; a status that
    is not final while the session is gone is ``lost``. With ``persist`` the first reader that finds a job lost
    records it in the ``status`` file (and why, in ``lost_reason``), so the record a user keeps says so too.
    """
    job_id = os.path.basename(job_dir.rstrip("/"))
    meta = read_json(os.path.join(job_dir, "metadata.json"), {}) or {}
    raw = _str_file(os.path.join(job_dir, "status"))
    sess = session_name(job_id)
    if sessions is None:
        sessions = live_sessions()
    session_alive = sess in sessions
    if raw not in FINAL_STATUSES and not session_alive:
        raw = _str_file(os.path.join(job_dir, "status"))  # it may have finished between our two looks
    warnings = []
    if raw in FINAL_STATUSES:
        status = raw
    elif not meta and raw is None:
        status = None  # a directory that only holds a bootstrap (no job was started for this id)
    elif session_alive:
        status = raw if raw in ACTIVE_STATUSES else "starting"
    else:
        status = "lost"
    exit_code = _int_file(os.path.join(job_dir, "exit_code")) if status in FINAL_STATUSES else None
    if status == "succeeded" and exit_code != 0:
        warnings.append("status file says succeeded but exit_code is %r: reported as failed" % (exit_code,))
        status = "failed"
    pid = _int_file(os.path.join(job_dir, "pid"))
    log = os.path.join(job_dir, "job.log")
    tail = tail_lines(log, max(log_lines, 5))
    info = {
        "job_id": job_id,
        "job_dir": job_dir,
        "status": status,
        "final": status in FINAL_STATUSES,
        "exit_code": exit_code,
        "created_at": meta.get("created_at"),
        "started_at": _str_file(os.path.join(job_dir, "started_at")),
        "ended_at": _str_file(os.path.join(job_dir, "ended_at")),
        "pid": pid,
        "pid_alive": runner.pid_alive(pid) if pid else False,
        "session": sess,
        "session_alive": session_alive,
        "log": log,
        "log_tail": tail[-log_lines:] if log_lines > 0 else [],
        "last_line": runner.last_line("\n".join(line for line in tail if not line.startswith("==== BIFROST "))),
        "command": meta.get("command"),
        "workdir": meta.get("workdir"),
        "name": meta.get("name"),
        "metadata": meta.get("metadata") or {},
        "env_names": meta.get("env_names") or [],
        "kill_requested": os.path.exists(os.path.join(job_dir, "kill_requested")),
        "bootstrap": bootstrap_state(job_dir, job_id, sessions),
    }
    if status == "lost":
        recorded = _str_file(os.path.join(job_dir, "lost_reason"))
        info["lost_reason"] = recorded or ("the tmux session %s is gone and the job recorded no final status" % sess)
        crash = _str_file(os.path.join(job_dir, "runner.err"))
        if crash and "; runner error: " not in info["lost_reason"]:
            info["lost_reason"] += "; runner error: " + crash.splitlines()[-1]
        if persist and raw != "lost":
            _record_lost(job_dir, info["lost_reason"], recorded)
    if bootstrap_log_lines > 0:
        info["bootstrap"]["log_tail"] = tail_lines(info["bootstrap"]["log"], bootstrap_log_lines)
    if warnings:
        info["warnings"] = warnings
    info["duration_s"] = _duration(info["started_at"], info["ended_at"])
    return info


def _record_lost(job_dir, reason, recorded):
    """Write ``lost`` into the status file (the runner can no longer do it). A runner that is in fact still
    finishing replaces it with its final status, as it writes that file last."""
    try:
        if not recorded:
            write_atomic(os.path.join(job_dir, "lost_reason"), reason + "\n")
        write_atomic(os.path.join(job_dir, "status"), "lost\n")
    except OSError:
        pass  # a read-only job dir (another user's): report lost without recording it


def _epoch(stamp):
    if not stamp:
        return None
    try:
        import calendar

        return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return None


def _duration(started, ended):
    a = _epoch(started)
    if a is None:
        return None
    b = _epoch(ended) if ended else time.time()
    return None if b is None else max(0, int(b - a))


def list_jobs(paths, log_lines=0, name=None, persist=False):
    try:
        ids = sorted(d for d in os.listdir(paths.jobs) if JOB_ID_RE.match(d)
                     and os.path.isdir(os.path.join(paths.jobs, d)))
    except OSError:
        ids = []
    sessions = live_sessions()
    out = []
    for job_id in ids:
        info = read_job(os.path.join(paths.jobs, job_id), sessions, log_lines, persist=persist)
        if info["status"] is None:
            continue
        if name and info.get("name") != name:
            continue
        out.append(info)
    out.sort(key=lambda j: (j.get("created_at") or "", j["job_id"]))
    return out


# ---------------------------------------------------------------------------------------------- starting jobs
def start_job(paths, job_id, command, workdir, env, bootstrap="auto", bootstrap_timeout=600, kill_grace=10,
              shell="/bin/bash", name=None, metadata=None, check_mode=False):
    """Create the job directory and its tmux session. Returns (changed, info). Never touches an existing job."""
    job_dir = paths.job_dir(job_id)
    meta_path = os.path.join(job_dir, "metadata.json")
    existing = read_json(meta_path)
    if existing is not None:
        if existing.get("command") != command:
            raise JobError("job %s already exists on this node with a different command; use a new job id "
                           "(existing sessions are never replaced)" % job_id)
        return False, read_job(job_dir)
    workdir = expand(workdir)
    if not os.path.isdir(workdir):
        raise JobError("workdir %s does not exist on this node (deploy the workspace first, e.g. with "
                       "gpu.ops.workspace, or set the workdir)" % workdir)
    sess = session_name(job_id)
    if runner.tmux_session_alive(sess):
        raise JobError("a tmux session %s already exists without a job record; refusing to reuse the name" % sess)
    env = validate_env(env)
    wait = bootstrap == "wait" or (bootstrap == "auto" and (
        os.path.exists(os.path.join(job_dir, "bootstrap.json")) or read_bootstrap_flag(job_dir) is not None))
    if check_mode:
        return True, {"job_id": job_id, "job_dir": job_dir, "status": None, "session": sess,
                      "bootstrap": {"state": "wait" if wait else "none"}}
    paths.ensure()
    os.makedirs(os.path.join(job_dir, "outputs"), exist_ok=True)
    os.chmod(job_dir, 0o700)
    if "PATH" not in env and os.environ.get("PATH"):
        # the job sees the PATH Ansible sees, whatever environment the tmux server was started with
        env = dict(env, PATH=os.environ["PATH"])
    write_atomic(os.path.join(job_dir, "env"), json.dumps(env), 0o600)
    write_atomic(os.path.join(job_dir, "command.sh"), command.rstrip("\n") + "\n", 0o600)
    spec = {"job_id": job_id, "workdir": workdir, "shell": shell, "kill_grace": kill_grace,
            "bootstrap_wait": bool(wait), "bootstrap_session": bootstrap_session_name(job_id),
            "bootstrap_timeout": bootstrap_timeout}
    write_atomic(os.path.join(job_dir, "spec.json"), json.dumps(spec, indent=1) + "\n")
    meta = {"job_id": job_id, "name": name or job_id, "command": command, "workdir": workdir,
            "session": sess, "bootstrap_session": spec["bootstrap_session"] if wait else None,
            "created_at": runner.utcnow(), "host": _hostname(), "user": _user(),
            "runner_version": runner.RUNNER_VERSION, "env_names": sorted(env), "shell": shell,
            "metadata": metadata or {}}
    write_atomic(os.path.join(job_dir, "status"), "starting\n")
    write_atomic(meta_path, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    try:
        tmux_new_session(sess, workdir, paths.runner_argv + ["run", job_dir])
        _confirm_started(job_dir, os.path.join(job_dir, "pid"), sess)
    except JobError:
        _undo_start(job_dir, sess)
        raise
    return True, read_job(job_dir)


# what start_job and a runner that never got going write. A bootstrap's files in the same directory stay, and so do
# job.log and runner.err for the post-mortem: without metadata and status the directory is no job to job_info.
JOB_START_FILES = ("env", "command.sh", "spec.json", "status", "metadata.json", "pid", "child_pid", "started_at")


def _undo_start(job_dir, sess):
    """A start that failed leaves no job behind (job_info would list it as lost for ever): stop a runner that
    may still come up, then remove what the start wrote."""
    runner.tmux_kill_session(sess)
    for name in JOB_START_FILES:
        try:
            os.unlink(os.path.join(job_dir, name))
        except OSError:
            pass
    for d in (os.path.join(job_dir, "outputs"), job_dir):
        try:
            os.rmdir(d)  # only when empty
        except OSError:
            pass


def _confirm_started(job_dir, pidfile, sess, timeout=15.0):
    """Wait until the runner has written its pid (it has read the env file by then) or its session died."""
    def up():
        return os.path.exists(pidfile) or not runner.tmux_session_alive(sess)

    runner.wait_until(up, timeout, first=0.01, cap=0.2)
    if os.path.exists(pidfile):
        return
    crash = _str_file(os.path.join(job_dir, "runner.err"))
    if runner.tmux_session_alive(sess):
        raise JobError("the runner in tmux session %s did not start within %ds" % (sess, timeout))
    raise JobError("the runner in tmux session %s exited at once%s" % (
        sess, (": " + crash.splitlines()[-1]) if crash else ""))


def _hostname():
    import socket

    return socket.gethostname()


def _user():
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", "")


# ---------------------------------------------------------------------------------------------- killing jobs
def kill_job(paths, job_id, grace=10.0, check_mode=False):
    """Stop a job: TERM to the runner (it stops the command and records ``killed``), KILL after ``grace``.

    Returns (changed, info). A job that already has a final status is left alone.
    """
    job_dir = paths.job_dir(job_id)
    info = read_job(job_dir)
    if info["status"] is None and info["bootstrap"]["state"] == "none":
        raise JobError("no job %s on this node (%s)" % (job_id, job_dir))
    bs_pid = _int_file(os.path.join(job_dir, "bootstrap.pid"))
    child_pid = _int_file(os.path.join(job_dir, "child_pid"))
    bootstrap_running = info["bootstrap"]["state"] == "running"
    pid = info["pid"]
    runner_alive = bool(pid) and runner.pid_alive(pid) and _is_runner(pid, job_dir)
    # a lost job can still have processes: a runner killed hard leaves its command's process group behind
    job_running = info["status"] in ACTIVE_STATUSES or (info["status"] == "lost" and (
        runner_alive or _job_group_alive(child_pid, job_dir)))
    if not job_running and not bootstrap_running:
        return False, info
    if check_mode:
        return True, info
    if info["status"] is not None:
        write_atomic(os.path.join(job_dir, "kill_requested"), runner.utcnow() + "\n")
    if job_running and runner_alive:
        _stop_runner(job_dir, pid, grace)
    if child_pid and _job_group_alive(child_pid, job_dir):
        runner.stop_group(child_pid, grace)
    if bootstrap_running or (bs_pid and _is_runner(bs_pid, job_dir)):
        _stop_bootstrap(job_dir, job_id, bs_pid, grace)
    if info["status"] is not None and not _final(job_dir):
        # the runner could not record it (killed hard, or never started): record it for it
        write_atomic(os.path.join(job_dir, "exit_code"), "%d\n" % runner.EXIT_KILL)
        write_atomic(os.path.join(job_dir, "ended_at"), runner.utcnow() + "\n")
        write_atomic(os.path.join(job_dir, "status"), "killed\n")
    runner.tmux_kill_session(session_name(job_id))
    return True, read_job(job_dir)


def _stop_runner(job_dir, pid, grace):
    """TERM the job's runner (it stops the command and records ``killed``); KILL it when it has not after grace."""
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        pass
    runner.wait_until(lambda: _final(job_dir) or not runner.pid_alive(pid), grace + 5)
    if not _final(job_dir) and runner.pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        runner.wait_until(lambda: not runner.pid_alive(pid), 5)


def _stop_bootstrap(job_dir, job_id, bs_pid, grace):
    """Stop the bootstrap's runner and session; record ``bootstrap_failed`` (killed) when it recorded nothing."""
    if bs_pid and runner.pid_alive(bs_pid):
        try:
            os.kill(bs_pid, signal.SIGTERM)
        except OSError:
            pass
        runner.wait_until(lambda: read_bootstrap_flag(job_dir) is not None or not runner.pid_alive(bs_pid),
                          grace + 5)
        if runner.pid_alive(bs_pid):
            runner.signal_group(bs_pid, signal.SIGKILL)
    runner.tmux_kill_session(bootstrap_session_name(job_id))
    if read_bootstrap_flag(job_dir) is None:
        write_atomic(os.path.join(job_dir, "bootstrap_failed"),
                     json.dumps({"exit_code": runner.EXIT_KILL, "reason": "killed", "at": runner.utcnow()}) + "\n")


def _final(job_dir):
    return _str_file(os.path.join(job_dir, "status")) in FINAL_STATUSES


def _job_group_alive(pgid, job_dir):
    """True while process group ``pgid`` is still this job's command (not a reused pid): a member's environment
    holds BIFROST_JOB_DIR=<job_dir>, which the runner gives the command."""
    if not pgid or not runner.group_alive(pgid):
        return False
    if not os.path.isdir("/proc"):
        return True
    marker = ("BIFROST_JOB_DIR=%s" % job_dir).encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as fh:
                fields = fh.read().rsplit(")", 1)[-1].split()
            if len(fields) < 3 or fields[2] != str(pgid) or fields[0] == "Z":
                continue
            with open("/proc/%s/environ" % name, "rb") as fh:
                if marker in fh.read().split(b"\0"):
                    return True
        except OSError:
            continue
    return False


def _is_runner(pid, job_dir):
    """Guard against pid reuse: the process must be our runner for this job directory."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            args = fh.read().split(b"\0")
    except OSError:
        return runner.pid_alive(pid)  # no /proc (macOS home lab): trust the pid file
    return job_dir.encode() in args


# ---------------------------------------------------------------------------------------------- bootstrap
def find_uv():
    for cand in (shutil.which("uv"), os.path.expanduser("~/.local/bin/uv"), os.path.expanduser("~/.cargo/bin/uv")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def _has_project_table(pyproject):
    text = read_text(pyproject) or ""
    return re.search(r"^\s*\[project\]\s*$", text, re.M) is not None


def plan_bootstrap(workdir, command=None, python="python3", venv=".venv", uv=None,
                   system_site_packages=False, hash_files=()):
    """What the bootstrap will run and the hash that decides whether it can be skipped.

    Returns dict(kind, script, files, hash, venv_python). ``kind`` is one of custom, uv-sync, uv-pip,
    pip-project, pip-requirements, none.
    """
    has = dict((f, os.path.isfile(os.path.join(workdir, f))) for f in DEP_FILES)
    project = has["pyproject.toml"] and _has_project_table(os.path.join(workdir, "pyproject.toml"))
    venv_q = shlex.quote(venv)
    vpy = "%s/bin/python" % venv_q
    ssp = " --system-site-packages" if system_site_packages else ""
    steps = []
    if command:
        kind = "custom"
        script = command.rstrip("\n") + "\n"
    else:
        if uv and (has["uv.lock"] or project):
            kind = "uv-sync"
            uvq = shlex.quote(uv)
            if venv != ".venv":
                steps.append("export UV_PROJECT_ENVIRONMENT=%s" % venv_q)
            steps.append("%s sync%s" % (uvq, " --frozen" if has["uv.lock"] else ""))
        elif uv and has["requirements.txt"]:
            kind = "uv-pip"
            uvq = shlex.quote(uv)
            steps.append("[ -x %s ] || %s venv%s %s" % (vpy, uvq, ssp, venv_q))
            steps.append("%s pip install --python %s -r requirements.txt" % (uvq, vpy))
        elif project or has["requirements.txt"]:
            kind = "pip-project" if project else "pip-requirements"
            steps.append("[ -x %s ] || %s -m venv%s %s" % (vpy, shlex.quote(python), ssp, venv_q))
            if project:
                steps.append("%s -m pip install -e ." % vpy)
            else:
                steps.append("%s -m pip install -r requirements.txt" % vpy)
        else:
            kind = "none"
        # each step is echoed, then run; the first failure ends the script with its exit code
        script = "".join("echo %s\n%s || exit $?\n" % (shlex.quote("+ " + s), s) for s in steps)
    files = [f for f in DEP_FILES if has[f]]
    for extra in hash_files or ():
        if extra not in files:
            files.append(extra)
    h = hashlib.sha256()
    h.update(("kind=%s\nscript=%s\npython=%s\nvenv=%s\nssp=%s\n" % (
        kind, script, python, venv, system_site_packages)).encode())
    for f in files:
        data = b""
        try:
            with open(os.path.join(workdir, f), "rb") as fh:
                data = fh.read()
        except OSError:
            data = b"<missing>"
        h.update(("\0file:%s\0" % f).encode() + hashlib.sha256(data).hexdigest().encode())
    venv_python = None
    if kind not in ("custom", "none"):
        venv_python = os.path.join(workdir, venv, "bin", "python")
    return {"kind": kind, "script": script, "files": files, "hash": h.hexdigest(), "venv_python": venv_python}


def cache_file(paths, workdir):
    key = hashlib.sha256(os.path.realpath(workdir).encode()).hexdigest()[:16]
    return os.path.join(paths.cache, "bootstrap", "%s.json" % key)


def start_bootstrap(paths, job_id, workdir, command=None, timeout=600, force=False, env=None, python="python3",
                    venv=".venv", system_site_packages=False, hash_files=(), kill_grace=10, shell="/bin/bash",
                    check_mode=False):
    """Start (or skip, when the dependency hash is unchanged) the bootstrap of ``job_id``.

    Returns (changed, result) with result['outcome'] in started, skipped, nothing, existing.
    """
    job_dir = paths.job_dir(job_id)
    sess = bootstrap_session_name(job_id)
    if not check_mode and _stale_bootstrap(job_dir, job_id, workdir, command, python, venv, system_site_packages,
                                           hash_files):
        _forget_bootstrap(job_dir)
    if os.path.exists(os.path.join(job_dir, "bootstrap.json")) or read_bootstrap_flag(job_dir) is not None:
        spec = read_json(os.path.join(job_dir, "bootstrap.json"), {}) or {}
        state = bootstrap_state(job_dir, job_id, live_sessions())
        return False, {"outcome": "existing", "job_id": job_id, "job_dir": job_dir, "session": sess,
                       "kind": spec.get("kind"), "hash": spec.get("hash"), "state": state["state"],
                       "exit_code": state["exit_code"], "cached": state["cached"]}
    workdir = expand(workdir)
    if not os.path.isdir(workdir):
        raise JobError("workdir %s does not exist on this node (deploy the workspace first, e.g. with "
                       "gpu.ops.workspace, or set the workdir)" % workdir)
    env = validate_env(env)
    plan = plan_bootstrap(workdir, command, python, venv, find_uv(), system_site_packages, hash_files)
    cfile = cache_file(paths, workdir)
    cached = read_json(cfile, {}) or {}
    venv_ok = plan["venv_python"] is None or os.path.exists(plan["venv_python"])
    unchanged = cached.get("hash") == plan["hash"] and venv_ok
    result = {"job_id": job_id, "job_dir": job_dir, "session": sess, "kind": plan["kind"], "hash": plan["hash"],
              "files": plan["files"], "cache_file": cfile, "previous_hash": cached.get("hash"),
              "script": plan["script"]}
    spec = {"job_id": job_id, "workdir": workdir, "timeout": timeout, "kind": plan["kind"], "hash": plan["hash"],
            "cache_file": cfile, "shell": shell, "kill_grace": kill_grace, "created_at": runner.utcnow()}
    if plan["kind"] == "none" or (unchanged and not force):
        why = ("nothing to bootstrap: no uv.lock, pyproject.toml [project] or requirements.txt in %s" % workdir
               if plan["kind"] == "none" else
               "dependencies unchanged since the last successful bootstrap (sha256 %s, job %s)" % (
                   plan["hash"][:12], cached.get("job_id")))
        result.update({"outcome": "nothing" if plan["kind"] == "none" else "skipped", "state": "done",
                       "exit_code": 0, "cached": plan["kind"] != "none", "msg": why})
        if not check_mode:
            _prepare_job_dir(paths, job_dir)
            write_atomic(os.path.join(job_dir, "bootstrap.json"), json.dumps(dict(spec, skipped=why)) + "\n")
            with open(os.path.join(job_dir, "bootstrap.log"), "a") as fh:
                fh.write("==== BIFROST BOOTSTRAP SKIPPED %s: %s ====\n" % (runner.utcnow(), why))
            write_atomic(os.path.join(job_dir, "bootstrap_done"),
                         json.dumps({"exit_code": 0, "cached": True, "reason": "skipped", "at": runner.utcnow()}))
        return False, result
    result.update({"outcome": "started", "state": "running", "exit_code": None, "cached": False,
                   "msg": "bootstrap (%s) started in tmux session %s" % (plan["kind"], sess)})
    if check_mode:
        return True, result
    if runner.tmux_session_alive(sess):
        raise JobError("a tmux session %s already exists without a bootstrap record; refusing to reuse it" % sess)
    _prepare_job_dir(paths, job_dir)
    if env:
        write_atomic(os.path.join(job_dir, "bootstrap.env"), json.dumps(env), 0o600)
    write_atomic(os.path.join(job_dir, "bootstrap.sh"), plan["script"], 0o600)
    write_atomic(os.path.join(job_dir, "bootstrap.json"), json.dumps(spec, indent=1) + "\n")
    try:
        tmux_new_session(sess, workdir, paths.runner_argv + ["bootstrap", job_dir])
        _confirm_started(job_dir, os.path.join(job_dir, "bootstrap.pid"), sess)
    except JobError:
        for leftover in ("bootstrap.env", "bootstrap.json"):
            try:
                os.unlink(os.path.join(job_dir, leftover))
            except OSError:
                pass
        raise
    return True, result


BOOTSTRAP_FILES = ("bootstrap.json", "bootstrap_done", "bootstrap_failed", "bootstrap.pid", "bootstrap.sh",
                   "bootstrap.env")


def _stale_bootstrap(job_dir, job_id, workdir, command, python, venv, system_site_packages, hash_files):
    """A finished bootstrap of a job that has not started yet, for dependencies that changed since (a second deploy
    before the job): it must run again for the new ones. A started job's bootstrap is history and stays."""
    spec = read_json(os.path.join(job_dir, "bootstrap.json"), None)
    if not spec or os.path.exists(os.path.join(job_dir, "metadata.json")):
        return False
    if bootstrap_state(job_dir, job_id, live_sessions())["state"] in ("running", "none"):
        return False
    wd = expand(workdir)
    if not os.path.isdir(wd):
        return False
    plan = plan_bootstrap(wd, command, python, venv, find_uv(), system_site_packages, hash_files)
    return plan["hash"] != spec.get("hash")


def _forget_bootstrap(job_dir):
    for name in BOOTSTRAP_FILES:
        try:
            os.unlink(os.path.join(job_dir, name))
        except OSError:
            pass
    log = os.path.join(job_dir, "bootstrap.log")
    if os.path.exists(log):
        with open(log, "a") as fh:
            fh.write("==== BIFROST BOOTSTRAP AGAIN %s: the dependency files changed since ====\n" % runner.utcnow())


def _prepare_job_dir(paths, job_dir):
    paths.ensure()
    os.makedirs(job_dir, exist_ok=True)
    os.chmod(job_dir, 0o700)


# ---------------------------------------------------------------------------------------------- waiting
def probe_url(url, statuses=(200,), match=None, timeout=2.0):
    """(ready, detail): one HTTP GET from the node."""
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, build_opener

    try:
        # stdlib only (this runs on the node without Ansible); urllib follows http(s) redirects of a GET
        resp = build_opener().open(Request(url, headers={"User-Agent": "gpu.ops-job_wait"}), timeout=timeout)
        code = resp.getcode()
        body = resp.read(65536).decode("utf-8", "replace")
    except HTTPError as exc:
        code = exc.code
        body = ""
    except (URLError, OSError, ValueError) as exc:
        return False, "%s: %s" % (url, getattr(exc, "reason", exc))
    if code not in statuses:
        return False, "%s answered HTTP %s" % (url, code)
    if match and not re.search(match, body):
        return False, "%s answered HTTP %s but the body does not match %r" % (url, code, match)
    return True, "%s answered HTTP %s" % (url, code)


def wait_job(paths, job_id, state="finished", timeout=30.0, ready_url=None, ready_status=(200,), ready_match=None,
             log_lines=20, persist=False):
    """Wait on the node, with backoff, up to ``timeout`` s for ``state``. Returns a dict with ``done``.

    finished:     the job has a final status (or is lost)
    bootstrapped: the bootstrap flag exists (done or failed), or the bootstrap is lost
    ready:        ``ready_url`` answers, or the job ended (then done with ready False)
    """
    job_dir = paths.job_dir(job_id)
    if not os.path.isdir(job_dir):
        raise JobError("no job %s on this node (%s)" % (job_id, job_dir))
    end = time.monotonic() + max(0.0, timeout)
    delay = 0.05
    detail = None
    ready = False
    while True:
        info = read_job(job_dir, None, log_lines, log_lines if state == "bootstrapped" else 0, persist=persist)
        if state == "bootstrapped":
            done = info["bootstrap"]["state"] not in ("running",)
        elif state == "ready":
            if info["status"] in ("running",):
                ready, detail = probe_url(ready_url, ready_status, ready_match)
            else:
                detail = "job is %s" % info["status"]
            done = ready or info["final"] or info["status"] in ("lost", None)
        else:
            done = info["final"] or info["status"] in ("lost", None)
        left = end - time.monotonic()
        if done or left <= 0:
            if info["final"] or info["status"] == "lost":
                info["bootstrap"]["log_tail"] = tail_lines(info["bootstrap"]["log"], log_lines)
            return {"done": done, "ready": ready, "ready_detail": detail, "job": info}
        time.sleep(min(delay, left))
        delay = min(delay * 1.6, 2.0)


# ---------------------------------------------------------------------------------------------- following
def follow_job(paths, job_id, emit, offset=0, timeout=0.0, log="job.log", poll=(0.02, 0.1, 1.0)):
    """Stream the job's log from byte ``offset`` until the job has a final status (or is lost): every complete
    line goes to ``emit(text, offset_after)``; the last, unterminated one at the end. ``timeout`` > 0 returns early
    (``done`` false) so a caller can reconnect. Returns {done, offset, job}.

    Polls the file with backoff, reset whenever output arrives: ``poll`` is (first, cap for the first 10 s, cap
    after). Between polls only the status file is read; the full look (tmux sessions, to notice a lost job) is
    taken every 2 s, so following a job costs the node almost nothing."""
    job_dir = paths.job_dir(job_id)
    if not os.path.isdir(job_dir):
        raise JobError("no job %s on this node (%s)" % (job_id, job_dir))
    path, status_path = os.path.join(job_dir, log), os.path.join(job_dir, "status")
    started = time.monotonic()
    end = started + timeout if timeout and timeout > 0 else None
    delay, pending, next_look = poll[0], b"", 0.0
    while True:
        chunk = _read_from(path, offset)
        if chunk:
            offset += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                emit(line.decode("utf-8", "replace"), offset - len(pending))
            delay = poll[0]
            continue  # more may be there: read again before sleeping
        now = time.monotonic()
        finished = _str_file(status_path) in FINAL_STATUSES
        if not finished and now >= next_look:
            info = read_job(job_dir, None, 0, persist=True)
            finished, next_look = info["final"] or info["status"] in ("lost", None), now + 2.0
        if finished:
            tail = _read_from(path, offset)  # what the runner wrote with its last status
            offset += len(tail)
            pending += tail
            for line in [ln for ln in pending.split(b"\n") if ln] if pending else []:
                emit(line.decode("utf-8", "replace"), offset)
            return {"done": True, "offset": offset, "job": read_job(job_dir, None, 0, persist=True)}
        if end is not None and now >= end:
            return {"done": False, "offset": offset - len(pending), "job": read_job(job_dir, None, 0)}
        time.sleep(delay)
        delay = min(delay * 1.5, poll[1] if now - started < 10 else poll[2])


def follow_bootstrap(job_dir, job_id, emit, poll=(0.05, 0.5)):
    """Stream bootstrap.log line by line while the bootstrap of ``job_id`` runs; returns its final state."""
    path, offset, pending, delay = os.path.join(job_dir, "bootstrap.log"), 0, b"", poll[0]
    while True:
        chunk = _read_from(path, offset)
        if chunk:
            offset += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                emit(line.decode("utf-8", "replace"))
            delay = poll[0]
            continue
        state = bootstrap_state(job_dir, job_id, live_sessions())
        if state["state"] != "running":
            if pending:
                emit(pending.decode("utf-8", "replace"))
            return state
        time.sleep(delay)
        delay = min(delay * 1.5, poll[1])


def _read_from(path, offset, limit=1 << 20):
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read(limit)
    except OSError:
        return b""
