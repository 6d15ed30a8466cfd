"""gpuops: run GPU training on rented cloud GPUs and home-lab nodes (a thin layer over gpuops.runner).

  gpuops launch run.yml [-e k=v] [--detach]     run the pipeline (gpu.ops.pipeline) for a run spec
  gpuops status [RUN_ID] [--live] [--json]      runs in runs/ (or one run: nodes, jobs, steps, cost so far)
  gpuops logs RUN_ID [-f] [--host H] [--bootstrap]
  gpuops down RUN_ID                            collect, then destroy the run's instances
  gpuops reap [--check]                         destroy expired/orphaned instances (gpu.ops.reap)
  gpuops cost [--since DATE] [--json]           spend per run (gpu.ops.cost)
  gpuops offers --gpu 4090 --max-price 0.7      offers of every configured provider, cheapest first
  gpuops ssh RUN_ID [HOST]                      attach to the job's tmux session on a node
  gpuops sim ...                                the local GPU-cloud simulator (same as gpuops-sim)

Exit codes: 0 succeeded, 1 the run failed (failed, budget_exceeded, preempted, cancelled), 2 bad input (nothing
was created), 3 infrastructure failure (ansible could not run or finish, no run record, provider/SSH errors in
commands acting on runs). Details: gpuops/exitcodes.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .exitcodes import EXIT_BAD_INPUT, EXIT_INFRA, EXIT_OK
from .runs import RunNotFound, default_runs_dir, elapsed_seconds, format_duration, list_runs, live_instances, \
    load_run

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


def cmd_launch(a) -> int:
    from . import runner
    from .progress import Progress

    overrides = parse_extra(a.extra)
    if a.runs_dir:
        overrides.setdefault("runs_dir", a.runs_dir)
    spec = runner.prepare_spec(a.spec, overrides)
    if a.detach:
        return _detach(a, spec)
    sink = _event_sink(a.events_file)
    with Progress(verbose=a.verbose) as prog:
        res = runner.run_playbook(a.playbook, spec, on_event=_fanout(prog, sink),
                                  keep_artifacts=a.keep_artifacts)
    return _report(res, a.json, "run")


def _report(res, as_json: bool, kind: str) -> int:
    code = res.exit_code(kind)
    if as_json:
        _print_json({**res.to_dict(), "exit_code": code})
        return code
    if res.summary:
        print(res.summary)
    elif res.run_id and kind == "run":
        print(f"run {res.run_id}: {res.status}" + (f", results in {res.run_dir}" if res.run_dir else ""))
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
    if a.run_id and a.live:
        from . import runner

        record = runner.status(a.run_id, runs_dir=a.runs_dir, live=True)
    elif a.run_id:
        record = load_run(a.run_id, a.runs_dir)
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
        rows.append((str(r.get("run_id")), str(r.get("status") or r.get("_error") or "?"),
                     f"{len(live_instances(r))}/{len(insts)}", ",".join(gpus)[:18],
                     str(r.get("started_at") or "-")[:19], format_duration(elapsed_seconds(r)),
                     f"{r['cost']['estimated_usd']:.4f}"))
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, STATUS_WIDTHS, strict=True)).rstrip()
                     for row in rows)


def format_run(r: dict) -> str:
    cost = r.get("cost") or {}
    billed = cost.get("billed_usd")
    lines = [f"run {r.get('run_id')}: {r.get('status')}" + (" (torn down)" if r.get("torn_down") else ""),
             f"  dir       {r.get('run_dir')}",
             f"  started   {r.get('started_at') or '-'}   ended {r.get('ended_at') or '-'}   "
             f"elapsed {format_duration(elapsed_seconds(r))}",
             f"  cost      ${cost.get('estimated_usd', 0):.4f} estimated ({cost.get('source')})"
             + (f", ${billed:.4f} billed" if isinstance(billed, (int, float)) else "")]
    insts = r.get("instances") or []
    if insts:
        lines.append("  nodes:")
        for i in insts:
            state = "destroyed" if i.get("destroyed_at") else "live"
            lines.append(f"    {str(i.get('name')):<24} {str(i.get('provider')):<7} {state:<9} "
                         f"{i.get('gpu_count') or '?'}x {i.get('gpu_model') or '?'}  ${i.get('price_per_hour')}/h  "
                         f"{i.get('ssh_user')}@{i.get('ssh_host')}:{i.get('ssh_port')}")
    jobs = r.get("jobs") or ({"*": r["job_id"]} if r.get("job_id") else {})
    if jobs:
        items = jobs.items() if isinstance(jobs, dict) else [(j.get("host"), j) for j in jobs if isinstance(j, dict)]
        lines.append("  jobs:     " + ", ".join(
            f"{h}: {j.get('job_id')} {j.get('status') or ''}".strip() if isinstance(j, dict) else f"{h}: {j}"
            for h, j in items))
    if r.get("status") == "running" and live_instances(r):
        rid = r.get("run_id")
        lines.append(f"  follow:   gpuops logs {rid} -f   attach: gpuops ssh {rid}   stop: gpuops down {rid}")
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
    from .runner import LogsError, logs

    many = a.host is None and len(live_instances(load_run(a.run_id, a.runs_dir))) > 1
    try:
        for item in logs(a.run_id, follow=a.follow, host=a.host, bootstrap=a.bootstrap, lines=a.lines,
                         runs_dir=a.runs_dir, key=a.key):
            if a.json:
                sys.stdout.write(json.dumps({"host": item.host, "line": item.line}) + "\n")
            else:
                sys.stdout.write(f"[{item.host}] {item.line}\n" if many else item.line + "\n")
            sys.stdout.flush()
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

    res = _with_progress(a, runner.down, run_id=a.run_id, runs_dir=a.runs_dir)
    code = _report(res, a.json, "action")
    if code == EXIT_OK:
        record = load_run(a.run_id, a.runs_dir)
        if not record.get("torn_down"):
            _err(f"teardown ended but the record does not say every instance of {a.run_id} is destroyed: "
                 f"{[i.get('name') for i in live_instances(record)]}")
            return EXIT_INFRA
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

    sp = sub.add_parser("status", help="runs in the runs dir, or one run")
    sp.add_argument("run_id", nargs="?", metavar="RUN_ID")
    sp.add_argument("--live", action="store_true", help="ask the nodes (gpu.ops.status) instead of the record only")
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

    sp = sub.add_parser("down", help="collect, then destroy every instance of a run")
    sp.add_argument("run_id", metavar="RUN_ID")
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
    a = build_parser().parse_args(args)
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
