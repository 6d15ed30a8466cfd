"""What the real clouds do that a kind simulator would hide (issue 10): a passphrase-protected key that no
agent offers, pods that run without a public SSH mapping, Vast account keys."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml
from provtools import live

from gpuops.sim.catalog import DEFAULT_CATALOG
from gpuops.testing import leak_checked_simulator, make_keypair


def test_a_locked_key_without_an_agent_is_refused_before_renting(play, sim, sim_env, ssh_vars, uid, tmp_path, cleanup,
                                                                 recorder):
    name = "lk-%s" % uid
    cleanup(name)
    key = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret", "-f", str(key)], check=True)
    env = dict(sim_env, SSH_AUTH_SOCK="")  # no agent, whatever the shell running the tests has
    args = dict(ssh_vars, ssh_private_key_file=str(key), image="img")
    r = play([
        {"name": "fleet", "gpu.ops.gpu_instance": dict(args, name_prefix=name, gpu=["4090"]), "ignore_errors": True},
        {"name": "vast", "gpu.ops.vast_instance": dict(args, name=name + "-v", gpu=["4090"]), "ignore_errors": True},
    ], env=env)
    for task in ("fleet", "vast"):
        assert r[task].get("failed"), r[task]
        assert "is protected by a passphrase and no ssh-agent is running" in r[task]["msg"], r[task]["msg"]
        assert "ssh-add" in r[task]["msg"]
    assert recorder.creates() == []
    assert not live(sim, name)


@pytest.fixture(scope="module")
def no_public_ip_sim(tmp_path_factory):
    """RTX 4090 hosts of RunPod's community cloud have no public IP: pods there run without ssh.direct."""
    base = tmp_path_factory.mktemp("nopublic")
    cat = yaml.safe_load(DEFAULT_CATALOG.read_text())
    for g in cat["runpod"]["gpu_types"]:
        if g["id"] == "NVIDIA GeForce RTX 4090":
            g["no_public_ip"] = ["community"]
    path = base / "catalog.yaml"
    path.write_text(yaml.safe_dump(cat))
    with leak_checked_simulator(base, catalog=str(path)) as h:
        yield h


def test_a_pod_without_a_public_ssh_mapping_is_replaced_after_the_grace(play, no_public_ip_sim, ssh_vars, uid):
    sim = no_public_ip_sim
    name = "np-%s" % uid
    start = time.monotonic()
    r = play([
        {"name": "fleet", "gpu.ops.gpu_instance": dict(ssh_vars, name_prefix=name, providers=["runpod"], gpu=["4090"],
                                                       image="img", wait_timeout=30)},
        {"name": "single", "gpu.ops.runpod_instance": dict(ssh_vars, name=name + "-s", gpu_type="RTX 4090",
                                                           cloud_type="COMMUNITY", image="img", wait_timeout=30),
         "ignore_errors": True},
        {"name": "down", "gpu.ops.gpu_instance": {"name_prefix": name, "state": "absent", "providers": ["runpod"]}},
    ], env=dict(sim.env))
    took = time.monotonic() - start
    assert r.rc == 0, r
    fleet = r["fleet"]
    assert [a["outcome"] for a in fleet["attempts"]] == ["no_public_ssh", "created"], fleet["attempts"]
    assert fleet["attempts"][0]["destroyed"] and "no public IP" in fleet["attempts"][0]["message"]
    assert fleet["instances"][0]["ssh_host"] and fleet["attempts"][1]["offer_id"].startswith("runpod:SECURE:")
    single = r["single"]
    assert single.get("failed") and "without a direct (public) SSH port mapping" in single["msg"], single
    assert "no public IP" in single["msg"] and single["destroyed"]
    assert took < 30 + 30  # neither waited out its wait_timeout
    assert not live(sim, name)


def account_keys(sim):
    return sim._vast("GET", "/api/v0/ssh/").json()  # noqa: SLF001 - the harness's Vast API call


def test_vast_keys_go_per_instance_and_an_added_account_key_goes_with_its_run(play, sim, sim_faults, ssh_vars, uid,
                                                                               cleanup, tmp_path):
    name = "ak-%s" % uid
    cleanup(name)
    run_id = "run-%s" % uid
    # a key of this test's own: other tests put the session key on the account (as a user's other tools would),
    # and a key already there is not "added" by gpu.ops
    key = make_keypair(tmp_path / "keys", "id_ak")
    args = dict(ssh_vars, ssh_private_key_file=str(key), gpu=["4090"], image="img", run_id=run_id)
    before = account_keys(sim)
    mark = sim.client.requests(10 ** 12)["seq"]
    r = play([{"name": "one", "gpu.ops.vast_instance": dict(args, name=name + "-1")}])
    assert r.rc == 0, r
    assert r["one"]["ssh_key"] == {"method": "instance"} and r["one"]["instance"]["status"] == "running"
    touched = [x for x in sim.client.requests(mark)["requests"] if x["path"].startswith("/api/v0/ssh")]
    assert not touched  # the account was not touched
    assert account_keys(sim) == before
    # attaching fails once: the key goes on the account, marked with the run, and says so
    sim_faults.add_faults('faults:\n  - {type: server_error, api: vast, endpoint: "POST /api/v0/instances/*/ssh*",'
                          ' status: 500, count: 1}\n')
    r = play([
        {"name": "two", "gpu.ops.vast_instance": dict(args, name=name + "-2")},
        {"name": "keys", "ansible.builtin.uri": {"url": sim.env["VAST_API_URL"] + "/api/v0/ssh/",
                                                 "headers": {"Authorization": "Bearer " + sim.env["VAST_API_KEY"]}}},
        {"name": "drop one", "gpu.ops.vast_instance": {"name": name + "-1", "state": "absent"}},
        {"name": "drop two", "gpu.ops.vast_instance": {"name": name + "-2", "state": "absent"}},
    ])
    assert r.rc == 0, r
    rep = r["two"]["ssh_key"]
    assert rep["method"] == "account" and rep["added"] and "attaching the key to the instance failed" in rep["why"]
    assert r["two"]["instance"]["status"] == "running"  # logged in with the account key
    marked = [k for k in r["keys"]["json"] if k["key"].endswith("gpuops-run=%s" % run_id)]
    assert [k["id"] for k in marked] == [rep["account_key_id"]]
    assert r["drop one"]["account_keys_removed"] == []  # instance -2 of the run is still there
    assert r["drop two"]["account_keys_removed"] == [str(rep["account_key_id"])]
    assert account_keys(sim) == before
    assert not live(sim, name)


def test_waiting_polls_within_the_quotas(play, sim, sim_faults, ssh_vars, uid, cleanup, tmp_path):
    # quotas ON, as on the real clouds: RunPod every 2 s, Vast every 10 s per instance (provider-apis.md 1.1, 2.8)
    name = "qp-%s" % uid
    cleanup(name)
    sim_faults.add_faults('faults:\n  - {type: boot_never, match: {name: "%s-*"}}\n' % name)
    env = dict(sim.env, GPUOPS_API_QUOTAS="on", GPUOPS_API_QUOTA_DIR=str(tmp_path / "quota"))
    mark = sim.client.requests(10 ** 12)["seq"]
    r = play([
        {"name": "runpod", "gpu.ops.runpod_instance": dict(ssh_vars, name=name + "-rp", gpu_type="RTX 4090",
                                                           image="img", wait_timeout=12), "ignore_errors": True},
        {"name": "vast", "gpu.ops.vast_instance": dict(ssh_vars, name=name + "-v", gpu=["4090"], image="img",
                                                       wait_timeout=25), "ignore_errors": True},
    ], env=env)
    assert r["runpod"].get("failed") and r["vast"].get("failed")  # boot never ends: both time out
    rp, vast = r["runpod"]["wait"], r["vast"]["wait"]
    assert 4 <= rp["api_polls"] <= 9, rp  # ~1.45 s polls made 10-14 in 12 s before
    assert 2 <= vast["api_polls"] <= 4, vast  # at 0, 10 and 20 s (and the create's own read)
    reqs = sim.client.requests(mark)["requests"]
    shows = [x["t"] for x in reqs if x["method"] == "GET" and x["path"].startswith("/api/v0/instances/")]
    assert min(b - a for a, b in zip(shows[1:], shows[2:], strict=False)) >= 9.5  # after the create's read: >= 10 s apart
    assert not live(sim, name)
