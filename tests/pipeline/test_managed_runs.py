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

from gpuops.testing import leak_checked_simulator
from pipetools import job_running, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))
from ansible_collections.gpu.ops.plugins.plugin_utils import _managed  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A simulator of this module's own: the tests move its virtual clock hours ahead (the preemption), which
    would shift the creation times and bills of every later test on the session simulator."""
    with leak_checked_simulator(tmp_path_factory.mktemp("sim-managed")) as h:
        yield h

FAR = 36000  # seconds of virtual time the preemption waits for; the test moves the clock to it
JOB = "python3 train.py --steps {steps} --step-seconds {sec} --checkpoint-every {every}"


def managed(pipeline, sim_faults, count=1, **over):
    # the tests preempt by moving the simulator's clock FAR ahead, and the module's tests share one simulator; the
    # nodes' watchdogs read the same clock, so ttl (expires_at) and idle_timeout must outlast every jump of the
    # module (a real node whose controller went silent that long would rightly destroy itself)
    spec = pipeline.spec(interruptible=True, checkpoint_sync_interval=2, preemption_detect_s=20, idle_timeout=30 * 86400,
                         ttl="30d",
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
    # the replacement came from another offer: the preempted one is skipped for the rest of the run
    offers = {str(i["id"]): (i["provider"], i.get("offer_id")) for i in rec["instances"]}
    old, new = offers[str(r["replaced"][host]["old"])], offers[str(r["replaced"][host]["new"])]
    assert old[1] is not None and new != old, (old, new)
    assert r["time_lost_s"] > 0
    # one continuous series: every step once, in order, to the end
    steps = host_steps(run, host)
    assert steps == list(range(1, 2501)), steps[:5]
    # the restarted job resumed at the checkpoint's step: its first logged step follows it
    restart = json.loads(next((run.run_dir / host / "restart-01").rglob("metrics.jsonl")).read_text().splitlines()[0])
    assert restart["step"] == r["checkpoint_step"] + 1
    losses = {m["step"]: m["loss"] for m in run.metrics()}
    assert losses[2500] < losses[r["checkpoint_step"]]
    # both instances in the cost, the preempted one destroyed. (The replacement's creation time comes from the
    # simulator's virtual clock, which the test moved hours ahead: its billed seconds are not compared here.)
    cost = run.json("cost.json")
    by_id = {c["id"]: c for c in cost["instances"]}
    assert set(by_id) == {r["replaced"][host]["old"], r["replaced"][host]["new"]}
    assert by_id[r["replaced"][host]["old"]]["estimated_usd"] > 0
    assert all(i.get("destroyed_at") for i in rec["instances"])
    assert any("recovery 1:" in ln for ln in run.json("summary.json")["summary"].splitlines())
    assert_clean(pipeline, run)


def first_step(run, host, restart=1):
    path = next((run.run_dir / host / ("restart-%02d" % restart)).rglob("metrics.jsonl"))
    return json.loads(path.read_text().splitlines()[0])["step"]


def test_two_nodes_one_preempted_only_that_node_is_replaced(pipeline, sim_faults):
    spec = managed(pipeline, sim_faults, nodes=2, steps=2000)
    hosts = [f"{spec['run_id']}-0", f"{spec['run_id']}-1"]
    proc, run = pipeline.start(**spec)
    try:
        until(proc, lambda: checkpoint_and_metrics_home(run, 300, hosts), "checkpoints of both ranks synced home")
        preempt_now(pipeline)
        rc = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = run.record
    assert rc == 0 and rec["status"] == "succeeded", rec
    (r,) = rec["recoveries"]
    assert len(r["hosts"]) == 1 and list(r["replaced"]) == r["hosts"]
    assert len(rec["instances"]) == 3  # two nodes and one replacement
    # both ranks restarted from the same checkpoint (the survivor's newer ones were set aside)
    assert first_step(run, hosts[0]) == first_step(run, hosts[1]) == r["checkpoint_step"] + 1
    for host in hosts:
        assert host_steps(run, host) == list(range(1, 2001))
    assert_clean(pipeline, run)


def test_preempted_before_the_first_checkpoint_restarts_from_scratch(pipeline, sim_faults, sim):
    spec = managed(pipeline, sim_faults, steps=1500, every=100000)
    proc, run = pipeline.start(**spec)
    try:
        until(proc, lambda: job_running(sim, run), "the job to run")
        preempt_now(pipeline)
        rc = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = run.record
    assert rc == 0 and rec["status"] == "succeeded", rec
    (r,) = rec["recoveries"]
    assert r["checkpoint_step"] == 0 and "scratch" in run.json("summary.json")["summary"]
    assert first_step(run, r["hosts"][0]) == 1
    assert host_steps(run, r["hosts"][0]) == list(range(1, 1501))
    assert_clean(pipeline, run)


def test_on_preemption_fail_ends_the_run_preempted_with_its_results(pipeline, sim_faults):
    spec = managed(pipeline, sim_faults, on_preemption="fail", steps=20000)
    proc, run = pipeline.start(**spec)
    try:
        until(proc, lambda: checkpoint_and_metrics_home(run, 100), "a checkpoint synced home")
        preempt_now(pipeline)
        rc = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = run.record
    assert rc != 0 and rec["status"] == "preempted", rec
    assert "on_preemption is fail" in rec["message"]
    assert not rec.get("recoveries") and len(rec["instances"]) == 1
    assert run.metrics() and synced_steps(run)  # what was synced before the node went is home
    assert_clean(pipeline, run)


def test_max_recoveries_used_up_fails_cleanly(pipeline, sim_faults):
    spec = managed(pipeline, sim_faults, count=2, max_recoveries=1, steps=20000)
    proc, run = pipeline.start(**spec)
    try:
        until(proc, lambda: checkpoint_and_metrics_home(run, 100), "a checkpoint synced home")
        preempt_now(pipeline)
        until(proc, lambda: (run.record.get("recoveries") or [{}])[-1].get("resumed_at"), "the job to run again")
        preempt_now(pipeline)  # the replacement is interruptible too, and preempted in turn
        rc = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = run.record
    assert rc != 0 and rec["status"] == "preempted", rec
    assert "max_recoveries (1) used up" in rec["message"]
    assert len(rec["recoveries"]) == 1 and len(rec["instances"]) == 2
    assert_clean(pipeline, run)


def test_a_failed_job_restarts_once_from_its_checkpoint_then_reports_the_failure(pipeline):
    run = pipeline.run(command="python3 train.py --steps 400 --checkpoint-every 100 --fail-at 250",
                       max_restarts_on_errors=1, checkpoint_sync_interval=2, ttl="30d",
                       idle_timeout=30 * 86400)  # the module's earlier tests moved the shared clock (see managed())
    rec = run.record
    assert run.proc.returncode != 0 and rec["status"] == "failed", rec
    assert rec["exit_code"] == 1 and "failing on purpose" in rec["message"]
    (r,) = rec["recoveries"]
    assert r["kind"] == "job_failed" and r["checkpoint_step"] == 200 and not r["replaced"]
    host = r["hosts"][0]
    assert first_step(run, host) == 201  # the restart resumed from step 200, and failed again at 250
    assert host_steps(run, host) == list(range(1, 250))
    assert len(rec["instances"]) == 1
    assert_clean(pipeline, run)
