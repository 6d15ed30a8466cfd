"""The edit-run loop on a run's warm nodes: ``gpuops exec``, ``sync``, ``stop``, ``logs -f`` and ``status``'s
refresh, without ansible-playbook.

Everything here speaks to the nodes through the collection's own node helpers (``plugins/plugin_utils``: the
workspace deploy, the jobs helper, the collect helper) over plain ssh with a shared ControlMaster
(``gpuops.nodes``), and writes the run record through the collection's lifecycle module, the record's only
writer. That is what makes a job on a warm node cost seconds: one process, a few round trips per node, nodes in
parallel.

    from gpuops.devloop import exec_job
    res = exec_job("charlm-20261207-101010-ab12", "python3 train.py --steps 10")
    print(res.exit_code, {n: r.stdout for n, r in res.nodes.items()})
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import nodes as _nodes
from ._collection import lifecycle, module
from .runs import default_runs_dir, parse_time

EXIT_LOST = 255      # a node was lost or could not be reached mid-job (ssh's own convention)
EXIT_INTERRUPTED = 130
DEFAULT_LOST_AFTER = 120.0


class RunRefused(Exception):
    """The run's state (or the request) does not allow the command; nothing was created or changed."""

    def __init__(self, msg: str, code: int = 2):
        super().__init__(msg)
        self.code = code


class NodeFailed(Exception):
    def __init__(self, node: str, msg: str, lost: bool = False):
        super().__init__(f"{node}: {msg}")
        self.node, self.msg, self.lost = node, msg, lost


@dataclass
class NodeResult:
    """One node's part of a job. ``stdout``/``stderr``: the job's own streams (from the collected ``stdout.log`` and
    ``stderr.log``); ``output``: the lines as they were streamed (both, in the order the node logged them)."""

    name: str
    status: str = "pending"
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    output: list = field(default_factory=list)
    msg: str = ""
    lost: bool = False
    results_dir: str | None = None


@dataclass
class ExecResult:
    run_id: str
    job_id: str
    exit_code: int
    status: str
    nodes: dict
    results_dir: str | None
    timings: dict
    pushed_bytes: int = 0
    msg: str = ""
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "job_id": self.job_id, "exit_code": self.exit_code, "status": self.status,
                "results_dir": self.results_dir, "timings": self.timings, "pushed_bytes": self.pushed_bytes,
                "msg": self.msg, "notes": self.notes,
                "nodes": {k: {"status": v.status, "exit_code": v.exit_code, "stdout": v.stdout, "stderr": v.stderr,
                              "msg": v.msg, "lost": v.lost, "results_dir": v.results_dir}
                          for k, v in self.nodes.items()}}


# --------------------------------------------------------------------------------------------- the run
def run_dir_of(run_id: str, runs_dir=None) -> Path:
    if not run_id or "/" in run_id or run_id in (".", ".."):
        raise RunRefused(f"not a run id: {run_id!r}")
    return default_runs_dir(runs_dir) / run_id


def check(command: str, run_id: str, runs_dir=None):
    """(record, decision) of ``command`` for the run: the lifecycle's table, nothing else."""
    run_dir = run_dir_of(run_id, runs_dir)
    rec = lifecycle().read_record(str(run_dir))
    if rec is not None:
        rec.setdefault("run_dir", str(run_dir))
    return rec, lifecycle().decide(command, rec, run_id)


@contextmanager
def exclusive(run_dir: Path, what: str):
    """One job-starting command per run at a time (``gpuops exec``, ``stop``): a second one is refused, naming the
    first. The lock is a file lock, so a killed process releases it."""
    path = run_dir / ".exec.lock"
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another gpuops process"
        fh.close()
        raise RunRefused(f"run {run_dir.name}: {holder} is already using it; wait for it to end (second {what} "
                         f"refused, nothing started)", 125) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"gpuops {what} (pid {os.getpid()})")
    fh.flush()
    try:
        yield
    finally:
        fh.close()


def _expired(rec: dict) -> bool:
    exp = parse_time(rec.get("expires_at"))
    return exp is not None and exp <= time.time()


def _spec(rec: dict) -> dict:
    spec = rec.get("spec") or rec.get("inputs") or {}
    return spec if isinstance(spec, dict) else {}


def _workspace(spec: dict) -> str:
    if spec.get("node_workspace"):
        return spec["node_workspace"]
    wd, sub = spec.get("node_workdir") or "~/.bifrost/workspace", spec.get("workdir") or ""
    return wd[: -len("/" + sub)] if sub and wd.endswith("/" + sub) else wd


def job_env(spec: dict, nodes: list, rank: int, environ: dict) -> dict:
    """The job's environment: the spec's env, the secret_env values from this controller's environment, and the
    multi-node variables (rank order = the record's node order), as the pipeline gives them."""
    missing = [n for n in spec.get("secret_env") or [] if n not in environ]
    if missing:
        raise RunRefused(f"secret_env names {', '.join(missing)}, not set in this environment (export it first); "
                         "nothing was started", 125)
    env = {"MASTER_ADDR": nodes[0].host, "MASTER_PORT": "29500", "NODE_RANK": str(rank),
           "WORLD_SIZE": str(len(nodes)), "NPROC_PER_NODE": str(nodes[rank].gpu_count or spec.get("gpu_count") or 1)}
    env.update({str(k): str(v) for k, v in (spec.get("env") or {}).items()})
    env.update({n: environ[n] for n in spec.get("secret_env") or []})
    return env


# --------------------------------------------------------------------------------------------- exec
class _Exec:
    """One ``gpuops exec``: every node prepared in parallel, the job started on all, followed, collected."""

    def __init__(self, rec, run_dir, command, dirty, detach, on_line, on_note, lost_after, key, environ):
        self.rec, self.run_dir, self.dirty, self.detach = rec, run_dir, dirty, detach
        self.spec = _spec(rec)
        self.command = command or self.spec.get("command")
        self.on_line = on_line or (lambda node, line: None)
        self.on_note = on_note or (lambda msg: None)
        self.lost_after, self.key, self.environ = lost_after, key, environ
        self.nodes = _nodes.nodes_of(rec)
        self.results = {n.name: NodeResult(n.name) for n in self.nodes}
        self.timings: dict = {}
        self.pushed = 0
        self.lc = lifecycle()
        self.job_id = self.lc.next_job_id(rec, "exec", rec["run_id"])
        self.helpers: dict = {}
        self.procs: dict = {}
        self.boot_seconds: dict = {}
        self.commit = None
        self.local = None
        self.repo = None
        self.deployed: dict = {}
        self.stop_all = threading.Event()

    def close(self) -> None:
        if self.repo is not None:
            self.repo.close()
            self.repo = None

    def helper(self, node, name):
        key = (node.name, name)
        if key not in self.helpers:
            self.helpers[key] = _nodes.helper(self.rec, node, name, self.key)
        return self.helpers[key]

    # ---------------------------------------------------------------- preparing a node
    def deploy_args(self) -> dict:
        return {"src": self.spec.get("repo"), "dest": _workspace(self.spec), "version": "HEAD",
                "dirty": "ship" if self.dirty else "warn", "submodules": True, "clean": False,
                "clean_ignored": False, "clean_exclude": []}

    def local_state(self) -> None:
        """What every node gets (commit, dirty layer, warnings): one git status and snapshot for the whole run."""
        dep, local = module("plugin_utils._workspace_deploy"), module("plugin_utils._workspace_local")
        try:
            self.repo = local.LocalRepo(self.deploy_args()["src"])  # closed by close(): its scratch holds the snapshot
        except local.GitError as exc:
            raise RunRefused(f"cannot push {self.spec.get('repo')}: {exc}; nothing was started", 125) from None
        self.local = dep.Deployer(None, None).local_state(self.deploy_args(), self.repo)
        self.commit = self.local[0]["commit"]
        for warning in self.local[1].get("warnings") or []:
            self.on_note(warning)

    def prepare(self, node) -> dict:
        """Push the code (and tell a cloud node's watchdog the controller is here, beside it). The bootstrap check
        rides on the job's start (the jobs helper's ``run``): one round trip less per node."""
        t = time.monotonic()
        beat = threading.Thread(target=self._heartbeat, args=(node,), daemon=True) if node.kind == "cloud" else None
        if beat:  # the watchdog's clock, beside the push: its own round trip over the same master
            beat.start()
        pushed = self._deploy(node)
        if beat:
            beat.join()
        return {"push": time.monotonic() - t, "bytes": pushed}

    def _deploy(self, node) -> int:
        dep = module("plugin_utils._workspace_deploy")
        args = self.deploy_args()
        try:
            out = dep.Deployer(_nodes.transport(self.rec, node, self.key), self.helper(node, "workspace")).deploy(
                {}, args, self.repo, node.name, {}, time.monotonic(), local=self.local,
                known=(self.rec.get("deployed") or {}).get(node.name))
        except Exception as exc:  # noqa: BLE001 - git, the helper, the connection: this node's failure to report
            raise NodeFailed(node.name, f"deploy failed: {exc}") from None
        if out.get("failed"):
            raise NodeFailed(node.name, f"deploy failed: {out.get('msg')}")
        self.deployed[node.name] = {"head": out.get("head") or out.get("commit"), "dest": out.get("dest"),
                                    "home": out.get("home"), "branch": out.get("branch")}
        return int(out.get("bundle_bytes") or 0)

    def _heartbeat(self, node) -> None:
        try:
            self.helper(node, "watchdog").run("heartbeat", {"_check_mode": False})
        except Exception as exc:  # noqa: BLE001 - the job matters more than the watchdog's clock
            self.on_note(f"[{node.name}] watchdog heartbeat failed: {exc}")

    def bootstrap_args(self) -> dict:
        return {"job_id": self.job_id, "workdir": self.spec.get("node_workdir") or _workspace(self.spec),
                "command": self.spec.get("bootstrap") or None, "timeout": int(self.spec.get("bootstrap_timeout") or 600),
                "force": False, "env": {}, "python": "python3", "venv": ".venv", "system_site_packages": False,
                "hash_files": list(self.spec.get("dependency_files") or []), "kill_grace": 10, "shell": "/bin/bash",
                "root": "~/.bifrost", "check_mode": False}

    # ---------------------------------------------------------------- running
    def start_args(self, rank: int) -> dict:
        return {"job_id": self.job_id, "command": self.command,
                "workdir": self.spec.get("node_workdir") or _workspace(self.spec),
                "env": job_env(self.spec, self.nodes, rank, self.environ), "bootstrap": "auto",
                "bootstrap_timeout": int(self.spec.get("bootstrap_timeout") or 600), "kill_grace": 10,
                "shell": "/bin/bash", "name": "exec", "root": "~/.bifrost", "detach": self.detach,
                "metadata": {"run_id": self.rec["run_id"], "kind": "exec"}, "check_mode": False,
                "bootstrap_args": self.bootstrap_args()}

    def follow(self, node, rank: int, lines: queue.Queue) -> None:
        """Start (once) and follow the job on ``node``, reconnecting from the last offset while the connection
        drops, until the job ends, the node is lost (``lost_after`` s unreachable, or gone at its provider) or
        everything is stopped. The outcome goes into ``self.results``; ``(name, None)`` on ``lines`` says done."""
        res = self.results[node.name]
        try:
            self._follow(node, rank, lines, res)
        except Exception as exc:  # noqa: BLE001 - a crash here is this node's failure, never a hang
            res.status, res.msg = "failed", f"following the job failed: {exc}"
        lines.put((node.name, None))

    def _follow(self, node, rank, lines, res):
        args, offset, started, down_since = self.start_args(rank), 0, False, None
        while True:
            # "run" starts and follows; once the start is known to have happened only "follow" (start is
            # idempotent for the same job id and command, so a lost answer to "run" is safe to repeat)
            answer, offset, seen_start, err = self._stream(node, "follow" if started else "run",
                                                           dict(args, offset=offset), lines, offset)
            if seen_start:  # a reconnect only follows: the bootstrap and the start happened
                args.pop("bootstrap_args", None)
            started = started or seen_start
            if answer is not None:
                if answer.get("failed"):
                    res.status, res.msg = "failed", str(answer.get("msg"))
                    return
                if answer.get("done") or self.detach:
                    job = answer.get("job") or {}
                    res.status, res.exit_code = job.get("status") or "running", job.get("exit_code")
                    return
                down_since = None  # a follow round that ended early (timeout): go on
                continue
            if self.stop_all.is_set():
                res.status, res.msg = "stopped", "stopped with the other nodes"
                return
            down_since = down_since or time.monotonic()
            gone = self._gone(node)
            if gone or time.monotonic() - down_since > self.lost_after:
                res.status, res.lost = "lost", True
                res.msg = gone or f"unreachable for {self.lost_after:.0f} s ({err})"
                return
            self.on_note(f"[{node.name}] connection lost ({err}); reconnecting")
            time.sleep(min(2.0, max(0.2, (time.monotonic() - down_since) / 4)))

    def _stream(self, node, command, args, lines, offset, install=True):
        """One ssh stream of the jobs helper's ``command``: (final answer or None, offset reached, whether the
        start was seen, why there is no answer)."""
        jobs = self.helper(node, "jobs")
        tr = jobs.transport
        proc = subprocess.Popen(tr.ssh_argv() + [tr.host(), jobs.command_line(command)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs[node.name] = proc
        try:
            proc.stdin.write(json.dumps(args).encode() + b"\n")
            proc.stdin.close()
        except BrokenPipeError:
            pass
        answer, started = None, False
        for raw in proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if "line" in msg:
                offset = int(msg.get("offset") or offset)
                lines.put((node.name, msg["line"]))
            elif "bootstrap_line" in msg:
                lines.put((node.name, "[bootstrap] " + msg["bootstrap_line"]))
            elif "bootstrap" in msg:
                self._bootstrap_seen(node, msg)
            elif "started" in msg and "done" not in msg and "job" not in msg:
                started = True
            else:
                answer = msg
        rc = proc.wait()
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        if rc == module("plugin_utils._node_helper").MISSING_RC and install:
            jobs.install()  # a newer collection than the one that prepared the node: its helper goes there once
            return self._stream(node, command, args, lines, offset, install=False)
        if rc != 0 or answer is None:
            return None, offset, started, err[-300:] or f"ssh exited with {rc}"
        return answer, offset, started or command == "follow", None

    def _bootstrap_seen(self, node, msg) -> None:
        boot = msg.get("bootstrap") or {}
        self.boot_seconds[node.name] = float(msg.get("seconds") or 0)
        if boot.get("outcome") == "started":
            self.on_note(f"[{node.name}] bootstrap: the dependency files changed since the last one; running it")

    def _gone(self, node) -> str | None:
        """Why the node is gone for good, from its provider (cloud nodes), or None."""
        if node.kind != "cloud" or not node.provider:
            return None
        managed = module("plugin_utils._managed")
        state, detail = managed.provider_state(node.provider, node.id, self.environ)
        return f"gone at the provider ({detail})" if state in ("missing", "terminated", "stopped", "error") else None

    def kill(self, names=None) -> None:
        """Stop the job on the named nodes (all by default), in parallel."""
        targets = [n for n in self.nodes if names is None or n.name in names]

        def one(node):
            try:
                self.helper(node, "jobs").run("kill", {"job_id": self.job_id, "kill_grace": 10, "root": "~/.bifrost",
                                                       "check_mode": False})
            except Exception as exc:  # noqa: BLE001 - an unreachable node is reported, the others still stop
                self.on_note(f"[{node.name}] could not stop the job: {exc}")
        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            list(pool.map(one, targets))

    # ---------------------------------------------------------------- collecting
    def collect(self, node) -> None:
        res = self.results[node.name]
        coll = module("plugin_utils._collect_local")
        dest = self.run_dir / "jobs" / self.job_id / node.name
        args = {"dest": str(dest), "job_id": self.job_id, "jobs_dir": "~/.bifrost/jobs",
                "paths": list(self.spec.get("outputs") or []), "base_dir": _workspace(self.spec), "exclude": [],
                "transfer": "auto", "compress": False, "verify_retries": 2, "on_mismatch": "fail",
                "verify": "changed"}
        try:
            out = coll.Collector(_nodes.transport(self.rec, node, self.key), self.helper(node, "collect")).collect(
                {}, args, node.name)
        except Exception as exc:  # noqa: BLE001 - collect errors are the node's result, not a crash
            out = {"failed": True, "msg": str(exc)}
        if out.get("failed"):
            res.msg = f"results not home: {out.get('msg')}"
            return
        res.results_dir = str(dest)
        res.stdout = _read(dest / "stdout.log")
        res.stderr = _read(dest / "stderr.log")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def exec_job(run_id: str, command: str | None = None, *, runs_dir=None, dirty: bool = False, detach: bool = False,
             on_line: Callable[[str, str], None] | None = None, on_note: Callable[[str], None] | None = None,
             lost_after: float = DEFAULT_LOST_AFTER, key: str | None = None, environ: dict | None = None) -> ExecResult:
    """Run ``command`` (default: the spec's) as a new job on every node of an up run: push the current commit
    (``dirty``: and the uncommitted files), bootstrap when the dependency files changed, run, stream each line to
    ``on_line(node, line)``, bring the job's files home verified, record the job. Raises :class:`RunRefused`
    when the run's state does not allow it (nothing was started). Ctrl-C (KeyboardInterrupt) stops the job on
    every node; the nodes stay up."""
    t0 = time.monotonic()
    environ = dict(os.environ if environ is None else environ)
    rec, decision = check("exec", run_id, runs_dir)
    if decision.verdict != "run":
        raise RunRefused(decision.msg, decision.exit_code)
    run_dir = Path(rec["run_dir"])
    with exclusive(run_dir, "exec"):
        rec, decision = check("exec", run_id, runs_dir)  # again, now that no other exec can change it
        if decision.verdict != "run":
            raise RunRefused(decision.msg, decision.exit_code)
        _refuse_unusable(rec)
        ex = _Exec(rec, run_dir, command, dirty, detach, on_line, on_note, lost_after, key, environ)
        for rank in range(len(ex.nodes)):
            job_env(ex.spec, ex.nodes, rank, environ)  # a missing secret refuses before anything moves
        ex.timings["startup"] = round(time.monotonic() - t0, 3)
        return _run_exec(ex, decision.state, t0)


def _refuse_unusable(rec: dict) -> None:
    rid = rec.get("run_id")
    if _expired(rec):
        raise RunRefused(f"run {rid} expired at {rec.get('expires_at')} (ttl {rec.get('ttl') or '?'}): its watchdog "
                         f"and gpuops reap destroy its nodes; nothing was started. gpuops down {rid} ends it now",
                         125)
    if not _nodes.nodes_of(rec):
        raise RunRefused(f"run {rid} has no live node left; nothing was started", 125)
    if not (_spec(rec).get("command") or "").strip():
        raise RunRefused(f"run {rid}: no command given and its spec has none", 125)


def _run_exec(ex: _Exec, held: str, t0: float) -> ExecResult:
    lc, run_dir = ex.lc, ex.run_dir
    lc.transition(str(run_dir), "running", owner=lc.owner_of(os.getpid(), "exec"), fields={"resume_state": held})
    try:
        return _exec_steps(ex, held, t0)
    except RunRefused:
        raise
    except BaseException:
        _settle(ex, held, "killed")
        raise
    finally:
        ex.close()


def _mark_gone(run_dir: Path, node, why: str) -> None:
    lc = lifecycle()
    rec = lc.read_record(str(run_dir)) or {}
    stamped = [dict(i, destroyed_at=lc.iso_now(), gone=why) for i in rec.get("instances") or []
               if str(i.get("id")) == str(node.id) and not i.get("destroyed_at")]
    if stamped:
        lc.update_record(str(run_dir), {}, instances=stamped)


def _exec_steps(ex: _Exec, held: str, t0: float) -> ExecResult:
    lc = ex.lc
    t1 = time.monotonic()
    ex.local_state()
    with ThreadPoolExecutor(max_workers=len(ex.nodes)) as pool:
        futures = {n.name: pool.submit(ex.prepare, n) for n in ex.nodes}
        prepared, failed = {}, []
        for name, fut in futures.items():
            try:
                prepared[name] = fut.result()
            except NodeFailed as exc:
                failed.append(exc)
    ex.timings["push"] = round(max((p["push"] for p in prepared.values()), default=0.0), 3)
    ex.timings["prepare_wall"] = round(time.monotonic() - t1, 3)
    ex.pushed = sum(p["bytes"] for p in prepared.values())
    if ex.deployed:  # the next exec builds its bundle against these heads without asking the nodes first
        lc.update_record(str(ex.run_dir), {"deployed": dict(ex.rec.get("deployed") or {}, **ex.deployed)})
    gone = _gone_nodes(ex, failed)
    if gone:  # reaped, or destroyed by the provider or its watchdog: say so, start nothing, record no job
        _settle(ex, held, None, record_job=False)
        raise RunRefused("; ".join(gone) + "; nothing was started", 125)
    lc.job_started(str(ex.run_dir), {"job_id": ex.job_id, "kind": "exec", "name": "exec", "command": ex.command,
                                     "commit": ex.commit, "dirty": ex.dirty, "detached": ex.detach,
                                     "hosts_planned": [n.name for n in ex.nodes],
                                     "results": os.path.join("jobs", ex.job_id)})
    if failed:
        for exc in failed:
            ex.results[exc.node].status, ex.results[exc.node].msg = "not_started", exc.msg
        _settle(ex, held, "not_started")
        return _result(ex, 125, "; ".join(str(e) for e in failed), t0)
    t2 = time.monotonic()
    _stream_all(ex)
    ex.timings["job"] = round(time.monotonic() - t2, 3)
    ex.timings["bootstrap_check"] = round(max(ex.boot_seconds.values(), default=0.0), 3)
    if ex.detach:
        lc.transition(str(ex.run_dir), "detached", fields={"resume_state": held})
        return _result(ex, 0, f"job {ex.job_id} runs detached on {len(ex.nodes)} node(s)", t0)
    t3 = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(ex.nodes)) as pool:
        list(pool.map(ex.collect, [n for n in ex.nodes if not ex.results[n.name].lost]))
    ex.timings["collect"] = round(time.monotonic() - t3, 3)
    _settle(ex, held, None)
    return _result(ex, _exit_code(ex), _summary(ex), t0)


def _stream_all(ex: _Exec) -> None:
    """Start and follow the job on every node; lines to ``on_line`` as they come. A node whose job fails or is
    lost stops the others (a multi-node job cannot go on without a rank). Ctrl-C stops every node's job."""
    lines: queue.Queue = queue.Queue()
    threads = [threading.Thread(target=ex.follow, args=(n, r, lines), daemon=True) for r, n in enumerate(ex.nodes)]
    for t in threads:
        t.start()
    open_nodes = len(threads)
    try:
        while open_nodes:
            name, line = lines.get()
            if line is not None:
                ex.results[name].output.append(line)
                ex.on_line(name, line)
                continue
            open_nodes -= 1
            res = ex.results[name]
            if len(ex.nodes) > 1 and res.status not in ("succeeded", "running") and not ex.stop_all.is_set():
                ex.on_note(f"[{name}] {res.status}{(': ' + res.msg) if res.msg else ''}; stopping the other nodes")
                ex.stop_all.set()
                ex.kill([n.name for n in ex.nodes if n.name != name])
    except KeyboardInterrupt:
        ex.stop_all.set()
        ex.on_note(f"interrupted: stopping job {ex.job_id} on every node (the nodes stay up)")
        ex.kill()
        for proc in ex.procs.values():
            if proc.poll() is None:
                proc.terminate()
        raise
    for t in threads:
        t.join(timeout=5)


def _gone_nodes(ex: _Exec, failed: list) -> list[str]:
    """For nodes whose push failed: the ones gone at their provider (marked destroyed in the record)."""
    out = []
    for exc in failed:
        node = next(n for n in ex.nodes if n.name == exc.node)
        why = ex._gone(node)
        if why:
            _mark_gone(ex.run_dir, node, why)
            out.append(f"{node.name} is {why}: it was destroyed outside this controller (watchdog, reaper or "
                       "provider)")
    return out


def _settle(ex: _Exec, held: str, status: str | None, record_job: bool = True) -> None:
    """Record how each node's part ended and give the run back to the state it was in (ready or kept)."""
    lc = ex.lc
    if not record_job:
        rec = lc.read_record(str(ex.run_dir)) or {}
        if rec.get("state") == "running" and lc.owner_alive(rec.get("owner")):
            lc.transition(str(ex.run_dir), held if held in ("ready", "kept") else "ready")
        return
    hosts = {}
    for name, res in ex.results.items():
        st = status if status and res.status in ("pending", "running") else res.status
        hosts[name] = {"status": st if st != "pending" else (status or "not_started"), "exit_code": res.exit_code,
                       "msg": res.msg, "lost": res.lost}
    lc.job_ended(str(ex.run_dir), ex.job_id, hosts)
    rec = lc.read_record(str(ex.run_dir)) or {}
    if rec.get("state") == "running" and lc.owner_alive(rec.get("owner")):
        lc.transition(str(ex.run_dir), held if held in ("ready", "kept") else "ready")


def _exit_code(ex: _Exec) -> int:
    results = [ex.results[n.name] for n in ex.nodes]
    if any(r.lost for r in results):
        return EXIT_LOST
    for r in results:
        if r.status == "killed":
            return EXIT_INTERRUPTED
        if r.status in ("bootstrap_failed", "bootstrap_timeout", "not_started"):
            return 125
        if r.status != "succeeded":
            return r.exit_code if isinstance(r.exit_code, int) and r.exit_code > 0 else 1
    if any(r.results_dir is None for r in results):
        return 125  # the job succeeded, but exec's part (its results, home and verified) did not
    return 0


def _summary(ex: _Exec) -> str:
    parts = []
    for n in ex.nodes:
        r = ex.results[n.name]
        parts.append(f"{n.name} {r.status}" + (f" (exit {r.exit_code})" if r.exit_code not in (None, 0) else "")
                     + (f": {r.msg}" if r.msg and r.status != "succeeded" else ""))
    return f"job {ex.job_id}: " + "; ".join(parts)


def _result(ex: _Exec, code: int, msg: str, t0: float) -> ExecResult:
    ex.timings["total"] = round(time.monotonic() - t0, 3)
    statuses = {r.status for r in ex.results.values()}
    status = "succeeded" if statuses == {"succeeded"} and code == 0 else (
        "running" if ex.detach and code == 0 else next(iter(statuses - {"succeeded"}), "failed"))
    return ExecResult(run_id=ex.rec["run_id"], job_id=ex.job_id, exit_code=code, status=status, nodes=ex.results,
                      results_dir=str(ex.run_dir / "jobs" / ex.job_id), timings=ex.timings,
                      pushed_bytes=ex.pushed, msg=msg)


# --------------------------------------------------------------------------------------------- the other commands
def _current_job(rec: dict) -> dict | None:
    return lifecycle().current_job(rec)


def _results_dir(run_dir: Path, job: dict | None) -> Path:
    return run_dir / ((job or {}).get("results") or "")


def _parallel(fn, items):
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(fn, items))


@dataclass
class SyncResult:
    run_id: str
    job_id: str | None
    nodes: dict
    ok: bool
    msg: str = ""


def sync(run_id: str, paths=(), *, runs_dir=None, key: str | None = None) -> SyncResult:
    """Bring the current job's files (its job directory and the spec's outputs, plus ``paths`` relative to the
    workspace) home from every live node, verified and incremental (only what changed travels)."""
    rec, decision = check("sync", run_id, runs_dir)
    if decision.verdict == "refuse":
        raise RunRefused(decision.msg, decision.exit_code)
    if decision.verdict == "noop":
        return SyncResult(run_id, None, {}, True, decision.msg)
    run_dir, spec, job = Path(rec["run_dir"]), _spec(rec), _current_job(rec)
    coll = module("plugin_utils._collect_local")
    wanted = list(spec.get("outputs") or []) + [str(p) for p in paths]

    def one(node):
        dest = _results_dir(run_dir, job) / node.name
        args = {"dest": str(dest), "job_id": (job or {}).get("job_id"), "jobs_dir": "~/.bifrost/jobs",
                "paths": wanted, "base_dir": _workspace(spec), "exclude": [], "transfer": "auto", "compress": False,
                "verify_retries": 2, "on_mismatch": "fail", "verify": "changed"}
        try:
            out = coll.Collector(_nodes.transport(rec, node, key), _nodes.helper(rec, node, "collect", key)).collect(
                {}, args, node.name)
        except Exception as exc:  # noqa: BLE001 - reported per node
            out = {"failed": True, "msg": str(exc)}
        return node.name, dict(out, dest=str(dest))
    got = dict(_parallel(one, _nodes.nodes_of(rec)))
    bad = [f"{n}: {o.get('msg')}" for n, o in got.items() if o.get("failed")]
    return SyncResult(run_id, (job or {}).get("job_id"), got, not bad, "; ".join(bad))


def stop(run_id: str, *, runs_dir=None, key: str | None = None) -> tuple[str, int]:
    """Stop the run's running job on every node; the nodes stay. (message, exit code)."""
    rec, decision = check("stop", run_id, runs_dir)
    if decision.verdict != "run":
        return decision.msg, decision.exit_code
    job = _current_job(rec) or {}
    job_id = job.get("job_id") or rec.get("job_id")
    nodes = _nodes.nodes_of(rec)

    def one(node):
        try:
            out = _nodes.helper(rec, node, "jobs", key).run("kill", {"job_id": job_id, "kill_grace": 10,
                                                                     "root": "~/.bifrost", "check_mode": False})
            return node.name, (out.get("job") or {}).get("status") or out.get("msg")
        except Exception as exc:  # noqa: BLE001
            return node.name, f"unreachable: {exc}"
    stopped = dict(_parallel(one, nodes))
    if decision.state == "detached":  # nobody waits for it: record the end here (a live exec records its own)
        refresh(run_id, runs_dir=runs_dir, key=key)
    return f"job {job_id}: " + ", ".join(f"{n} {s}" for n, s in stopped.items()), 0


def refresh(run_id: str, *, runs_dir=None, key: str | None = None, environ: dict | None = None) -> dict:
    """Bring the record up to date with what the nodes and the providers say now, for a run that has nodes: a
    detached job that ended is recorded (the run is ready again, its outcome decided for a detached pipeline);
    an instance gone at its provider is marked destroyed, and a run with every node gone is torn down with the
    reason. Returns the record (unchanged when nothing could be asked)."""
    lc = lifecycle()
    environ = dict(os.environ if environ is None else environ)
    run_dir = run_dir_of(run_id, runs_dir)
    rec = lc.read_record(str(run_dir))
    if rec is None:
        return rec
    rec.setdefault("run_dir", str(run_dir))
    state = lc.effective_state(rec)
    if state not in ("ready", "detached", "kept", "running"):
        return rec
    _refresh_gone(rec, run_dir, environ)
    rec = lc.read_record(str(run_dir)) or rec
    rec.setdefault("run_dir", str(run_dir))
    if state == "detached":
        _refresh_detached_job(rec, run_dir, key)
    return lc.read_record(str(run_dir)) or rec


def _refresh_gone(rec: dict, run_dir: Path, environ: dict) -> None:
    lc, managed = lifecycle(), module("plugin_utils._managed")
    cloud = [n for n in _nodes.nodes_of(rec) if n.kind == "cloud" and n.provider]
    for node in cloud:
        st, detail = managed.provider_state(node.provider, node.id, environ)
        if st in ("missing", "terminated"):
            _mark_gone(run_dir, node, f"gone at the provider ({detail})")
    rec = lc.read_record(str(run_dir)) or rec
    if rec.get("instances") and not lc.live_nodes(rec) and lc.effective_state(rec) in ("ready", "detached", "kept"):
        idle = rec.get("idle_timeout") or _spec(rec).get("idle_timeout")
        why = (f"every node was destroyed outside this controller: most likely by its watchdog (no controller "
               f"contact for idle_timeout {idle} s while no job ran, or ttl reached), else by gpuops reap or the "
               "provider")
        lc.transition(str(run_dir), "tearing_down", owner=lc.owner_of(os.getpid(), "status"))
        lc.decide_outcome(str(run_dir), "ended" if rec.get("kind") == "session" else "cancelled", why)
        lc.transition(str(run_dir), "torn_down", fields={"ended_at": lc.iso_now(), "gone_reason": why})


def _refresh_detached_job(rec: dict, run_dir: Path, key: str | None) -> None:
    lc = lifecycle()
    job = _current_job(rec)
    nodes = _nodes.nodes_of(rec)
    if not job or not nodes:
        return

    def one(node):
        try:
            out = _nodes.helper(rec, node, "jobs", key).run("info", {"job_id": job["job_id"], "log_lines": 1,
                                                                     "root": "~/.bifrost", "check_mode": False})
        except Exception as exc:  # noqa: BLE001 - an unreachable node leaves the record as it is
            return node.name, {"status": "unknown", "msg": str(exc)}
        j = out.get("job") or {}
        return node.name, {"status": j.get("status") or out.get("msg"), "exit_code": j.get("exit_code"),
                           "final": j.get("final") or j.get("status") == "lost"}
    seen = dict(_parallel(one, nodes))
    if not all(v.get("final") for v in seen.values()):
        return
    entry = lc.job_ended(str(run_dir), job["job_id"], {n: {k: v[k] for k in ("status", "exit_code") if k in v}
                                                       for n, v in seen.items()})
    if rec.get("kind") != "session" and entry:
        lc.decide_outcome(str(run_dir), "succeeded" if entry["status"] == "succeeded" else "failed",
                          "" if entry["status"] == "succeeded" else f"job {entry['status']}", entry.get("exit_code"))
    back = rec.get("resume_state") if rec.get("resume_state") in ("ready", "kept") else "ready"
    lc.transition(str(run_dir), back)


def follow_logs(run_id: str, *, host: str | None = None, bootstrap: bool = False, runs_dir=None,
                key: str | None = None) -> Iterator[tuple[str, str]]:
    """(node, line) of the current job's log from the start until the job ends on every node, then stop.
    A run whose nodes are gone reads the copy that came home."""
    rec, decision = check("logs", run_id, runs_dir)
    if decision.verdict != "run":
        raise RunRefused(decision.msg, decision.exit_code)
    job = _current_job(rec) or ({"job_id": rec.get("job_id")} if rec.get("job_id") else None)
    if not job:
        raise RunRefused(f"run {run_id} has no job yet")
    nodes = _nodes.pick(rec, host)
    if not nodes:
        yield from local_logs(rec, job, host, bootstrap)
        return
    lines: queue.Queue = queue.Queue()

    def pump(node):
        jobs = _nodes.helper(rec, node, "jobs", key)
        tr = jobs.transport
        proc = subprocess.Popen(tr.ssh_argv() + [tr.host(), jobs.command_line("follow")], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdin.write(json.dumps({"job_id": job["job_id"], "offset": 0, "root": "~/.bifrost"}).encode() + b"\n")
        proc.stdin.close()
        for raw in proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if "line" in msg:
                lines.put((node.name, msg["line"]))
        proc.wait()
        lines.put((node.name, None))
    for node in nodes:
        threading.Thread(target=pump, args=(node,), daemon=True).start()
    left = len(nodes)
    while left:
        name, line = lines.get()
        if line is None:
            left -= 1
        else:
            yield name, line


def local_logs(rec: dict, job: dict, host: str | None, bootstrap: bool) -> Iterator[tuple[str, str]]:
    """The collected copy of the job's log (a torn-down run)."""
    base = _results_dir(Path(rec["run_dir"]), job)
    name = "bootstrap.log" if bootstrap else "job.log"
    found = False
    for path in sorted(base.glob(f"*/{name}")):
        node = path.parent.name
        if host and host != node:
            continue
        found = True
        for line in path.read_text(errors="replace").splitlines():
            yield node, line
    if not found:
        raise RunRefused(f"run {rec.get('run_id')}: no node is left and no collected {name} is in {base}")
