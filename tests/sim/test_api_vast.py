"""Vast.ai API as the simulator serves it (provider-apis.md §2, §3): offers, asks, instances v0/v1,
pagination, SSH keys, the deprecated v0 list, auth and error shapes."""

from __future__ import annotations

import json

import pytest
import requests
from simapi import cheapest_vast_offer

AUTH_ERR = {"success": False, "error": "auth_error", "msg": "Invalid user key"}


def assert_vast_error(r: requests.Response, status: int, error: str | None = None, msg_part: str | None = None
                      ) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body.get("success") is not True
    assert isinstance(body["msg"], str) and body["msg"]
    if error:
        assert body["error"] == error, body
    if msg_part:
        assert msg_part in body["msg"], body
    return body


def show(vast, iid) -> dict | None:
    r = vast.get(f"/api/v0/instances/{iid}/")
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"instances"}
    return r.json()["instances"]


def create_body(label: str, **extra) -> dict:
    return {"image": "vastai/base-image:cuda-12.4", "label": label, "disk": 20, "runtype": "ssh_direct",
            "env": "-p 22:22 -e TZ=UTC", "onstart": "touch ~/.no_auto_tmux", **extra}


def wait_running(sim, vast, iid, timeout: float = 20) -> dict:
    return sim.client.wait_until(lambda: (lambda i: i if i and i["actual_status"] == "running" else None)(
        show(vast, iid)), timeout, f"vast {iid} running")


# ------------------------------------------------------------------------------------------ auth
@pytest.mark.parametrize("method,path", [
    ("POST", "/api/v0/bundles/"), ("GET", "/api/v0/bundles/"), ("PUT", "/api/v0/asks/1/"),
    ("GET", "/api/v1/instances/"), ("GET", "/api/v0/instances/"), ("GET", "/api/v0/instances/1/"),
    ("PUT", "/api/v0/instances/1/"), ("DELETE", "/api/v0/instances/1/"), ("GET", "/api/v0/ssh/"),
    ("POST", "/api/v0/ssh/"), ("POST", "/api/v0/instances/1/ssh/"),
])
def test_auth_required_everywhere(vast, method, path):
    for headers, params in (({}, {}), ({"Authorization": "Bearer wrong"}, {}), ({}, {"api_key": "wrong"})):
        r = requests.request(method, vast.base + path, json={}, headers=headers, params=params, timeout=10)
        assert r.status_code == 401 and r.json() == AUTH_ERR, (method, path, r.text)


def test_api_key_query_param_and_paths_without_trailing_slash(vast, sim):
    r = requests.post(vast.base + "/api/v0/bundles", params={"api_key": sim.env["VAST_API_KEY"]},
                      json={"limit": 1}, timeout=10)
    assert r.status_code == 200 and len(r.json()["offers"]) == 1


# ------------------------------------------------------------------------------------------ offers
def offers(vast, q: dict) -> list[dict]:
    r = vast.post("/api/v0/bundles/", json=q)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()["offers"]


def test_search_operators(vast):
    every = offers(vast, {})
    assert every  # (other tests on this simulator may hold some machines: no exact counts here)
    o = offers(vast, {"gpu_name": {"eq": "RTX_4090"}, "num_gpus": {"eq": "1"}})  # CLI sends strings and _
    assert o and {x["gpu_name"] for x in o} == {"RTX 4090"} and {x["num_gpus"] for x in o} == {1}
    assert all(x["gpu_name"] != "RTX 4090" for x in offers(vast, {"gpu_name": {"neq": "RTX 4090"}}))
    assert all(x["num_gpus"] > 1 for x in offers(vast, {"num_gpus": {"gt": 1}}))
    assert all(x["num_gpus"] >= 4 for x in offers(vast, {"num_gpus": {"gte": 4}}))
    assert all(x["dph_total"] < 0.5 for x in offers(vast, {"dph_total": {"lt": 0.5}}))
    cheap = offers(vast, {"dph_total": {"lte": 0.33}})
    assert cheap and all(x["dph_total"] <= 0.33 for x in cheap)
    na = offers(vast, {"geolocation": {"in": ["US", "CA"]}})
    assert na and {x["geolocation"][-2:] for x in na} <= {"US", "CA"}
    far = offers(vast, {"geolocation": {"notin": ["US", "CA"]}})
    assert far and all(x["geolocation"][-2:] not in ("US", "CA") for x in far)
    two = offers(vast, {"num_gpus": {"in": [2, 8]}})
    assert two and {x["num_gpus"] for x in two} <= {2, 8}
    # range: both bounds in one condition
    mid = offers(vast, {"gpu_ram": {"gte": 40000, "lte": 50000}})
    assert mid and all(40000 <= x["gpu_ram"] <= 50000 for x in mid)
    assert offers(vast, {"verified": {"eq": True}, "num_gpus": {"eq": 1}, "gpu_name": {"eq": "RTX 4090"}})
    assert all(x["verified"] for x in offers(vast, {"verified": {"eq": True}}))


def test_search_order_limit_and_get_q(vast):
    o = offers(vast, {"order": [["dph_total", "asc"]], "limit": 3})
    assert len(o) == 3 and [x["dph_total"] for x in o] == sorted(x["dph_total"] for x in o)
    o = offers(vast, {"order": [["dph_total", "desc"]]})
    assert [x["dph_total"] for x in o] == sorted((x["dph_total"] for x in o), reverse=True)
    r = vast.get("/api/v0/bundles/", params={"q": json.dumps({"gpu_name": {"eq": "H100 SXM"}})})
    assert r.status_code == 200 and {x["gpu_name"] for x in r.json()["offers"]} == {"H100 SXM"}


def test_search_types_on_demand_and_bid(vast):
    od = {x["id"]: x for x in offers(vast, {"type": "on-demand"})}
    assert od == {x["id"]: x for x in offers(vast, {"type": "ondemand"})}  # the spec's spelling too
    bid = {x["id"]: x for x in offers(vast, {"type": "bid"})}
    assert od.keys() == bid.keys()
    for i, x in bid.items():
        assert x["is_bid"] is True and od[i]["is_bid"] is False
        assert x["dph_total"] == x["min_bid"] < od[i]["dph_total"]


def test_search_errors(vast):
    assert_vast_error(vast.post("/api/v0/bundles/", json={"no_such_col": {"eq": 1}}), 400, "invalid_args",
                      "not a valid search key")
    assert_vast_error(vast.post("/api/v0/bundles/", json={"num_gpus": {"approx": 1}}), 400, "invalid_args")
    assert_vast_error(vast.post("/api/v0/bundles/", json={"num_gpus": 1}), 400, "invalid_args")
    assert_vast_error(vast.post("/api/v0/bundles/", json={"type": "spot"}), 400, "invalid_args")
    assert_vast_error(vast.post("/api/v0/bundles/", json={"geolocation": {"in": "US"}}), 400, "invalid_args")
    assert_vast_error(vast.get("/api/v0/bundles/", params={"q": "{nope"}), 400)


# ------------------------------------------------------------------------------------------ create (asks)
def test_create_show_and_ssh_pair(sim, vast, uid, cleanup):
    vast.post("/api/v0/ssh/", json={"ssh_key": sim.pubkey})
    offer = cheapest_vast_offer(vast)
    r = vast.put(f"/api/v0/asks/{offer['id']}/", json=create_body(f"va-{uid}"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and isinstance(body["new_contract"], int) and body["instance_api_key"]
    iid = body["new_contract"]
    cleanup("vast", iid)

    first = show(vast, iid)
    assert first["id"] == iid and first["label"] == f"va-{uid}"
    assert first["actual_status"] in (None, "loading") and first["intended_status"] == "running"
    assert first["ports"] is None  # the port mapping appears only when up
    assert first["machine_id"] == offer["machine_id"] and first["dph_total"] == offer["dph_total"]
    assert first["is_bid"] is False and ["TZ", "UTC"] in first["extra_env"] and ["-p 22:22", "1"] in first["extra_env"]

    up = wait_running(sim, vast, iid)
    assert up["public_ipaddr"].endswith("\n")  # the vendor's trailing newline
    host_port = up["ports"]["22/tcp"][0]["HostPort"]
    assert isinstance(host_port, str) and host_port.isdigit()
    assert up["status_msg"] and up["uptime_mins"] is not None
    node = sim.wait_vast(iid)
    assert (node.host, node.port) == (up["public_ipaddr"].strip(), int(host_port))
    out = node.ssh("echo $VAST_CONTAINERLABEL; ls ~/.no_auto_tmux").stdout.split()
    assert out[0] == f"C.{iid}" and out[1].endswith(".no_auto_tmux")  # onstart ran

    # the offer was one-shot: gone from search, 410 on a second rent
    assert offer["id"] not in [o["id"] for o in offers(vast, {})]
    b = assert_vast_error(vast.put(f"/api/v0/asks/{offer['id']}/", json=create_body("again")), 410,
                          "no_such_ask", "is no longer available")
    assert b["ask_id"] == offer["id"]


def test_create_env_as_sdk_object_and_proxy_only_runtype(sim, vast, uid, cleanup):
    vast.post("/api/v0/ssh/", json={"ssh_key": sim.pubkey})
    offer = cheapest_vast_offer(vast)
    # the SDK sends every key, env as an object, runtype with the historical spelling
    body = {"client_id": "me", "image": "vastai/base-image:@vastai-automatic-tag",
            "env": {"-p 8888:8888": "1", "TZ": "UTC"}, "price": None, "disk": 10, "label": f"va-{uid}",
            "extra": None, "onstart": None, "image_login": None, "python_utf8": False, "lang_utf8": False,
            "use_jupyter_lab": False, "jupyter_dir": None, "force": False, "cancel_unavail": False,
            "template_hash_id": None, "user": None, "runtype": "ssh ssh_proxy"}
    r = vast.put(f"/api/v0/asks/{offer['id']}/", json=body)
    assert r.status_code == 200, r.text
    iid = r.json()["new_contract"]
    cleanup("vast", iid)
    up = wait_running(sim, vast, iid)
    # proxy only: no 22/tcp mapping; the proxy pair ssh_host:ssh_port is the way in
    assert "22/tcp" not in up["ports"] and "8888/tcp" in up["ports"]
    from gpuops.testing import wait_ssh

    wait_ssh(up["ssh_host"], up["ssh_port"], sim.env["VAST_SSH_USER"], str(sim.key), sim.known_hosts, 20)


def test_create_errors(sim, vast, uid):
    offer = cheapest_vast_offer(vast)
    b = assert_vast_error(vast.put("/api/v0/asks/999999/", json=create_body("x")), 404, "invalid_args",
                          "no_such_ask")
    assert b["ask_id"] == 999999
    assert_vast_error(vast.put("/api/v0/asks/notanid/", json=create_body("x")), 400, "invalid_args")
    assert_vast_error(vast.put(f"/api/v0/asks/{offer['id']}/", json={"label": "x"}), 400, "invalid_args", "image")
    assert_vast_error(vast.put(f"/api/v0/asks/{offer['id']}/", json=create_body("x", runtype="teleport")), 400,
                      "invalid_args")
    assert_vast_error(vast.put(f"/api/v0/asks/{offer['id']}/", json=create_body("x", price=0.0001)), 400,
                      "invalid_price")
    assert_vast_error(vast.put(f"/api/v0/asks/{offer['id']}/", json=create_body("x", price=offer["min_bid"] / 2)),
                      400, "invalid_price", "minimum bid")
    assert_vast_error(vast.put(f"/api/v0/asks/{offer['id']}/", json=create_body("x", disk=10 ** 6)), 400,
                      "invalid_args")
    r = vast.put(f"/api/v0/asks/{offer['id']}/", data=b"{nope", headers={"Content-Type": "application/json"})
    assert_vast_error(r, 400, "invalid_args")
    # none of these consumed the offer
    assert offer["id"] in [o["id"] for o in offers(vast, {})]


def test_bid_create_and_change_bid(sim, vast, uid, cleanup):
    offer = cheapest_vast_offer(vast, type="bid")
    r = vast.put(f"/api/v0/asks/{offer['id']}/", json=create_body(f"va-{uid}", price=offer["min_bid"] + 0.01))
    assert r.status_code == 200, r.text
    iid = r.json()["new_contract"]
    cleanup("vast", iid)
    inst = show(vast, iid)
    assert inst["is_bid"] is True and inst["dph_total"] == pytest.approx(offer["min_bid"] + 0.01)
    r = vast.put(f"/api/v0/instances/bid_price/{iid}/", json={"client_id": "me", "price": 0.5})
    assert r.status_code == 200 and r.json() == {"success": True}
    assert show(vast, iid)["dph_total"] == 0.5


def test_target_state_stopped(sim, vast, uid, cleanup):
    offer = cheapest_vast_offer(vast)
    r = vast.put(f"/api/v0/asks/{offer['id']}/", json=create_body(f"va-{uid}", target_state="stopped"))
    iid = r.json()["new_contract"]
    cleanup("vast", iid)
    inst = show(vast, iid)
    assert inst["intended_status"] == "stopped" and inst["actual_status"] != "running" and inst["ports"] is None


# ------------------------------------------------------------------------------------------ manage / destroy
def test_manage_label_stop_start_and_destroy(sim, vast, uid):
    node = sim.create_vast(f"va-{uid}")
    iid = node.id
    assert_vast_error(vast.put(f"/api/v0/instances/{iid}/", json={}), 400, "invalid_args")
    assert_vast_error(vast.put(f"/api/v0/instances/{iid}/", json={"state": "paused"}), 400, "invalid_args")
    assert_vast_error(vast.put(f"/api/v0/instances/{iid}/", json={"label": "x" * 1025}), 400, "invalid_args")
    r = vast.put(f"/api/v0/instances/{iid}/", json={"label": f"relabelled-{uid}"})
    assert r.status_code == 200 and r.json() == {"success": True}
    assert show(vast, iid)["label"] == f"relabelled-{uid}"

    assert vast.put(f"/api/v0/instances/{iid}/", json={"state": "stopped"}).json() == {"success": True}
    stopped = show(vast, iid)
    assert stopped["actual_status"] == "exited" and stopped["intended_status"] == "stopped"
    assert stopped["ports"] is None
    assert node.ssh("true", check=False, timeout=10).returncode != 0  # the node is down

    assert vast.put(f"/api/v0/instances/{iid}/", json={"state": "running"}).json() == {"success": True}
    again = wait_running(sim, vast, iid)
    assert again["ports"]["22/tcp"][0]["HostPort"]

    r = vast.delete(f"/api/v0/instances/{iid}/", json={})
    assert r.status_code == 200 and r.json()["success"] is True
    assert show(vast, iid) is None  # the SDK reads "instances": null as not found
    assert_vast_error(vast.delete(f"/api/v0/instances/{iid}/"), 404, "not_found", "Instance not found")
    assert_vast_error(vast.put(f"/api/v0/instances/{iid}/", json={"label": "x"}), 404, "not_found")
    assert_vast_error(vast.delete("/api/v0/instances/abc/"), 400, "invalid_args", "invalid instance_id")
    assert_vast_error(vast.get("/api/v0/instances/abc/"), 400)
    sim.nodes = [n for n in sim.nodes if n.id != iid]


# ------------------------------------------------------------------------------------------ listing
def test_v0_list_is_deprecated_410(vast):
    r = vast.get("/api/v0/instances/")
    assert r.status_code == 410
    assert r.json() == {"success": False, "error": "deprecated_endpoint",
                        "msg": "/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead."}


def test_v1_pagination_over_bulk_instances(sim, vast, uid, cleanup):
    ids = sim.client.bulk("vast", 30, name_prefix=f"pg-{uid}-")
    for i in ids:
        cleanup("vast", i)
    seen, pages, token = [], [], None
    while True:
        params = {"limit": 25, "order_by": json.dumps([{"col": "id", "dir": "asc"}])}
        if token:
            params["after_token"] = token
        r = vast.get("/api/v1/instances/", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["success"] is True and page["instances_found"] == len(page["instances"]) <= 25
        pages.append(page)
        seen += [x["id"] for x in page["instances"]]
        token = page["next_token"]
        if token is None:
            break
        assert len(pages) < 100
    assert len(pages) >= 2 and len(pages[0]["instances"]) == 25
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == pages[0]["total_instances"]
    assert {int(i) for i in ids} <= set(seen)
    assert sum(v for k, v in pages[0]["label_counts"].items() if k.startswith(f"pg-{uid}-")) == 30

    # limit <= 0 means 5; more than 25 is capped
    assert len(vast.get("/api/v1/instances/", params={"limit": 0}).json()["instances"]) == 5
    assert len(vast.get("/api/v1/instances/", params={"limit": 100}).json()["instances"]) == 25
    # descending order, select_cols, filters on stored columns
    desc = vast.get("/api/v1/instances/", params={"order_by": json.dumps([{"col": "id", "dir": "desc"}])}).json()
    assert [x["id"] for x in desc["instances"]] == sorted((x["id"] for x in desc["instances"]), reverse=True)
    cols = vast.get("/api/v1/instances/", params={"select_cols": json.dumps(["id", "label", "nonexistent"]),
                                                  "limit": 3}).json()["instances"]
    assert all(set(x) == {"id", "label", "nonexistent"} and x["nonexistent"] is None for x in cols)
    one = vast.get("/api/v1/instances/", params={"select_filters": json.dumps({"label": {"eq": f"pg-{uid}-7"}})})
    assert [x["id"] for x in one.json()["instances"]] == [int(ids[7])]
    some = vast.get("/api/v1/instances/", params={"select_filters": json.dumps(
        {"label": {"in": [f"pg-{uid}-1", f"pg-{uid}-2"]}, "actual_status": {"eq": "running"}})}).json()
    assert sorted(x["id"] for x in some["instances"]) == sorted(int(i) for i in ids[1:3])
    assert some["total_instances"] == 2 and some["next_token"] is None


def test_v1_list_errors(vast):
    b = vast.get("/api/v1/instances/", params={"select_filters": json.dumps({"dph_total": {"lte": 1}})})
    assert b.status_code == 400 and b.json()["error"] == "invalid_request"
    assert b.json()["msg"] == "Error in query parameters: dph_total is not a valid search key"
    r = vast.get("/api/v1/instances/", params={"after_token": "garbage"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_token"
    r = vast.get("/api/v1/instances/", params={"order_by": json.dumps([{"col": "nonsense"}])})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = vast.get("/api/v1/instances/", params={"select_filters": "{bad json"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


# ------------------------------------------------------------------------------------------ ssh keys
def test_account_keys_reach_new_instances_and_attach_reaches_running(sim, vast, uid, cleanup, tmp_path):
    from gpuops.testing import make_keypair

    r = vast.post("/api/v0/ssh/", json={"ssh_key": sim.pubkey})
    assert r.status_code == 200 and r.json()["success"] is True
    key = r.json()["key"]
    assert key["public_key"] == sim.pubkey and isinstance(key["id"], int)
    listed = vast.get("/api/v0/ssh/").json()
    assert isinstance(listed, list) and sim.pubkey in [k["key"] for k in listed]
    assert_vast_error(vast.post("/api/v0/ssh/", json={"ssh_key": " "}), 400, "no_ssh_key", "No ssh key provided")
    assert_vast_error(vast.post("/api/v0/ssh/", json={"ssh_key": 5}), 400, "no_ssh_key")
    spare = vast.post("/api/v0/ssh/", json={"ssh_key": f"ssh-ed25519 AAAAspare{uid} x"}).json()["key"]["id"]
    assert vast.delete(f"/api/v0/ssh/{spare}/").json() == {"success": True}
    assert_vast_error(vast.delete(f"/api/v0/ssh/{spare}/"), 400, "no_ssh_key")
    assert f"ssh-ed25519 AAAAspare{uid} x" not in [k["key"] for k in vast.get("/api/v0/ssh/").json()]

    node = sim.create_vast(f"va-{uid}")  # got the account key
    cleanup("vast", node.id)
    other = make_keypair(tmp_path / "k2")
    other_pub = (tmp_path / "k2" / "id_ed25519.pub").read_text().strip()
    from dataclasses import replace

    as_other = replace(node, key=str(other))
    assert as_other.ssh("true", check=False, timeout=15).returncode == 255  # not yet authorized
    r = vast.post(f"/api/v0/instances/{node.id}/ssh/", json={"ssh_key": other_pub})
    assert r.status_code == 200 and r.json() == {"success": True, "msg": "SSH key attached successfully"}
    assert as_other.ssh("echo in").stdout.strip() == "in"
    r = vast.get(f"/api/v0/instances/{node.id}/ssh/")
    assert r.status_code == 200 and r.json()["success"] is True
    attached = json.loads(r.json()["ssh_keys"])  # a JSON string, as the spec has it
    assert {k["public_key"] for k in attached} == {sim.pubkey, other_pub}
    assert_vast_error(vast.post(f"/api/v0/instances/{node.id}/ssh/", json={"ssh_key": ""}), 400, "no_ssh_key")
    assert_vast_error(vast.post("/api/v0/instances/1/ssh/", json={"ssh_key": other_pub}), 404, "not_found")


def test_rate_limit_is_plain_text_without_retry_after(vast, sim_faults):
    sim_faults.add_faults("faults: [{type: rate_limit, api: vast, endpoint: 'POST /api/v0/bundles', count: 1}]")
    r = vast.post("/api/v0/bundles/", json={})
    assert r.status_code == 429 and r.text.startswith("API requests too frequent")
    assert "Retry-After" not in r.headers
    assert vast.post("/api/v0/bundles/", json={}).status_code == 200
    # the JSON variant
    sim_faults.add_faults("faults: [{type: rate_limit, api: vast, body: json, count: 1}]")
    r = vast.get("/api/v1/instances/")
    assert r.status_code == 429 and r.json() == {"detail": "API requests too frequent endpoint threshold=1.0"}
    assert "Retry-After" not in r.headers


def test_server_error(vast, sim_faults):
    sim_faults.add_faults("faults: [{type: server_error, api: vast, status: 504, count: 1}]")
    assert_vast_error(vast.get("/api/v1/instances/"), 504)
    assert vast.get("/api/v1/instances/").status_code == 200
