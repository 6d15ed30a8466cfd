"""The failure matrix: every path ends with one clear message, the results that existed collected, no live
instance of the run, and cost.json that agrees with the simulator's ledger."""

from __future__ import annotations

import os
import signal

import pytest

from pipetools import SLOW_JOB, job_running, wait_for
from test_pipeline_runs import assert_billed_matches_ledger, assert_clean, assert_cost_matches_ledger

pytestmark = pytest.mark.slow


def faults(sim_faults, run_id, *items):
    body = "faults:\n" + "".join(
        "  - {%s, match: {name: '%s-*'}}\n" % (item, run_id) for item in items)
    sim_faults.add_faults(body)


def ok(run):
    assert run.proc.returncode == 0, run.output[-4000:]
    assert run.record["status"] == "succeeded"


def failed(run, *words):
    assert run.proc.returncode != 0
    assert run.record["status"] == "failed", run.record
    msg = run.record["message"]
    for word in words:
        assert word in msg, msg
    assert f"run {run.run_id} failed:" in run.output


@pytest.mark.parametrize("fault", [
    "type: rate_limit, count: 6, api: runpod, endpoint: 'POST /v2/pods'",
    "type: server_error, status: 503, count: 2, api: runpod, endpoint: 'POST /v2/pods'",
])
def test_api_trouble_during_create_is_survived(pipeline, sim_faults, fault):
    spec = pipeline.spec(providers=["runpod"])
    sim_faults.add_faults("faults:\n  - {%s}\n" % fault)
    run = pipeline.run(**spec)
    ok(run)
    assert len(pipeline.ledger_rows(run.run_id)) == 1  # no duplicate from a retried create
    assert_clean(pipeline, run)
    assert_cost_matches_ledger(pipeline, run)
    assert_billed_matches_ledger(pipeline, run)


def test_no_capacity_on_the_first_offers_fails_over(pipeline, sim_faults):
    spec = pipeline.spec()
    faults(sim_faults, spec["run_id"], "type: no_capacity, count: 3")
    run = pipeline.run(**spec)
    ok(run)
    assert_clean(pipeline, run)


def test_slow_boot_within_the_deadline(pipeline, sim_faults):
    spec = pipeline.spec(wait_timeout=30)
    faults(sim_faults, spec["run_id"], "type: slow_boot, seconds: 3")
    ok(pipeline.run(**spec))


@pytest.mark.parametrize("fault,words", [("type: boot_never", ["provision", "ready"]),
                                         ("type: ssh_never", ["provision", "ready"])])
def test_nodes_that_never_come_up_fail_the_run_and_are_destroyed(pipeline, sim_faults, fault, words):
    spec = pipeline.spec(wait_timeout=4, max_attempts=2)
    faults(sim_faults, spec["run_id"], fault)
    run = pipeline.run(**spec)
    failed(run, *words)
    assert_clean(pipeline, run)
    assert len(pipeline.ledger_rows(run.run_id)) == 2  # both attempts rented, both destroyed


def test_an_unhealthy_gpu_is_replaced(pipeline, sim_faults):
    spec = pipeline.spec(health_replacements=1)
    faults(sim_faults, spec["run_id"], "type: gpu, temperature: 96, ecc_uncorrected: 4, count: 1")
    run = pipeline.run(**spec)
    ok(run)
    rec = run.record
    assert len(rec["instances"]) == 2 and rec["health_replacements_used"] == 1
    assert all(i.get("destroyed_at") for i in rec["instances"])
    assert_clean(pipeline, run)
    assert_cost_matches_ledger(pipeline, run)


def test_replacements_exhausted_fail_the_run(pipeline, sim_faults):
    spec = pipeline.spec(health_replacements=1)
    faults(sim_faults, spec["run_id"], "type: gpu, temperature: 96, ecc_uncorrected: 4")
    run = pipeline.run(**spec)
    failed(run, "health", "used up")
    assert len(pipeline.ledger_rows(run.run_id)) == 2
    assert_clean(pipeline, run)


def test_bootstrap_fails(pipeline):
    run = pipeline.run(bootstrap="echo cannot-install-things >&2; exit 3")
    failed(run, "bootstrap", "cannot-install-things")
    assert_clean(pipeline, run)
    assert any(run.run_dir.rglob("bootstrap.log"))


def test_bootstrap_times_out(pipeline):
    run = pipeline.run(bootstrap="sleep 60", bootstrap_timeout=2)
    failed(run, "bootstrap", "timed out")
    assert_clean(pipeline, run)


def test_job_exit_1_fails_the_run_with_its_results(pipeline):
    run = pipeline.run(command="python3 train.py --steps 200 --fail-at 120")
    failed(run, "exit code 1", "failing on purpose")
    assert run.record["exit_code"] == 1
    assert [m["step"] for m in run.metrics()] == list(range(1, 120))
    assert (run.run_dir / "loss.png").exists()
    assert_clean(pipeline, run)
    assert_cost_matches_ledger(pipeline, run)


def test_a_killed_job_fails_the_run(pipeline, sim):
    proc, run = pipeline.start(command=SLOW_JOB)
    try:
        wait_for(lambda: job_running(sim, run), 120, "the job to run")
        rec = run.record
        job = sim.state_dir / "nodes" / str(rec["instances"][0]["id"]) / "home/.bifrost/jobs" / rec["job_id"]
        os.kill(int((job / "child_pid").read_text()), signal.SIGKILL)
        assert proc.wait(timeout=120) != 0
    finally:
        proc.kill()
    assert run.record["status"] == "failed" and run.record["exit_code"] == 137, run.record
    assert not pipeline.live(run.run_id)


def test_terminate_fails_twice_then_succeeds(pipeline, sim_faults):
    spec = pipeline.spec()
    faults(sim_faults, spec["run_id"], "type: terminate_fails, count: 2")
    run = pipeline.run(**spec)
    ok(run)
    assert_clean(pipeline, run)


def test_budget_stops_the_job_with_results(pipeline):
    # 1 node at <= 0.69 $/h: the budget lasts about 20 s from the create, so the slow job is stopped
    run = pipeline.run(command=SLOW_JOB, max_cost=0.004, providers=["runpod"], max_price_per_hour=0.69)
    assert run.proc.returncode != 0
    rec = run.record
    assert rec["status"] == "budget_exceeded", rec
    assert "budget" in rec["message"] and run.metrics()
    assert_clean(pipeline, run)
    cost = run.json("cost.json")["total"]["estimated_usd"]
    assert cost <= 0.004 * 1.5, cost  # stopped near the budget (teardown takes a few seconds more)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL", "SIGINT"])
def test_a_signal_mid_train_still_collects_and_tears_down(pipeline, sim, sig):
    proc, run = pipeline.start(command=SLOW_JOB)
    try:
        wait_for(lambda: job_running(sim, run), 120, "the job to run")
        if sig == "SIGINT":
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole foreground group
        else:
            os.kill(proc.pid, getattr(signal, sig))  # a service manager signals the process
        proc.wait(timeout=60)
        wait_for(lambda: run.record.get("torn_down"), 120, "the guardian's teardown")
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = run.record
    assert rec["status"] == "cancelled" and "guardian" in rec["message"], rec
    assert not pipeline.live(run.run_id)
    assert run.metrics(), "results collected before teardown"
    gpid = rec["guardian_pid"]
    wait_for(lambda: not os.path.exists(f"/proc/{gpid}") or open(f"/proc/{gpid}/stat").read().split()[2] == "Z",
             60, "the guardian to exit")
