"""gpu_instance: N nodes from whichever provider has them. Failover across offers and providers on no
capacity / no_such_ask, idempotent reruns, partial success rolled back or kept, and a node that never
answers SSH replaced by the next offer."""

from __future__ import annotations

from provtools import example_task, ledger_rows, live


def test_failover_across_providers_then_rerun_and_destroy(play, sim, sim_faults, ssh_vars, uid, cleanup, recorder):
    prefix = "fo-%s" % uid
    cleanup(prefix)
    # every Vast ask this test tries is gone (no_such_ask), and RunPod's community cloud refuses once
    sim_faults.add_faults("""
faults:
  - {type: no_capacity, match: {provider: vast, name: "%s*"}}
  - {type: no_capacity, count: 1, match: {provider: runpod, name: "%s*"}}
""" % (prefix, prefix))
    node = dict(name_prefix=prefix, count=2, gpu=["RTX 4090"], max_price_per_hour=0.7, wait_timeout=60,
                images={"runpod": "runpod/pytorch:2.4.0", "vast": "vastai/base-image:cuda-12.4"}, run_id=prefix,
                **ssh_vars)
    r = play([
        {"name": "plan", "hosts": "localhost", "gather_facts": False, "tasks": [
            {"name": "plan (check mode)", "gpu.ops.gpu_instance": node, "check_mode": True},
            {"name": "nodes", "gpu.ops.gpu_instance": node, "register": "fleet"},
            {"name": "nodes again", "gpu.ops.gpu_instance": node},
            # the module's documented add_host example, as written (the test key is not ssh's default identity)
            dict(example_task("gpu_instance", "ansible.builtin.add_host"), name="inventory")]},
        {"name": "use", "hosts": "gpu_nodes", "gather_facts": False, "tasks": [
            {"name": "gpus", "ansible.builtin.raw": "nvidia-smi -L", "changed_when": False}]},
        {"name": "teardown", "hosts": "localhost", "gather_facts": False, "tasks": [
            {"name": "destroy", "gpu.ops.gpu_instance": {"name_prefix": prefix, "state": "absent"}},
            {"name": "destroy again", "gpu.ops.gpu_instance": {"name_prefix": prefix, "state": "absent"}}]},
    ])
    assert r.rc == 0, r
    planned = r["plan (check mode)"]
    assert planned["changed"] is True and [p["name"] for p in planned["planned"]] == [prefix + "-0", prefix + "-1"]
    assert planned["planned"][0]["provider"] == "vast"  # the cheapest offer comes first

    res = r["nodes"]
    outcomes = [(a["provider"], a["outcome"]) for a in res["attempts"]]
    # the cheap Vast asks are gone, RunPod community has no capacity once, then RunPod makes both nodes
    assert outcomes[-2:] == [("runpod", "created"), ("runpod", "created")]
    assert ("vast", "offer_gone") in outcomes and ("runpod", "no_capacity") in outcomes
    assert outcomes.index(("runpod", "no_capacity")) > outcomes.index(("vast", "offer_gone"))
    gone = [a for a in res["attempts"] if a["outcome"] == "offer_gone"]
    assert all("no_such_ask" in a["message"] for a in gone)
    assert res["changed"] is True and res["created"] == [prefix + "-0", prefix + "-1"] and res["missing"] == []
    assert [i["status"] for i in res["instances"]] == ["running", "running"]
    assert all(i["labels"]["run_id"] == prefix for i in res["instances"])

    again = r["nodes again"]
    assert again["changed"] is False and again["attempts"] == [] and again["created"] == []
    assert sorted(i["id"] for i in again["instances"]) == sorted(i["id"] for i in res["instances"])
    for host in (prefix + "-0", prefix + "-1"):
        assert "RTX 4090" in r.tasks["gpus"][host]["stdout"]

    assert r["destroy"]["changed"] is True and len(r["destroy"]["destroyed"]) == 2
    assert r["destroy again"]["changed"] is False
    assert len([c for c in recorder.creates() if c["status"] in (200, 201)]) == 2
    assert not live(sim, prefix)


def test_partial_success_is_rolled_back_or_kept(play, sim, ssh_vars, uid, cleanup):
    prefix = "pt-%s" % uid
    cleanup(prefix)
    # Vast lists exactly two verified single-RTX-4090 machines: three nodes cannot be made there
    node = dict(name_prefix=prefix, count=3, providers=["vast"], gpu=["4090"], image="vastai/base-image:cuda-12.4",
                wait_timeout=60, **ssh_vars)
    r = play([
        {"name": "rollback", "gpu.ops.gpu_instance": node, "ignore_errors": True},
        {"name": "keep", "gpu.ops.gpu_instance": dict(node, on_partial="keep"), "ignore_errors": True},
        {"name": "enough", "gpu.ops.gpu_instance": dict(node, min_count=2)},
        {"name": "destroy", "gpu.ops.gpu_instance": {"name_prefix": prefix, "state": "absent", "providers": ["vast"]}},
    ])
    assert r.rc == 0, r
    rb = r["rollback"]
    assert rb["failed"] is True and "only 2 of 3 nodes are ready" in rb["msg"] and "on_partial=rollback" in rb["msg"]
    assert len(rb["destroyed"]) == 2 and rb["instances"] == [] and rb["missing"] == [prefix + "-2"]

    keep = r["keep"]
    assert keep["failed"] is True and "were kept (on_partial=keep)" in keep["msg"]
    kept = sorted(i["id"] for i in keep["instances"])
    assert len(kept) == 2

    enough = r["enough"]  # min_count 2: the two kept nodes are reused, the missing one is named (and warned about)
    assert enough.get("failed") is not True and sorted(i["id"] for i in enough["instances"]) == kept
    assert enough["missing"] == [prefix + "-2"] and enough["changed"] is False
    assert sorted(r["destroy"]["destroyed"]) == kept

    rows = ledger_rows(sim, prefix)
    assert len(rows) == 4 and all(row["state"] == "terminated" for row in rows)
    assert not live(sim, prefix)
