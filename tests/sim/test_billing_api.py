"""The providers' bills as the simulator serves them from its ledger: RunPod GET /v2/billing/pods (time
buckets, podId filter, snapped windows, lastN) and Vast GET /api/v0/charges (per-contract rows, required
day range, pagination). Shapes follow the vendored specs; amounts must add up to the ledger."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from simapi import cheapest_vast_offer, own_simulator, pod_body

DAY = 86400


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """The clock moves by days here, so this module has a simulator of its own."""
    with own_simulator(tmp_path_factory.mktemp("billing-sim")) as h:
        yield h


def ledger_cost(sim, iid) -> float:
    rows = [r for r in sim.client.ledger()["instances"] if r["id"] == str(iid)]
    assert len(rows) == 1
    return rows[0]["cost"]


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_runpod_pod_billing_adds_up_to_the_ledger(sim, rp, uid, cleanup):
    pod = rp.post("/pods", json=pod_body(f"bill-{uid}", sim.pubkey)).json()
    cleanup("runpod", pod["id"])
    other = rp.post("/pods", json=pod_body(f"bill-{uid}-other", sim.pubkey)).json()
    cleanup("runpod", other["id"])
    sim.wait_runpod(pod["id"])
    sim.client.advance(2 * DAY + 3600)  # spans at least three UTC days
    assert rp.delete(f"/pods/{pod['id']}").status_code == 204
    created = dt.datetime.fromisoformat(pod["createdAt"].replace("Z", "+00:00")).timestamp()
    now = sim.client.advance(0)["now"]

    r = rp.get("/billing/pods", params={"podId": pod["id"], "startTime": iso(created - 5), "bucketSize": "day"})
    assert r.status_code == 200, r.text
    body = r.json()
    recs = body["records"]
    assert {x["podId"] for x in recs} == {pod["id"]} and len(recs) >= 3
    for x in recs:  # day buckets on UTC midnight, half-open
        start = dt.datetime.fromisoformat(x["startTime"].replace("Z", "+00:00"))
        assert (start.hour, start.minute, start.second) == (0, 0, 0)
        assert set(x) >= {"startTime", "endTime", "podId", "totalAmount", "gpuAmount", "cpuAmount", "diskAmount"}
    total = sum(x["totalAmount"] for x in recs)
    assert total == pytest.approx(ledger_cost(sim, pod["id"]), abs=1e-5)
    meta = body["metadata"]
    assert meta["uniquePodCount"] == 1 and meta["recordCount"] == len(recs)
    assert meta["totals"]["totalAmount"] == pytest.approx(total, abs=1e-5)
    assert meta["query"]["podId"] == pod["id"] and meta["query"]["startTime"].endswith("T00:00:00Z")

    # hour buckets add up to the same; without podId every pod gets its own records
    hourly = rp.get("/billing/pods", params={"podId": pod["id"], "startTime": iso(created - 5),
                                             "bucketSize": "hour"}).json()["records"]
    assert len(hourly) > 48 and sum(x["totalAmount"] for x in hourly) == pytest.approx(total, abs=1e-5)
    every = rp.get("/billing/pods", params={"lastN": 5}).json()
    assert {pod["id"], other["id"]} <= {x["podId"] for x in every["records"]}
    # a window that ends before the pod existed bills nothing
    before = rp.get("/billing/pods", params={"podId": pod["id"], "startTime": iso(created - 10 * DAY),
                                             "endTime": iso(created - 8 * DAY)}).json()
    assert before["records"] == [] and before["metadata"]["totals"]["totalAmount"] == 0
    assert now > created

    for bad in ({"bucketSize": "fortnight"}, {"lastN": 3, "startTime": iso(created)}, {"startTime": "yesterday"}):
        r = rp.get("/billing/pods", params=bad)
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json"), bad


def test_vast_charges_per_instance(sim, vast, uid, cleanup):
    ids = []
    for n in range(2):
        offer = cheapest_vast_offer(vast)
        r = vast.put(f"/api/v0/asks/{offer['id']}/", json={"image": "img", "label": f"ch-{uid}-{n}", "disk": 20,
                                                                  "runtype": "ssh_direct", "env": "-p 22:22"})
        assert r.status_code == 200, r.text
        ids.append(r.json()["new_contract"])
        cleanup("vast", ids[-1])
    sim.client.wait_until(lambda: vast.get(f"/api/v0/instances/{ids[0]}/").json()["instances"]["actual_status"]
                          == "running", 30, "vast instance running")
    sim.client.advance(DAY)
    assert vast.delete(f"/api/v0/instances/{ids[0]}/").status_code == 200
    now = sim.client.advance(0)["now"]
    window = {"day": {"gte": int(now - 3 * DAY), "lte": int(now + DAY)}, "type": {"in": ["instance"]}}

    r = vast.get("/api/v0/charges/", params={"select_filters": json.dumps(window), "limit": 1})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["success"] is True and first["count"] == 1 and first["total"] >= 2 and first["next_token"]
    rows = list(first["results"])
    token = first["next_token"]
    while token:
        page = vast.get("/api/v0/charges/", params={"select_filters": json.dumps(window), "limit": 1,
                                                    "after_token": token}).json()
        rows += page["results"]
        token = page["next_token"]
    mine = {x["source"]: x for x in rows if x["source"] in {f"instance-{i}" for i in ids}}
    assert len(mine) == 2
    gone = mine[f"instance-{ids[0]}"]
    assert gone["type"] == "instance" and gone["metadata"]["label"] == f"ch-{uid}-0"
    assert gone["amount"] == pytest.approx(ledger_cost(sim, ids[0]), abs=1e-3)
    assert gone["amount"] == pytest.approx(sum(i["amount"] for i in gone["items"]), abs=2e-3)
    assert {i["type"] for i in gone["items"]} == {"gpu", "disk"}

    r = vast.get("/api/v0/charges/", params={"select_filters": json.dumps({"type": {"in": ["instance"]}})})
    assert r.status_code == 400 and "'day' gte and lte" in r.json()["msg"]
    r = vast.get("/api/v0/charges/", params={"select_filters": json.dumps(window), "after_token": "%%%"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_token"
