"""Every fault type of the simulator (src/gpuops/sim/faults.py), injected at run time through the admin API
as ``gpuops-sim faults FILE`` does, and observed only through the vendors' APIs and SSH.

Faults carry ``match`` on this test's names/labels where they can, so they never touch other tests' instances.
Negative checks ("never boots") are made against a control instance created right after, without the fault:
once the control is up, the faulted one would have been too.
"""

from __future__ import annotations

import socket
import time

import pytest
from simapi import cheapest_vast_offer, own_simulator, pod_body, pod_is_up

from gpuops.sim.nodes import ssh_banner
from gpuops.testing import wait_ssh

@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """This module advances the virtual clock, so it runs on a simulator of its own (see own_simulator)."""
    with own_simulator(tmp_path_factory.mktemp("faults-sim")) as h:
        yield h


NO_CAPACITY = ("There are no longer any instances available with the requested specifications. "
               "Please refresh and try again.")


def pod_status(rp, pid):
    return rp.get(f"/pods/{pid}").json()


def vast_show(vast, iid):
    return vast.get(f"/api/v0/instances/{iid}/").json()["instances"]


def create_pod(rp, sim, cleanup, name, **extra) -> str:
    r = rp.post("/pods", json=pod_body(name, sim.pubkey, **extra))
    assert r.status_code == 201, r.text
    cleanup("runpod", r.json()["id"])
    return r.json()["id"]


def wait_running(sim, rp, pid, timeout=20):
    return sim.client.wait_until(lambda: (lambda p: p if pod_is_up(p) else None)(pod_status(rp, pid)),
                                 timeout, f"{pid} RUNNING")


# ------------------------------------------------------------------------------------------ request faults
def test_rate_limit_burst_counts_down_per_endpoint(rp, vast, sim_faults):
    sim_faults.add_faults("faults: [{type: rate_limit, api: any, endpoint: 'GET /v2/pods*', count: 3, "
                          "retry_after: 4}]")
    assert vast.post("/api/v0/bundles/", json={"limit": 1}).status_code == 200  # other endpoints unaffected
    codes = [rp.get("/pods").status_code for _ in range(4)]
    assert codes == [429, 429, 429, 200]
    assert sim_faults.request("GET", "/_sim/faults")["faults"] == []  # spent faults go away


def test_server_errors(rp, gql, vast, sim_faults):
    sim_faults.add_faults("faults: [{type: server_error, status: 500, count: 3}]")
    assert rp.get("/pods").status_code == 500
    assert gql.q("query { gpuTypes { id } }").status_code == 500
    r = vast.get("/api/v1/instances/")
    assert r.status_code == 500 and r.json()["success"] is False
    assert rp.get("/pods").status_code == 200


def test_applied_server_error_acts_then_answers_5xx(sim, rp, vast, sim_faults, uid, cleanup):
    """The create happens, but the client gets a 500: what a gateway does when the backend committed."""
    sim_faults.add_faults('faults: [{type: server_error, status: 500, applied: true, api: runpod, endpoint: "POST /v2/pods"},'
                          ' {type: server_error, status: 502, applied: true, api: vast, endpoint: "PUT /api/v0/asks/*"}]')
    r = rp.post("/pods", json=pod_body(f"ap-{uid}"))
    assert r.status_code == 500 and r.json()["status"] == 500
    made = [p for p in rp.get("/pods").json()["pods"] if p["name"] == f"ap-{uid}"]
    assert len(made) == 1
    cleanup("runpod", made[0]["id"])
    offer = cheapest_vast_offer(vast)
    r = vast.put(f"/api/v0/asks/{offer['id']}/", json={"image": "img", "label": f"apv-{uid}"})
    assert r.status_code == 502 and r.json()["success"] is False
    rows = vast.get("/api/v1/instances/", params={"select_filters": '{"label": {"eq": "apv-%s"}}' % uid}).json()
    assert rows["instances_found"] == 1
    cleanup("vast", rows["instances"][0]["id"])
    assert rp.post("/pods", json=pod_body(f"ap2-{uid}")).status_code == 201  # spent after one
    cleanup("runpod", [p for p in rp.get("/pods").json()["pods"] if p["name"] == f"ap2-{uid}"][0]["id"])


def test_endpoint_gone_answers_410_in_each_vendors_shape(rp, vast, sim_faults):
    sim_faults.add_faults('faults: [{type: endpoint_gone, api: runpod, endpoint: "GET /v2/pods"},'
                          ' {type: endpoint_gone, api: vast, endpoint: "GET /api/v1/instances"}]')
    r = rp.get("/pods")
    assert r.status_code == 410 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["title"] == "Gone"
    r = vast.get("/api/v1/instances/")
    assert r.status_code == 410 and r.json()["error"] == "deprecated_endpoint" and r.json()["success"] is False
    assert rp.get("/pods").status_code == 200 and vast.get("/api/v1/instances/").status_code == 200


# ------------------------------------------------------------------------------------------ create faults
def test_no_capacity_for_given_offers(sim, rp, gql, vast, sim_faults, uid, cleanup):
    offers = vast.post("/api/v0/bundles/", json={"gpu_name": {"eq": "RTX 4090"},
                                                 "order": [["dph_total", "asc"]]}).json()["offers"]
    target, other = offers[0], offers[1]
    sim_faults.add_faults(f"faults: [{{type: no_capacity, match: {{provider: vast, offer: [{target['id']}]}}}}, "
                          f"{{type: no_capacity, match: {{provider: runpod, gpu: 'RTX A6000'}}}}]")
    r = vast.put(f"/api/v0/asks/{target['id']}/", json={"image": "img", "label": f"f-{uid}"})
    assert r.status_code == 410 and r.json()["error"] == "no_such_ask" and r.json()["ask_id"] == target["id"]
    # the machine is listed again under a new ask id, as Vast relists
    again = vast.post("/api/v0/bundles/", json={"machine_id": {"eq": target["machine_id"]}}).json()["offers"]
    assert again and again[0]["id"] != target["id"]
    # another offer is fine
    r = vast.put(f"/api/v0/asks/{other['id']}/", json={"image": "img", "label": f"f-{uid}"})
    assert r.status_code == 200, r.text
    cleanup("vast", r.json()["new_contract"])

    body = pod_body(f"f-{uid}")
    body["gpu"]["id"] = "NVIDIA RTX A6000"
    r = rp.post("/pods", json=body)
    assert r.status_code == 400 and r.json()["detail"] == NO_CAPACITY
    q = ('mutation { podFindAndDeployOnDemand(input: { name: "x", imageName: "i", gpuTypeId: "NVIDIA RTX A6000" }) '
         "{ id } }")
    r = gql.q(q)
    assert r.status_code == 200 and r.json()["errors"][0]["message"] == NO_CAPACITY
    # a GPU type the fault does not name still rents
    create_pod(rp, sim, cleanup, f"f-{uid}")


def test_no_capacity_count_runs_out(rp, sim, sim_faults, uid, cleanup):
    sim_faults.add_faults(f"faults: [{{type: no_capacity, count: 2, match: {{name: 'f-{uid}*'}}}}]")
    assert [rp.post("/pods", json=pod_body(f"f-{uid}")).status_code for _ in range(2)] == [400, 400]
    create_pod(rp, sim, cleanup, f"f-{uid}")


def test_insufficient_balance(rp, gql, vast, sim_faults, uid):
    sim_faults.add_faults(f"faults: [{{type: insufficient_balance, match: {{name: 'f-{uid}'}}}}]")
    r = rp.post("/pods", json=pod_body(f"f-{uid}"))
    assert r.status_code == 402 and r.json()["title"] == "Payment Required"
    q = (f'mutation {{ podFindAndDeployOnDemand(input: {{ name: "f-{uid}", imageName: "i", '
         f'gpuTypeId: "NVIDIA GeForce RTX 4090" }}) {{ id }} }}')
    r = gql.q(q)
    assert r.status_code == 200 and "balance" in r.json()["errors"][0]["message"]
    offer = cheapest_vast_offer(vast)
    r = vast.put(f"/api/v0/asks/{offer['id']}/", json={"image": "img", "label": f"f-{uid}"})
    assert r.status_code == 400 and r.json()["error"] == "insufficient_credit"
    assert offer["id"] in [o["id"] for o in vast.post("/api/v0/bundles/", json={}).json()["offers"]]


# ------------------------------------------------------------------------------------------ boot faults
def test_slow_boot(sim, rp, sim_faults, uid, cleanup):
    sim_faults.add_faults(f"faults: [{{type: slow_boot, seconds: 3, match: {{name: 'f-{uid}'}}}}]")
    t0 = time.monotonic()
    pid = create_pod(rp, sim, cleanup, f"f-{uid}")
    assert pod_status(rp, pid)["status"] == "PROVISIONING"
    wait_running(sim, rp, pid)
    # a lower bound only (a busy machine can make it slower, never faster)
    assert time.monotonic() - t0 >= 2.5
    node = sim.wait_runpod(pid)
    assert node.ssh("echo up").stdout.strip() == "up"


def test_boot_never_finishes(sim, rp, vast, sim_faults, uid, cleanup):
    sim_faults.add_faults(f"faults: [{{type: boot_never, match: {{name: 'f-{uid}-stuck*'}}}}]")
    pid = create_pod(rp, sim, cleanup, f"f-{uid}-stuck")
    offer = cheapest_vast_offer(vast)
    r = vast.put(f"/api/v0/asks/{offer['id']}/", json={"image": "img", "label": f"f-{uid}-stuck-v",
                                                       "env": "-p 22:22", "runtype": "ssh_direct"})
    iid = r.json()["new_contract"]
    cleanup("vast", iid)
    control = create_pod(rp, sim, cleanup, f"f-{uid}-control")
    wait_running(sim, rp, control)
    sim.client.advance(3600)  # also past every timer on the virtual clock
    control2 = create_pod(rp, sim, cleanup, f"f-{uid}-control2")
    wait_running(sim, rp, control2)
    p = pod_status(rp, pid)
    assert p["status"] in ("PROVISIONING", "STARTING") and p["ssh"]["direct"] is None and p["runtime"] is None
    v = vast_show(vast, iid)
    assert v["actual_status"] in (None, "created") and v["ports"] is None  # loading would be a pull
    # it can still be terminated
    assert rp.delete(f"/pods/{pid}").status_code == 204
    assert vast.delete(f"/api/v0/instances/{iid}/").status_code == 200


def test_boot_error(sim, rp, gql, vast, sim_faults, uid, cleanup):
    sim_faults.add_faults(f"faults: [{{type: boot_error, match: {{name: 'f-{uid}*'}}}}]")
    pid = create_pod(rp, sim, cleanup, f"f-{uid}")
    p = sim.client.wait_until(lambda: (lambda x: x if x["status"] == "ERROR" else None)(pod_status(rp, pid)), 20,
                              "ERROR")
    assert p["ssh"]["direct"] is None and p["cost"] == 0.0 and p["actions"] == ["start", "terminate"]
    offer = cheapest_vast_offer(vast)
    r = vast.put(f"/api/v0/asks/{offer['id']}/", json={"image": "img", "label": f"f-{uid}-v"})
    iid = r.json()["new_contract"]
    cleanup("vast", iid)
    v = sim.client.wait_until(lambda: (lambda x: x if x["actual_status"] == "created" else None)(
        vast_show(vast, iid)), 20, "created")
    assert "OCI runtime create failed" in v["status_msg"] and v["ports"] is None


def test_ssh_never_opens(sim, rp, vast, sim_faults, uid, cleanup):
    sim_faults.add_faults(f"faults: [{{type: ssh_never, match: {{name: 'f-{uid}*'}}}}]")
    pid = create_pod(rp, sim, cleanup, f"f-{uid}")
    p = wait_running(sim, rp, pid)
    d = p["ssh"]["direct"]
    assert d is not None  # the API says it is up, with a port mapping
    with socket.create_connection((d["host"], d["port"]), timeout=2):
        pass  # TCP accepts ...
    assert ssh_banner(d["host"], d["port"], timeout=1.0) is None  # ... but no SSH banner ever comes
    with pytest.raises(TimeoutError):
        wait_ssh(d["host"], d["port"], d["username"], str(sim.key), sim.known_hosts, timeout=2)

    offer = cheapest_vast_offer(vast)
    r = vast.put(f"/api/v0/asks/{offer['id']}/", json={"image": "img", "label": f"f-{uid}-v", "env": "-p 22:22"})
    iid = r.json()["new_contract"]
    cleanup("vast", iid)
    v = sim.client.wait_until(lambda: (lambda x: x if x["actual_status"] == "running" else None)(
        vast_show(vast, iid)), 20, "running")
    port = int(v["ports"]["22/tcp"][0]["HostPort"])
    assert ssh_banner(v["public_ipaddr"].strip(), port, timeout=1.0) is None


# ------------------------------------------------------------------------------------------ preemption
def test_preemption_of_interruptible_instances_after_n_seconds(sim, gql, vast, sim_faults, uid, cleanup):
    sim_faults.add_faults(f"faults: [{{type: preempt, after_seconds: 600, match: {{name: 'f-{uid}*'}}}}]")
    from test_api_graphql import rent, wait_runtime

    spot = rent(gql, f"f-{uid}-spot", sim.pubkey, spot=True).json()["data"]["podRentInterruptable"]["id"]
    cleanup("runpod", spot)
    ondemand = rent(gql, f"f-{uid}-od", sim.pubkey).json()["data"]["podFindAndDeployOnDemand"]["id"]
    cleanup("runpod", ondemand)
    offer = cheapest_vast_offer(vast, type="bid")
    r = vast.put(f"/api/v0/asks/{offer['id']}/", json={"image": "img", "label": f"f-{uid}-vbid", "env": "-p 22:22",
                                                       "price": offer["min_bid"]})
    vbid = r.json()["new_contract"]
    cleanup("vast", vbid)
    wait_runtime(sim, gql, spot)
    wait_runtime(sim, gql, ondemand)
    sim.client.wait_until(lambda: vast_show(vast, vbid)["actual_status"] == "running", 20, "vast running")
    node = sim.wait_runpod(spot)
    node.ssh("tmux new-session -d -s job 'sleep 1000'")

    sim.client.advance(300)  # not yet
    assert vast_show(vast, vbid)["actual_status"] == "running"
    sim.client.advance(301)

    query = f'query {{ pod(input: {{ podId: "{spot}" }}) {{ desiredStatus podType runtime {{ uptimeInSeconds }} }} }}'
    sim.client.wait_until(lambda: gql.q(query).json()["data"]["pod"]["desiredStatus"] == "EXITED", 20,
                          "spot pod preempted")
    p = gql.q(query).json()["data"]["pod"]
    assert p == {"desiredStatus": "EXITED", "podType": "INTERRUPTABLE", "runtime": None}
    v = sim.client.wait_until(lambda: (lambda x: x if x["actual_status"] == "stopped" else None)(
        vast_show(vast, vbid)), 20, "vast bid stopped")
    assert v["intended_status"] == "running" and v["ports"] is None  # outbid: stopped, not destroyed
    assert "preempted" in v["status_msg"]
    assert node.ssh("true", check=False, timeout=10).returncode == 255  # the node is gone
    assert sim.client.instance(spot)["processes"] == []
    # the on-demand pod matched the fault's name but is not interruptible: untouched
    od = gql.q(f'query {{ pod(input: {{ podId: "{ondemand}" }}) {{ desiredStatus }} }}').json()["data"]["pod"]
    assert od["desiredStatus"] == "RUNNING"


# ------------------------------------------------------------------------------------------ terminate fails
def test_terminate_fails_n_times(sim, rp, gql, vast, sim_faults, uid, cleanup):
    pid = create_pod(rp, sim, cleanup, f"f-{uid}")
    pid2 = create_pod(rp, sim, cleanup, f"f-{uid}-gql")
    offer = cheapest_vast_offer(vast)
    iid = vast.put(f"/api/v0/asks/{offer['id']}/", json={"image": "img", "label": f"f-{uid}-v"}).json()["new_contract"]
    cleanup("vast", iid)
    sim_faults.add_faults(f"faults: [{{type: terminate_fails, count: 2, match: {{name: 'f-{uid}'}}}}, "
                          f"{{type: terminate_fails, count: 1, match: {{name: 'f-{uid}-gql'}}}}, "
                          f"{{type: terminate_fails, count: 1, match: {{name: 'f-{uid}-v'}}}}]")
    for _ in range(2):
        r = rp.delete(f"/pods/{pid}")
        assert r.status_code == 500 and r.headers["content-type"].startswith("application/problem+json")
    assert pod_status(rp, pid)["id"] == pid  # still there (and still billed)
    assert rp.delete(f"/pods/{pid}").status_code == 204

    r = gql.q(f'mutation {{ podTerminate(input: {{ podId: "{pid2}" }}) }}')
    assert r.status_code == 200 and r.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert r.json()["errors"][0]["path"] == ["podTerminate"]
    r = gql.q(f'mutation {{ podTerminate(input: {{ podId: "{pid2}" }}) }}')
    assert r.json() == {"data": {"podTerminate": None}}

    r = vast.delete(f"/api/v0/instances/{iid}/")
    assert r.status_code == 500 and r.json()["success"] is False
    assert vast_show(vast, iid) is not None
    assert vast.delete(f"/api/v0/instances/{iid}/").status_code == 200


# ------------------------------------------------------------------------------------------ GPU faults
SMI = ("nvidia-smi --query-gpu=index,temperature.gpu,memory.used,ecc.errors.uncorrected.volatile.total "
       "--format=csv,noheader,nounits")


def test_hot_and_failing_gpu_at_create(sim, sim_faults, make_nodes, uid):
    sim_faults.add_faults(f"faults: [{{type: gpu, gpus: [1], temperature: 93, ecc_uncorrected: 4, "
                          f"memory_used_mib: 20000, match: {{name: 'hot-{uid}*'}}}}]")
    node = make_nodes(1, "runpod", gpu="NVIDIA RTX A6000", count=2, prefix=f"hot-{uid}")[0]
    rows = [[c.strip() for c in line.split(",")] for line in node.ssh(SMI).stdout.strip().splitlines()]
    assert rows[0][1] != "93" and rows[0][3] == "0"
    assert rows[1] == ["1", "93", "20000", "4"]


def test_gpu_fault_reaches_running_instances_and_driver_missing(sim, sim_faults, make_nodes, uid):
    node, bystander = make_nodes(2, "runpod", prefix=f"gpu-{uid}")
    assert node.ssh("nvidia-smi -L").returncode == 0
    sim_faults.add_faults(f"faults: [{{type: gpu, driver_missing: true, match: {{instance: '{node.id}'}}}}]")
    r = node.ssh("nvidia-smi", check=False)
    assert r.returncode == 9 and "couldn't communicate with the NVIDIA driver" in r.stdout
    assert node.ssh(SMI, check=False).returncode == 9
    assert bystander.ssh("nvidia-smi -L").returncode == 0
    sim_faults.add_faults(f"faults: [{{type: gpu, temperature: 97, match: {{instance: '{bystander.id}'}}}}]")
    assert bystander.ssh(SMI).stdout.split(",")[1].strip() == "97"


def test_bad_faults_are_rejected_with_one_line(sim_faults):
    import requests

    url = sim_faults.url + "/_sim/faults"
    hdr = {"Authorization": f"Bearer {sim_faults.info['admin_token']}"}
    for text, part in [("faults: [{type: meteor}]", "unknown type"), ("faults: {a: 1", "invalid YAML"),
                       ("faults: [{type: slow_boot}]", "needs 'seconds'"),
                       ("faults: [{type: rate_limit, count: 0}]", "count must be >= 1"),
                       ("faults: [{type: gpu}]", "gpu fault needs"),
                       ("faults: [{type: preempt, when: 1}]", "unknown key"),
                       ("faults: [{type: no_capacity, match: {region: x}}]", "unknown match key"),
                       ("faults: [{type: server_error, status: 404}]", "5xx"), ("other: []", "top-level key"),
                       ("faults: [{type: rate_limit, applied: true}]", "unknown key")]:
        r = requests.post(url, data=text.encode(), headers=hdr, timeout=10)
        assert r.status_code == 400 and part in r.json()["detail"] and "\n" not in r.json()["detail"], (text, r.text)
    assert sim_faults.request("GET", "/_sim/faults")["faults"] == []


def test_preemption_counts_from_the_latest_start(sim, gql, sim_faults, uid, cleanup):
    """A stop/start in between resets the clock of the preemption: the timer of the first run must not
    preempt the second one early."""
    from test_api_graphql import rent, wait_runtime

    sim_faults.add_faults(f"faults: [{{type: preempt, after_seconds: 600, match: {{name: 'f-{uid}'}}}}]")
    pid = rent(gql, f"f-{uid}", sim.pubkey, spot=True).json()["data"]["podRentInterruptable"]["id"]
    cleanup("runpod", pid)
    wait_runtime(sim, gql, pid)
    sim.client.advance(300)
    gql.q(f'mutation {{ podStop(input: {{ podId: "{pid}" }}) {{ id }} }}')
    r = gql.q(f'mutation {{ podBidResume(input: {{ podId: "{pid}", bidPerGpu: 0.5, gpuCount: 1 }}) {{ id }} }}')
    assert "errors" not in r.json(), r.text
    wait_runtime(sim, gql, pid)
    sim.client.advance(350)  # 650 s after the first start, 350 s after the second
    # a second spot pod that gets preempted 10 s after it starts: once it is, the timers have run
    sim_faults.add_faults(f"faults: [{{type: preempt, after_seconds: 10, match: {{name: 'f-{uid}-probe'}}}}]")
    probe = rent(gql, f"f-{uid}-probe", sim.pubkey, spot=True).json()["data"]["podRentInterruptable"]["id"]
    cleanup("runpod", probe)
    wait_runtime(sim, gql, probe)
    sim.client.advance(11)

    def status(p):
        return gql.q(f'query {{ pod(input: {{ podId: "{p}" }}) {{ desiredStatus }} }}').json()["data"]["pod"][
            "desiredStatus"]

    sim.client.wait_until(lambda: status(probe) == "EXITED", 20, "probe preempted")
    assert status(pid) == "RUNNING"
    sim.client.advance(250)  # now 611 s after the second start
    sim.client.wait_until(lambda: status(pid) == "EXITED", 20, "preempted after its own 600 s")
