"""gpu.ops.reap against the simulator: expired instances on both providers, instances of torn-down runs and of
runs named on the command line are destroyed; unexpired ones, another owner's and unlabelled ones are not;
check mode destroys nothing; a second run changes nothing; a provider whose listing answers 500 or 410 fails
the reaper loudly and nothing is destroyed on the other provider either (unless on_provider_error=reap_others).

Instances are put there by hand as another tool (or a crashed run) would have left them: through the vendor
APIs with the labels gpu.ops writes (RunPod env GPUOPS_*, Vast label ``name;run_id=..;owner=..;expires_at=..``),
and as API-only bulk instances.
"""

from __future__ import annotations

import json
import time

from provtools import live

from gpuops.testing import REPO, run_playbook

PAST = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
FUTURE = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))


def rp_env(run_id, owner, expires_at):
    return {"GPUOPS_RUN_ID": run_id, "GPUOPS_OWNER": owner, "GPUOPS_EXPIRES_AT": expires_at}


def vast_suffix(run_id, owner, expires_at):
    return ";run_id=%s;owner=%s;expires_at=%s" % (run_id, owner, expires_at)


def rp_bulk(sim, name, run_id, owner, expires_at):
    return sim.client.bulk("runpod", 1, name_prefix=name + "-", env=rp_env(run_id, owner, expires_at))[0]


def vast_bulk(sim, name, run_id, owner, expires_at):
    return sim.client.bulk("vast", 1, name_prefix=name + "-", label_suffix=vast_suffix(run_id, owner, expires_at))[0]


def ids(rows):
    return sorted(r["id"] for r in rows)


def test_reaper_destroys_what_outlived_its_run_and_nothing_else(play, sim, sim_env, uid, cleanup, tmp_path):
    p = "rp-%s" % uid
    cleanup(p)
    me, other = "reaper-%s" % uid, "someone-%s" % uid
    runs = tmp_path / "runs"
    (runs / ("done-" + uid)).mkdir(parents=True)
    (runs / ("done-" + uid) / "run.json").write_text(json.dumps(
        {"run_id": "done-" + uid, "status": "succeeded", "torn_down": False, "owner": me}))
    (runs / ("live-" + uid)).mkdir(parents=True)
    (runs / ("live-" + uid) / "run.json").write_text(json.dumps(
        {"run_id": "live-" + uid, "status": "running", "torn_down": False, "owner": me}))
    # reaped: expired on both providers (one a real node booted through the API), a finished run, a named run
    expired_rp = sim.create_runpod(p + "-exp", wait=False, env=rp_env("old-" + uid, me, PAST))["id"]
    expired_v = str(sim.create_vast("%s-expv%s" % (p, vast_suffix("old-" + uid, me, PAST)), wait=False))
    done_v = vast_bulk(sim, p + "-done", "done-" + uid, me, FUTURE)
    named_rp = rp_bulk(sim, p + "-named", "named-" + uid, me, FUTURE)
    # kept: unexpired and running, another owner's expired one, unlabelled ones
    keep = [rp_bulk(sim, p + "-fresh", "live-" + uid, me, FUTURE), vast_bulk(sim, p + "-freshv", "live-" + uid, me, FUTURE),
            rp_bulk(sim, p + "-foreign", "old-" + uid, other, PAST), vast_bulk(sim, p + "-foreignv", "x", other, PAST),
            sim.client.bulk("runpod", 1, name_prefix=p + "-nolabel-")[0],
            sim.client.bulk("vast", 1, name_prefix=p + "-nolabelv-")[0]]
    reap = {"owner": me, "runs_dir": str(runs), "run_ids": ["named-" + uid]}
    want = sorted([expired_rp, expired_v, done_v, named_rp])

    r = play([{"name": "plan", "gpu.ops.reap": reap, "check_mode": True}])
    assert r.rc == 0, r
    plan = r["plan"]
    assert plan["changed"] is True and ids(plan["reaped"]) == want
    assert {x["action"] for x in plan["reaped"]} == {"would_destroy"}
    by_id = {x["id"]: x for x in plan["reaped"]}
    assert by_id[expired_rp]["reasons"] == ["expired"] and "expired 1h" in by_id[expired_rp]["why"]
    assert by_id[done_v]["reasons"] == ["torn_down"] and "succeeded" in by_id[done_v]["why"]
    assert by_id[named_rp]["reasons"] == ["named"]
    assert all(x["price_per_hour"] > 0 and x["cost_so_far"] is not None for x in plan["reaped"])
    assert plan["table"][0].split()[:3] == ["PROVIDER", "ID", "NAME"] and len(plan["table"]) == len(want) + 2
    assert plan["counts"]["other_owner"] >= 2 and plan["counts"]["unlabelled"] >= 2
    assert len(live(sim, p)) == 4 + len(keep)  # check mode destroyed nothing

    # the playbook, as a user runs it: --check prints the table and destroys nothing
    proc = run_playbook("gpu.ops.reap", extra_vars={"reap_owner": me, "runs_dir": str(runs),
                                                    "reap_run_ids": "named-%s" % uid}, env=sim_env, args=["--check"],
                        cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "would_destroy" in proc.stdout and expired_v in proc.stdout and "USD so far" in proc.stdout
    assert len(live(sim, p)) == 4 + len(keep)

    r = play([{"name": "reap", "gpu.ops.reap": reap}, {"name": "again", "gpu.ops.reap": reap}])
    assert r.rc == 0, r
    assert r["reap"]["changed"] is True and ids(r["reap"]["reaped"]) == want
    assert {x["action"] for x in r["reap"]["reaped"]} == {"destroyed"}
    assert r["again"]["changed"] is False and r["again"]["reaped"] == [] and r["again"]["table"] == ["nothing to reap"]
    assert sorted(i["id"] for i in live(sim, p)) == sorted(keep)


def test_a_failing_provider_fails_the_reaper_and_nothing_is_destroyed(play, sim, sim_faults, uid, cleanup):
    p = "rf-%s" % uid
    cleanup(p)
    me = "reaper-%s" % uid
    rp = rp_bulk(sim, p + "-rp", "old-" + uid, me, PAST)
    v = vast_bulk(sim, p + "-v", "old-" + uid, me, PAST)
    reap = {"owner": me}

    sim_faults.add_faults('faults: [{type: server_error, status: 500, api: runpod, endpoint: "GET /v2/pods"}]')
    r = play([{"name": "reap", "gpu.ops.reap": reap, "ignore_errors": True}])
    res = r["reap"]
    assert res["failed"] is True and "listing runpod failed" in res["msg"] and "HTTP 500" in res["msg"]
    assert list(res["provider_errors"]) == ["runpod"]
    assert [(x["id"], x["action"]) for x in res["reaped"]] == [(v, "not_destroyed_provider_error")]
    assert sorted(i["id"] for i in live(sim, p)) == sorted([rp, v])

    # a retired endpoint (410) on Vast: the same, and check mode fails as loudly
    sim_faults.add_faults('faults: [{type: endpoint_gone, api: vast, endpoint: "GET /api/v1/instances", count: 2}]')
    r = play([{"name": "reap", "gpu.ops.reap": reap, "ignore_errors": True},
              {"name": "plan", "gpu.ops.reap": reap, "ignore_errors": True, "check_mode": True}])
    for res in (r["reap"], r["plan"]):
        assert res["failed"] is True and "listing vast failed" in res["msg"] and "HTTP 410" in res["msg"]
        assert [(x["id"], x["action"]) for x in res["reaped"]] == [(rp, "not_destroyed_provider_error")]
    assert sorted(i["id"] for i in live(sim, p)) == sorted([rp, v])

    # reap_others: the provider that answered is reaped; the run still fails
    sim_faults.add_faults('faults: [{type: server_error, status: 500, api: runpod, endpoint: "GET /v2/pods"}]')
    r = play([{"name": "reap", "gpu.ops.reap": dict(reap, on_provider_error="reap_others"), "ignore_errors": True}])
    assert r["reap"]["failed"] is True and [(x["id"], x["action"]) for x in r["reap"]["reaped"]] == [(v, "destroyed")]
    assert [i["id"] for i in live(sim, p)] == [rp]

    r = play([{"name": "reap", "gpu.ops.reap": reap}])
    assert r.rc == 0 and ids(r["reap"]["reaped"]) == [rp] and not live(sim, p)
