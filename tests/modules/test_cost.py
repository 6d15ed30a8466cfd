"""gpu.ops.cost_info and the gpu.ops.cost playbook against the simulator's bills: what each instance was billed
equals the simulator's ledger (RunPod to the cent's ten-thousandth, Vast to its 3 decimals); an instance not
billed yet says so instead of failing; the report splits the spend per run (from run records and labels),
owner and day; a provider whose billing fails fails the report, naming it."""

from __future__ import annotations

import json
import time

import pytest
from provtools import live

from gpuops.testing import REPO, leak_checked_simulator, run_playbook

HOUR = 3600.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """The clock moves by hours here (so the bills are worth comparing), on a simulator of this module's own."""
    with leak_checked_simulator(tmp_path_factory.mktemp("cost-sim")) as h:
        yield h


def ledger(sim, iid) -> dict:
    rows = [r for r in sim.client.ledger()["instances"] if r["id"] == str(iid)]
    assert len(rows) == 1
    return rows[0]


def test_billed_equals_the_ledger_and_the_report_splits_it(play, sim, sim_env, sim_faults, uid, cleanup, tmp_path):
    p = "cost-%s" % uid
    cleanup(p)
    me = "payer-%s" % uid
    pod = sim.create_runpod(p + "-rp", wait=False, env={"GPUOPS_RUN_ID": "run-x", "GPUOPS_OWNER": me})
    vid = str(sim.create_vast("%s-v;run_id=run-y;owner=%s" % (p, me), wait=False))
    sim.client.wait_until(lambda: [i for i in sim.client.status() if i["id"] == vid and i["status"] == "running"],
                          30, "vast instance running")
    sim.client.advance(2 * HOUR)
    sim.destroy(pod["id"], "runpod")
    sim.destroy(vid, "vast")
    rp_cost, v_cost = ledger(sim, pod["id"])["cost"], ledger(sim, vid)["cost"]
    assert rp_cost > 1.0 and v_cost > 0.5  # two hours of GPU: worth comparing
    runs = tmp_path / "runs"
    (runs / "run-x").mkdir(parents=True)
    (runs / "run-x" / "run.json").write_text(json.dumps({
        "run_id": "run-x", "status": "succeeded", "torn_down": True, "owner": me,
        "instances": [{"provider": "runpod", "id": pod["id"], "name": p + "-rp"}]}))
    (runs / "run-x" / "cost.json").write_text(json.dumps({"instances": [], "total": {"estimated_usd": 1.5}}))

    # the simulator's clock is two hours ahead of this one now: a report "until now" would stop short of its bills
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    r = play([
        {"name": "billed", "gpu.ops.cost_info": {"instances": [
            {"provider": "runpod", "id": pod["id"], "created_at": pod["createdAt"]},
            {"provider": "vast", "id": vid}, {"provider": "runpod", "id": "nosuchpod0000"}]}},
        {"name": "report", "gpu.ops.cost_info": {"since": "1d", "until": tomorrow, "owner": me, "runs_dir": str(runs)}},
    ])
    assert r.rc == 0, r
    got = r["billed"]["instances"]
    assert [(x["provider"], x["id"], x["billed_available"]) for x in got] == [
        ("runpod", pod["id"], True), ("vast", vid, True), ("runpod", "nosuchpod0000", False)]
    assert got[0]["billed_usd"] == pytest.approx(rp_cost, abs=1e-5)
    assert got[1]["billed_usd"] == pytest.approx(v_cost, abs=1e-3)  # Vast rounds charges to 3 decimals
    assert got[2]["billed_usd"] is None and "no billing record" in got[2]["reason"]

    rep = r["report"]
    assert rep["by_run"] == {"run-x": pytest.approx(rp_cost, abs=1e-5), "run-y": pytest.approx(v_cost, abs=1e-3)}
    assert rep["by_owner"] == {me: pytest.approx(rp_cost + v_cost, abs=2e-3)}
    assert sum(rep["by_day"].values()) == pytest.approx(rep["total_usd"], abs=1e-5)
    assert rep["total_usd"] == pytest.approx(rp_cost + v_cost, abs=2e-3)
    assert [(x["run_id"], x["estimated_usd"]) for x in rep["runs"]] == [("run-x", 1.5)]
    assert any("run-x" in line for line in rep["report"])

    proc = run_playbook("gpu.ops.cost", extra_vars={"cost_since": "1d", "cost_until": tomorrow, "cost_owner": me,
                                                    "runs_dir": str(runs)},
                        env=sim_env, args=["-i", "localhost,"], cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "run-x" in proc.stdout and "run-y" in proc.stdout and me in proc.stdout

    # Vast's charges endpoint gone: the report fails naming it; the per-instance read says why, without failing
    sim_faults.add_faults('faults: [{type: endpoint_gone, api: vast, endpoint: "GET /api/v0/charges", count: 5}]')
    r = play([{"name": "report", "gpu.ops.cost_info": {"since": "1d", "until": tomorrow, "owner": me},
               "ignore_errors": True},
              {"name": "billed", "gpu.ops.cost_info": {"instances": [{"provider": "vast", "id": vid}]}}])
    assert r["report"]["failed"] is True and "billing of vast could not be read" in r["report"]["msg"]
    assert r["billed"]["instances"][0]["billed_available"] is False
    assert "HTTP 410" in r["billed"]["instances"][0]["reason"]
    assert not live(sim, p)
