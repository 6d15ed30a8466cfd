"""gpuops-sim: start, inspect and stop the local GPU-cloud simulator.

  eval "$(gpuops-sim start)"        # starts in the background, prints export lines (our modules' URLs and keys,
                                    # and RUNPOD_API_BASE_URL + VAST_URL for the runpod SDK and the vastai CLI)
  gpuops-sim status [--json]        # instances
  gpuops-sim ledger [--json]        # billing
  gpuops-sim faults FILE            # load faults into the running simulator
  gpuops-sim stop                   # destroys every instance, stops the server
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from .client import SimClient, SimNotRunning, pid_alive, read_server_info
from .errors import SimConfigError
from .faults import load_faults_file
from .nodes import kill_pids, pids_using_dirs, pids_with_marker
from .local import check_host, check_state_dir, default_state_dir


def _exports(client: SimClient) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in client.env().items())


def _running_client(state_dir: Path) -> SimClient | None:
    info = read_server_info(state_dir)
    if not info or not pid_alive(int(info.get("pid", 0))):
        return None
    c = SimClient(state_dir, info)
    return c if c.healthy() else None


def cmd_start(a) -> int:
    state_dir = check_state_dir(a.state_dir)
    check_host(a.host)
    running = _running_client(state_dir)
    if running:
        sys.stderr.write(f"gpuops-sim already running (pid {running.info['pid']}, {running.url}, "
                         f"state {state_dir})\n")
        sys.stdout.write(_exports(running))
        return 0
    if a.faults:
        load_faults_file(a.faults)  # fail here, with the file's own message, before anything starts
    if a.catalog:
        from .catalog import load_catalog
        load_catalog(a.catalog)
    (state_dir / "server.json").unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "gpuops.sim.cli", "serve", "--state-dir", str(state_dir), "--host", a.host,
           "--port", str(a.port)]
    if a.faults:
        cmd += ["--faults", str(Path(a.faults).resolve())]
    if a.catalog:
        cmd += ["--catalog", str(Path(a.catalog).resolve())]
    if a.boot_seconds is not None:
        cmd += ["--boot-seconds", str(a.boot_seconds)]
    log = open(state_dir / "server.log", "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                            close_fds=True)
    deadline = time.monotonic() + a.timeout
    delay = 0.02
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = _last_error(state_dir / "server.log")
            raise SimConfigError(err or f"simulator exited with code {proc.returncode}")
        info = read_server_info(state_dir)
        if info and info.get("pid") == proc.pid:
            c = SimClient(state_dir, info)
            if c.healthy():
                sys.stderr.write(f"gpuops-sim running (pid {proc.pid}, {c.url}, state {state_dir})\n")
                sys.stdout.write(_exports(c))
                return 0
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
    proc.terminate()
    raise SimConfigError(f"simulator did not answer within {a.timeout}s (log: {state_dir / 'server.log'})")


def _last_error(log: Path) -> str:
    try:
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if line.startswith("gpuops-sim: error:"):
            return line.split("error:", 1)[1].strip()
    return lines[-1] if lines else ""


def cmd_serve(a) -> int:
    from .server import serve

    return serve(Path(a.state_dir), host=a.host, port=a.port, catalog=a.catalog, faults=a.faults,
                 boot_seconds=a.boot_seconds)


def cmd_env(a) -> int:
    c = _require(a.state_dir)
    sys.stdout.write(_exports(c))
    return 0


def _require(state_dir) -> SimClient:
    c = _running_client(Path(state_dir).expanduser().resolve())
    if c is None:
        raise SimNotRunning(f"no simulator is running for state dir {Path(state_dir).expanduser()} "
                            "(start one with: gpuops-sim start)")
    return c


def cmd_status(a) -> int:
    c = _require(a.state_dir)
    rows = c.status()
    if a.json:
        print(json.dumps({"url": c.url, "pid": c.info["pid"], "instances": rows}, indent=2))
        return 0
    print(f"gpuops-sim at {c.url} (pid {c.info['pid']}), {len(rows)} instance(s)")
    if rows:
        print(f"{'ID':16} {'PROVIDER':8} {'STATUS':12} {'GPU':28} {'SSH':22} NAME")
        for r in rows:
            ssh = f"{r['ssh_host']}:{r['ssh_port']}" if r.get("ssh_port") else "-"
            gpu = f"{r['gpu_count']}x {r['gpu_type']}"
            print(f"{r['id']:16} {r['provider']:8} {r['status']:12} {gpu[:28]:28} {ssh:22} {r['name']}")
    return 0


def cmd_ledger(a) -> int:
    c = _require(a.state_dir)
    led = c.ledger()
    if a.json:
        print(json.dumps(led, indent=2))
        return 0
    print(format_ledger(led))
    return 0


def format_ledger(led: dict) -> str:
    out = [f"{'ID':16} {'PROVIDER':8} {'STATE':11} {'$/HR':>7} {'BILLED S':>9} {'COST $':>10}  NAME"]
    for r in led["instances"]:
        out.append(f"{r['id']:16} {r['provider']:8} {r['state']:11} {r['price_per_hour']:7.3f} "
                   f"{r['billed_seconds']:9.1f} {r['cost']:10.5f}  {r['name']}")
    out.append(f"total: ${led['total_cost']:.5f} over {len(led['instances'])} instance(s); "
               f"live now: {len(led['live_instances'])}")
    return "\n".join(out)


def cmd_faults(a) -> int:
    c = _require(a.state_dir)
    if a.clear:
        c.clear_faults()
        print("faults cleared")
        return 0
    if a.file:
        load_faults_file(a.file)  # validate locally for a precise message
        res = c.add_faults(Path(a.file).read_text(), replace=a.replace)
        print(f"loaded {len(res['added'])} fault(s); {len(res['faults'])} active")
        return 0
    print(json.dumps(c.request("GET", "/_sim/faults"), indent=2))
    return 0


def cmd_clock(a) -> int:
    c = _require(a.state_dir)
    res = c.advance(a.advance)
    print(f"virtual clock offset: {res['offset']:.1f}s")
    return 0


def cmd_stop(a) -> int:
    state_dir = Path(a.state_dir).expanduser().resolve()
    info = read_server_info(state_dir)
    token = None
    state = state_dir / "state.json"
    if state.exists():
        try:
            token = json.loads(state.read_text()).get("token")
        except (OSError, ValueError):
            token = None
    destroyed = 0
    if info and pid_alive(int(info["pid"])):
        token = info.get("token") or token
        c = SimClient(state_dir, info)
        try:
            res = c.request("POST", "/_sim/shutdown", timeout=120)
            destroyed = res.get("destroyed", 0)
        except SimConfigError:
            os.kill(int(info["pid"]), 15)
        deadline = time.monotonic() + 30
        delay = 0.02
        while pid_alive(int(info["pid"])) and time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        if pid_alive(int(info["pid"])):
            os.kill(int(info["pid"]), 9)
    elif not token:
        print(f"gpuops-sim: nothing running for state dir {state_dir}")
        return 0
    # sweep: anything still carrying this simulator's marker, or holding a file of one of its nodes (sshd
    # connections carry no marker), is killed, e.g. after a crash
    leftovers = set(pids_with_marker(f"{token}:")) if token else set()
    for pids in pids_using_dirs(state_dir / "nodes").values():
        leftovers |= pids
    leftovers = sorted(leftovers)
    survivors = kill_pids(leftovers) if leftovers else []
    (state_dir / "server.json").unlink(missing_ok=True)
    msg = f"gpuops-sim stopped: {destroyed} instance(s) destroyed"
    if leftovers:
        msg += f", {len(leftovers) - len(survivors)} stray process(es) killed"
    print(msg)
    if survivors:
        print(f"gpuops-sim: error: processes survived: {survivors}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpuops-sim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--state-dir", default=os.environ.get("GPUOPS_SIM_STATE_DIR") or str(default_state_dir()),
                        help="simulator state directory (default: $GPUOPS_SIM_STATE_DIR or ~/.local/state/gpuops-sim)")

    for name in ("start", "serve"):
        sp = sub.add_parser(name, help="start in the background and print exports" if name == "start"
                            else "run in the foreground")
        common(sp)
        sp.add_argument("--host", default="127.0.0.1")
        sp.add_argument("--port", type=int, default=0, help="API port (0: a free one)")
        sp.add_argument("--faults", help="YAML file of faults to inject from the start")
        sp.add_argument("--catalog", help="catalog YAML (default: the bundled one)")
        sp.add_argument("--boot-seconds", type=float, default=None, help="override the catalog's boot time")
        if name == "start":
            sp.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the API to answer")
        sp.set_defaults(fn=cmd_start if name == "start" else cmd_serve)

    sp = sub.add_parser("status", help="list instances")
    common(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_status)
    sp = sub.add_parser("ledger", help="billing ledger")
    common(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_ledger)
    sp = sub.add_parser("faults", help="load faults into the running simulator (no FILE: list them)")
    common(sp)
    sp.add_argument("file", nargs="?")
    sp.add_argument("--replace", action="store_true", help="drop active faults first")
    sp.add_argument("--clear", action="store_true", help="drop all active faults")
    sp.set_defaults(fn=cmd_faults)
    sp = sub.add_parser("clock", help="advance the virtual clock (billing, preemption)")
    common(sp)
    sp.add_argument("--advance", type=float, required=True, metavar="SECONDS")
    sp.set_defaults(fn=cmd_clock)
    sp = sub.add_parser("env", help="print the export lines of the running simulator")
    common(sp)
    sp.set_defaults(fn=cmd_env)
    sp = sub.add_parser("stop", help="destroy every instance and stop the simulator")
    common(sp)
    sp.set_defaults(fn=cmd_stop)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.fn(a)
    except SimConfigError as e:
        print(f"gpuops-sim: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
