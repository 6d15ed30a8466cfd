"""Health check wall time per step on 1 and 8 simulator nodes (role gpu.ops.node_health).

Steps of one `ansible-playbook` run of the role (tests/roles/playbooks/node_health.yml):
  validate  the role's argument-spec validation (controller only)
  check     node_health_check: one SSH round trip per node (nvidia-smi, /proc, statvfs, history write)
  summary   the one-line summary (controller only)
  overhead  ansible-playbook start-up, inventory, play setup and stats (total minus the tasks)
Cold = the first run (new SSH connections); warm = later runs over ControlPersist connections, as in a
pipeline where earlier steps already connected. Figures are medians over RUNS warm runs; compare 1 vs
8 nodes within one run of this script (the machine is shared, absolute times are noisy).

    python benchmarks/bench_health.py            # table + benchmarks/results/health.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from _common import HERE, simulator, stats, table, timer, write_result

from gpuops.testing import run_playbook

PLAYBOOK = HERE.parent / "tests" / "roles" / "playbooks" / "node_health.yml"
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
STEPS = ("validate", "check", "summary", "overhead", "total")


def one_run(inv: Path) -> dict:
    with timer() as t:
        proc = run_playbook(PLAYBOOK, inv, json_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"health playbook failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    steps = {}
    for task in doc["plays"][0]["tasks"]:
        name = task["task"]["name"]
        key = ("validate" if "Validating arguments" in name else "check" if "Check GPU" in name
               else "summary" if "summary" in name else name)
        steps[key] = task["task"]["duration_s"]
        if key == "check":
            assert all(r["healthy"] for r in task["hosts"].values())
    steps["total"] = round(t["s"], 4)
    steps["overhead"] = round(t["s"] - sum(v for k, v in steps.items() if k != "total"), 4)
    return steps


def bench(h, n: int, work: Path) -> dict:
    nodes = [h.create_runpod(f"bench-health-{n}-{i}") for i in range(n)]
    try:
        inv = h.inventory(nodes, work / f"inv-{n}.yml")
        cold = one_run(inv)
        warm = [one_run(inv) for _ in range(RUNS)]
        return {"nodes": n, "cold": cold, "warm": {s: stats([w[s] for w in warm]) for s in STEPS}}
    finally:
        for node in nodes:
            h.destroy(node)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-health-"))
    with simulator() as h:
        results = [bench(h, n, work) for n in (1, 8)]
    rows = []
    for r in results:
        rows.append([r["nodes"], "cold"] + [r["cold"].get(s, 0.0) for s in STEPS])
        rows.append([r["nodes"], f"warm (median of {RUNS})"] + [r["warm"][s]["median"] for s in STEPS])
    print(table(["nodes", "run"] + [f"{s}_s" for s in STEPS], rows))
    one, eight = results
    ratio = round(eight["warm"]["check"]["median"] / one["warm"]["check"]["median"], 2)
    print(f"\ncheck step, 8 nodes vs 1 (warm medians): x{ratio}")
    write_result("health", {"runs": RUNS, "playbook": str(PLAYBOOK.relative_to(HERE.parent)),
                            "results": results, "check_8_vs_1": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
