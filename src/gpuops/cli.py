"""gpuops: run GPU training on rented cloud GPUs and home-lab nodes (a thin layer over gpuops.runner).

  gpuops launch run.yml [-e k=v] [--detach]     run the pipeline (gpu.ops.pipeline) for a run spec
  gpuops up run.yml [--ssh user@host[:port]]    provision, prepare and keep the nodes (gpu.ops.up)
  gpuops exec RUN_ID [--dirty] [-- CMD ...]     push, bootstrap if needed, run CMD as a new job, results home
  gpuops sync RUN_ID [PATH ...]                 the current job's results home (verified, incremental)
  gpuops stop RUN_ID                            stop the running job; the nodes stay
  gpuops status [RUN_ID] [--json]               runs in runs/ (or one run: state, nodes, jobs, cost, expiry)
  gpuops logs RUN_ID [-f] [--host H] [--bootstrap]
  gpuops down RUN_ID                            stop the job, collect, destroy the run's instances, record
  gpuops reap [--check]                         destroy expired/orphaned instances (gpu.ops.reap)
  gpuops cost [--since DATE] [--json]           spend per run (gpu.ops.cost)
  gpuops offers --gpu 4090 --max-price 0.7      offers of every configured provider, cheapest first
  gpuops ssh RUN_ID [HOST]                      attach to the job's tmux session on a node
  gpuops sim ...                                the local GPU-cloud simulator (same as gpuops-sim)

Exit codes: 0 succeeded (or nothing to do), 1 the run failed (failed, budget_exceeded, preempted, cancelled), 2 bad
input or a command the run's state does not allow (nothing was created or changed), 3 infrastructure failure
(ansible could not run or finish, provider/SSH errors in commands acting on runs). exec exits with the job's own
exit code (125: exec refused or could not do its part, 130: interrupted, 255: a node was lost). Details:
gpuops/exitcodes.py; which command may do what in which state of a run: docs/lifecycle.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .exitcodes import EXIT_BAD_INPUT, EXIT_INFRA, EXIT_OK
from .runs import RunNotFound, default_runs_dir, display_status, elapsed_seconds, format_duration, list_runs, \
    live_nodes, load_run

STATUS_WIDTHS = (34, 16, 6, 18, 20, 8, 10)


def _err(msg: str) -> None:
    sys.stderr.write(f"gpuops: error: {msg}\n")


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# ------------------------------------------------------------------------------------------------- launch
def parse_extra(items: list[str]) -> dict:
    """``-e`` values as ansible-playbook takes them: ``k=v`` (v read as YAML: ``nodes=2`` is an int), ``@file``,
    or an inline YAML/JSON mapping."""
    import yaml

    from .runner import BadInput, load_spec

    out: dict = {}
    for item in items or []:
        if item.startswith("@"):
            out.update(load_spec(item[1:]))
        elif item.lstrip().startswith("{"):
            try:
                data = yaml.safe_load(item)
            except yaml.YAMLError as exc:
                raise BadInput(f"-e {item!r}: not a valid mapping: {exc}") from None
            if not isinstance(data, dict):
                raise BadInput(f"-e {item!r}: not a mapping")
            out.update(data)
        elif "=" in item and not item.startswith("="):
            key, _, val = item.partition("=")
            try:
                out[key.strip()] = yaml.safe_load(val) if val.strip() else ""
            except yaml.YAMLError:
                out[key.strip()] = val
        else:
            raise BadInput(f"-e {item!r}: expected key=value, @file or a mapping")
    return out


def _event_sink(path: str | None):
    if not path:
        return None
    fh = open(path, "a", buffering=1, encoding="utf-8")

    def write(ev):
        fh.write(json.dumps(ev.to_dict(), default=str) + "\n")

    return write


def _fanout(*fns):
    fns = [f for f in fns if f]
    return lambda ev: [f(ev) for f in fns]


# what a gpu.ops playbook is, in the run's lifecycle (module_utils/lifecycle.py)
PLAYBOOK_COMMANDS = {"gpu.ops.pipeline": "launch", "gpu.ops.up": "up", "gpu.ops.provision": "up",
                     "gpu.ops.deploy": "deploy", "gpu.ops.health": "health", "gpu.ops.train": "train", "gpu.ops.exec": "exec",
                     "gpu.ops.status": "status", "gpu.ops.logs": "logs", "gpu.ops.collect": "sync",
                     "gpu.ops.teardown": "down"}


def _checked_spec(a, command: str, overrides: dict | None = None) -> tuple[dict, int | None]:
    """The spec file plus -e values, its keys checked (a typo fails with the nearest key) and the run's state
    asked (an existing run id); (spec, exit code when the command must not go on)."""
    from . import runner

    overrides = {**parse_extra(a.extra), **(overrides or {})}
    if a.runs_dir:
        overrides.setdefault("runs_dir", a.runs_dir)
    spec = runner.prepare_spec(a.spec, overrides)
    command = PLAYBOOK_COMMANDS.get(runner.playbook_ref(a.playbook), None if command == "launch" else command)
    if command is None:  # a playbook of your own: its keys and its run are its business
        return spec, None
    runner.check_spec_keys(spec)
    from .devloop import check

    _rec, decision = check(command, spec["run_id"], spec["runs_dir"])
    if decision.verdict == "noop":
        print(decision.msg)
        return spec, EXIT_OK
    if decision.verdict == "refuse":
        _err(decision.msg)
        return spec, decision.exit_code
    return spec, None


def cmd_launch(a) -> int:
    from . import runner
    from .progress import Progress

    spec, code = _checked_spec(a, "up" if a.cmd == "up" else "launch", _ssh_overrides(a))
    if code is not None:
        return code
    if a.detach:
        return _detach(a, spec)
    sink = _event_sink(a.events_file)
    with Progress(verbose=a.verbose) as prog:
        res = runner.run_playbook(a.playbook, spec, on_event=_fanout(prog, sink),
                                  keep_artifacts=a.keep_artifacts)
    return _report(res, a.json, "up" if a.cmd == "up" else "run")


def _ssh_overrides(a) -> dict:
    """``gpuops up --ssh user@host[:port]`` (repeatable): those machines are the run's nodes."""
    hosts = getattr(a, "ssh", None) or []
    return {"target": "ssh", "ssh_hosts": list(hosts)} if hosts else {}


def _report(res, as_json: bool, kind: str) -> int:
    code = res.exit_code(kind)
    if as_json:
        _print_json({**res.to_dict(), "exit_code": code})
        return code
    if res.summary:
        print(res.summary)
    elif res.run_id and kind in ("run", "up"):
        print(f"run {res.run_id}: {res.status}" + (f", results in {res.run_dir}" if res.run_dir else ""))
    if kind == "up" and code == EXIT_OK and res.run_id:
        rid = res.run_id
        print(f"  run a job:  gpuops exec {rid} -- <command>\n  results:    gpuops sync {rid}\n"
              f"  status:     gpuops status {rid}\n  end it:     gpuops down {rid}")
    if res.artifacts_dir:
        print(f"ansible-runner artifacts (secrets masked): {res.artifacts_dir}")
    if code != EXIT_OK:
        _err(res.failure or f"{res.playbook} ended with status {res.status} (ansible rc {res.rc})")
    return code


def _detach(a, spec: dict) -> int:
    """Start the same launch in the background and return once the job runs on the nodes (or the launch ended)."""
    import subprocess

    run_id = spec["run_id"]
    side = Path(spec["runs_dir"]) / ".gpuops"
    side.mkdir(parents=True, exist_ok=True)
    spec_file, events, log = (side / f"{run_id}.spec.json", side / f"{run_id}.events.jsonl",
                              side / f"{run_id}.launch.log")
    for path in (spec_file, events, log):  # private to the user, like the run record
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    spec_file.write_text(json.dumps(spec, indent=2))
    cmd = [sys.executable, "-m", "gpuops.cli", "launch", str(spec_file), "--events-file", str(events),
           "--playbook", a.playbook]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    print(f"run {run_id} launched in the background (pid {proc.pid}); log: {log}", file=sys.stderr)
    started = _wait_for_job(proc, events)
    if started is None:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        return proc.returncode if proc.returncode is not None else EXIT_INFRA
    hosts = ", ".join(sorted({e["host"] for e in started}))
    print(f"run {run_id}: job {started[0]['job_id']} running on {hosts}\n"
          f"  follow:  gpuops logs {run_id} -f\n  status:  gpuops status {run_id}\n"
          f"  attach:  gpuops ssh {run_id}\n  stop:    gpuops down {run_id}")
    return EXIT_OK


def _wait_for_job(proc, events: Path) -> list[dict] | None:
    """JobStarted events once the first appears (then a moment for the other nodes' starts), or None if the
    launch ended first. Polls with backoff; the pipeline decides how long provisioning may take."""
    delay, found, first_seen = 0.1, [], None
    while True:
        found = [e for e in _read_events(events) if e.get("event") == "JobStarted"]
        if found and first_seen is None:
            first_seen = time.monotonic()
        ended = proc.poll() is not None
        if found and (ended or time.monotonic() - first_seen > 2 or _wait_done(events)):
            return found
        if ended:
            return found or None
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def _wait_done(events: Path) -> bool:
    """The job-start task of the play has ended (a StepEnded of a task after the JobStarted events)."""
    seen_job = False
    for e in _read_events(events):
        if e.get("event") == "JobStarted":
            seen_job = True
        elif seen_job and e.get("event") == "StepEnded" and e.get("kind") == "task":
            return True
    return False


def _read_events(path: Path) -> list[dict]:
    out = []
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line being written
    return out


# ------------------------------------------------------------------------------------------------- status
def cmd_status(a) -> int:
    if a.run_id:
        record = load_run(a.run_id, a.runs_dir)
        if not a.no_refresh and record.get("state") in ("ready", "running", "detached", "kept"):
            from .devloop import refresh

            refresh(a.run_id, runs_dir=a.runs_dir, key=None)  # what the nodes and providers say now
            record = load_run(a.run_id, a.runs_dir)
        if a.live:
            from . import runner

            record = runner.status(a.run_id, runs_dir=a.runs_dir, live=True)
    else:
        runs = list_runs(a.runs_dir)
        if a.json:
            _print_json(runs)
        else:
            print(format_runs(runs, default_runs_dir(a.runs_dir)))
        return EXIT_OK
    if a.json:
        _print_json(record)
    else:
        print(format_run(record))
    return EXIT_OK


def format_runs(runs: list[dict], runs_dir: Path) -> str:
    if not runs:
        return f"no runs in {runs_dir}"
    head = ("RUN_ID", "STATUS", "NODES", "GPU", "STARTED", "ELAPSED", "COST $")
    rows = [head]
    for r in runs:
        insts = r.get("instances") or []
        gpus = sorted({f"{i.get('gpu_count') or 1}x {i.get('gpu_model') or '?'}" for i in insts})
        total = len(insts) + len(r.get("hosts") or [])
        rows.append((str(r.get("run_id")), display_status(r), f"{len(live_nodes(r))}/{total}", ",".join(gpus)[:18],
                     str(r.get("started_at") or "-")[:19], format_duration(elapsed_seconds(r)),
                     f"{r['cost']['estimated_usd']:.4f}"))
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, STATUS_WIDTHS, strict=True)).rstrip()
                     for row in rows)


def format_run(r: dict) -> str:
    cost = r.get("cost") or {}
    billed = cost.get("billed_usd")
    rid = r.get("run_id")
    lines = [f"run {rid}: {display_status(r)}" + (f" - {r['message']}" if r.get("message") else ""),
             f"  dir       {r.get('run_dir')}",
             f"  started   {r.get('started_at') or '-'}   ended {r.get('ended_at') or '-'}   "
             f"elapsed {format_duration(elapsed_seconds(r))}",
             f"  cost      ${cost.get('estimated_usd', 0):.4f} {'so far' if live_nodes(r) else 'estimated'} "
             f"({cost.get('source')})" + (f", ${billed:.4f} billed" if isinstance(billed, (int, float)) else "")]
    if live_nodes(r):
        idle = r.get("idle_timeout") or (r.get("spec") or {}).get("idle_timeout")
        lines.append(f"  expires   {r.get('expires_at') or '-'} (ttl {r.get('ttl') or (r.get('spec') or {}).get('ttl')})"
                     + (f"; an idle node is destroyed by its watchdog after {idle} s without a controller"
                        if idle and any(n.get("kind") == "cloud" for n in live_nodes(r)) else ""))
    if r.get("gone_reason"):
        lines.append(f"  gone      {r['gone_reason']}")
    nodes = [dict(i, kind="cloud") for i in r.get("instances") or []] + list(r.get("hosts") or [])
    if nodes:
        lines.append("  nodes:")
        for i in nodes:
            state = ("destroyed" if i.get("destroyed_at") else "live") if i.get("kind") == "cloud" else i.get("kind")
            what = (f"{i.get('gpu_count') or '?'}x {i.get('gpu_model') or '?'}  ${i.get('price_per_hour')}/h"
                    if i.get("kind") == "cloud" else "your machine")
            lines.append(f"    {str(i.get('name')):<24} {str(i.get('provider') or '-'):<7} {state:<9} {what}  "
                         f"{i.get('ssh_user')}@{i.get('ssh_host')}:{i.get('ssh_port')}"
                         + (f"  ({i['gone']})" if i.get("gone") else ""))
    jobs = [j for j in r.get("jobs") or [] if isinstance(j, dict)]
    if jobs:
        lines.append("  jobs:")
        for j in jobs[-10:]:
            code = f" exit {j.get('exit_code')}" if j.get("exit_code") not in (None, 0) else ""
            lines.append(f"    {j.get('job_id'):<40} {j.get('kind') or '':<8} {j.get('status') or '?'}{code}  "
                         f"{(j.get('command') or '')[:60]}")
    elif r.get("job_id"):
        lines.append(f"  job:      {r['job_id']}")
    if live_nodes(r):
        lines.append(f"  next:     gpuops exec {rid} -- CMD   logs: gpuops logs {rid} -f   sync: gpuops sync {rid}   "
                     f"end: gpuops down {rid}")
    steps = r.get("steps") or {}
    if steps:
        lines.append("  steps:    " + ", ".join(f"{k} {format_duration(v)}" for k, v in steps.items()
                                                 if isinstance(v, (int, float))))
    live = r.get("live")
    if live:
        lines.append(f"  live:     {live.get('status')}" + (f"\n{live['summary']}" if live.get("summary") else ""))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- logs / ssh
def cmd_logs(a) -> int:
    from .devloop import RunRefused, follow_logs, local_logs
    from .runner import LogsError, logs

    record = load_run(a.run_id, a.runs_dir)
    nodes = live_nodes(record)
    many = a.host is None and (len(nodes) > 1 or (not nodes and len(record.get("instances") or []) > 1))

    def show(host, line):
        if a.json:
            sys.stdout.write(json.dumps({"host": host, "line": line}) + "\n")
        else:
            sys.stdout.write(f"[{host}] {line}\n" if many else line + "\n")
        sys.stdout.flush()
    try:
        if not nodes:  # torn down: the copy that came home
            job = (record.get("jobs") or [None])[-1] or {"job_id": record.get("job_id")}
            items = list(local_logs(record, job, a.host, a.bootstrap))
            for host, line in items[-a.lines:] if a.lines else items:
                show(host, line)
        elif a.follow and not a.bootstrap:  # until the job ends, then exit 0
            for host, line in follow_logs(a.run_id, host=a.host, runs_dir=a.runs_dir, key=a.key):
                show(host, line)
        else:
            for item in logs(a.run_id, follow=a.follow, host=a.host, bootstrap=a.bootstrap, lines=a.lines,
                             runs_dir=a.runs_dir, key=a.key):
                show(item.host, item.line)
    except RunRefused as exc:
        _err(str(exc))
        return exc.code
    except LogsError as exc:
        _err(str(exc))
        return EXIT_INFRA
    return EXIT_OK


def cmd_ssh(a) -> int:
    import shlex

    from .runner import ssh_argv

    argv = ssh_argv(a.run_id, a.host, runs_dir=a.runs_dir, key=a.key)
    if a.print:
        print(shlex.join(argv))
        return EXIT_OK
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return EXIT_INFRA  # not reached


# ------------------------------------------------------------------------------------------------- actions
def _with_progress(a, fn, **kw):
    from .progress import Progress

    with Progress(verbose=a.verbose) as prog:
        return fn(on_event=prog, **kw)


def cmd_down(a) -> int:
    from . import runner
    from ._collection import lifecycle
    from .devloop import check, run_dir_of

    _rec, decision = check("down", a.run_id, a.runs_dir)
    if decision.verdict == "noop":
        print(decision.msg)
        return EXIT_OK
    if decision.verdict == "refuse":
        _err(decision.msg)
        return decision.exit_code
    if decision.state in ("planned", "provisioning", "running") and not a.force:
        try:  # a live pipeline or exec on this machine ends its own run first (as Ctrl-C there)
            lifecycle().take_over(str(run_dir_of(a.run_id, a.runs_dir)), note=lambda m: print(f"gpuops: {m}",
                                                                                             file=sys.stderr))
        except lifecycle().LifecycleError as exc:
            _err(str(exc))
            return EXIT_INFRA
        _rec, decision = check("down", a.run_id, a.runs_dir)
        if decision.verdict == "noop":
            print(f"run {a.run_id} was ended by its own process: {decision.msg.split('; ')[0]}")
            return EXIT_OK
    res = _with_progress(a, runner.down, run_id=a.run_id, runs_dir=a.runs_dir, force=a.force)
    code = _report(res, a.json, "action")
    record = load_run(a.run_id, a.runs_dir)
    left = live_nodes(record) if record.get("state") != "torn_down" else []
    if record.get("state") != "torn_down" or [n for n in left if n.get("kind") == "cloud"]:
        names = ", ".join(f"{n.get('name')} ({n.get('provider')} {n.get('id')})" for n in left) or "unknown"
        _err(f"run {a.run_id} is NOT torn down (state {record.get('state')}): still billing: {names}. Run gpuops "
             f"down {a.run_id} again, or: gpuops reap (ansible-playbook gpu.ops.reap -e reap_run_ids={a.run_id})")
        return EXIT_INFRA
    return code if code != EXIT_OK else EXIT_OK


def _exec_printer(a):
    """Lines on stdout with the node's name; notes (deploy warnings, bootstrap, reconnects) on stderr."""
    lock = __import__("threading").Lock()

    def line(node, text):
        with lock:
            sys.stdout.write(f"[{node}] {text}\n")
            sys.stdout.flush()

    def note(msg):
        with lock:
            sys.stderr.write(f"gpuops: {msg}\n")
            sys.stderr.flush()
    return line, note


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def cmd_exec(a) -> int:
    import shlex
    import signal

    from .devloop import RunRefused, exec_job

    argv = list(a.cmd or [])
    command = (argv[0] if len(argv) == 1 else shlex.join(argv)) if argv else None
    line, note = _exec_printer(a)
    signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl-C: the job stops everywhere, the nodes stay
    try:
        res = exec_job(a.run_id, command, runs_dir=a.runs_dir, dirty=a.dirty, detach=a.detach, key=a.key,
                       on_line=None if a.json else line, on_note=note, lost_after=a.lost_after)
    except RunRefused as exc:
        _err(str(exc))
        return exc.code
    except KeyboardInterrupt:
        _err(f"interrupted: the job is stopped on every node; the nodes stay up (gpuops sync {a.run_id} brings "
             f"what it wrote home; gpuops down {a.run_id} ends the run)")
        return 130
    if a.json:
        _print_json(res.to_dict())
        return res.exit_code
    t = res.timings
    if a.detach and res.exit_code == 0:
        print(f"job {res.job_id} runs detached on {len(res.nodes)} node(s)\n  follow: gpuops logs {a.run_id} -f\n"
              f"  stop:   gpuops stop {a.run_id}\n  status: gpuops status {a.run_id}", file=sys.stderr)
        return 0
    print(f"gpuops: {res.msg}; results: {res.results_dir} (push {t.get('push', 0):.2f}s, bootstrap check "
          f"{t.get('bootstrap_check', 0):.2f}s, job {t.get('job', 0):.2f}s, collect {t.get('collect', 0):.2f}s, "
          f"total {t.get('total', 0):.2f}s)", file=sys.stderr)
    return res.exit_code


def cmd_sync(a) -> int:
    from .devloop import RunRefused, sync

    try:
        res = sync(a.run_id, a.paths, runs_dir=a.runs_dir, key=a.key)
    except RunRefused as exc:
        _err(str(exc))
        return exc.code
    if a.json:
        _print_json({"run_id": res.run_id, "job_id": res.job_id, "ok": res.ok, "msg": res.msg, "nodes": res.nodes})
    elif not res.nodes:
        print(res.msg)
    else:
        for name, out in res.nodes.items():
            print(f"[{name}] " + (f"FAILED: {out.get('msg')}" if out.get("failed") else
                                  f"{out.get('fetched', 0)} file(s) fetched ({out.get('fetched_bytes', 0)} bytes), "
                                  f"{out.get('files', 0)} verified in {out.get('dest')}"))
    if not res.ok:
        _err(res.msg)
        return EXIT_INFRA
    return EXIT_OK


def cmd_stop(a) -> int:
    from .devloop import stop

    msg, code = stop(a.run_id, runs_dir=a.runs_dir, key=a.key)
    (print if code == EXIT_OK else _err)(msg)
    return code


def cmd_reap(a) -> int:
    from . import runner

    return _report(_with_progress(a, runner.reap, check=a.check), a.json, "action")


def cmd_cost(a) -> int:
    from . import runner

    res = _with_progress(a, runner.cost, since=a.since, runs_dir=a.runs_dir)
    if not a.json and not res.summary and res.stats:
        _print_json(res.stats)
    return _report(res, a.json, "action")


def cmd_offers(a) -> int:
    from . import runner

    try:
        found = runner.offers(gpu=a.gpu, max_price=a.max_price, gpu_count=a.gpu_count, providers=a.provider,
                              interruptible=True if a.interruptible else None, limit=a.limit, sort_by=a.sort,
                              min_vram_gb=a.min_vram, regions=a.region, api_deadline=a.timeout)
    except runner.OffersError as exc:
        _err(str(exc))
        return exc.code
    if a.json:
        _print_json(found)
        return EXIT_OK
    print(format_offers(found))
    return EXIT_OK


def format_offers(found: dict) -> str:
    offers = found["offers"]
    if not offers:
        return "no offers match" + "".join(f"\n  {w}" for w in found.get("warnings") or [])
    head = ("PROVIDER", "GPU", "N", "VRAM", "$/HR", "$/GPU-HR", "SPOT", "RELIAB", "REGION", "OFFER")
    rows = [head]
    for o in offers:
        rel = o.get("reliability")
        rows.append((o["provider"], o["gpu_model"], o["gpu_count"], f"{o.get('vram_gb') or '?'}G",
                     f"{o['price_per_hour']:.3f}", f"{o['price_per_gpu_hour']:.3f}",
                     "yes" if o.get("interruptible") else "no", f"{rel:.3f}" if rel is not None else "-",
                     str(o.get("region") or "-")[:28], str(o["offer_id"])))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"{len(offers)} of {found['total']} matching offer(s)")
    for name, err in (found.get("provider_errors") or {}).items():
        lines.append(f"warning: {name}: {err.get('message')}")
    return "\n".join(lines)


def cmd_sim(a) -> int:
    from .sim.cli import main as sim_main

    return sim_main(a.sim_args)


# ------------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpuops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__

    p.add_argument("--version", action="version", version=f"gpuops {__version__}")
    p.add_argument("--runs-dir", default=None, help="run records (default: $GPUOPS_RUNS_DIR or ./runs)")
    p.add_argument("-v", "--verbose", action="store_true", help="show every task, not only the steps")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    sp = sub.add_parser("launch", help="run the pipeline for a run spec")
    sp.add_argument("spec", help="run spec (YAML vars file, as for ansible-playbook -e @run.yml)")
    sp.add_argument("-e", "--extra-vars", dest="extra", action="append", default=[], metavar="K=V",
                    help="override a spec value (k=v, @file or a YAML mapping); repeatable")
    sp.add_argument("--detach", action="store_true", help="return once the job runs; print how to follow it")
    sp.add_argument("--playbook", default="gpu.ops.pipeline",
                    help="run a step playbook (provision, deploy, train ...) or a playbook file with the same spec")
    sp.add_argument("--keep-artifacts", action="store_true",
                    help="keep ansible-runner's data dir (secrets masked) and print its path")
    sp.add_argument("--json", action="store_true", help="print the result as JSON")
    sp.add_argument("--events-file", help=argparse.SUPPRESS)
    sp.set_defaults(fn=cmd_launch)

    sp = sub.add_parser("up", help="provision, prepare and keep the nodes for gpuops exec (gpu.ops.up)")
    sp.add_argument("spec", help="run spec (YAML vars file); command is optional here")
    sp.add_argument("-e", "--extra-vars", dest="extra", action="append", default=[], metavar="K=V",
                    help="override a spec value (k=v, @file or a YAML mapping); repeatable")
    sp.add_argument("--ssh", action="append", metavar="USER@HOST[:PORT]",
                    help="use this machine as a node (repeatable; nothing is rented or destroyed)")
    sp.add_argument("--keep-artifacts", action="store_true", help=argparse.SUPPRESS)
    sp.add_argument("--json", action="store_true", help="print the result as JSON")
    sp.set_defaults(fn=cmd_launch, detach=False, playbook="gpu.ops.up", events_file=None)

    sp = sub.add_parser("exec", help="run a command as a new job on an up run's nodes, stream it, results home")
    sp.add_argument("run_id", metavar="RUN_ID")
    sp.add_argument("cmd", nargs="*", metavar="-- CMD",
                    help="the command after -- (default: the spec's): gpuops exec RUN_ID -- python train.py --lr 3e-4")
    sp.add_argument("--dirty", action="store_true",
                    help="also push uncommitted and untracked (not ignored) files, as a layer the next push replaces")
    sp.add_argument("--detach", action="store_true", help="return once the job runs")
    sp.add_argument("--lost-after", type=float, default=120.0, metavar="S",
                    help="a node unreachable this long (and not gone at its provider sooner) is lost (default 120)")
    sp.add_argument("-i", "--key", help="SSH private key (default: the run's)")
    sp.add_argument("--json", action="store_true", help="the result as JSON (stdout, stderr and exit code per node)")
    sp.set_defaults(fn=cmd_exec)

    sp = sub.add_parser("sync", help="the current job's results home (verified, incremental)")
    sp.add_argument("run_id", metavar="RUN_ID")
    sp.add_argument("paths", nargs="*", metavar="PATH", help="more paths to bring home (relative to the workspace)")
    sp.add_argument("-i", "--key", help="SSH private key (default: the run's)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_sync)

    sp = sub.add_parser("stop", help="stop the run's running job on every node; the nodes stay")
    sp.add_argument("run_id", metavar="RUN_ID")
    sp.add_argument("-i", "--key", help="SSH private key (default: the run's)")
    sp.set_defaults(fn=cmd_stop)

    sp = sub.add_parser("status", help="runs in the runs dir, or one run")
    sp.add_argument("run_id", nargs="?", metavar="RUN_ID")
    sp.add_argument("--live", action="store_true", help="also run gpu.ops.status on the nodes (jobs, attach commands)")
    sp.add_argument("--no-refresh", action="store_true",
                    help="the record only (by default a run with nodes is checked against them and its provider)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_status)

    sp = sub.add_parser("logs", help="the job log of a run's nodes")
    sp.add_argument("run_id", metavar="RUN_ID")
    sp.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    sp.add_argument("--host", help="only this node (name, id or address)")
    sp.add_argument("--bootstrap", action="store_true", help="the bootstrap log instead of the job log")
    sp.add_argument("-n", "--lines", type=int, help="only the last N lines")
    sp.add_argument("-i", "--key", help="SSH private key (default: the run's ssh_private_key_file)")
    sp.add_argument("--json", action="store_true", help="one JSON object per line")
    sp.set_defaults(fn=cmd_logs)

    sp = sub.add_parser("down", help="stop the job, collect, destroy every instance of a run, record")
    sp.add_argument("run_id", metavar="RUN_ID")
    sp.add_argument("--force", action="store_true",
                    help="tear down even when the record names a live owner (a process on another machine that is gone)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_down)

    sp = sub.add_parser("reap", help="destroy expired or orphaned instances (gpu.ops.reap)")
    sp.add_argument("--check", action="store_true", help="only list what would be destroyed and why")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_reap)

    sp = sub.add_parser("cost", help="spend per run, owner and provider (gpu.ops.cost)")
    sp.add_argument("--since", help="only runs started at or after this date (ISO 8601)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_cost)

    sp = sub.add_parser("offers", help="GPU offers of the configured providers, cheapest first")
    sp.add_argument("--gpu", action="append", help="GPU model (4090, A100, H100 ...); repeatable")
    sp.add_argument("--max-price", type=float, help="USD per hour ceiling for the instance")
    sp.add_argument("--gpu-count", type=int, help="GPUs per instance")
    sp.add_argument("--min-vram", type=int, help="GB per GPU")
    sp.add_argument("--region", action="append", help="region or country code; repeatable")
    sp.add_argument("--provider", action="append",
                    help="only this provider (runpod, vast, or any other the collection registers); repeatable")
    sp.add_argument("--interruptible", action="store_true", help="spot / bid offers only")
    sp.add_argument("--sort", default="price", choices=["price", "price_per_gpu", "reliability", "vram"])
    sp.add_argument("--limit", type=int, default=20, help="at most N offers (0: all)")
    sp.add_argument("--timeout", type=float, help="seconds each provider may take, retries included (default 120)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_offers)

    sp = sub.add_parser("ssh", help="attach to the job's tmux session on a node")
    sp.add_argument("run_id", metavar="RUN_ID")
    sp.add_argument("host", nargs="?", metavar="HOST", help="node name, id or address (default: the first)")
    sp.add_argument("-i", "--key", help="SSH private key (default: the run's ssh_private_key_file)")
    sp.add_argument("--print", action="store_true", help="print the ssh command instead of running it")
    sp.set_defaults(fn=cmd_ssh)

    sp = sub.add_parser("sim", help="the local GPU-cloud simulator (same as gpuops-sim)", add_help=False)
    sp.add_argument("sim_args", nargs=argparse.REMAINDER)
    sp.set_defaults(fn=cmd_sim)
    return p


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["sim"]:  # everything after `sim` is the simulator's, --help included
        from .sim.cli import main as sim_main

        return sim_main(args[1:])
    after = None
    if "exec" in args and "--" in args and args.index("exec") < args.index("--"):
        # everything after -- is the job's command; options before it are exec's, wherever they stand
        cut = args.index("--")
        args, after = args[:cut], args[cut + 1:]
    a = build_parser().parse_args(args)
    if after is not None:
        a.cmd = after
    if a.runs_dir:
        a.runs_dir = str(Path(a.runs_dir).expanduser().resolve())
    try:
        return a.fn(a)
    except RunNotFound as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - BadInput is defined with the runner; import it only when needed
        from .runner import BadInput

        if isinstance(exc, BadInput):
            _err(str(exc))
            return EXIT_BAD_INPUT
        raise


if __name__ == "__main__":
    sys.exit(main())
