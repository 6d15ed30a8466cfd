"""Job steps per node count: bootstrap (cached), job start, job_info, job_wait, on 1 and 8 simulator nodes.

One `ansible-playbook` run of benchmarks/playbooks/jobs_steps.yml per sample, each with a new job id:
  bootstrap_cached  gpu.ops.job_bootstrap when the dependency hash is unchanged: one round trip, no tmux session
  job_start         gpu.ops.job: job dir, env file, runner check, tmux session, start confirmed (runner pid)
  job_info          gpu.ops.job_info for one job (files + one tmux call), with 20 log lines
  job_wait          gpu.ops.job_wait on a job that is (nearly) done: final status seen
  roles             both roles' controller-side tasks (argument validation, id choice, the attach line)
  total             the whole ansible-playbook run, start-up included
The first run per node count bootstraps for real (pip venv) and is reported as "cold"; the warm samples
reuse the ControlPersist connections as later pipeline steps do. Figures are medians; compare 1 vs 8
nodes within one run of this script (the machine is shared, absolute times are noisy).

    python benchmarks/bench_jobs.py [RUNS]      # table + benchmarks/results/jobs.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from _common import HERE, simulator, stats, table, timer, write_result

from gpuops.testing import run_playbook

PLAYBOOK = HERE / "playbooks" / "jobs_steps.yml"
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
STEPS = ("bootstrap_cached", "job_start", "job_info", "job_wait", "roles", "total")


def one_run(inv: Path, job_id: str, expect_cached: bool) -> dict:
    with timer() as t:
        proc = run_playbook(PLAYBOOK, inv, {"jobs_id": job_id}, json_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"jobs playbook failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    steps = {s: 0.0 for s in STEPS}
    for task in doc["plays"][0]["tasks"]:
        name, d = task["task"]["name"], task["task"]["duration_s"]
        if "Start the bootstrap" in name:
            steps["bootstrap_cached"] = d
            outcomes = {r.get("outcome") for r in task["hosts"].values()}
            assert outcomes == ({"skipped"} if expect_cached else {"started"}), outcomes
        elif "Start job" in name:
            steps["job_start"] = d
        elif name == "Read the job":
            steps["job_info"] = d
        elif name == "Wait for the job":
            steps["job_wait"] = d
            assert all(r["job"]["status"] == "succeeded" for r in task["hosts"].values())
        elif " : " in name:  # other role tasks: validation, id choice, attach line, bootstrap wait
            steps["roles"] += d
    steps["roles"] = round(steps["roles"], 4)
    steps["total"] = round(t["s"], 4)
    return steps


def bench(h, n: int, work: Path) -> dict:
    nodes = [h.create_runpod(f"bench-jobs-{n}-{i}") for i in range(n)]
    try:
        for node in nodes:
            node.ssh("mkdir -p ~/.bifrost/workspace && echo pip > ~/.bifrost/workspace/requirements.txt")
        inv = h.inventory(nodes, work / f"inv-{n}.yml")
        cold = one_run(inv, f"bench-{n}-cold", expect_cached=False)
        warm = [one_run(inv, f"bench-{n}-{i}", expect_cached=True) for i in range(RUNS)]
        return {"nodes": n, "cold": cold, "warm": {s: stats([w[s] for w in warm]) for s in STEPS}}
    finally:
        for node in nodes:
            h.destroy(node)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    with simulator() as h:
        results = [bench(h, n, work) for n in (1, 8)]
    rows = []
    for r in results:
        rows.append([r["nodes"], "cold"] + [r["cold"][s] for s in STEPS])
        rows.append([r["nodes"], f"warm (median of {RUNS})"] + [r["warm"][s]["median"] for s in STEPS])
    print(table(["nodes", "run"] + [f"{s}_s" for s in STEPS], rows))
    one, eight = results
    ratios = {s: round(eight["warm"][s]["median"] / one["warm"][s]["median"], 2)
              for s in ("bootstrap_cached", "job_start", "job_info")}
    print("\n8 nodes vs 1 (warm medians): " + ", ".join(f"{k} x{v}" for k, v in ratios.items()))
    write_result("jobs", {"runs": RUNS, "playbook": str(PLAYBOOK.relative_to(HERE.parent)), "results": results,
                          "ratio_8_vs_1": ratios})
    return 0


if __name__ == "__main__":
    sys.exit(main())
