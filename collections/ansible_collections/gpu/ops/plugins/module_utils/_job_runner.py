# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bifrost-job: the process that runs inside a gpu.ops tmux session. PRIVATE to gpu.ops, may change.

This file has two lives:

* a library that ``_jobs`` imports for the shared constants and small file helpers, and
* the program in each job's tmux session, started from the installed ``jobs`` node helper (a zip application that
  carries this file, see ``plugins/plugin_utils/_node_helper.py``) as ``<python> <helper> runner run|bootstrap
  JOB_DIR`` (or, in unit tests, as ``<python> _job_runner.py run|bootstrap JOB_DIR``).

It therefore uses the standard library only and runs on Python >= 3.9.

Protocol (files in the job directory ``~/.bifrost/jobs/<job_id>/``):

``bootstrap`` mode (tmux session ``bifrost-<job_id>-bootstrap``) runs ``bootstrap.sh`` in the workdir with a
deadline, logs to ``bootstrap.log``, stores the dependency hash in the cache file on success and then creates
``bootstrap_done`` or ``bootstrap_failed`` (JSON: exit_code, reason).

``run`` mode (tmux session ``bifrost-<job_id>``) optionally waits for a bootstrap flag (aborting when the
bootstrap session is gone or on its deadline), then runs ``command.sh`` with the env from the 0600 ``env`` file
(read, then deleted), logs to ``job.log`` and always ends by writing ``exit_code``, ``ended_at`` and then the
final ``status``. There is no ``set -e`` anywhere around the user command, and no status is ever inferred:
a status file that is not final plus a vanished session is reported as ``lost`` by the readers.
"""

from __future__ import annotations

# This file is also a standalone program (the tmux session's process), not code that runs inside a module:
# AnsibleModule.run_command / exit_json do not exist there.
# pylint: disable=ansible-bad-function

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time

RUNNER_VERSION = "1"

FINAL_STATUSES = ("succeeded", "failed", "bootstrap_failed", "bootstrap_timeout", "killed")
ACTIVE_STATUSES = ("starting", "bootstrapping", "running")

# The one job-id pattern (the modules, collect, the runner): tmux session names cannot hold "." or ":".
JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")

SESSION_PREFIX = "bifrost-"
BOOTSTRAP_SUFFIX = "-bootstrap"

# exit codes recorded when no command exit status exists (shell conventions)
EXIT_TIMEOUT = 124
EXIT_TERM = 143
EXIT_KILL = 137


def utcnow():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_atomic(path, text, mode=0o644):
    """Write ``text`` to ``path`` via a temp file + rename: readers never see a half-written file."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    os.replace(tmp, path)


def read_text(path, default=None):
    try:
        with open(path, "r", errors="replace") as fh:
            return fh.read()
    except (OSError, ValueError):
        return default


def read_json(path, default=None):
    text = read_text(path)
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def read_bootstrap_flag(job_dir):
    """Return ``None`` (no flag yet), ``{"ok": True, ...}`` or ``{"ok": False, "exit_code": N, "reason": R}``."""
    done = os.path.join(job_dir, "bootstrap_done")
    failed = os.path.join(job_dir, "bootstrap_failed")
    if os.path.exists(failed):
        data = read_json(failed) or {}
        code = data.get("exit_code")
        return {"ok": False, "exit_code": code if isinstance(code, int) else None,
                "reason": str(data.get("reason") or "exit")}
    if os.path.exists(done):
        data = read_json(done) or {}
        return {"ok": True, "exit_code": 0, "reason": str(data.get("reason") or "exit"),
                "cached": bool(data.get("cached"))}
    return None


def load_env_file(path):
    """Read the 0600 JSON env file and delete it, so secrets do not stay on disk once the process has them."""
    data = read_json(path)
    try:
        os.unlink(path)
    except OSError:
        pass
    if not isinstance(data, dict):
        return {}
    return dict((str(k), str(v)) for k, v in data.items())


def tmux_env():
    """Environment for tmux clients: without TMUX/TMUX_PANE so every caller talks to the default server."""
    env = dict(os.environ)
    env.pop("TMUX", None)
    env.pop("TMUX_PANE", None)
    return env


def tmux_session_alive(name):
    """True when the session exists (exact name match) and its pane still runs. None when tmux is unusable."""
    try:
        # "=NAME:" is an exact session match; a bare "=NAME" would also match a *window* of another session
        res = subprocess.run(["tmux", "list-panes", "-s", "-t", "=%s:" % name, "-F", "#{pane_dead}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tmux_env(), timeout=20,
                             universal_newlines=True, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return False
    return any(line.strip() == "0" for line in res.stdout.splitlines())


def tmux_kill_session(name):
    try:
        subprocess.run(["tmux", "kill-session", "-t", "=" + name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=tmux_env(), timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        pass


def exit_status(returncode):
    """Popen return code to a shell-style exit code (signal N -> 128 + N, so SIGKILL is 137)."""
    if returncode is None:
        return None
    if returncode < 0:
        return 128 - returncode
    return returncode


def pid_alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def group_alive(pgid):
    """True while a live (non-zombie) process is in process group ``pgid``.

    Zombies are ignored: in containers whose PID 1 does not reap, they would otherwise look alive forever.
    """
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True
    try:
        names = os.listdir("/proc")
    except OSError:
        return True
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as fh:
                fields = fh.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def signal_group(pgid, sig):
    if not pgid:
        return False
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def wait_until(predicate, timeout, first=0.02, cap=0.5):
    """Poll ``predicate`` with exponential backoff until it is true or ``timeout`` seconds pass."""
    end = time.monotonic() + timeout
    delay = first
    while True:
        if predicate():
            return True
        left = end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(delay, left))
        delay = min(delay * 2, cap)


def stop_group(pgid, grace):
    """SIGTERM a process group, wait up to ``grace`` s, then SIGKILL what is left. True when it is gone."""
    if not group_alive(pgid):
        return True
    signal_group(pgid, signal.SIGTERM)
    if wait_until(lambda: not group_alive(pgid), grace):
        return True
    signal_group(pgid, signal.SIGKILL)
    return wait_until(lambda: not group_alive(pgid), 5)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def last_line(text):
    """The last non-empty line of ``text`` as a terminal shows it (progress bars redraw with \\r)."""
    for line in reversed(text.split("\n")):
        line = _ANSI.sub("", line)
        parts = [p for p in line.split("\r") if p.strip()]
        if parts:
            return parts[-1].rstrip()
    return ""


class Runner(object):
    """One supervised child process, its output teed to a log file and to the tmux pane."""

    def __init__(self, job_dir):
        self.job_dir = job_dir
        self.stop_reason = None      # None | "killed" | "hangup" | "timeout"
        self.stop_deadline = None    # monotonic time at which SIGKILL follows SIGTERM
        self.kill_grace = 10.0
        self.child = None
        self.pane = True
        self.log = None

    # -------------------------------------------------------------- small helpers
    def path(self, name):
        return os.path.join(self.job_dir, name)

    def put(self, name, value):
        write_atomic(self.path(name), "%s\n" % value)

    def say(self, text):
        """A runner line: into the log and onto the pane."""
        line = ("==== %s ====\n" % text).encode("utf-8", "replace")
        self.emit(line)

    def emit(self, data):
        if self.log is not None:
            try:
                self.log.write(data)
            except OSError:
                pass
        if self.pane:
            try:
                os.write(1, data)
            except OSError:  # the pane is gone (tmux killed): keep logging to the file
                self.pane = False

    # -------------------------------------------------------------- signals
    def install_signals(self):
        signal.signal(signal.SIGTERM, self.on_term)
        signal.signal(signal.SIGINT, self.on_term)
        signal.signal(signal.SIGHUP, self.on_hup)

    def on_term(self, signum, frame):
        self.request_stop("killed", signal.SIGTERM)

    def on_hup(self, signum, frame):
        # the tmux session or server went away; an explicit kill request still counts as a kill
        self.pane = False
        self.request_stop("killed" if os.path.exists(self.path("kill_requested")) else "hangup",
                          signal.SIGTERM)

    def request_stop(self, reason, sig):
        if self.stop_reason is None or (self.stop_reason == "hangup" and reason == "killed"):
            self.stop_reason = reason
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + self.kill_grace
        if self.child is not None and self.child.poll() is None:
            signal_group(self.child.pid, sig)

    # -------------------------------------------------------------- child supervision
    def supervise(self, argv, cwd, env, pidfile, deadline=None, streams=False):
        """Run ``argv`` in its own session, tee its output, enforce ``deadline`` (monotonic). Returns exit code.

        The log (and the pane) get stdout and stderr as they come; ``streams`` also keeps each in its own file
        (``stdout.log``, ``stderr.log``), so a caller can tell them apart afterwards."""
        self.child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE if streams else subprocess.STDOUT,
                                      start_new_session=True, close_fds=True)
        child = self.child
        write_atomic(self.path(pidfile), "%d\n" % child.pid)
        if self.stop_reason is not None:  # a signal arrived while we were starting it
            signal_group(child.pid, signal.SIGTERM)
        pipes = [child.stdout] + ([child.stderr] if streams else [])
        sinks = {}
        sel = selectors.DefaultSelector()
        for pipe, name in zip(pipes, ("stdout.log", "stderr.log")):
            os.set_blocking(pipe.fileno(), False)
            sel.register(pipe.fileno(), selectors.EVENT_READ)
            if streams:
                sinks[pipe.fileno()] = open(self.path(name), "ab", buffering=0)
        try:
            self._pump(child, sel, sinks, deadline)
        finally:
            sel.close()
            for sink in sinks.values():
                sink.close()
        code = exit_status(child.wait())
        # leftovers of the job's process group (background children) would hold GPUs: stop them
        if not wait_until(lambda: not group_alive(child.pid), 0.5):
            self.say("stopping processes the command left behind")
            stop_group(child.pid, self.kill_grace)
        for pipe in pipes:
            try:
                pipe.close()
            except OSError:
                pass
        return code

    def _pump(self, child, sel, sinks, deadline):
        """Copy the child's output until every pipe is closed and the child has exited (or, when a background
        descendant holds a pipe open, 2 s after the child exited)."""
        open_fds = len(sel.get_map())
        exited_at = None
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline and self.stop_reason is None:
                self.request_stop("timeout", signal.SIGTERM)
            if self.stop_deadline is not None and now >= self.stop_deadline:
                signal_group(child.pid, signal.SIGKILL)
            if exited_at is None and child.poll() is not None:
                exited_at = now
            if not open_fds:
                if exited_at is not None:
                    return
                try:  # output closed, process still running: wait for it, staying responsive
                    child.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
                continue
            if exited_at is not None and now - exited_at > 2.0:
                return  # a background descendant keeps the pipe open; the command itself is done
            timeout = 0.5
            if deadline is not None and self.stop_reason is None:
                timeout = max(0.0, min(timeout, deadline - now))
            for key, _mask in sel.select(timeout):
                try:
                    data = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fd)
                    open_fds -= 1
                    continue
                self.emit(data)
                if key.fd in sinks:
                    try:
                        sinks[key.fd].write(data)
                    except OSError:
                        pass

    # -------------------------------------------------------------- bootstrap mode
    def bootstrap(self):
        spec = read_json(self.path("bootstrap.json")) or {}
        self.kill_grace = float(spec.get("kill_grace", 10))
        self.install_signals()
        self.log = open(self.path("bootstrap.log"), "ab", buffering=0)
        write_atomic(self.path("bootstrap.pid"), "%d\n" % os.getpid())
        env = dict(os.environ)
        env.update(load_env_file(self.path("bootstrap.env")))
        env.pop("TMUX", None)
        env.pop("TMUX_PANE", None)
        timeout = float(spec.get("timeout", 600))
        self.say("BIFROST BOOTSTRAP START %s job=%s kind=%s timeout=%ds" % (
            utcnow(), spec.get("job_id", "?"), spec.get("kind", "?"), timeout))
        code = None
        try:
            code = self.supervise([spec.get("shell") or "/bin/bash", self.path("bootstrap.sh")],
                                  spec.get("workdir") or os.path.expanduser("~"), env, "bootstrap_child_pid",
                                  deadline=time.monotonic() + timeout)
        except OSError as exc:
            self.say("cannot start the bootstrap: %s" % exc)
            code = 127
        reason = self.stop_reason or "exit"
        if reason == "timeout":
            code = EXIT_TIMEOUT
            self.say("BIFROST BOOTSTRAP TIMEOUT after %ds" % timeout)
        if code == 0 and self.stop_reason is None:
            cache_file = spec.get("cache_file")
            if cache_file:
                try:
                    os.makedirs(os.path.dirname(cache_file), exist_ok=True)
                    write_atomic(cache_file, json.dumps({"hash": spec.get("hash"), "job_id": spec.get("job_id"),
                                                         "kind": spec.get("kind"), "at": utcnow()}) + "\n")
                except OSError as exc:
                    self.say("could not record the dependency hash: %s" % exc)
            self.say("BIFROST BOOTSTRAP DONE %s" % utcnow())
            write_atomic(self.path("bootstrap_done"), json.dumps({"exit_code": 0, "at": utcnow()}) + "\n")
            return 0
        if code == 0:
            code = EXIT_TERM
        self.say("BIFROST BOOTSTRAP FAILED %s exit=%s reason=%s" % (utcnow(), code, reason))
        write_atomic(self.path("bootstrap_failed"),
                     json.dumps({"exit_code": code, "reason": reason, "at": utcnow()}) + "\n")
        return code or 1

    # -------------------------------------------------------------- run mode
    def finish(self, status, code):
        """Final bookkeeping, in an order readers rely on: exit_code and ended_at first, status last."""
        self.put("exit_code", code)
        self.put("ended_at", utcnow())
        self.say("BIFROST JOB END %s status=%s exit=%s" % (utcnow(), status, code))
        self.put("status", status)
        return 0 if status == "succeeded" else (code or 1)

    def wait_bootstrap(self, spec):
        """Wait for a bootstrap flag. Returns None to go on, or (final status, exit code)."""
        session = spec.get("bootstrap_session") or ""
        timeout = float(spec.get("bootstrap_timeout", 600))
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            flag = read_bootstrap_flag(self.job_dir)
            if flag is not None:
                if flag["ok"]:
                    return None
                code = flag["exit_code"] if flag["exit_code"] is not None else 1
                if flag["reason"] == "timeout":
                    self.say("bootstrap timed out")
                    return ("bootstrap_timeout", code)
                self.say("bootstrap failed (exit %s, %s): see bootstrap.log" % (code, flag["reason"]))
                return ("bootstrap_failed", code)
            if self.stop_reason is not None:
                self.stop_bootstrap(session)
                return ("killed", EXIT_TERM)
            if tmux_session_alive(session) is False:
                if read_bootstrap_flag(self.job_dir) is not None:
                    continue  # it finished between our two looks
                self.say("bootstrap session %s ended without writing a flag" % session)
                return ("bootstrap_failed", 1)
            if time.monotonic() >= deadline:
                self.say("no bootstrap flag after %ds: giving up" % timeout)
                self.stop_bootstrap(session)
                return ("bootstrap_timeout", EXIT_TIMEOUT)
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 1.5, 2.0)

    def stop_bootstrap(self, session):
        try:
            pid = int((read_text(self.path("bootstrap.pid")) or "0").strip() or 0)
        except ValueError:
            pid = 0
        if pid and pid_alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)  # the bootstrap runner stops its child and writes its flag
            except OSError:
                pass
            wait_until(lambda: read_bootstrap_flag(self.job_dir) is not None, self.kill_grace + 5)
        if tmux_session_alive(session):
            tmux_kill_session(session)

    def run(self):
        spec = read_json(self.path("spec.json")) or {}
        self.kill_grace = float(spec.get("kill_grace", 10))
        self.install_signals()
        self.log = open(self.path("job.log"), "ab", buffering=0)
        write_atomic(self.path("pid"), "%d\n" % os.getpid())
        env = dict(os.environ)
        env.update(load_env_file(self.path("env")))
        env.pop("TMUX", None)
        env.pop("TMUX_PANE", None)
        job_id = spec.get("job_id") or os.path.basename(self.job_dir.rstrip("/"))
        env["BIFROST_JOB_ID"] = job_id
        env["BIFROST_JOB_DIR"] = self.job_dir
        env["BIFROST_OUTPUTS"] = self.path("outputs")
        # the names jobs are documented to read (the pipeline's example workload); the env can point elsewhere
        env.setdefault("GPUOPS_OUTPUTS", env["BIFROST_OUTPUTS"])
        env.setdefault("GPUOPS_CHECKPOINT_DIR", os.path.join(env["GPUOPS_OUTPUTS"], "checkpoints"))
        if os.path.exists(self.path("kill_requested")):
            return self.finish("killed", EXIT_TERM)
        if spec.get("bootstrap_wait"):
            self.put("status", "bootstrapping")
            self.say("BIFROST waiting for bootstrap session %s (up to %ss)" % (
                spec.get("bootstrap_session"), spec.get("bootstrap_timeout")))
            outcome = self.wait_bootstrap(spec)
            if outcome is not None:
                if self.stop_reason == "hangup":
                    return self.lost("tmux session hung up while waiting for the bootstrap")
                return self.finish(*outcome)
        if self.stop_reason is not None:
            if self.stop_reason == "hangup":
                return self.lost("tmux session hung up before the command started")
            return self.finish("killed", EXIT_TERM)
        self.put("started_at", utcnow())
        self.put("status", "running")
        self.say("BIFROST JOB START %s job=%s host=%s cwd=%s" % (
            utcnow(), job_id, socket.gethostname(), spec.get("workdir")))
        try:
            code = self.supervise([spec.get("shell") or "/bin/bash", self.path("command.sh")],
                                  spec.get("workdir") or os.path.expanduser("~"), env, "child_pid", streams=True)
        except OSError as exc:
            self.say("cannot start the command: %s" % exc)
            return self.finish("failed", 127)
        write_atomic(self.path("child_exit"), "%s\n" % code)
        if self.stop_reason == "hangup":
            return self.lost("tmux session hung up; the command was stopped (exit %s)" % code)
        if self.stop_reason == "killed":
            return self.finish("killed", code if code else EXIT_TERM)
        return self.finish("succeeded" if code == 0 else "failed", code)

    def lost(self, why):
        """The session is gone: leave no final status (readers report ``lost``) but say what happened."""
        write_atomic(self.path("lost_reason"), "%s at %s\n" % (why, utcnow()))
        self.say("BIFROST JOB LOST %s: %s" % (utcnow(), why))
        return 129


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0] == "--version":
        sys.stdout.write("bifrost-job %s\n" % RUNNER_VERSION)
        return 0
    if len(argv) != 2 or argv[0] not in ("run", "bootstrap"):
        sys.stderr.write("usage: bifrost-job run|bootstrap JOB_DIR\n")
        return 2
    job_dir = os.path.abspath(os.path.expanduser(argv[1]))
    if not os.path.isdir(job_dir):
        sys.stderr.write("bifrost-job: no job directory %s\n" % job_dir)
        return 2
    runner = Runner(job_dir)
    try:
        if argv[0] == "bootstrap":
            return runner.bootstrap()
        return runner.run()
    except Exception:  # a runner bug must not look like a running job: leave the traceback for the readers
        import traceback

        try:
            with open(os.path.join(job_dir, "runner.err"), "a") as fh:
                fh.write("%s bifrost-job %s %s crashed:\n%s" % (utcnow(), RUNNER_VERSION, argv[0],
                                                                traceback.format_exc()))
        except OSError:
            pass
        raise


if __name__ == "__main__":
    sys.exit(main())
