"""Python API: run gpu.ops playbooks through ansible-runner and get typed events and a typed result.

    from gpuops.runner import run_pipeline
    result = run_pipeline("run.yml", nodes=2, on_event=print)
    print(result.status, result.cost, result.run_dir)

Every run gets a private data dir in the temp directory (outside any repository), removed afterwards unless
``keep_artifacts``; kept dirs are scrubbed of secret values. API keys (``RUNPOD_API_KEY``, ``VAST_API_KEY``) and
the values of the run spec's ``secret_env`` names reach ansible-playbook through its environment only, via a
pipe (``gpuops._exec``), so they are never written into the data dir. The playbook runs with the caller's
current directory as its working directory, exactly like ``ansible-playbook gpu.ops.<name> -e @run.yml`` typed
there (same ``ansible.cfg``, same relative paths, same ``./runs``).
"""

from __future__ import annotations

import os
import secrets as _random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import runs as _runs
from .events import Event, EventTranslator, Failure
from .exitcodes import EXIT_BAD_INPUT, EXIT_INFRA, exit_code_for
from .secrets import Masker, SecretPipe, secret_names

CHECKOUT = Path(__file__).resolve().parents[2]
CHECKOUT_COLLECTIONS = CHECKOUT / "collections"
COLLECTION_DIR = CHECKOUT_COLLECTIONS / "ansible_collections" / "gpu" / "ops"
DEFAULT_COLLECTIONS_PATHS = ("~/.ansible/collections", "/usr/share/ansible/collections")


class BadInput(ValueError):
    """The request is wrong before anything runs (spec file, -e values, arguments): CLI exit code 2."""


@dataclass
class RunResult:
    """What one playbook run produced. ``status`` is the run record's status for pipeline runs (``succeeded``,
    ``failed``, ``budget_exceeded``, ``preempted``, ``cancelled``, ``running``); otherwise ``succeeded`` or
    ``failed`` from ansible's exit code, or ``error`` when ansible-playbook could not run at all."""

    playbook: str
    status: str
    rc: int
    runner_status: str
    run_id: str | None = None
    instances: list = field(default_factory=list)
    cost: dict | None = None
    run_dir: Path | None = None
    summary: str = ""
    failure: str | None = None
    failures: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    record: dict | None = None
    artifacts_dir: Path | None = None
    first_failure_step: str | None = None
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def exit_code(self, kind: str = "run") -> int:
        return exit_code_for(self, kind)

    def to_dict(self) -> dict:
        return {"playbook": self.playbook, "status": self.status, "rc": self.rc, "runner_status": self.runner_status,
                "run_id": self.run_id, "instances": self.instances, "cost": self.cost,
                "run_dir": str(self.run_dir) if self.run_dir else None, "summary": self.summary,
                "failure": self.failure, "failures": [f.to_dict() for f in self.failures], "stats": self.stats,
                "artifacts_dir": str(self.artifacts_dir) if self.artifacts_dir else None,
                "wall_s": round(self.wall_s, 3)}


# --------------------------------------------------------------------------------------------- environment
def playbook_ref(name: str) -> str:
    """``pipeline`` -> ``gpu.ops.pipeline``; FQCNs and playbook paths are kept."""
    if "/" in name or name.endswith((".yml", ".yaml")):
        return str(Path(name).expanduser().resolve())
    return name if "." in name else f"gpu.ops.{name}"


def playbook_in_checkout(name: str) -> Path | None:
    """The checkout's file for ``gpu.ops.<name>`` if this package runs from a checkout that has it."""
    short = playbook_ref(name).removeprefix("gpu.ops.")
    path = COLLECTION_DIR / "playbooks" / f"{short}.yml"
    return path if path.is_file() else None


def _collections_path(env: dict) -> str | None:
    """From a checkout, put its ``collections/`` first so ``gpu.ops.*`` resolves to the code beside this package;
    an installed package relies on the installed collection (the user's own settings are kept)."""
    if not (COLLECTION_DIR / "galaxy.yml").is_file():
        return None
    rest = env.get("ANSIBLE_COLLECTIONS_PATH") or env.get("ANSIBLE_COLLECTIONS_PATHS")
    parts = [str(CHECKOUT_COLLECTIONS), *(rest.split(os.pathsep) if rest else DEFAULT_COLLECTIONS_PATHS)]
    return os.pathsep.join(dict.fromkeys(p for p in parts if p))


def _runner_env(base: dict, overrides: dict, names: list[str]) -> dict:
    """Non-secret environment changes for the run (ansible-runner merges them over os.environ)."""
    out = {k: str(v) for k, v in overrides.items() if k not in names}
    bindir = str(Path(sys.executable).parent)
    path = out.get("PATH", base.get("PATH", ""))
    if bindir not in path.split(os.pathsep):
        out["PATH"] = bindir + os.pathsep + path  # ansible-playbook, ansible-galaxy of this venv
    coll = _collections_path({**base, **out})
    if coll:
        out["ANSIBLE_COLLECTIONS_PATH"] = coll
    playbook_bin = Path(sys.executable).parent / "ansible-playbook"
    if playbook_bin.exists():
        out["GPUOPS_ANSIBLE_PLAYBOOK"] = str(playbook_bin)
    out.setdefault("ANSIBLE_NOCOLOR", "1")
    out.setdefault("ANSIBLE_FORCE_COLOR", "0")
    return out


@contextmanager
def _forward_signals(pid_box: dict):
    """Ctrl-C / SIGTERM reach ansible-playbook as they would in a terminal, so the pipeline's own handling (stop the
    job, collect, tear down) runs. ansible-runner's default cancel kills the process group with SIGKILL."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum, _frame):
        pid = pid_box.get("pid")
        if pid:
            try:
                os.kill(pid, signum)
                return
            except ProcessLookupError:
                pass
        pid_box["cancel"] = True  # before ansible-playbook's first event nothing ran yet: let the runner kill it

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------------------------- run_playbook
def run_playbook(name: str | list, extravars: dict | None = None, *, on_event: Callable[[Event], None] | None = None,
                 keep_artifacts: bool = False, env: dict | None = None, inventory=None, check: bool = False,
                 cwd: str | os.PathLike | None = None, secret_env_names: tuple | list = (), limit: str | None = None,
                 verbosity: int = 0, timeout: int | None = None, on_raw_event: Callable[[dict], None] | None = None,
                 data_dir_parent: str | None = None) -> RunResult:
    """Run ``gpu.ops.<name>`` (or a playbook path, or a list of plays) with ``extravars`` through ansible-runner.

    ``env`` adds to / overrides the environment of this process for the run. Events are typed (``gpuops.events``)
    and delivered to ``on_event`` as they happen. Returns a ``RunResult``; pipeline runs are read back from
    ``<runs_dir>/<run_id>/run.json`` and ``cost.json`` and the ``gpuops_summary`` of ``set_stats``.
    """
    import ansible_runner.interface as ari  # deferred: `gpuops status` must not pay for it

    extravars = dict(extravars or {})
    base_env = {**os.environ, **{k: str(v) for k, v in (env or {}).items()}}
    names = secret_names(extravars, secret_env_names, base_env)
    secret_values = {k: base_env[k] for k in names if base_env.get(k)}
    masker = Masker(secret_values.values())
    translator = EventTranslator(mask=masker)
    pid_box: dict = {}
    ref = name if isinstance(name, list) else playbook_ref(name)

    def handler(raw: dict) -> bool:
        if "pid" not in pid_box and raw.get("event") == "playbook_on_start" and raw.get("pid") != os.getpid():
            pid_box["pid"] = raw.get("pid")  # ansible-playbook itself (gpuops._exec exec'd into it)
        if on_raw_event:
            on_raw_event(raw)
        for ev in translator.feed(raw):
            if on_event:
                on_event(ev)
        return keep_artifacts  # job_events files only when the caller keeps the dir

    data_dir = Path(tempfile.mkdtemp(prefix="gpuops-runner-", dir=data_dir_parent))
    pipe = SecretPipe()
    t0 = time.monotonic()
    try:
        playbook_arg = ref
        if isinstance(name, list):
            playbook_arg = _write_plays(data_dir, name)
        cmdline = ["-m", "gpuops._exec", playbook_arg] + (["--check"] if check else [])
        runner = ari.init_runner(
            private_data_dir=str(data_dir), binary=sys.executable, cmdline=shlex.join(cmdline),
            extravars=extravars or None, inventory=inventory, limit=limit, verbosity=verbosity or None,
            project_dir=str(Path(cwd or os.getcwd()).resolve()), envvars=_runner_env(base_env, env or {}, names),
            suppress_env_files=True, quiet=True, event_handler=handler,
            cancel_callback=lambda: bool(pid_box.get("cancel")),
            timeout=timeout)
        for k in names:  # inherited from os.environ by ansible-runner: take them out of what it records
            runner.config.env.pop(k, None)
        runner.config.env["GPUOPS_SECRETS_FIFO"] = str(pipe.path)
        pipe.send(secret_values)
        with _forward_signals(pid_box):
            runner.run()
        for ev in translator.close():
            if on_event:
                on_event(ev)
        result = _result(ref if isinstance(ref, str) else "<plays>", runner, translator, extravars, masker)
    finally:
        pipe.close()
        if not keep_artifacts:
            shutil.rmtree(data_dir, ignore_errors=True)
    result.wall_s = time.monotonic() - t0
    if keep_artifacts:
        masker.scrub_tree(data_dir)
        result.artifacts_dir = data_dir
    return result


def _write_plays(data_dir: Path, plays: list) -> str:
    import json

    path = data_dir / "project" / "main.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plays))
    return str(path)


def _result(playbook: str, runner, translator: EventTranslator, extravars: dict, masker: Masker) -> RunResult:
    rc = runner.rc if isinstance(runner.rc, int) else 255
    runner_status = str(runner.status)
    stats = translator.stats or {}
    summary = stats.get("gpuops_summary") if isinstance(stats.get("gpuops_summary"), dict) else {}
    if runner_status in ("error", "timeout", "canceled") or rc in (1, 127, 250, 254, 255):
        status = "error"
    else:
        status = "succeeded" if rc == 0 else "failed"
    res = RunResult(playbook=playbook, status=status, rc=rc, runner_status=runner_status, stats=stats,
                    failures=translator.failures, first_failure_step=translator.first_failure_step)
    res.run_id = summary.get("run_id") or extravars.get("run_id")
    res.summary = masker(str(summary.get("summary") or ""))
    if translator.failures:
        res.failure = translator.failures[-1].msg or f"task {translator.failures[-1].task!r} failed"
    elif rc != 0:  # no task failed: ansible-playbook itself stopped (missing playbook, syntax, options ...)
        res.failure = _runner_error(runner, masker) or f"ansible-playbook ended with rc {rc}"
    runs_dir = summary.get("run_dir") and Path(summary["run_dir"]).parent or extravars.get("runs_dir")
    if res.run_id and runs_dir:
        _attach_record(res, str(res.run_id), runs_dir, summary)
    return res


def _runner_error(runner, masker: Masker) -> str:
    """The last lines of ansible-playbook's output (e.g. "the playbook: gpu.ops.x could not be found")."""
    try:
        with runner.stdout as fh:
            lines = [ln.strip() for ln in fh.read().splitlines() if ln.strip()]
    except Exception:  # noqa: BLE001 - no output file (quiet runs may have none)
        return ""
    errors = [ln for ln in lines if "ERROR" in ln] or lines[-3:]
    return masker(" ".join(errors)[-800:])


def _attach_record(res: RunResult, run_id: str, runs_dir, summary: dict) -> None:
    try:
        record = _runs.load_run(run_id, runs_dir)
    except _runs.RunNotFound:
        return
    res.record = record
    res.run_dir = Path(record["run_dir"])
    res.status = str(summary.get("status") or record.get("status") or res.status)
    if record.get("status") in _runs.RUN_STATUSES:
        res.status = record["status"]
    res.instances = list(record.get("instances") or [])
    res.cost = record.get("cost")
    failure = record.get("failure") or record.get("error") or record.get("message")
    if failure:
        res.failure = str(failure)


# --------------------------------------------------------------------------------------------- the run spec
def load_spec(spec) -> dict:
    """A run spec from a mapping or a YAML/JSON file path."""
    if isinstance(spec, dict):
        return dict(spec)
    import yaml

    path = Path(spec).expanduser()
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BadInput(f"cannot read run spec {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"run spec {path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput(f"run spec {path} must be a mapping of variables, not {type(data).__name__}")
    return data


def new_run_id(name: str | None) -> str:
    """``{name}-{YYYYmmdd-HHMMSS}-{4 hex}``, the pipeline's own format."""
    base = "".join(c if c.isalnum() or c in "-_" else "-" for c in (name or "run")).strip("-") or "run"
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{_random.token_hex(2)}"


def check_spec_keys(spec: dict) -> None:
    """A key that is not a run spec key is a typo (``comand``, ``min_vram_gb``): refused before anything runs, with
    the nearest known key. Keys starting with ``x_`` are the user's own and pass."""
    from ._collection import lifecycle, module

    _run = module("plugin_utils._run")
    known = set(_run.SPEC) | set(_run.CONTROL_VARS) | set(_run.NORMALIZED_KEYS)
    keys = [k for k in spec if not str(k).startswith(tuple(_run.FOREIGN_PREFIXES))]
    problems = lifecycle().unknown_keys_problems(keys, known)
    if problems:
        raise BadInput("the run spec cannot run (nothing was rented): " + "; ".join(problems))


def prepare_spec(spec, overrides: dict | None = None) -> dict:
    """Spec + overrides, with ``run_id`` fixed up front (the API must know where the record will be) and
    ``runs_dir`` absolute."""
    merged = {**load_spec(spec), **(overrides or {})}
    if not merged.get("run_id"):
        merged["run_id"] = new_run_id(merged.get("name"))
    merged["runs_dir"] = str(_runs.default_runs_dir(merged.get("runs_dir")))
    return merged


def run_pipeline(spec, *, on_event: Callable[[Event], None] | None = None, keep_artifacts: bool = False,
                 env: dict | None = None, **overrides) -> RunResult:
    """Run ``gpu.ops.pipeline`` for a run spec (mapping or file) with ``overrides`` on top."""
    return run_playbook("gpu.ops.pipeline", prepare_spec(spec, overrides), on_event=on_event,
                        keep_artifacts=keep_artifacts, env=env)


def up(spec, *, on_event: Callable[[Event], None] | None = None, env: dict | None = None, **overrides) -> RunResult:
    """``gpu.ops.up`` for a run spec: provision, prepare and keep the nodes (then ``gpuops.devloop.exec_job``)."""
    prepared = prepare_spec(spec, overrides)
    check_spec_keys(prepared)
    return run_playbook("gpu.ops.up", prepared, on_event=on_event, env=env)


# --------------------------------------------------------------------------------------------- run commands
def status(run_id: str | None = None, *, runs_dir=None, live: bool = False, env: dict | None = None):
    """Run records (newest first), or one run's record. ``live=True`` first runs ``gpu.ops.status`` for the run
    (it asks the nodes and refreshes the record) and returns the record with the playbook's ``set_stats``."""
    if run_id is None:
        return _runs.list_runs(runs_dir)
    record = _runs.load_run(run_id, runs_dir)
    if live:
        res = run_playbook("gpu.ops.status", _run_vars(record), env=env)
        record = _runs.load_run(run_id, runs_dir)
        record["live"] = {"status": res.status, "rc": res.rc, "summary": res.summary, "stats": res.stats,
                          "failure": res.failure}
    return record


def down(run_id: str, *, runs_dir=None, on_event=None, env: dict | None = None, collect: bool = True,
         force: bool = False) -> RunResult:
    """Stop the job, collect what the run has, then destroy its instances (``gpu.ops.teardown``), whatever state the
    run is in (ready, detached, kept, interrupted); a torn-down run has nothing to do. ``force``: also when the
    record names a live owner (a process on another machine that is gone for good)."""
    record = _runs.load_run(run_id, runs_dir)
    extra = {"collect": collect}
    if force:
        extra["force"] = True
    return run_playbook("gpu.ops.teardown", {**_run_vars(record), **extra}, on_event=on_event, env=env)


def reap(*, check: bool = False, on_event=None, env: dict | None = None, **extravars) -> RunResult:
    return run_playbook("gpu.ops.reap", extravars, check=check, on_event=on_event, env=env)


def cost(*, since: str | None = None, runs_dir=None, on_event=None, env: dict | None = None) -> RunResult:
    ev = {"runs_dir": str(_runs.default_runs_dir(runs_dir))}
    if since:
        ev["since"] = since
    return run_playbook("gpu.ops.cost", ev, on_event=on_event, env=env)


def _run_vars(record: dict) -> dict:
    """The vars a step playbook needs for an existing run: its spec as recorded (``inputs``) plus its id/dir."""
    inputs = record.get("spec") or record.get("inputs")
    inputs = dict(inputs) if isinstance(inputs, dict) else {}
    inputs.pop("ssh_nodes", None)  # the record's hosts name the nodes now
    run_dir = Path(record["run_dir"])
    return {**inputs, "run_id": record.get("run_id") or run_dir.name, "runs_dir": str(run_dir.parent)}


LOCALHOST = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                             "ansible_python_interpreter": sys.executable}}}}


def offers(*, gpu=None, max_price: float | None = None, gpu_count: int | None = None, providers=None,
           interruptible: bool | None = None, limit: int = 20, sort_by: str = "price", env: dict | None = None,
           api_deadline: float | None = None, **filters) -> dict:
    """``gpu.ops.gpu_offer_info`` through ansible-runner: ``{"offers": [...], "total": n, "provider_errors": {}}``.
    Other keyword arguments are the module's filters (``min_vram_gb``, ``regions``, ``min_cuda_version`` ...)."""
    args = {"limit": limit, "sort_by": sort_by, **{k: v for k, v in filters.items() if v is not None}}
    if gpu:
        args["gpu"] = [gpu] if isinstance(gpu, str) else list(gpu)
    for key, val in (("max_price_per_hour", max_price), ("gpu_count", gpu_count), ("providers", providers),
                     ("interruptible", interruptible), ("api_deadline", api_deadline)):
        if val is not None:
            args[key] = val
    plays = [{"name": "offers", "hosts": "localhost", "gather_facts": False,
              "tasks": [{"name": "search offers", "gpu.ops.gpu_offer_info": args, "register": "gpuops_offers"},
                        {"name": "publish", "ansible.builtin.set_stats": {
                            "data": {"gpuops_offers": "{{ gpuops_offers }}"}}}]}]
    failed: dict = {}

    def keep_failure(raw):
        if raw.get("event") == "runner_on_failed":
            failed.update((raw.get("event_data") or {}).get("res") or {})

    res = run_playbook(plays, env=env, inventory=LOCALHOST, on_raw_event=keep_failure)
    if res.status != "succeeded":
        # the module fails on bad filters (unknown GPU, no key) without provider errors; with them, providers failed
        code = EXIT_INFRA if failed.get("provider_errors") or res.status == "error" or not failed else EXIT_BAD_INPUT
        raise OffersError(res.failure or f"offer search failed (rc {res.rc})", res, code)
    found = res.stats.get("gpuops_offers") or {}
    return {"offers": found.get("offers") or [], "total": found.get("total", 0),
            "provider_errors": found.get("provider_errors") or {}, "warnings": found.get("warnings") or []}


class OffersError(RuntimeError):
    def __init__(self, msg, result: RunResult, code: int = EXIT_INFRA):
        super().__init__(msg)
        self.result = result
        self.code = code


# --------------------------------------------------------------------------------------------- logs and ssh
@dataclass
class LogLine:
    host: str
    line: str


def ssh_base(record: dict, inst: dict, key: str | None = None) -> list[str]:
    """ssh argv (without the command) for a node of a run (a cloud instance, a home-lab or ssh host): its recorded
    host/port/user, the run's key and known_hosts file (trust on first use, as the pipeline does), and the shared
    ControlMaster of ``gpuops.nodes``."""
    from . import nodes

    node = nodes.node_from(inst)
    return nodes.ssh_argv(record, node, key) + [nodes.destination(node)]


def pick_instances(record: dict, host: str | None) -> list[dict]:
    insts = [i for i in _runs.live_nodes(record) if i.get("ssh_host")]
    if host:
        insts = [i for i in insts if host in (i.get("name"), str(i.get("id")), i.get("ssh_host"))]
        if not insts:
            raise BadInput(f"run {record.get('run_id')} has no live node named {host!r}")
    if not insts:
        raise BadInput(f"run {record.get('run_id')} has no live node ({_runs.display_status(record)})")
    return insts


def job_id_of(record: dict, inst: dict) -> str | None:
    """The run's job id on this instance, when the record names it (``job_id``, or ``jobs`` by host)."""
    jobs = record.get("jobs")
    if isinstance(jobs, dict):
        j = jobs.get(inst.get("name")) or jobs.get(str(inst.get("id")))
        if isinstance(j, dict):
            return j.get("job_id")
        if isinstance(j, str):
            return j
    if isinstance(jobs, list):
        for j in jobs:
            if isinstance(j, dict) and j.get("host") in (inst.get("name"), str(inst.get("id"))):
                return j.get("job_id")
    return inst.get("job_id") or record.get("job_id")


# newest job dir on the node when the record does not name one; bootstrap logs live in the job's own dir
FIND_JOB = ('d=$(ls -1td "$HOME"/.bifrost/jobs/*/ 2>/dev/null | while read -r j; do '
            '[ -e "${{j}}{f}" ] && {{ basename "$j"; break; }}; done); [ -n "$d" ] || exit 3; ')


def log_command(job_id: str | None, *, bootstrap: bool, follow: bool, lines: int | None) -> str:
    fname = "bootstrap.log" if bootstrap else "job.log"
    count = f"-n {int(lines)}" if lines else "-n +1"
    tail = f"tail {count} {'-F' if follow else ''} \"$HOME/.bifrost/jobs/$d/{fname}\""
    if job_id:
        return f"d={shlex.quote(job_id)}; " + tail
    return FIND_JOB.format(f=fname) + tail


def logs(run_id: str, *, follow: bool = False, host: str | None = None, bootstrap: bool = False,
         lines: int | None = None, runs_dir=None, key: str | None = None) -> Iterator[LogLine]:
    """Lines of the run's job log (or ``bootstrap.log``) from each live node over SSH; ``follow`` keeps reading
    until the caller stops iterating (the ssh processes are ended then)."""
    record = _runs.load_run(run_id, runs_dir)
    procs = []
    for inst in pick_instances(record, host):
        cmd = log_command(job_id_of(record, inst), bootstrap=bootstrap, follow=follow, lines=lines)
        procs.append((inst.get("name") or inst["ssh_host"], subprocess.Popen(
            [*ssh_base(record, inst, key), cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL)))
    try:
        yield from _merge(procs)
    finally:
        for _h, p in procs:
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


def _merge(procs) -> Iterator[LogLine]:
    """Lines of several ssh processes as they come (a thread per process feeds one queue)."""
    import queue

    q: queue.Queue = queue.Queue()
    errors: dict = {}

    def pump(host, p):
        for line in p.stdout:
            q.put(LogLine(host, line.rstrip("\n")))
        err = p.stderr.read().strip()
        if p.wait() != 0:
            errors[host] = err or f"ssh exited with {p.returncode}"
        q.put(None)

    for host, p in procs:
        threading.Thread(target=pump, args=(host, p), daemon=True).start()
    left = len(procs)
    while left:
        item = q.get()
        if item is None:
            left -= 1
            continue
        yield item
    if errors:
        raise LogsError("; ".join(f"{h}: {_log_error(e)}" for h, e in errors.items()))


def _log_error(err: str) -> str:
    return "no job log on the node" if err.endswith("exited with 3") or not err else err


class LogsError(RuntimeError):
    pass


def ssh_argv(run_id: str, host: str | None = None, *, runs_dir=None, key: str | None = None) -> list[str]:
    """``ssh -t ... tmux attach -t bifrost-<job_id>`` for one node of the run (the first when ``host`` is None)."""
    record = _runs.load_run(run_id, runs_dir)
    inst = pick_instances(record, host)[0]
    base = ssh_base(record, inst, key)
    job_id = job_id_of(record, inst)
    if job_id:
        target = f"tmux attach -t {shlex.quote('bifrost-' + job_id)}"
    else:  # the newest job session on the node
        target = ("s=$(tmux ls -F '#{session_created} #{session_name}' 2>/dev/null | grep ' bifrost-' | "
                  "grep -v -- '-bootstrap$' | sort -n | tail -1 | cut -d' ' -f2); "
                  "[ -n \"$s\" ] || { echo 'no bifrost job session on this node' >&2; exit 3; }; "
                  "exec tmux attach -t \"$s\"")
    return [base[0], "-t", *base[1:], target]


__all__ = ["BadInput", "RunResult", "LogLine", "run_playbook", "run_pipeline", "prepare_spec", "load_spec",
           "status", "up", "check_spec_keys", "logs", "down", "reap", "cost", "offers", "ssh_argv", "EXIT_INFRA", "Failure"]
