"""Managed runs: preempted interruptible nodes are replaced and the job resumes from the newest complete
checkpoint synced home; a job that failed by itself restarts from it when max_restarts_on_errors allows.

Preemption comes from the simulator's `preempt` fault (an interruptible instance is stopped after `after_seconds`
running, on the simulator's virtual clock): the fault is set far in the future and the test moves the clock
once the condition it wants holds (a checkpoint synced home, or the job running before any checkpoint)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pipetools import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))
from ansible_collections.gpu.ops.plugins.plugin_utils import _managed  # noqa: E402

pytestmark = pytest.mark.slow

FAR = 36000  # seconds of virtual time the preemption waits for; the test moves the clock to it
JOB = "python3 train.py --steps {steps} --step-seconds {sec} --checkpoint-every {every}"


def managed(pipeline, sim_faults, count=1, **over):
    spec = pipeline.spec(interruptible=True, checkpoint_sync_interval=2, preemption_detect_s=20,
                         command=JOB.format(steps=over.pop("steps", 2500), sec=over.pop("sec", 0.01),
                                            every=over.pop("every", 100)), **over)
    if count:
        sim_faults.add_faults("faults:\n  - {type: preempt, after_seconds: %d, count: %d, match: {name: '%s-*'}}\n"
                              % (FAR, count, spec["run_id"]))
    return spec


def synced_steps(run, host=None):
    """Steps of the checkpoints the controller holds complete and verified (any host, or one)."""
    root = run.run_dir / "checkpoints"
    hosts = [host] if host else ([p.name for p in root.iterdir()] if root.exists() else [])
    steps = set()
    for h in hosts:
        steps |= set(_managed.usable_checkpoints(str(root / h)))
    return steps


def assert_clean(pipeline, run):
    assert not pipeline.live(run.run_id), f"instances of {run.run_id} still live: {pipeline.live(run.run_id)}"
    assert run.record["torn_down"] is True


def preempt_now(pipeline):
    pipeline.sim.client.advance(FAR + 5)


def finish(proc, timeout=400):
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()


def last_synced_step(run, host):
    """The last step of the first segment's metrics the controller holds for one host."""
    path = run.run_dir / host / "outputs" / "metrics.jsonl"
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        return json.loads(lines[-1])["step"] if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


def checkpoint_and_metrics_home(run, at_least, hosts=None):
    """The controller holds a checkpoint at or past ``at_least`` and, for every host, the metrics up to it (then
    a preemption loses no logged step before the checkpoint)."""
    root = run.run_dir / "checkpoints"
    hosts = hosts or ([p.name for p in root.iterdir()] if root.exists() else [])
    if not hosts:
        return False
    best = min(max(synced_steps(run, h), default=0) for h in hosts)
    return best >= at_least and all(last_synced_step(run, h) >= best for h in hosts)


def until(proc, predicate, what, timeout=240):
    """wait_for, but a pipeline that ended first fails at once with its log."""
    def check():
        if proc.poll() is not None:
            raise AssertionError("the pipeline ended (rc %s) before %s" % (proc.returncode, what))
        return predicate()
    return wait_for(check, timeout, what)


def host_steps(run, host):
    return [m["step"] for m in run.metrics() if m["host"] == host]


def test_preempted_single_node_resumes_from_the_synced_checkpoint(pipeline, sim_faults):
    spec = managed(pipeline, sim_faults)
    proc, run = pipeline.start(**spec)
    try:
        until(proc, lambda: checkpoint_and_metrics_home(run, 300), "a checkpoint and the metrics up to it synced home")
        preempt_now(pipeline)
        rc = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = run.record
    assert rc == 0 and rec["status"] == "succeeded", (rec, (pipeline.work / f"{run.run_id}.log").read_text()[-5000:])
    assert len(rec["recoveries"]) == 1
    r = rec["recoveries"][0]
    assert r["kind"] == "preemption" and r["checkpoint_step"] >= 300
    host = r["hosts"][0]
    assert r["replaced"][host]["old"] != r["replaced"][host]["new"]
    assert r["time_lost_s"] > 0
    # one continuous series: every step once, in order, to the end
    steps = host_steps(run, host)
    assert steps == list(range(1, 2501)), steps[:5]
    # the restarted job resumed at the checkpoint's step: its first logged step follows it
    restart = json.loads(next((run.run_dir / host / "restart-01").rglob("metrics.jsonl")).read_text().splitlines()[0])
    assert restart["step"] == r["checkpoint_step"] + 1
    losses = {m["step"]: m["loss"] for m in run.metrics()}
    assert losses[2500] < losses[r["checkpoint_step"]]
    # both instances billed, the preempted one destroyed
    cost = run.json("cost.json")
    assert len(cost["instances"]) == 2 and all(c["estimated_usd"] > 0 for c in cost["instances"])
    assert all(i.get("destroyed_at") for i in rec["instances"])
    assert any("recovery 1:" in ln for ln in run.json("summary.json")["summary"].splitlines())
    assert_clean(pipeline, run)
