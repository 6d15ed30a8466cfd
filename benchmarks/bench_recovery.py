"""Recovery of a managed run on the simulator: from the preemption to the job running again on the replacement.

One interruptible node runs the example job (checkpoint every 100 steps, synced home every 2 s). Once the
controller holds a checkpoint, the bench moves the simulator's virtual clock past the node's `preempt` fault (the
moment of the preemption, taken on the wall clock here) and reads the recovery from run.json:
  detect        preemption -> the pipeline knows (SSH lost, the provider says stopped)
  provision     destroy the lost instance, rent the replacement, wait for SSH
  prepare       deploy + bootstrap + health gate of the replacement
  push          the chosen checkpoint onto the node
  restart       the job started again
A second run without preemption gives the same steps of a first start (provision from run.json, prepare =
deploy + bootstrap + health). Goals: detect <= 30 s; everything but the provider's boot <= 2x a first start.

Checkpoint sync: per run, the bytes the checkpoint syncs fetched against the size of every checkpoint file the
job wrote (each step-N directory once): only new files travel, so the ratio stays <= 1.1.

    python benchmarks/bench_recovery.py        # table + benchmarks/results/recovery.json
"""

from __future__ import annotations

import calendar
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import HERE, simulator, table, write_result

sys.path.insert(0, str(HERE.parent / "tests" / "pipeline"))
from pipetools import Pipeline, make_example_repo, wait_for  # noqa: E402

FAR = 36000
JOB = "python3 train.py --steps 3000 --step-seconds 0.01 --checkpoint-every 100 --keep-checkpoints 100"


def _epoch(iso: str) -> float:
    return calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S"))


def _has_checkpoint(run) -> bool:
    return any((run.run_dir / "checkpoints").glob("*/steps/step-*/COMPLETE"))


def preempted_run(pipe: Pipeline) -> dict:
    spec = pipe.spec(interruptible=True, checkpoint_sync_interval=2, command=JOB)
    pipe.sim.client.add_faults("faults:\n  - {type: preempt, after_seconds: %d, count: 1, match: {name: '%s-*'}}\n"
                               % (FAR, spec["run_id"]))
    proc, run = pipe.start(**spec)
    try:
        wait_for(lambda: proc.poll() is not None or _has_checkpoint(run), 300, "a checkpoint synced home")
        t_preempt = time.time()
        pipe.sim.client.advance(FAR + 5)
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = run.record
    r = rec["recoveries"][0]
    detect = float(r["detected_ts"]) - t_preempt + float(r.get("detect_s") or 0)
    return {"status": rec["status"], "detect_s": round(detect, 2), "provision_s": float(r["provision_s"]),
            "prepare_s": float(r["prepare_s"]), "prepare_wall_s": float(r["prepare_wall_s"]), "push_s": float(r["push_s"]), "restart_s": float(r["restart_s"]),
            "total_s": round(_epoch(r["resumed_at"]) - t_preempt, 1), "checkpoint_step": r["checkpoint_step"],
            "sync": sync_ratio(run, rec)}


def sync_ratio(run, rec) -> dict:
    """Checkpoint bytes fetched by every sync against the size of every checkpoint file written (once each)."""
    slices = [s for rnd in rec.get("checkpoint_sync") or [] for per_host in rnd["hosts"].values() for s in per_host]
    fetched = sum(int(s.get("checkpoints", 0)) for s in slices)
    written = sum(f.stat().st_size for f in (run.run_dir / "checkpoints").rglob("steps/step-*/*") if f.is_file())
    intervals = len(slices)
    return {"fetched_bytes": fetched, "checkpoint_bytes": written, "intervals": intervals,
            "bytes_per_interval": round(fetched / max(1, intervals)), "ratio": round(fetched / max(1, written), 3)}


def first_start(pipe: Pipeline) -> dict:
    run = pipe.run(interruptible=True, checkpoint_sync_interval=2, command=JOB.replace("3000", "300"), timeout=600)
    steps = run.record["steps"]
    return {"status": run.record["status"], "provision_s": steps.get("provision", 0),
            "prepare_s": round(sum(steps.get(k, 0) for k in ("deploy", "artifacts", "bootstrap", "health")), 2)}


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="gpuops-bench-recovery-"))
    with simulator(boot_seconds=2.0) as sim:
        os.chdir(work)
        pipe = Pipeline(sim, work, make_example_repo(work / "charlm"))
        rec = preempted_run(pipe)
        first = first_start(pipe)
    rows = [["detect", rec["detect_s"], "-"], ["provision (incl. boot)", rec["provision_s"], first["provision_s"]],
            ["deploy+bootstrap+health", rec["prepare_s"], first["prepare_s"]],
            ["  with play overhead", rec["prepare_wall_s"], "-"], ["checkpoint push", rec["push_s"], "-"],
            ["restart", rec["restart_s"], "-"], ["preemption -> running again", rec["total_s"], "-"]]
    print(table(["recovery step (s)", "recovery", "first start"], rows))
    s = rec["sync"]
    print("checkpoint sync: %d B fetched in %d intervals (%d B per interval) for %d B of checkpoint files: %.3fx"
          % (s["fetched_bytes"], s["intervals"], s["bytes_per_interval"], s["checkpoint_bytes"], s["ratio"]))
    goals = {"detect_le_30s": rec["detect_s"] <= 30,
             "prepare_le_2x_first": rec["prepare_s"] <= 2 * max(first["prepare_s"], 0.1),
             "sync_ratio_le_1.1": s["ratio"] <= 1.1}
    print("goals: " + ", ".join("%s %s" % (k, "met" if v else "MISSED") for k, v in goals.items()))
    write_result("recovery", {"recovery": rec, "first_start": first, "goals": goals})
    return 0 if rec["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
