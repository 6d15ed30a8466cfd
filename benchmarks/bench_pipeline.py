"""The pipeline end to end vs the seeds' way (benchmarks/baseline_bare_ssh.py), 1 and 8 nodes, one simulator.

Each sample runs the same job (examples/train as a git repository, `python3 train.py --steps 300`, bootstrap
`true`) on RunPod RTX 4090 pods of the same simulator (same boot seconds), first by the baseline (HTTP, then
ssh/scp/rsync with ControlMaster, one node after the other), then by `ansible-playbook gpu.ops.pipeline`.
  overhead       wall - simulated boot - job runtime: what orchestration adds to a run's wall time. The job
                 runtime is the longest node's ended_at - started_at, read from the job directory collected
                 into the run dir (<run_dir>/<host>/started_at, ended_at). The pipeline's runner writes whole
                 seconds into them; the files' mtimes (kept by the collect) hold the exact moment, so they are
                 used when they fall inside that second.
  billed beyond  per node, the simulator ledger's billed seconds - boot - that node's job runtime (RunPod bills
                 from create to terminate): the money orchestration costs; the worst node is reported
  exit->term     from the last job exit (ended_at) to the last terminate the simulator saw (ledger terminated_at);
                 the spread from the first to the last terminate is shown too
Goals (issues 9 and 24): overhead <= 2x the baseline's at 1 node and <= 1x at 8 nodes; billed beyond <= 20 s per
node; exit->term <= 5 s; the pipeline's controller CPU (ansible-playbook, its workers and their ssh: cpu_s) <= 3 s
at 1 node; overhead at 32 nodes <= 2x the 8-node figure (when 32 is asked for). The per-step table shows the pipeline's run.json `steps` (slowest node per step) next to the
baseline's own step times (summed over nodes: they run one after the other). "other" is wall - sum of steps
(ansible start-up, spec check, teardown, record). A profile of the pipeline's playbook (JSON stdout callback:
tasks run, their seconds, the 10 slowest, what lies outside any task) follows. The machine is shared: the load
average is printed and saved; compare figures within one run of this script.

    python benchmarks/bench_pipeline.py [RUNS] [NODES]   # table + benchmarks/results/pipeline.json (medians of RUNS)
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import yaml
from _common import simulator, table, write_result
from baseline_bare_ssh import run_baseline

from gpuops.demo import example_repo
from gpuops.testing import REPO, ansible_env

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 1
# a second argument adds node counts: `bench_pipeline.py 3 1,8,32` (32 nodes check that overhead grows slowly)
NODE_COUNTS = tuple(int(n) for n in sys.argv[2].split(",")) if len(sys.argv) > 2 else (1, 8)
BOOT_SECONDS = 3.0
COMMAND = "python3 train.py --steps 300"
BOOTSTRAP = "true"
GOALS = {"ratio_1": 2.0, "ratio_8": 1.0, "billed_beyond_s": 20.0, "exit_to_terminate_s": 5.0,
         "controller_cpu_1_s": 3.0, "overhead_32_vs_8": 2.0}
STEPS = ("provision", "prepare", "deploy", "bootstrap", "health", "train", "collect", "teardown")


# ------------------------------------------------------------------------------------------ what a run left
def stamp(path: Path) -> float:
    """Epoch seconds of a job timestamp file: the text, or the file's mtime when the text has whole seconds
    only and the mtime lies inside that second (the moment the runner wrote it)."""
    text = path.read_text().strip()
    whole = "." not in text
    when = datetime.strptime(text.split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    t = when.timestamp() + (0.0 if whole else float("0." + text.split(".")[1].rstrip("Z")))
    mtime = path.stat().st_mtime
    return mtime if whole and t <= mtime < t + 1 else t


def job_times(run_dir: Path, names: list[str]) -> dict:
    out = {}
    for name in names:
        start, end = stamp(run_dir / name / "started_at"), stamp(run_dir / name / "ended_at")
        out[name] = {"started": start, "ended": end, "job_s": end - start}
    return out


def ledger_figures(ledger: dict, run_id: str, jobs: dict) -> dict:
    rows = [r for r in ledger["instances"] if (r["name"] or "").startswith(run_id + "-")]
    if len(rows) != len(jobs) or any(r["state"] != "terminated" for r in rows):
        raise SystemExit(f"{run_id}: ledger shows {[(r['name'], r['state']) for r in rows]}, "
                         f"expected {len(jobs)} terminated")
    beyond = [r["billed_seconds"] - BOOT_SECONDS - jobs[r["name"]]["job_s"] for r in rows]
    terms = [r["terminated_at"] - ledger.get("clock_offset", 0.0) for r in rows]
    return {"billed_beyond_s": max(beyond), "billed_beyond_per_node_s": [round(b, 2) for b in beyond],
            "exit_to_terminate_s": max(terms) - max(j["ended"] for j in jobs.values()),
            "terminate_spread_s": max(terms) - min(terms)}


def figures(wall: float, steps: dict, run_dir: Path, names: list[str], ledger: dict, run_id: str) -> dict:
    jobs = job_times(run_dir, names)
    job_s = max(j["job_s"] for j in jobs.values())
    out = {"wall_s": wall, "job_s": job_s, "overhead_s": wall - BOOT_SECONDS - job_s,
           **ledger_figures(ledger, run_id, jobs), "steps": steps,
           "other_s": wall - sum(steps.values())}
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


# ------------------------------------------------------------------------------------------ the two runners
def run_pipeline(h, repo: Path, work: Path, nodes: int) -> dict:
    """One `ansible-playbook gpu.ops.pipeline` run with the JSON stdout callback: its document, wall seconds, the
    controller CPU it took (ansible-playbook, its workers, their ssh) and the run record; fails on a failed run."""
    run_id = f"pl{nodes}-{uuid.uuid4().hex[:6]}"
    spec = {"run_id": run_id, "repo": str(repo), "nodes": nodes, "gpu": ["RTX 4090"], "providers": ["runpod"],
            "max_price_per_hour": 2.0, "bootstrap": BOOTSTRAP, "command": COMMAND,
            "ssh_private_key_file": str(h.key), "runs_dir": str(work / "runs")}
    run_file = work / f"{run_id}.yml"
    run_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    # localhost only, as the pipeline tests run it: the repo's ansible.cfg inventory (gpu.ops.cloud on the
    # simulator) would add its own API listing to every start
    inventory = work / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "gpu.ops.pipeline", "-e", f"@{run_file}",
           "-i", str(inventory)]
    env = ansible_env(h.env)  # the JSON stdout callback: per-task durations for the profile below
    env["ANSIBLE_STDOUT_CALLBACK"] = "gpuops_json"
    env["ANSIBLE_CALLBACK_PLUGINS"] = str(REPO / "src" / "gpuops" / "ansible_plugins" / "callback")
    cpu0 = children_cpu()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=str(REPO))
    wall = time.monotonic() - t0
    cpu = children_cpu() - cpu0
    run_dir = work / "runs" / run_id
    record = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    if proc.returncode != 0 or record.get("status") != "succeeded" or not record.get("torn_down"):
        raise SystemExit(f"pipeline {run_id} failed (rc {proc.returncode}, status {record.get('status')}):\n"
                         f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return {"run_id": run_id, "doc": json.loads(proc.stdout), "wall": wall, "cpu_s": round(cpu, 3),
            "run_dir": run_dir, "record": record}


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's waited-for children so far."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def pipeline_run(h, repo: Path, work: Path, nodes: int) -> dict:
    run = run_pipeline(h, repo, work, nodes)
    record, run_dir = run["record"], run["run_dir"]
    names = [i["name"] for i in record["instances"]]
    steps = {k: float(v) for k, v in record["steps"].items()}
    out = figures(run["wall"], steps, run_dir, names, h.client.ledger(), run["run_id"])
    out["profile"] = profile(run["doc"], run["wall"])
    out["controller_cpu_s"] = run["cpu_s"]
    return out


def profile(doc: dict, wall: float) -> dict:
    """Where the playbook's time went: tasks run, their summed durations (tasks run one after the other: the
    linear strategy), what lies outside any task (start-up, parsing, between tasks), seconds per play (rounds
    with the same name added up) and the slowest tasks."""
    tasks, plays = [], {}
    for play in doc["plays"]:
        for t in play["tasks"]:
            d = t["task"]["duration_s"]
            tasks.append((d, t["task"]["name"], len(t["hosts"])))
            plays[play["play"]["name"]] = round(plays.get(play["play"]["name"], 0.0) + d, 3)
    total = sum(d for d, _n, _h in tasks)
    slowest = sorted(tasks, reverse=True)[:10]
    return {"tasks": len(tasks), "task_seconds": round(total, 3), "outside_tasks_s": round(wall - total, 3),
            "slowest_10_s": round(sum(d for d, _n, _h in slowest), 3),
            "other_tasks_s": round(total - sum(d for d, _n, _h in slowest), 3), "plays": plays,
            "slowest": [{"s": d, "task": n, "hosts": h} for d, n, h in slowest]}


def baseline_run(h, repo: Path, work: Path, nodes: int) -> dict:
    run_id = f"bl{nodes}-{uuid.uuid4().hex[:6]}"
    res = run_baseline(h.env, h.key, repo, nodes, COMMAND, BOOTSTRAP, work / "bare" / run_id, run_id)
    steps = dict(res["steps"])
    steps["train"] = round(steps.pop("start") + steps.pop("wait"), 3)
    names = [n["name"] for n in res["nodes"]]
    return figures(res["wall_s"], steps, Path(res["run_dir"]), names, h.client.ledger(), run_id)


# ------------------------------------------------------------------------------------------ report
def median_of(samples: list[dict]) -> dict:
    keys = ("wall_s", "job_s", "overhead_s", "billed_beyond_s", "exit_to_terminate_s", "terminate_spread_s",
            "other_s")
    out = {k: round(statistics.median(s[k] for s in samples), 3) for k in keys}
    if all("controller_cpu_s" in s for s in samples):
        out["controller_cpu_s"] = round(statistics.median(s["controller_cpu_s"] for s in samples), 3)
    out["steps"] = {k: round(statistics.median(s["steps"].get(k, 0.0) for s in samples), 3)
                    for k in samples[0]["steps"]}
    return out


def report(results: dict) -> dict:
    rows = []
    for n in NODE_COUNTS:
        for who in ("baseline", "pipeline"):
            m = results[n][who]
            rows.append([who, n, m["wall_s"], BOOT_SECONDS, m["job_s"], m["overhead_s"]]
                        + [m["steps"][s] if s in m["steps"] else "-" for s in STEPS] + [m["other_s"],
                                                                                        m.get("controller_cpu_s", "-")])
    print(table(["runner", "nodes", "wall_s", "boot_s", "job_s", "overhead_s"] + [f"{s}_s" for s in STEPS]
                + ["other_s", "cpu_s"], rows))
    verdict, goal_rows = {}, []
    for n in NODE_COUNTS:
        pl, bl = results[n]["pipeline"], results[n]["baseline"]
        ratio = round(pl["overhead_s"] / bl["overhead_s"], 2)
        limit = GOALS["ratio_1"] if n == 1 else GOALS["ratio_8"]
        if n == 1:
            cpu = pl.get("controller_cpu_s")
            goal_rows.append([n, "controller CPU per run (s)", cpu, f"<= {GOALS['controller_cpu_1_s']}",
                              ok(cpu is not None and cpu <= GOALS["controller_cpu_1_s"])])
        elif n == 32 and 8 in results:
            growth = round(pl["overhead_s"] / results[8]["pipeline"]["overhead_s"], 2)
            goal_rows.append([n, "overhead at 32 nodes / at 8", growth, f"<= {GOALS['overhead_32_vs_8']}",
                              ok(growth <= GOALS["overhead_32_vs_8"])])
        verdict[n] = {"overhead_ratio": ratio, "overhead_ok": ratio <= limit,
                      "billed_beyond_ok": pl["billed_beyond_s"] <= GOALS["billed_beyond_s"],
                      "exit_to_terminate_ok": pl["exit_to_terminate_s"] <= GOALS["exit_to_terminate_s"]}
        goal_rows += [
            [n, "overhead pipeline / baseline", ratio, f"<= {limit}", ok(verdict[n]["overhead_ok"])],
            [n, "billed beyond boot+job, worst node (s)",
             f"{pl['billed_beyond_s']} (baseline {bl['billed_beyond_s']})", f"<= {GOALS['billed_beyond_s']}",
             ok(verdict[n]["billed_beyond_ok"])],
            [n, "job exit -> last terminate (s)",
             f"{pl['exit_to_terminate_s']} (baseline {bl['exit_to_terminate_s']})",
             f"<= {GOALS['exit_to_terminate_s']}", ok(verdict[n]["exit_to_terminate_ok"])],
            [n, "first -> last terminate (s, info)",
             f"{pl['terminate_spread_s']} (baseline {bl['terminate_spread_s']})", "-", "-"]]
    print()
    print(table(["nodes", "figure", "pipeline", "goal", "met"], goal_rows))
    return verdict


def print_profile(samples: dict) -> None:
    """The pipeline's own time, from the sample with the median wall time per node count."""
    rows, slow = [], []
    for n in NODE_COUNTS:
        runs = sorted(samples[n]["pipeline"], key=lambda r: r["wall_s"])
        p = runs[len(runs) // 2]["profile"]
        rows.append([n, p["tasks"], p["task_seconds"], p["slowest_10_s"], p["other_tasks_s"], p["outside_tasks_s"]])
        slow += [[n, t["s"], t["hosts"], t["task"][:90]] for t in p["slowest"]]
    print("\npipeline profile (median-wall sample): tasks run one after the other, so their seconds add up")
    print(table(["nodes", "tasks", "task_s", "slowest_10_s", "other_tasks_s", "outside_tasks_s"], rows))
    print()
    print(table(["nodes", "seconds", "hosts", "slowest tasks"], slow))


def ok(flag: bool) -> str:
    return "yes" if flag else "NO"


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    repo = example_repo(work)
    load_before = os.getloadavg()
    samples: dict = {n: {"baseline": [], "pipeline": []} for n in NODE_COUNTS}
    with simulator(boot_seconds=BOOT_SECONDS) as h:
        for _ in range(RUNS):
            for n in NODE_COUNTS:  # interleaved, so load changes hit both runners alike
                samples[n]["baseline"].append(baseline_run(h, repo, work, n))
                samples[n]["pipeline"].append(pipeline_run(h, repo, work, n))
    load_after = os.getloadavg()
    results = {n: {who: median_of(s) for who, s in by.items()} for n, by in samples.items()}
    verdict = report(results)
    print_profile(samples)
    print(f"\nload average (1/5/15 min) before {load_before}, after {load_after} on {os.cpu_count()} CPUs; "
          f"medians of {RUNS} run(s)")
    name = "pipeline" if NODE_COUNTS == (1, 8) else "pipeline-" + "-".join(str(n) for n in NODE_COUNTS)
    write_result(name, {"runs": RUNS, "boot_seconds": BOOT_SECONDS, "command": COMMAND, "bootstrap": BOOTSTRAP,
                              "goals": GOALS, "load_before": load_before, "load_after": load_after,
                              "cpus": os.cpu_count(), "results": results, "verdict": verdict, "samples": samples})
    return 0


if __name__ == "__main__":
    sys.exit(main())
