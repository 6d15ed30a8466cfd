# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run's lifecycle: its states, which command may do what in which state, and the one writer of the record.

PRIVATE to the collection, may change. Standard library only: the run_record/run_spec actions, the guardian, the
reaper module and the gpuops CLI all import it (``docs/lifecycle.md`` is generated from :data:`TABLE`, and a test
keeps the two equal).

A run record (``<runs_dir>/<run_id>/run.json``) has two words about where a run is:

* ``state``: the lifecycle. ``planned`` -> ``provisioning`` -> ``ready`` (nodes up, nobody using them: ``gpuops up``)
  -> ``running`` (a job runs and a process waits for it) -> ``ready`` again (the job ended) ... -> ``tearing_down``
  -> ``torn_down``. Also ``detached`` (a job runs and nobody waits: ``detach: true``, ``exec --detach``) and ``kept``
  (a failed run whose nodes stay up for debugging: ``keep_on_failure``).
* ``status``: the outcome. ``running`` while undecided, then once per launch one of ``succeeded``, ``failed``,
  ``budget_exceeded``, ``preempted``, ``cancelled``, or ``ended`` (a ``gpuops up`` session that ``gpuops down``
  closed; its jobs say how each went). A decided status is never rewritten (only a new launch of the same run
  id starts a new one).

The transient states (``planned``, ``provisioning``, ``running``, ``tearing_down``) belong to a process, recorded
as ``owner`` (pid, kernel start time, host). When that process is gone, the state a command sees is the truth
underneath: a ``running`` job whose waiter died runs on (``detached``); anything else was ``interrupted``.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import fcntl
import json
import os
import socket
import time

STATES = ("planned", "provisioning", "ready", "running", "detached", "kept", "tearing_down", "torn_down")
# states that belong to a live process (the record's owner)
TRANSIENT = frozenset(("planned", "provisioning", "running", "tearing_down"))
# nodes up on purpose with nobody attached: the guardian leaves them, the watchdog's ttl/idle_timeout guard them
HELD = frozenset(("ready", "detached", "kept"))
# the columns of the table: the states a command can meet ("none": no record; "interrupted": a transient state
# whose owner is gone and whose job, if any, did not survive)
SEEN = ("none", "planned", "provisioning", "ready", "running", "detached", "kept", "tearing_down", "interrupted",
        "torn_down")
OUTCOMES = ("running", "succeeded", "failed", "budget_exceeded", "preempted", "cancelled", "ended")
FINAL_OUTCOMES = frozenset(OUTCOMES) - {"running"}

RUN, NOOP, REFUSE = "run", "noop", "refuse"

# what each command does in each state. RUN: it acts; NOOP: nothing to do, it says so and succeeds; REFUSE: it
# says why and exits 2 (exec: 125) with nothing created or changed. Keys not listed for a command refuse.
_BUSY = {"planned": REFUSE, "provisioning": REFUSE, "running": REFUSE, "tearing_down": REFUSE}
TABLE = {
    "launch": {"none": RUN, "interrupted": RUN, "torn_down": RUN},
    "up": {"none": RUN, "interrupted": RUN, "torn_down": RUN, "ready": NOOP},
    "deploy": {"ready": RUN, "kept": RUN},
    "health": {"ready": RUN, "kept": RUN},
    "train": {"ready": RUN, "kept": RUN},
    "exec": {"ready": RUN, "kept": RUN},
    "stop": {"running": RUN, "detached": RUN, "ready": NOOP, "kept": NOOP},
    "status": dict((s, RUN) for s in SEEN if s != "none"),
    "logs": dict((s, RUN) for s in SEEN if s != "none"),
    "ssh": {"provisioning": RUN, "ready": RUN, "running": RUN, "detached": RUN, "kept": RUN},
    "sync": {"ready": RUN, "running": RUN, "detached": RUN, "kept": RUN, "torn_down": NOOP},
    "down": {"planned": RUN, "provisioning": RUN, "running": RUN, "tearing_down": REFUSE,
             "ready": RUN, "detached": RUN, "kept": RUN, "interrupted": RUN, "torn_down": NOOP},
}
COMMANDS = tuple(TABLE)
# what a command that runs does, for the documented table
DOES = {
    "launch": "the pipeline: provision, prepare, train, collect, tear down (a torn-down run id starts again)",
    "up": "provision, prepare and keep the nodes (ttl and idle_timeout guard them)",
    "deploy": "push the code and bootstrap (again only when the dependency files changed)",
    "health": "the health probe and gate",
    "train": "the spec's command as a new job (fresh job id), waited for",
    "exec": "push, bootstrap if needed, run a command as a new job, stream it, bring its outputs home",
    "stop": "stop the running job on every node; the nodes stay",
    "status": "the record; for a run with live nodes, what the nodes and the provider say now",
    "logs": "the job's log (from the nodes; after teardown, from the collected copy)",
    "ssh": "attach to the job's tmux session",
    "sync": "results home (verified, incremental)",
    "down": "stop the job, collect, destroy, record (kept, detached, ready and failed-kept runs alike); a run "
            "that a process on this machine owns is interrupted first (as Ctrl-C there), and its own handling ends it",
}
# allowed writes of ``state``: from (None: no record yet) -> to
TRANSITIONS = {
    None: ("planned",),
    "planned": ("provisioning", "tearing_down"),
    "provisioning": ("ready", "running", "tearing_down"),
    "ready": ("running", "tearing_down"),
    "running": ("ready", "kept", "detached", "tearing_down"),
    "detached": ("ready", "kept", "running", "tearing_down"),
    "kept": ("running", "tearing_down"),
    "tearing_down": ("torn_down", "kept", "detached", "tearing_down"),
    "interrupted": ("planned", "tearing_down"),
    "torn_down": ("planned",),
}
# what a state is, in a word or two, for messages
STATE_WORDS = {
    "none": "unknown", "planned": "planned", "provisioning": "being provisioned", "ready": "up and idle",
    "running": "running a job", "detached": "running a detached job", "kept": "kept after a failure",
    "tearing_down": "being torn down", "interrupted": "interrupted", "torn_down": "torn down",
}

EXIT_OK = 0
EXIT_REFUSED = 2          # gpuops' "bad input": nothing was created or changed
EXEC_EXIT_REFUSED = 125   # exec passes the job's own exit code through, so its own refusals use docker's 125


class LifecycleError(Exception):
    """A write the lifecycle does not allow (a bug in the caller, or a race another process won)."""


# ---------------------------------------------------------------------------------------------- the record
@contextlib.contextmanager
def locked(run_dir):
    """Every write of a run's files is a read-modify-write under this lock (playbook, guardian, CLI)."""
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    with open(os.path.join(run_dir, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_json(path, data):
    """Atomic (rename) and private (0600): a record names hosts and keys' paths, never a secret value."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    os.replace(tmp, path)


def read_json(path, default=None):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def read_record(run_dir):
    rec = read_json(os.path.join(run_dir, "run.json"))
    return rec if isinstance(rec, dict) else None


def _merge(rec, changes, instances, steps):
    rec.update(changes or {})
    if instances:
        known = dict(((i.get("provider"), str(i.get("id"))), i) for i in rec.get("instances", []))
        for inst in instances:
            key = (inst.get("provider"), str(inst.get("id")))
            known[key] = dict(known.get(key, {}), **inst)
        rec["instances"] = list(known.values())
    if steps:
        merged = dict(rec.get("steps") or {})
        for name, secs in steps.items():
            merged[name] = round(merged.get(name, 0) + float(secs), 2)
        rec["steps"] = merged
    return rec


def update_record(run_dir, changes, instances=None, steps=None):
    """Merge into run.json under the lock: top-level keys replaced, instances merged by (provider, id), steps added
    up (a step that runs in several rounds, such as health, counts every round). ``state`` and ``status`` are not
    written here: :func:`transition` and :func:`decide_outcome` are their only writers."""
    changes = dict(changes or {})
    for key in ("state", "status"):
        if key in changes:
            raise LifecycleError("update_record cannot write %r; use lifecycle.transition/decide_outcome" % key)
    with locked(run_dir):
        path = os.path.join(run_dir, "run.json")
        rec = _merge(read_json(path, {}) or {}, changes, instances, steps)
        write_json(path, rec)
        return rec


# ---------------------------------------------------------------------------------------------- owners
def iso_now(ts=None):
    return datetime.datetime.fromtimestamp(time.time() if ts is None else ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def proc_start_time(pid):
    """Kernel start time of ``pid`` (clock ticks since boot), or None: a reused pid has another start time."""
    try:
        with open("/proc/%d/stat" % int(pid)) as fh:
            stat = fh.read()
    except (OSError, ValueError, TypeError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None  # exited, not yet reaped by its parent: gone all the same
    return fields[19]


def owner_of(pid, what):
    """The owner entry for process ``pid`` doing ``what`` (launch, up, exec, down ...)."""
    return {"pid": int(pid), "start": proc_start_time(pid), "host": socket.gethostname(), "command": what}


def owner_alive(owner):
    """True while the owning process lives. Another host's process cannot be checked from here: it counts as
    alive, and the message names it (``--force`` overrides where a command offers it)."""
    if not isinstance(owner, dict) or not owner.get("pid"):
        return False
    if owner.get("host") and owner["host"] != socket.gethostname():
        return True
    start = proc_start_time(owner["pid"])
    return start is not None and (owner.get("start") is None or start == owner["start"])


def guardian_alive(rec):
    """Whether the run's guardian (``guardian_pid``) still runs: it exits once its run needs nothing more."""
    pid = (rec or {}).get("guardian_pid")
    if not pid or proc_start_time(pid) is None:
        return False
    try:
        with open("/proc/%d/cmdline" % int(pid), "rb") as fh:
            return b"_guardian" in fh.read()
    except (OSError, ValueError):
        return False


def describe_owner(owner):
    if not isinstance(owner, dict) or not owner.get("pid"):
        return "no process"
    return "%s (pid %s on %s)" % (owner.get("command") or "a process", owner.get("pid"), owner.get("host") or "?")


# ---------------------------------------------------------------------------------------------- states
def legacy_state(rec):
    """The state of a record written before the lifecycle existed."""
    if rec.get("torn_down") is True:
        return "torn_down"
    if rec.get("kept"):
        return "kept"
    if rec.get("status") == "running" and rec.get("detached"):
        return "detached"
    return "interrupted"


def effective_state(rec, alive=owner_alive):
    """The state a command meets: the recorded one, unless its owner is gone (then ``detached`` for a job that
    runs on, else ``interrupted``). None record: ``none``."""
    if rec is None:
        return "none"
    state = rec.get("state")
    if state not in STATES:
        return legacy_state(rec)
    if state in TRANSIENT and not alive(rec.get("owner")):
        return "detached" if state == "running" else "interrupted"
    return state


def nodes_released(rec):
    """Whether the record lets the reaper destroy the run's instances now (before their expiry): the run is torn
    down. A kept, ready or detached run keeps its nodes until ``expires_at``."""
    if not isinstance(rec, dict):
        return None
    state = rec.get("state")
    if state == "torn_down" or (state not in STATES and rec.get("torn_down") is True):
        return "run record says torn_down"
    if state not in STATES and not rec.get("kept") and rec.get("status") in FINAL_OUTCOMES:
        return "run record says %s" % rec["status"]  # a record from before the lifecycle
    return None


# ---------------------------------------------------------------------------------------------- decisions
class Decision(object):
    """What ``command`` does for the run in its state: ``verdict`` (run, noop, refuse), ``state`` (as seen),
    ``msg`` (for noop and refuse), ``exit_code`` (0 for run/noop; 2, or 125 for exec, for refuse)."""

    def __init__(self, command, state, verdict, msg=""):
        self.command, self.state, self.verdict, self.msg = command, state, verdict, msg

    @property
    def exit_code(self):
        if self.verdict != REFUSE:
            return EXIT_OK
        return EXEC_EXIT_REFUSED if self.command == "exec" else EXIT_REFUSED

    def to_dict(self):
        return {"command": self.command, "state": self.state, "verdict": self.verdict, "msg": self.msg,
                "exit_code": self.exit_code}


def decide(command, rec, run_id=None, alive=owner_alive):
    """The :class:`Decision` of ``command`` for record ``rec`` (None: no record)."""
    if command not in TABLE:
        raise ValueError("unknown command %r" % command)
    state = effective_state(rec, alive)
    verdict = TABLE[command].get(state, REFUSE)
    run_id = run_id or (rec or {}).get("run_id") or "?"
    msg = "" if verdict == RUN else _message(command, state, verdict, rec or {}, run_id)
    return Decision(command, state, verdict, msg)


def _job_text(rec):
    job = current_job(rec)
    return ("job %s" % job["job_id"]) if job else "a job"


def _message(command, state, verdict, rec, rid):
    owner = describe_owner(rec.get("owner"))
    if verdict == NOOP:
        return {
            "down": "run %s is already torn down (%s at %s); nothing to do" % (
                rid, rec.get("status"), rec.get("ended_at") or "?"),
            "sync": "run %s is torn down: its results came home at teardown (%s); nothing to sync" % (
                rid, rec.get("run_dir") or "its run directory"),
            "up": "run %s is already up (%d node(s), until %s); nothing to do" % (
                rid, len(live_nodes(rec)), rec.get("expires_at") or "?"),
            "stop": "run %s runs no job (%s); nothing to stop" % (rid, STATE_WORDS[state]),
        }.get(command, "nothing to do")
    if state == "none":
        return "no run %s (no run record): nothing to %s" % (rid, command)
    if state in ("planned", "provisioning"):
        return ("run %s is being provisioned by %s; %s is not possible until it is up (wait, or stop that process: "
                "its guardian tears the run down)" % (rid, owner, command))
    if state == "running":
        return ("run %s is running %s for %s; %s is refused until it ends (or press Ctrl-C there, or gpuops stop "
                "%s)" % (rid, _job_text(rec), owner, command, rid))
    if state == "detached":
        return ("run %s is running %s detached; %s is not possible while it runs: follow it with gpuops logs %s -f, "
                "stop it with gpuops stop %s, or end the run with gpuops down %s"
                % (rid, _job_text(rec), command, rid, rid, rid))
    if state == "tearing_down":
        return "run %s is being torn down by %s; nothing more to %s" % (rid, owner, command)
    if state == "interrupted":
        return ("run %s was interrupted (%s is gone before it finished); gpuops down %s collects what is there and "
                "destroys what it rented" % (rid, owner, rid))
    if state == "torn_down":
        return ("run %s is torn down (%s at %s): it has no nodes left to %s. Start a new run with gpuops launch or "
                "gpuops up" % (rid, rec.get("status"), rec.get("ended_at") or "?", command))
    if state in ("ready", "kept") and command in ("launch", "up"):
        return ("run %s is %s with %d node(s); use gpuops exec %s, or gpuops down %s first to start it again"
                % (rid, STATE_WORDS[state], len(live_nodes(rec)), rid, rid))
    return "run %s is %s: %s is not possible now" % (rid, STATE_WORDS[state], command)


def take_over(run_dir, timeout=600.0, alive=owner_alive, note=None):
    """For ``down`` of a run that a live process on this machine owns (a pipeline, an exec): interrupt it as Ctrl-C
    would (SIGINT: the pipeline's guardian then collects and tears down; exec stops its job and lets go), and wait
    until nobody owns a transient state any more. Returns the record then. A run owned on another machine, or one
    that stays owned past ``timeout``, raises :class:`LifecycleError`."""
    import signal

    rec = read_record(run_dir) or {}
    owner = rec.get("owner") or {}
    if rec.get("state") not in TRANSIENT or not alive(owner):
        return rec
    if owner.get("host") and owner["host"] != socket.gethostname():
        raise LifecycleError("run %s is owned by %s on another machine; stop it there, or use --force"
                             % (rec.get("run_id"), describe_owner(owner)))
    if note:
        note("interrupting %s (as Ctrl-C there): its own handling stops the job and ends the run" % describe_owner(owner))
    try:
        os.kill(int(owner["pid"]), signal.SIGINT)
    except OSError:
        pass
    deadline, delay = time.monotonic() + timeout, 0.1
    while time.monotonic() < deadline:
        rec = read_record(run_dir) or {}
        owned = rec.get("state") in TRANSIENT and alive(rec.get("owner"))
        # a pipeline's guardian takes over when its playbook dies: its teardown is the run's own handling too
        if not owned and not guardian_alive(rec):
            return rec
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
    raise LifecycleError("run %s is still %s by %s after %d s" % (
        rec.get("run_id"), STATE_WORDS.get(rec.get("state"), rec.get("state")), describe_owner(rec.get("owner")),
        timeout))


# ---------------------------------------------------------------------------------------------- writes
def transition(run_dir, to, owner=None, fields=None, alive=owner_alive):
    """Move the run to state ``to`` (under the lock; raises :class:`LifecycleError` when not allowed).

    ``owner``: the process that now owns a transient state (kept on the record while the state is transient,
    cleared for held and final states). ``fields``: more top-level keys written in the same step. Every move is
    appended to ``history``. Returns the record."""
    if to not in STATES:
        raise LifecycleError("unknown state %r" % to)
    with locked(run_dir):
        path = os.path.join(run_dir, "run.json")
        rec = read_json(path, None)
        seen = effective_state(rec if isinstance(rec, dict) else None, alive)
        frm = None if seen == "none" else seen
        allowed = TRANSITIONS.get(frm, ())
        if to not in allowed:
            raise LifecycleError("run %s: %s -> %s is not a lifecycle step (allowed from %s: %s)" % (
                (rec or {}).get("run_id") or os.path.basename(run_dir), seen, to, seen, ", ".join(allowed) or "none"))
        rec = dict(rec or {})
        rec.update(fields or {})
        rec["state"] = to
        rec["owner"] = owner if to in TRANSIENT else None
        rec["torn_down"] = to == "torn_down"
        rec["kept"] = to == "kept"
        rec["detached"] = to == "detached"
        hist = list(rec.get("history") or [])
        hist.append({"state": to, "at": iso_now(), "by": (owner or {}).get("command")})
        rec["history"] = hist[-200:]
        write_json(path, rec)
        return rec


def restart(run_dir, owner, fields):
    """A new launch (or up) of a run: state planned, status running again; what it rented and ran stays."""
    rec = transition(run_dir, "planned", owner=owner, fields=fields)
    with locked(run_dir):
        rec["status"] = "running"
        rec["exit_code"] = None
        rec["message"] = ""
        rec["ended_at"] = None
        write_json(os.path.join(run_dir, "run.json"), rec)
    return rec


def decide_outcome(run_dir, status, message=None, exit_code=None):
    """Write the run's outcome once: a decided status is never rewritten (it stays, and is returned)."""
    if status not in OUTCOMES:
        raise LifecycleError("unknown outcome %r" % status)
    with locked(run_dir):
        path = os.path.join(run_dir, "run.json")
        rec = read_json(path, {}) or {}
        if rec.get("status") in FINAL_OUTCOMES or status == "running":
            return rec
        rec.update({"status": status, "message": message or "", "exit_code": exit_code})
        write_json(path, rec)
        return rec


# ---------------------------------------------------------------------------------------------- jobs
def current_job(rec):
    jobs = [j for j in (rec or {}).get("jobs") or [] if isinstance(j, dict)]
    return jobs[-1] if jobs else None


def job_slug(name):
    out = "".join(c for c in str(name or "").lower() if c.isalnum() or c == "-").strip("-")
    return out or "job"


def next_job_id(rec, name, run_id):
    """A job id no job of the run had: ``<name>-<run_id>`` for the first, then ``-2``, ``-3`` ..."""
    taken = set(j.get("job_id") for j in (rec or {}).get("jobs") or [] if isinstance(j, dict))
    base = "%s-%s" % (job_slug(name), run_id)
    if base not in taken:
        return base
    n = 2
    while "%s-%d" % (base, n) in taken:
        n += 1
    return "%s-%d" % (base, n)


def job_results_dir(run_dir, job_id, first):
    """Where a job's files come home: the run's first job in ``<host>/`` (as a pipeline run always had), every
    later job in ``jobs/<job_id>/<host>/``. Relative to the run dir."""
    return "" if first else os.path.join("jobs", job_id)


def job_started(run_dir, job):
    """Append a job (``job_id``, ``kind``, ``command`` ...) to the run's jobs; returns the record."""
    with locked(run_dir):
        path = os.path.join(run_dir, "run.json")
        rec = read_json(path, {}) or {}
        jobs = [j for j in rec.get("jobs") or [] if isinstance(j, dict) and j.get("job_id") != job["job_id"]]
        first = not jobs
        entry = dict({"status": "running", "exit_code": None, "started_at": iso_now(), "ended_at": None,
                      "hosts": {}, "results": job_results_dir(run_dir, job["job_id"], first)}, **job)
        jobs.append(entry)
        rec["jobs"] = jobs
        rec["job_id"] = job["job_id"]
        write_json(path, rec)
    _write_job_file(run_dir, entry)
    return rec


def job_ended(run_dir, job_id, hosts):
    """Record how each node's part of a job ended (``hosts``: {host: {status, exit_code, msg}}); the job's status
    is ``succeeded`` when every node's is, else the first other one. Returns the job entry (None: unknown job)."""
    with locked(run_dir):
        path = os.path.join(run_dir, "run.json")
        rec = read_json(path, {}) or {}
        entry = None
        for job in rec.get("jobs") or []:
            if isinstance(job, dict) and job.get("job_id") == job_id:
                entry = job
        if entry is None:
            return None
        entry["hosts"] = dict(entry.get("hosts") or {}, **hosts)
        states = [h.get("status") for h in entry["hosts"].values()]
        bad = [h for h in entry["hosts"].values() if h.get("status") != "succeeded"]
        entry["status"] = "succeeded" if states and not bad else (bad[0].get("status") if bad else "unknown")
        codes = [h.get("exit_code") for h in entry["hosts"].values() if h.get("exit_code") not in (None, 0)]
        entry["exit_code"] = codes[0] if codes else (0 if entry["status"] == "succeeded" else None)
        entry["ended_at"] = entry.get("ended_at") or iso_now()
        write_json(path, rec)
    _write_job_file(run_dir, entry)
    return entry


def _write_job_file(run_dir, entry):
    jdir = os.path.join(run_dir, "jobs", entry["job_id"])
    os.makedirs(jdir, mode=0o700, exist_ok=True)
    write_json(os.path.join(jdir, "job.json"), entry)


# ---------------------------------------------------------------------------------------------- nodes
def live_nodes(rec):
    """Every node of the run that is still there: cloud instances not destroyed, and the home-lab/ssh hosts of a
    run that is not torn down."""
    rec = rec or {}
    out = [dict(i, kind=i.get("kind") or "cloud") for i in rec.get("instances") or [] if not i.get("destroyed_at")]
    if rec.get("state") != "torn_down" and not rec.get("torn_down"):
        out += [dict(n, kind=n.get("kind") or "homelab") for n in rec.get("hosts") or [] if isinstance(n, dict)]
    return out


# ---------------------------------------------------------------------------------------------- the spec's keys
def suggest(word, known):
    """The nearest known key to a misspelt one (or None)."""
    close = difflib.get_close_matches(str(word), list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_keys_problems(keys, known, what="run spec key"):
    """One problem line per unknown key, with the nearest known key when there is one."""
    out = []
    for key in sorted(set(keys) - set(known)):
        near = suggest(key, known)
        out.append("unknown %s %r%s" % (what, key, (" (did you mean %r?)" % near) if near else ""))
    return out


# ---------------------------------------------------------------------------------------------- the doc
def table_markdown():
    """The command x state table as docs/lifecycle.md shows it."""
    head = "| command | " + " | ".join(SEEN) + " | what it does |"
    rows = [head, "|" + "---|" * (len(SEEN) + 2)]
    for cmd in COMMANDS:
        cells = [TABLE[cmd].get(s, REFUSE) for s in SEEN]
        rows.append("| `%s` | %s | %s |" % (cmd, " | ".join(cells), DOES[cmd]))
    return "\n".join(rows) + "\n"
