"""RunPod REST v2 as the simulator serves it: every endpoint, every error shape, auth.

Shapes follow the vendored spec (api-reference-v2/openapi.json) and ../shared/reference/provider-apis.md §1.7;
test_contract_specs.py validates the same answers against the spec itself.
"""

from __future__ import annotations

import requests
from simapi import pod_body, pod_is_up

PROBLEM = "application/problem+json"


def assert_problem(r: requests.Response, status: int, detail_part: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if detail_part:
        assert detail_part in body["detail"], body
    return body


def wait_status(sim, rp, pod_id: str, status: str, timeout: float = 20) -> dict:
    def check():
        p = rp.get(f"/pods/{pod_id}").json()
        return p if (pod_is_up(p) if status == "RUNNING" else p.get("status") == status) else None

    return sim.client.wait_until(check, timeout, f"pod {pod_id} {status}")


# ------------------------------------------------------------------------------------------ auth
def test_auth_missing_and_wrong_bearer(rp, sim):
    for method, path in [("GET", "/pods"), ("POST", "/pods"), ("GET", "/pods/abc"), ("PATCH", "/pods/abc"),
                         ("DELETE", "/pods/abc"), ("POST", "/pods/abc/action"), ("GET", "/catalog/gpus")]:
        r = requests.request(method, rp.base + path, json={}, timeout=10)
        assert_problem(r, 401, "missing bearer token")
        r = requests.request(method, rp.base + path, json={}, timeout=10,
                             headers={"Authorization": "Bearer sim_rp_wrong"})
        assert_problem(r, 401)
    # REST v2 takes the key only as a Bearer header, never as ?api_key (that is GraphQL and Vast)
    r = requests.get(rp.base + "/pods", params={"api_key": sim.env["RUNPOD_API_KEY"]}, timeout=10)
    assert_problem(r, 401)


def test_rest_v1_is_retired(rp):
    r = rp.get("/pods").url.replace("/v2/", "/v1/")
    resp = requests.get(r, headers={"Authorization": f"Bearer {rp.key}"}, timeout=10)
    assert_problem(resp, 410, "retired")


# ------------------------------------------------------------------------------------------ lifecycle
def test_create_get_list_and_ssh_direct_appears_only_when_up(sim, rp, uid, cleanup):
    r = rp.post("/pods", json=pod_body(f"rp-{uid}", sim.pubkey, env={"PUBLIC_KEY": sim.pubkey, "FOO": "bar"}))
    assert r.status_code == 201, r.text
    pod = r.json()
    cleanup("runpod", pod["id"])
    assert len(pod["id"]) == 14 and pod["id"].isalnum() and pod["id"].islower()
    assert pod["status"] == "PROVISIONING"
    assert pod["ssh"]["direct"] is None and pod["runtime"] is None
    assert pod["ssh"]["proxy"]["host"] == "ssh.runpod.io"
    assert pod["gpu"] == {"id": "NVIDIA GeForce RTX 4090", "count": 1}
    assert pod["env"]["FOO"] == "bar" and pod["ports"] == ["22/tcp"]
    assert pod["cost"] > 0 and pod["startedAt"] is None and pod["createdAt"].endswith("Z")

    up = wait_status(sim, rp, pod["id"], "RUNNING")
    d = up["ssh"]["direct"]
    assert d["host"].startswith("127.") and isinstance(d["port"], int) and d["username"]
    assert d["command"] == f"ssh {d['username']}@{d['host']} -p {d['port']}"
    ssh_ports = [p for p in up["runtime"]["ports"] if p["private"] == 22]
    assert ssh_ports == [{"private": 22, "public": d["port"], "type": "tcp", "ip": d["host"]}]
    assert up["actions"] == ["stop", "restart", "terminate"]
    assert up["startedAt"] is not None

    r = rp.get("/pods")
    assert "minute" in r.headers["RateLimit"] and "q=60" in r.headers["RateLimit-Policy"]  # on 2xx too
    listed = r.json()
    assert set(listed) == {"pods"}
    assert pod["id"] in [p["id"] for p in listed["pods"]]


def test_no_direct_ssh_without_22_tcp(sim, rp, uid, cleanup):
    r = rp.post("/pods", json=pod_body(f"rp-{uid}", sim.pubkey, ports=["8888/http"]))
    assert r.status_code == 201, r.text
    cleanup("runpod", r.json()["id"])
    up = wait_status(sim, rp, r.json()["id"], "RUNNING")
    assert up["ssh"]["direct"] is None
    assert [p["private"] for p in up["runtime"]["ports"]] == [8888]


def test_status_goes_provisioning_starting_running(sim, sim_faults, rp, uid, cleanup):
    # a slow boot makes the intermediate states long enough to observe by polling
    sim_faults.add_faults(f"faults: [{{type: slow_boot, seconds: 3, match: {{name: 'rp-{uid}'}}}}]")
    r = rp.post("/pods", json=pod_body(f"rp-{uid}", sim.pubkey))
    cleanup("runpod", r.json()["id"])
    seen = [r.json()["status"]]

    def running():
        s = rp.get(f"/pods/{r.json()['id']}").json()["status"]
        if s != seen[-1]:
            seen.append(s)
        return s == "RUNNING"

    sim.client.wait_until(running, 20, "RUNNING")
    assert seen == ["PROVISIONING", "STARTING", "RUNNING"]


def test_actions_stop_start_restart_terminate(sim, rp, uid, cleanup):
    pod = rp.post("/pods", json=pod_body(f"rp-{uid}", sim.pubkey)).json()
    cleanup("runpod", pod["id"])
    first = wait_status(sim, rp, pod["id"], "RUNNING")

    r = rp.post(f"/pods/{pod['id']}/action", json={"action": "stop"})
    assert r.status_code == 200, r.text
    stopped = r.json()
    assert stopped["status"] == "EXITED" and stopped["cost"] == 0.0
    assert stopped["actions"] == ["start", "terminate"]
    assert stopped["ssh"]["direct"] is None and stopped["runtime"] is None

    # an action that is not valid for the status: 409 problem
    assert_problem(rp.post(f"/pods/{pod['id']}/action", json={"action": "stop"}), 409)
    assert_problem(rp.post(f"/pods/{pod['id']}/action", json={"action": "restart"}), 409)

    r = rp.post(f"/pods/{pod['id']}/action", json={"action": "start"})
    assert r.status_code == 200 and r.json()["status"] in ("PROVISIONING", "STARTING", "RUNNING")
    again = wait_status(sim, rp, pod["id"], "RUNNING")
    # the mapped public port is new after a restart of the container, as on RunPod
    assert again["ssh"]["direct"] is not None
    sim.wait_runpod(pod["id"])  # a real `ssh true` works again

    r = rp.post(f"/pods/{pod['id']}/action", json={"action": "restart"})
    assert r.status_code == 200, r.text
    wait_status(sim, rp, pod["id"], "RUNNING")

    r = rp.post(f"/pods/{pod['id']}/action", json={"action": "terminate"})
    assert r.status_code == 204 and r.content == b""
    assert_problem(rp.get(f"/pods/{pod['id']}"), 404)
    assert first["id"] == pod["id"]


def test_action_contract_errors(rp, sim, uid, cleanup):
    pod = rp.post("/pods", json=pod_body(f"rp-{uid}", sim.pubkey)).json()
    cleanup("runpod", pod["id"])
    b = assert_problem(rp.post(f"/pods/{pod['id']}/action", json={"action": "explode"}), 422)
    assert b["errors"] and "action" in b["errors"][0]
    b = assert_problem(rp.post(f"/pods/{pod['id']}/action", json={"action": "stop", "force": True}), 422)
    assert any("force" in e for e in b["errors"])
    assert_problem(rp.post(f"/pods/{pod['id']}/action"), 422)
    assert_problem(rp.post("/pods/nosuchpod00000/action", json={"action": "stop"}), 404)


def test_patch_pod(rp, sim, uid, cleanup):
    pod = rp.post("/pods", json=pod_body(f"rp-{uid}", sim.pubkey)).json()
    cleanup("runpod", pod["id"])
    r = rp.patch(f"/pods/{pod['id']}", json={"name": f"renamed-{uid}", "locked": True})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == f"renamed-{uid}" and r.json()["locked"] is True
    assert rp.get(f"/pods/{pod['id']}").json()["name"] == f"renamed-{uid}"
    wait_status(sim, rp, pod["id"], "RUNNING")
    # a locked pod cannot be stopped
    assert_problem(rp.post(f"/pods/{pod['id']}/action", json={"action": "stop"}), 409, "locked")
    b = assert_problem(rp.patch(f"/pods/{pod['id']}", json={"nmae": "typo"}), 422)
    assert any("nmae" in e for e in b["errors"])
    assert_problem(rp.patch(f"/pods/{pod['id']}", json={"name": ""}), 422)
    assert_problem(rp.patch("/pods/nosuchpod00000", json={"name": "x"}), 404)


def test_delete_is_204_then_404(rp, sim, uid):
    pod = rp.post("/pods", json=pod_body(f"rp-{uid}", sim.pubkey)).json()
    r = rp.delete(f"/pods/{pod['id']}")
    assert r.status_code == 204 and r.content == b""
    assert_problem(rp.get(f"/pods/{pod['id']}"), 404, "not found")
    assert_problem(rp.delete(f"/pods/{pod['id']}"), 404)
    assert pod["id"] not in [p["id"] for p in rp.get("/pods").json()["pods"]]


# ------------------------------------------------------------------------------------------ create errors
def test_create_422_contract_violations(rp):
    b = assert_problem(rp.post("/pods", json={**pod_body("x"), "bogus": 1}), 422, "validation")
    assert "$: additional properties 'bogus' not allowed" in b["errors"]
    b = assert_problem(rp.post("/pods", json={"image": "x", "gpu": {"id": "NVIDIA GeForce RTX 4090"}}), 422)
    assert any("name" in e for e in b["errors"])
    assert_problem(rp.post("/pods", json={**pod_body("x"), "gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 0}}),
                   422)
    assert_problem(rp.post("/pods", json={**pod_body("x"), "ports": ["22"]}), 422)
    assert_problem(rp.post("/pods", json={**pod_body("x"), "cloud": "ALL"}), 422)  # v2 has no ALL
    assert_problem(rp.post("/pods", json={**pod_body("x"), "env": {"A": 1}}), 422)
    assert_problem(rp.post("/pods", json={**pod_body("x"), "dataCenterIds": ["MARS-1"]}), 422)
    assert_problem(rp.post("/pods"), 422)
    b = assert_problem(rp.post("/pods", json={"name": "x", "gpu": {"id": "NVIDIA GeForce RTX 4090"}}), 422)
    assert b["errors"] == ["$: missing property 'image'"]  # required unless templateId (spec if/then)
    assert_problem(rp.post("/pods", data=b"{not json", headers={"Content-Type": "application/json"}), 400)


def test_create_400_rule_violations(rp):
    assert_problem(rp.post("/pods", json={"name": "x", "image": "i"}), 400, "exactly one of gpu or cpu")
    assert_problem(rp.post("/pods", json={**pod_body("x"), "gpu": {"id": "NVIDIA Imaginary 9999"}}), 400,
                   "not found")
    assert_problem(rp.post("/pods", json={**pod_body("x"), "gpu": {
        "id": "NVIDIA GeForce RTX 4090", "allowedCudaVersions": ["12.4"], "minCudaVersion": "12.0"}}), 400,
        "mutually exclusive")
    assert_problem(rp.post("/pods", json={**pod_body("x"), "gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 9}}),
                   400, "maximum")


def test_create_400_no_capacity(rp):
    # the catalog has no community L40S stock: capacity errors are 400 with no machine-readable code
    body = {**pod_body("x"), "gpu": {"id": "NVIDIA L40S", "count": 1}, "cloud": "COMMUNITY"}
    b = assert_problem(rp.post("/pods", json=body), 400)
    assert b["detail"] == ("There are no longer any instances available with the requested specifications. "
                           "Please refresh and try again.")
    # an exact CUDA version that no machine of this type has is a capacity error too (spec: allowedCudaVersions)
    body = {**pod_body("x"), "gpu": {"id": "NVIDIA GeForce RTX 4090", "allowedCudaVersions": ["11.8"]}}
    assert_problem(rp.post("/pods", json=body), 400, "no longer any instances")
    # a data center that does not carry the GPU type
    body = {**pod_body("x"), "dataCenterIds": ["US-KS-2"]}
    assert_problem(rp.post("/pods", json=body), 400, "no longer any instances")


def test_create_picks_cuda_and_data_center(rp, sim, uid, cleanup):
    body = pod_body(f"rp-{uid}", sim.pubkey, dataCenterIds=["EU-RO-1"])
    body["gpu"]["minCudaVersion"] = "12.5"
    r = rp.post("/pods", json=body)
    assert r.status_code == 201, r.text
    cleanup("runpod", r.json()["id"])
    assert r.json()["dataCenterId"] == "EU-RO-1" and r.json()["cudaVersion"] == "12.8"


def test_rate_limit_429_with_retry_after(rp, sim_faults):
    sim_faults.add_faults("faults: [{type: rate_limit, api: runpod, endpoint: 'GET /v2/pods', count: 2, "
                          "retry_after: 7}]")
    for _ in range(2):
        r = rp.get("/pods")
        b = assert_problem(r, 429)
        assert b == {"title": "Too Many Requests", "status": 429,
                     "detail": "rate limit exceeded for the minute window"}
        assert r.headers["Retry-After"] == "7"
        assert "RateLimit" in r.headers and "RateLimit-Policy" in r.headers
    assert rp.get("/pods").status_code == 200  # the burst is over


def test_server_error_5xx(rp, sim_faults):
    sim_faults.add_faults("faults: [{type: server_error, api: runpod, status: 502, count: 1}]")
    assert_problem(rp.get("/catalog/gpus"), 502)
    assert rp.get("/catalog/gpus").status_code == 200


def test_insufficient_balance_402(rp, sim_faults, uid):
    sim_faults.add_faults(f"faults: [{{type: insufficient_balance, match: {{name: 'rp-{uid}'}}}}]")
    assert_problem(rp.post("/pods", json=pod_body(f"rp-{uid}")), 402, "balance")


# ------------------------------------------------------------------------------------------ catalog, keys
def test_catalog_gpus(rp):
    r = rp.get("/catalog/gpus")
    assert r.status_code == 200
    gpus = {g["id"]: g for g in r.json()["gpus"]}
    g = gpus["NVIDIA GeForce RTX 4090"]
    assert g["memory"] == 24 and g["price"]["secure"] > g["price"]["community"] > 0
    assert g["maxCount"] == {"secure": 8, "community": 4}
    assert "availability" not in g
    assert_problem(rp.get("/catalog/gpus", params={"include": "AVAILABILITY"}), 400, "product")
    assert_problem(rp.get("/catalog/gpus", params={"product": "POD"}), 400, "product")
    r = rp.get("/catalog/gpus", params={"include": "AVAILABILITY", "product": "POD"})
    avail = {g["id"]: g for g in r.json()["gpus"]}
    assert avail["NVIDIA GeForce RTX 4090"]["availability"] in ("LOW", "MEDIUM", "HIGH")
    assert {c["version"] for c in avail["NVIDIA GeForce RTX 4090"]["cudaVersions"]} == {"12.4", "12.8"}
    # no community L40S stock
    r = rp.get("/catalog/gpus", params={"include": "AVAILABILITY", "product": "POD", "cloud": "COMMUNITY"})
    l40s = {g["id"]: g for g in r.json()["gpus"]}["NVIDIA L40S"]
    assert l40s["availability"] == "NONE" and "dataCenters" not in l40s
    r = rp.get("/catalog/gpus", params={"include": "AVAILABILITY", "product": "POD", "count": 1000})
    assert {g["availability"] for g in r.json()["gpus"]} == {"NONE"}


def test_account_ssh_keys_feed_start_ssh(rp, sim, uid, cleanup):
    old = rp.get("/account/ssh-keys").json()["keys"]
    try:
        r = rp.put("/account/ssh-keys", json={"keys": [sim.pubkey]})
        assert r.status_code == 200 and r.json() == {"keys": [sim.pubkey]}
        assert_problem(rp.put("/account/ssh-keys", json={"keys": ["not a key"]}), 422)
        # startSsh without PUBLIC_KEY: the account keys are injected and open the node
        body = pod_body(f"rp-{uid}", startSsh=True)
        r = rp.post("/pods", json=body)
        assert r.status_code == 201, r.text
        cleanup("runpod", r.json()["id"])
        assert r.json()["env"]["PUBLIC_KEY"] == sim.pubkey
        node = sim.wait_runpod(r.json()["id"])
        assert node.ssh("echo ok").stdout.strip() == "ok"
    finally:
        rp.put("/account/ssh-keys", json={"keys": old})
