"""Two ways the provider modules could leak or hit the wrong instance (issue 11, section 5):

- a create answered with a 500 after the provider made the instance (the simulator applies the request and
  then answers 500, as a gateway does when the backend committed) must not make a second instance: the module
  looks the name up before trying again;
- gpu_instance state=absent with a run_id (or owner) destroys only the nodes labelled with it.
"""

from __future__ import annotations

from provtools import live


def test_ambiguous_500_on_create_makes_no_duplicate(play, sim, sim_faults, ssh_vars, uid, cleanup, recorder):
    prefix = "amb-%s" % uid
    cleanup(prefix)
    sim_faults.add_faults("""
faults:
  - {type: server_error, status: 500, applied: true, api: runpod, endpoint: "POST /v2/pods", count: 1}
  - {type: server_error, status: 500, applied: true, api: vast, endpoint: "PUT /api/v0/asks/*", count: 1}
""")
    r = play([
        {"name": "fleet", "gpu.ops.gpu_instance": dict(name_prefix=prefix + "-g", count=1, providers=["runpod"],
                                                       gpu=["RTX 4090"], image="img", wait=False, run_id=prefix,
                                                       **ssh_vars)},
        {"name": "vast", "gpu.ops.vast_instance": dict(name=prefix + "-v", gpu=["4090"], image="img", wait=False,
                                                       run_id=prefix, **ssh_vars)},
    ])
    assert r.rc == 0, r
    creates = recorder.creates()
    # each create was sent once and answered 500; nothing was sent again, because the lookup found the instance
    assert [(c["api"], c["status"], c["fault"]) for c in creates] == [("runpod", 500, "server_error"),
                                                                      ("vast", 500, "server_error")]
    fleet, vast = r["fleet"], r["vast"]
    assert [a["outcome"] for a in fleet["attempts"]] == ["created"]
    for name, res_id in ((prefix + "-g-0", fleet["instances"][0]["id"]), (prefix + "-v", vast["instance"]["id"])):
        have = live(sim, name)
        assert len(have) == 1 and have[0]["id"] == str(res_id), have
    play([{"name": "destroy", "gpu.ops.gpu_instance": {"name_prefix": prefix + "-g", "state": "absent"}},
          {"name": "destroy v", "gpu.ops.vast_instance": {"name": prefix + "-v", "state": "absent"}}])
    assert not live(sim, prefix)


def test_absent_by_run_id_leaves_other_runs_alone(play, sim, ssh_vars, uid, cleanup):
    prefix = "abs-%s" % uid
    cleanup(prefix)
    mine, theirs = "run-a-%s" % uid, "run-b-%s" % uid
    # another run's nodes with the same names, made by hand through the vendor APIs
    other_rp = sim.create_runpod(prefix + "-1", wait=False, env={"GPUOPS_RUN_ID": theirs, "GPUOPS_OWNER": "bob"})
    other_v = sim.create_vast("%s-0;run_id=%s;owner=bob" % (prefix, theirs), wait=False)
    r = play([
        {"name": "mine", "gpu.ops.gpu_instance": dict(name_prefix=prefix, count=1, providers=["runpod"],
                                                      gpu=["RTX 4090"], image="img", wait=False, run_id=mine,
                                                      **ssh_vars)},
        {"name": "absent (check)", "gpu.ops.gpu_instance": {"name_prefix": prefix, "state": "absent",
                                                            "run_id": mine}, "check_mode": True},
        {"name": "absent", "gpu.ops.gpu_instance": {"name_prefix": prefix, "state": "absent", "run_id": mine}},
        {"name": "absent again", "gpu.ops.gpu_instance": {"name_prefix": prefix, "state": "absent", "run_id": mine}},
        {"name": "absent other owner", "gpu.ops.gpu_instance": {"name_prefix": prefix, "state": "absent",
                                                                "owner": "carol"}},
    ])
    assert r.rc == 0, r
    my_id = r["mine"]["instances"][0]["id"]
    assert r["absent (check)"]["destroyed"] == [my_id] and r["absent (check)"]["changed"] is True
    assert r["absent"]["destroyed"] == [my_id] and r["absent"]["changed"] is True
    kept = sorted((k["provider"], k["id"], k["run_id"]) for k in r["absent"]["kept"])
    assert kept == sorted([("runpod", other_rp["id"], theirs), ("vast", str(other_v), theirs)])
    assert r["absent again"]["changed"] is False and r["absent again"]["destroyed"] == []
    assert r["absent other owner"]["changed"] is False and len(r["absent other owner"]["kept"]) == 2
    left = sorted(i["id"] for i in live(sim, prefix))
    assert left == sorted([other_rp["id"], str(other_v)])  # the other run's nodes are still there

    r = play([{"name": "absent all", "gpu.ops.gpu_instance": {"name_prefix": prefix, "state": "absent"}}])
    assert sorted(r["absent all"]["destroyed"]) == left and r["absent all"]["kept"] == []
    assert not live(sim, prefix)
