"""The gpuops CLI and Python API: what they cost on top of Ansible.

1. `gpuops status` over 50 run records in runs/ (the whole process, as a user types it). Goal <= 0.5 s.
2. Overhead of the API (`gpuops.runner.run_playbook`, ansible-runner) and of the CLI over a plain
   `ansible-playbook` run of the same playbook on the simulator. Goal (issue 13) <= +1 s wall at 1 node for the
   pipeline; until gpu.ops.pipeline is in the tree the same comparison runs on a one-task playbook
   (gpu.ops.gpu_offer_info against the simulator), which measures the same fixed cost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _common import simulator, stats, table, write_result

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
PIPELINE = REPO / "collections" / "ansible_collections" / "gpu" / "ops" / "playbooks" / "pipeline.yml"


def synthetic_runs(base: Path, n: int = 50) -> Path:
    start = datetime.now(timezone.utc) - timedelta(days=2)
    for i in range(n):
        t = start + timedelta(minutes=7 * i)
        insts = [{"provider": "vast", "id": f"{i}-{k}", "name": f"r{i}-{k}", "gpu_model": "RTX 4090", "gpu_count": 1,
                  "price_per_hour": 0.31, "ssh_host": "127.0.0.1", "ssh_port": 40000 + k, "ssh_user": "root",
                  "created_at": t.isoformat(), "destroyed_at": (t + timedelta(minutes=5)).isoformat()}
                 for k in range(4)]
        d = base / f"run-{i:03d}"
        d.mkdir(parents=True)
        (d / "run.json").write_text(json.dumps({
            "run_id": d.name, "status": "succeeded", "torn_down": True, "owner": "bench", "started_at": t.isoformat(),
            "ended_at": (t + timedelta(minutes=6)).isoformat(), "instances": insts,
            "steps": {s: 1.0 for s in ("preflight", "provision", "deploy", "bootstrap", "health", "train", "collect",
                                       "teardown")}}))
        (d / "cost.json").write_text(json.dumps({"instances": [], "total": {"estimated_usd": 0.1, "billed_usd": 0.1}}))
    return base


def timed(args, env=None, cwd=None) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{args[:3]} failed ({res.returncode}): {res.stderr[-2000:]}")
    return dt


def bench_status() -> dict:
    runs = synthetic_runs(Path(tempfile.mkdtemp(prefix="gpuops-bench-runs-")) / "runs")
    exe = str(BIN / "gpuops")
    text = [timed([exe, "--runs-dir", str(runs), "status"]) for _ in range(RUNS)]
    js = [timed([exe, "--runs-dir", str(runs), "status", "--json"]) for _ in range(RUNS)]
    floor = [timed([sys.executable, "-c", "pass"]) for _ in range(RUNS)]
    return {"runs": 50, "status_s": stats(text), "status_json_s": stats(js), "python_startup_s": stats(floor),
            "goal_s": 0.5, "ok": stats(text)["median"] <= 0.5}


OFFER_PLAY = [{"name": "offers", "hosts": "localhost", "gather_facts": False, "tasks": [
    {"name": "search offers", "gpu.ops.gpu_offer_info": {"gpu": ["4090"], "limit": 5}, "register": "found"}]}]


def bench_overhead(sim) -> dict:
    env = dict(os.environ, **sim.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PATH=f"{BIN}:{os.environ['PATH']}")
    work = Path(tempfile.mkdtemp(prefix="gpuops-bench-cli-"))
    inv = work / "inv.json"
    inv.write_text(json.dumps({"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                               "ansible_python_interpreter": sys.executable}}}}))
    pb = work / "offers.yml"
    pb.write_text(json.dumps(OFFER_PLAY))
    plain = [timed([str(BIN / "ansible-playbook"), "-i", str(inv), str(pb)], env=env, cwd=REPO) for _ in range(RUNS)]
    api_code = ("import json,sys; from gpuops.runner import run_playbook; "
                "r = run_playbook(sys.argv[1], inventory=sys.argv[2]); sys.exit(r.rc)")
    api = [timed([sys.executable, "-c", api_code, str(pb), str(inv)], env=env, cwd=REPO) for _ in range(RUNS)]
    out = {"workload": "one gpu.ops.gpu_offer_info task on the simulator", "plain_ansible_playbook_s": stats(plain),
           "api_process_s": stats(api)}
    out["api_overhead_s"] = round(out["api_process_s"]["median"] - out["plain_ansible_playbook_s"]["median"], 3)
    if PIPELINE.is_file() and EXAMPLE.is_file():
        out["pipeline"] = bench_pipeline(env, work)
    else:
        out["pipeline"] = "skipped: playbook gpu.ops.pipeline (or examples/run.yml) not in this tree"
    out["goal_overhead_s"] = 1.0
    out["ok"] = out["api_overhead_s"] <= 1.0
    return out


EXAMPLE = REPO / "examples" / "run.yml"


def bench_pipeline(env: dict, work: Path) -> dict:
    """The same 1-node run of examples/run.yml three ways, one after the other (each with its own run id)."""
    runs = work / "runs"
    common = ["-e", "nodes=1", "-e", f"runs_dir={runs}"]
    plain = timed([str(BIN / "ansible-playbook"), "gpu.ops.pipeline", "-e", f"@{EXAMPLE}", *common,
                   "-e", "run_id=bench-plain-1"], env=env, cwd=REPO)
    cli = timed([str(BIN / "gpuops"), "launch", str(EXAMPLE), *common, "-e", "run_id=bench-cli-1"], env=env, cwd=REPO)
    api_code = ("import sys; from gpuops.runner import run_pipeline; "
                "r = run_pipeline(sys.argv[1], nodes=1, runs_dir=sys.argv[2], run_id='bench-api-1'); "
                "sys.exit(r.exit_code())")
    api = timed([sys.executable, "-c", api_code, str(EXAMPLE), str(runs)], env=env, cwd=REPO)
    return {"plain_s": round(plain, 3), "cli_s": round(cli, 3), "api_s": round(api, 3),
            "cli_overhead_s": round(cli - plain, 3), "api_overhead_s": round(api - plain, 3), "goal_s": 1.0}


def main() -> int:
    status = bench_status()
    with simulator() as sim:
        overhead = bench_overhead(sim)
    print(table(["measure", "median s", "min s", "max s"], [
        ["gpuops status, 50 runs", status["status_s"]["median"], status["status_s"]["min"], status["status_s"]["max"]],
        ["gpuops status --json, 50 runs", status["status_json_s"]["median"], status["status_json_s"]["min"],
         status["status_json_s"]["max"]],
        ["python -c pass (floor)", status["python_startup_s"]["median"], status["python_startup_s"]["min"],
         status["python_startup_s"]["max"]],
        ["ansible-playbook, offers play", overhead["plain_ansible_playbook_s"]["median"],
         overhead["plain_ansible_playbook_s"]["min"], overhead["plain_ansible_playbook_s"]["max"]],
        ["run_playbook (ansible-runner), same", overhead["api_process_s"]["median"], overhead["api_process_s"]["min"],
         overhead["api_process_s"]["max"]],
    ]))
    print(f"status goal <= 0.5 s: {'ok' if status['ok'] else 'MISSED'}; API overhead {overhead['api_overhead_s']:+.3f} s "
          f"(goal <= +1 s): {'ok' if overhead['ok'] else 'MISSED'}; pipeline: {overhead['pipeline']}")
    write_result("cli", {"status": status, "overhead": overhead})
    return 0 if status["ok"] and overhead["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
