# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run's guardian: a detached controller process that tears a run down when ansible-playbook dies.

Started by gpu.ops.run_guard (stdlib only, run as a script, settings as one JSON document on stdin). It waits
for the ansible-playbook process to end (pidfd where the kernel has it, else polling with backoff). It follows
the run's lifecycle (``module_utils/lifecycle.py``): a run that is torn down, or held on purpose (``ready`` after
``gpuops up``, ``detached``, ``kept`` after a failure with keep_on_failure), needs nothing. A run left in a
transient state (SIGKILL, a crash, Ctrl-C, SIGTERM, a laptop that closed its lid mid-run) was cut off: it stops
what the dead process left running (its forked workers),
then runs ``ansible-playbook gpu.ops.teardown`` for the run: the job is stopped, results are collected, every
instance is destroyed and the record says why. It is in its own session, so the terminal's Ctrl-C does not
reach it, and it exits when the teardown ends: nothing is left behind.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

FINAL = ("succeeded", "failed", "budget_exceeded", "preempted", "cancelled")


def log(msg):
    sys.stdout.write("%s guardian[%d]: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.getpid(), msg))
    sys.stdout.flush()


def proc_start_time(pid):
    """Kernel start time of ``pid`` (clock ticks since boot), or None when it does not exist: a pid that was
    reused by another process has another start time."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None  # exited, not yet reaped by its parent: gone all the same
    return fields[19]


def alive(pid, start):
    return proc_start_time(pid) == start


def wait_for_exit(pid, start, run_dir):
    """Block until the process is gone. pidfd: woken by the kernel at exit; else poll with backoff to 1 s."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None and alive(pid, start):
        try:
            select.select([fd], [], [])
        finally:
            os.close(fd)
        return
    delay = 0.05
    while alive(pid, start):
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def record(run_dir):
    try:
        with open(os.path.join(run_dir, "run.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def leftover_workers(pgid, cmdline, me):
    """Forked ansible workers of the dead process: same process group, same command line."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            if os.getpgid(pid) != pgid:
                continue
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                if fh.read() == cmdline:
                    found.append(pid)
        except OSError:
            continue
    return found


def stop_workers(pgid, cmdline):
    pids = leftover_workers(pgid, cmdline, os.getpid())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        delay = 0.05
        while time.monotonic() < deadline:
            pids = [p for p in pids if os.path.exists("/proc/%d" % p)]
            if not pids:
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    if pids:
        log("workers still present after SIGKILL: %s" % pids)


def teardown(cfg, why, lifecycle, attempts=3):
    """Run the teardown playbook until the record says the run is torn down (a provider may fail for a while);
    the playbook itself exits non-zero for a cancelled run, so the record decides."""
    cmd = list(cfg["teardown_command"]) + ["-e", json.dumps({"teardown_status": "cancelled",
                                                             "teardown_message": why})]
    env = dict(os.environ, **cfg.get("env", {}))
    delay = 10.0
    for attempt in range(1, attempts + 1):
        log("teardown attempt %d: %s" % (attempt, " ".join(cmd[1:3])))
        res = subprocess.run(cmd, cwd=cfg["cwd"], env=env, stdin=subprocess.DEVNULL, check=False)
        rec = record(cfg["run_dir"])
        log("teardown ended with exit code %d; state %s" % (res.returncode, rec.get("state")))
        if rec.get("state") == "torn_down" or rec.get("state") in lifecycle.HELD:
            return 0
        if attempt < attempts:
            time.sleep(delay)  # backoff before asking the provider again
            delay *= 3
    log("the run is NOT torn down; the node watchdog and gpuops reap remain")
    return 1


def lifecycle_module(cfg):
    """module_utils/lifecycle.py of the collection that started this guardian (stdlib only)."""
    root = cfg.get("collections_root")
    if root and root not in sys.path:
        sys.path.insert(0, root)
    from ansible_collections.gpu.ops.plugins.module_utils import lifecycle

    return lifecycle


def verdict(rec, lifecycle):
    """None when the run needs nothing from the guardian, else why it is torn down. It follows the lifecycle:
    a torn-down run, and a run held on purpose (ready, detached, kept) are left alone; a transient state whose
    owner (the dead ansible-playbook) is gone means the run was cut off."""
    state = rec.get("state")
    if state not in lifecycle.STATES:  # a record written before the lifecycle
        if rec.get("status") in FINAL and (rec.get("torn_down") or rec.get("target") == "homelab"):
            return None
        return None if rec.get("kept") or rec.get("detached") else "legacy"
    if state == "torn_down" or state in lifecycle.HELD:
        return None
    if lifecycle.owner_alive(rec.get("owner")):
        return None  # another live process owns it now (a gpuops down started meanwhile)
    return state


def main():
    cfg = json.loads(sys.stdin.read())
    sys.stdin.close()
    pid, start, run_dir = cfg["pid"], cfg["pid_start"], cfg["run_dir"]
    lifecycle = lifecycle_module(cfg)
    log("watching ansible-playbook pid %d for run %s" % (pid, cfg["run_id"]))
    wait_for_exit(pid, start, run_dir)
    rec = record(run_dir)
    why_state = verdict(rec, lifecycle)
    if why_state is None:
        log("run %s is %s (status %s); nothing to do" % (cfg["run_id"], rec.get("state") or (
            "torn down" if rec.get("torn_down") else "kept"), rec.get("status")))
        return 0
    why = "ansible-playbook (pid %d) ended before the run finished (state %s, status %s); the guardian stopped the " \
          "job, collected the results and tore the run down" % (pid, why_state, rec.get("status", "unknown"))
    log(why)
    stop_workers(cfg["pgid"], cfg["cmdline"].encode("latin-1"))
    return teardown(cfg, why, lifecycle)


if __name__ == "__main__":
    sys.exit(main())
