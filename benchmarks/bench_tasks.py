"""Where the pipeline's controller time goes: the tasks a run executes, by class, per node and on localhost.

Runs `ansible-playbook gpu.ops.pipeline` at 1 and 8 nodes on one simulator (the job and repository of
bench_pipeline.py) with the JSON stdout callback, which records each task's action, wall seconds and the controller
CPU from its start to the next task's (ansible-playbook and its reaped workers: the linear strategy runs one task
at a time). Classes:
  include       include_role / include_tasks (argument-spec validation of the role, templating its vars)
  bookkeeping   set_fact, debug, assert, fail, meta, add_host, set_stats: no node and no API touched
  node action   a gpu.ops action or module on a node (the helper channel, ssh round trips)
  local action  a gpu.ops action or module on localhost (provider API, record, guardian)
  other         everything else
Per class: tasks started, host results that ran and that were skipped (on nodes and on localhost), wall and
controller CPU seconds. The total CPU of the run (controller side, ssh included) comes from the process's
children's rusage.

    python benchmarks/bench_tasks.py [NODES ...]      # table + benchmarks/results/tasks.json (default: 1 8)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import simulator, table, write_result
from bench_pipeline import BOOT_SECONDS, run_pipeline

from gpuops.demo import example_repo

NODE_COUNTS = tuple(int(a) for a in sys.argv[1:]) or (1, 8)
BOOKKEEPING = {"set_fact", "debug", "assert", "fail", "meta", "add_host", "set_stats", "group_by"}
INCLUDES = {"include_role", "include_tasks", "import_role", "import_tasks"}


def task_class(action: str, hosts: dict) -> str:
    short = action.rsplit(".", 1)[-1]
    if short in INCLUDES:
        return "include"
    if short in BOOKKEEPING:
        return "bookkeeping"
    if action.startswith("gpu.ops."):
        return "local action" if set(hosts) <= {"localhost"} else "node action"
    return "other"


def classify(doc: dict) -> dict:
    classes: dict[str, dict] = {}
    for play in doc["plays"]:
        for t in play["tasks"]:
            info, hosts = t["task"], t["hosts"]
            row = classes.setdefault(task_class(info.get("action", ""), hosts), {
                "tasks": 0, "node_ran": 0, "node_skipped": 0, "local_ran": 0, "local_skipped": 0,
                "wall_s": 0.0, "cpu_s": 0.0})
            row["tasks"] += 1
            row["wall_s"] += info["duration_s"]
            row["cpu_s"] += info.get("cpu_s", 0.0)
            for host, res in hosts.items():
                where = "local" if host == "localhost" else "node"
                row[f"{where}_{'skipped' if res.get('skipped') else 'ran'}"] += 1
    return {k: {**v, "wall_s": round(v["wall_s"], 3), "cpu_s": round(v["cpu_s"], 3)}
            for k, v in sorted(classes.items())}


def main() -> int:
    out = {}
    with simulator(boot_seconds=BOOT_SECONDS) as h, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        repo = example_repo(work / "repo")
        for n in NODE_COUNTS:
            run = run_pipeline(h, repo, work, n)
            out[n] = {"wall_s": round(run["wall"], 3), "controller_cpu_s": run["cpu_s"], "classes": classify(run["doc"])}
    rows = []
    for n, res in out.items():
        for name, c in res["classes"].items():
            rows.append([n, name, c["tasks"], c["node_ran"], c["node_skipped"], c["local_ran"], c["local_skipped"],
                         c["wall_s"], c["cpu_s"]])
        total = {k: sum(c[k] for c in res["classes"].values()) for k in ("tasks", "node_ran", "node_skipped",
                                                                         "local_ran", "local_skipped")}
        rows.append([n, "ALL", *total.values(), res["wall_s"], res["controller_cpu_s"]])
    print(table(["nodes", "class", "tasks", "node_ran", "node_skipped", "local_ran", "local_skipped", "wall_s",
                 "cpu_s"], rows))
    print("(ALL: wall of the whole playbook and the controller CPU of the whole run, ssh included)")
    write_result("tasks", {"nodes": list(NODE_COUNTS), "results": out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
