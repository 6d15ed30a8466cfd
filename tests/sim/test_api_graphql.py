"""RunPod GraphQL as the simulator serves it (provider-apis.md §1.2–§1.4, §3).

Queries are written the way the SDK, SkyPilot and dstack send them: every value inlined as a GraphQL
literal, no variables. Business errors are HTTP 200 with errors[] and data.<field> null; schema errors 400;
a bad key 401.
"""

from __future__ import annotations

import json
import re

import requests

NO_CAPACITY = ("There are no longer any instances available with the requested specifications. "
               "Please refresh and try again.")
POD_FIELDS = ("id name desiredStatus costPerHr podType gpuCount imageName env ports machineId "
              "runtime { uptimeInSeconds ports { ip isIpPublic privatePort publicPort type } gpus { id } } "
              "machine { podHostId gpuDisplayName }")


def gql_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid GraphQL string literal (\" and \n escapes)


def rent(gql, name: str, pubkey: str, *, spot: bool = False, gpu: str = "NVIDIA GeForce RTX 4090",
         cloud: str = "ALL", bid: float = 0.5, extra: str = "") -> requests.Response:
    field = "podRentInterruptable" if spot else "podFindAndDeployOnDemand"
    bidtxt = f"bidPerGpu: {bid}, " if spot else ""
    q = (f"mutation {{ {field}( input: {{ {bidtxt}name: {gql_str(name)}, imageName: \"runpod/pytorch:2.1.0\", "
         f"cloudType: {cloud}, startSsh: true, gpuTypeId: {gql_str(gpu)}, supportPublicIp: true, gpuCount: 1, "
         f"volumeInGb: 0, containerDiskInGb: 10, minVcpuCount: 1, minMemoryInGb: 1, dockerArgs: \"\", "
         f"ports: \"22/tcp,8888/http\", volumeMountPath: \"/workspace\", dataCenterId: null, "
         f"env: [{{ key: \"PUBLIC_KEY\", value: {gql_str(pubkey)} }}, {{ key: \"Q\", value: \"a\\\"b\\nc\" }}] "
         f"{extra} }} ) {{ id desiredStatus imageName env machineId machine {{ podHostId }} }} }}")
    return gql.q(q)


def pod(gql, pod_id: str) -> dict | None:
    r = gql.q(f'query {{ pod(input: {{ podId: "{pod_id}" }}) {{ {POD_FIELDS} }} }}')
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    return r.json()["data"]["pod"]


def wait_runtime(sim, gql, pod_id: str) -> dict:
    return sim.client.wait_until(lambda: (lambda p: p if p and p["runtime"] else None)(pod(gql, pod_id)), 20,
                                 f"runtime of {pod_id}")


# ------------------------------------------------------------------------------------------ auth
def test_auth_bearer_query_param_and_401(gql, sim):
    q = {"query": "query { gpuTypes { id } }"}
    assert gql.post("", json=q).status_code == 200
    r = requests.post(gql.base, params={"api_key": sim.env["RUNPOD_API_KEY"]}, json=q, timeout=10)
    assert r.status_code == 200 and r.json()["data"]["gpuTypes"]
    for kw in ({}, {"headers": {"Authorization": "Bearer nope"}}, {"params": {"api_key": "nope"}}):
        r = requests.post(gql.base, json=q, timeout=10, **kw)
        assert r.status_code == 401
        assert r.json()["errors"][0]["message"] == "Unauthorized request, please check your API key."


# ------------------------------------------------------------------------------------------ pods
def test_on_demand_deploy_inline_literals_and_ssh(sim, gql, uid, cleanup):
    r = rent(gql, f"gq-{uid}", sim.pubkey)
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    p = r.json()["data"]["podFindAndDeployOnDemand"]
    cleanup("runpod", p["id"])
    assert re.fullmatch(r"[a-z0-9]{14}", p["id"])
    assert re.fullmatch(rf"{p['id']}-[0-9a-f]{{8}}", p["machine"]["podHostId"])
    assert len(p["machineId"]) == 12
    assert f"PUBLIC_KEY={sim.pubkey}" in p["env"] and 'Q=a"b\nc' in p["env"]
    assert p["desiredStatus"] == "RUNNING"

    # listed right after create with runtime null, as RunPod does until the container is up
    full = pod(gql, p["id"])
    assert full["podType"] == "RESERVED" and full["ports"] == "22/tcp,8888/http"
    up = wait_runtime(sim, gql, p["id"])
    ssh = [x for x in up["runtime"]["ports"] if x["privatePort"] == 22]
    assert len(ssh) == 1 and ssh[0]["isIpPublic"] is True and ssh[0]["type"] == "tcp"
    node = sim.wait_runpod(p["id"])  # REST v2 and GraphQL are one store: the same node
    assert (node.host, node.port) == (ssh[0]["ip"], ssh[0]["publicPort"])
    assert node.ssh("nvidia-smi -L").stdout.startswith("GPU 0: NVIDIA GeForce RTX 4090")

    listed = gql.q("query { myself { pods { id name desiredStatus } } }").json()["data"]["myself"]["pods"]
    assert {"id": p["id"], "name": f"gq-{uid}", "desiredStatus": "RUNNING"} in listed


def test_spot_rent_stop_bid_resume_terminate(sim, gql, uid):
    r = rent(gql, f"gq-{uid}", sim.pubkey, spot=True, bid=0.4)
    assert "errors" not in r.json(), r.text
    pid = r.json()["data"]["podRentInterruptable"]["id"]
    up = wait_runtime(sim, gql, pid)
    assert up["podType"] == "INTERRUPTABLE" and up["costPerHr"] == 0.4

    r = gql.q(f'mutation {{ podStop(input: {{ podId: "{pid}" }}) {{ id desiredStatus }} }}')
    assert r.json()["data"]["podStop"] == {"id": pid, "desiredStatus": "EXITED"}
    assert pod(gql, pid)["runtime"] is None

    # a spot pod resumes with podBidResume, not podResume
    r = gql.q(f'mutation {{ podResume(input: {{ podId: "{pid}", gpuCount: 1 }}) {{ id }} }}')
    assert r.status_code == 200 and r.json()["data"]["podResume"] is None
    assert r.json()["errors"][0]["path"] == ["podResume"]
    r = gql.q(f'mutation {{ podBidResume(input: {{ podId: "{pid}", bidPerGpu: 0.01, gpuCount: 1 }}) {{ id }} }}')
    assert "below the minimum bid" in r.json()["errors"][0]["message"]
    r = gql.q(f'mutation {{ podBidResume(input: {{ podId: "{pid}", bidPerGpu: 0.45, gpuCount: 1 }}) '
              f'{{ id desiredStatus }} }}')
    assert r.json()["data"]["podBidResume"]["desiredStatus"] == "RUNNING", r.text
    assert wait_runtime(sim, gql, pid)["costPerHr"] == 0.45

    r = gql.q(f'mutation {{ podTerminate(input: {{ podId: "{pid}" }}) }}')
    assert r.status_code == 200 and r.json() == {"data": {"podTerminate": None}}
    assert pod(gql, pid) is None
    assert pid not in [p["id"] for p in gql.q("query { myself { pods { id } } }").json()["data"]["myself"]["pods"]]
    # terminating again: a business error whose path names podTerminate (dstack reads that as "already gone")
    r = gql.q(f'mutation {{ podTerminate(input: {{ podId: "{pid}" }}) }}')
    assert r.status_code == 200 and r.json()["errors"][0]["path"] == ["podTerminate"]


def test_on_demand_stop_and_resume(sim, gql, uid, cleanup):
    pid = rent(gql, f"gq-{uid}", sim.pubkey).json()["data"]["podFindAndDeployOnDemand"]["id"]
    cleanup("runpod", pid)
    wait_runtime(sim, gql, pid)
    gql.q(f'mutation {{ podStop(input: {{ podId: "{pid}" }}) {{ id desiredStatus }} }}')
    r = gql.q(f'mutation {{ podResume(input: {{ podId: "{pid}", gpuCount: 1 }}) {{ id desiredStatus imageName }} }}')
    assert r.json()["data"]["podResume"]["desiredStatus"] == "RUNNING", r.text
    assert wait_runtime(sim, gql, pid)["runtime"]["ports"]


def test_business_errors_are_http_200(sim, gql, uid):
    r = rent(gql, f"gq-{uid}", sim.pubkey, gpu="NVIDIA L40S", cloud="COMMUNITY")
    assert r.status_code == 200
    body = r.json()
    assert body["data"] == {"podFindAndDeployOnDemand": None}
    assert body["errors"][0]["message"] == NO_CAPACITY
    assert body["errors"][0]["path"] == ["podFindAndDeployOnDemand"]
    assert body["errors"][0]["extensions"]["code"]
    r = rent(gql, f"gq-{uid}", sim.pubkey, spot=True, bid=0.01)
    assert r.status_code == 200 and "below the minimum bid" in r.json()["errors"][0]["message"]
    r = rent(gql, f"gq-{uid}", sim.pubkey, gpu="NVIDIA Imaginary")
    assert r.status_code == 200 and r.json()["data"]["podFindAndDeployOnDemand"] is None
    r = gql.q('mutation { podStop(input: { podId: "nosuchpod00000" }) { id } }')
    assert r.status_code == 200 and r.json()["errors"][0]["path"] == ["podStop"]


def test_schema_errors_are_http_400(gql):
    # unknown input field
    r = gql.q('mutation { podFindAndDeployOnDemand(input: { gpuTypeId: "x", bogusField: 1 }) { id } }')
    assert r.status_code == 400 and "bogusField" in r.json()["errors"][0]["message"]
    # unknown selection
    assert gql.q("query { myself { nonsense } }").status_code == 400
    # wrong literal type
    assert gql.q('mutation { podRentInterruptable(input: { bidPerGpu: "cheap" }) { id } }').status_code == 400
    # missing required argument, syntax error, no query
    assert gql.q("mutation { podRentInterruptable(input: { name: \"x\" }) { id } }").status_code == 400
    assert gql.q("query { myself { id ").status_code == 400
    assert gql.post("", json={}).status_code == 400


def test_variables_are_accepted(gql):
    r = gql.post("", json={"query": "query G($i: GpuTypeFilter) { gpuTypes(input: $i) { id memoryInGb } }",
                           "variables": {"i": {"id": "NVIDIA RTX A6000"}}})
    assert r.json() == {"data": {"gpuTypes": [{"id": "NVIDIA RTX A6000", "memoryInGb": 48}]}}


def test_gpu_types_prices_and_stock(gql):
    q = ('query { gpuTypes(input: { id: "NVIDIA GeForce RTX 4090" }) { id displayName memoryInGb maxGpuCount '
         "secureCloud communityCloud securePrice communityPrice secureSpotPrice communitySpotPrice "
         "lowestPrice(input: { gpuCount: 1 }) { minimumBidPrice uninterruptablePrice stockStatus "
         "availableGpuCounts maxUnreservedGpuCount } } }")
    t = gql.q(q).json()["data"]["gpuTypes"]
    assert isinstance(t, list) and len(t) == 1  # a list; the SDK takes [0]
    t = t[0]
    assert (t["securePrice"], t["communityPrice"], t["secureSpotPrice"], t["communitySpotPrice"]) == (
        0.69, 0.34, 0.35, 0.20)
    lp = t["lowestPrice"]
    assert lp["stockStatus"] in ("High", "Medium", "Low")
    assert lp["minimumBidPrice"] == 0.20 and lp["uninterruptablePrice"] == 0.34
    # no community L40S: stockStatus null
    q = ('query { gpuTypes(input: { id: "NVIDIA L40S" }) { lowestPrice(input: { gpuCount: 1, secureCloud: false }) '
         "{ stockStatus } } }")
    assert gql.q(q).json()["data"]["gpuTypes"][0]["lowestPrice"]["stockStatus"] is None
    all_types = gql.q("query { gpuTypes { id displayName memoryInGb } }").json()["data"]["gpuTypes"]
    assert len(all_types) >= 5


def test_no_public_ip_when_support_public_ip_false(sim, gql, rp, uid, cleanup):
    r = rent(gql, f"gq-{uid}", sim.pubkey).json()  # control: public
    cleanup("runpod", r["data"]["podFindAndDeployOnDemand"]["id"])
    q = (f'mutation {{ podFindAndDeployOnDemand(input: {{ name: "gq-{uid}-priv", imageName: "img", '
         f'gpuTypeId: "NVIDIA GeForce RTX 4090", supportPublicIp: false, ports: "22/tcp", '
         f'env: [{{ key: "PUBLIC_KEY", value: {gql_str(sim.pubkey)} }}] }}) {{ id }} }}')
    pid = gql.q(q).json()["data"]["podFindAndDeployOnDemand"]["id"]
    cleanup("runpod", pid)
    up = wait_runtime(sim, gql, pid)
    assert [p["isIpPublic"] for p in up["runtime"]["ports"] if p["privatePort"] == 22] == [False]
    # REST v2 reads the same store: no public 22/tcp mapping means no ssh.direct
    assert rp.get(f"/pods/{pid}").json()["ssh"]["direct"] is None


def test_account_pubkey(gql, sim):
    old = gql.q("query { myself { pubKey } }").json()["data"]["myself"]["pubKey"]
    try:
        r = gql.q(f"mutation {{ updateUserSettings(input: {{ pubKey: {gql_str(sim.pubkey + chr(10) + chr(10))} }}) "
                  "{ id pubKey } }")
        assert r.json()["data"]["updateUserSettings"]["pubKey"] == sim.pubkey
    finally:
        gql.q(f"mutation {{ updateUserSettings(input: {{ pubKey: {gql_str(old or '')} }}) {{ id }} }}")


def test_rate_limit_and_5xx(gql, sim_faults):
    sim_faults.add_faults("faults: [{type: rate_limit, api: graphql, count: 1, retry_after: 3}, "
                          "{type: server_error, api: graphql, status: 503, count: 1}]")
    r = gql.q("query { gpuTypes { id } }")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    r = gql.q("query { gpuTypes { id } }")
    assert r.status_code == 503 and r.json()["errors"][0]["message"]
    assert gql.q("query { gpuTypes { id } }").status_code == 200
