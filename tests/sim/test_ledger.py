"""Billing ledger arithmetic on the virtual clock: seconds in a billed state × price, GPU not billed while
stopped, Vast storage billed from create to destroy. Expected prices come from the catalog YAML, not from
the simulator's answers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from simapi import cheapest_vast_offer, own_simulator, pod_body

from gpuops.sim.catalog import VastMachine

@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """This module advances the virtual clock, so it runs on a simulator of its own (see own_simulator)."""
    with own_simulator(tmp_path_factory.mktemp("ledger-sim")) as h:
        yield h


CATALOG = yaml.safe_load((Path(__file__).resolve().parents[2] / "src/gpuops/sim/data/catalog.yaml").read_text())
RP_PRICE = {g["id"]: g["price"] for g in CATALOG["runpod"]["gpu_types"]}
VAST_MACHINES = {m["machine_id"]: m for m in CATALOG["vast"]["machines"]}
HOUR = 3600.0


def row(sim, iid) -> dict:
    rows = [r for r in sim.client.ledger()["instances"] if r["id"] == str(iid)]
    assert len(rows) == 1, rows
    return rows[0]


def advance(sim, seconds: float, *ids) -> tuple[dict, dict, float]:
    """Ledger rows before and after advancing the virtual clock; also the wall time the step took."""
    t0 = time.monotonic()
    before = {str(i): row(sim, i) for i in ids}
    sim.client.advance(seconds)
    after = {str(i): row(sim, i) for i in ids}
    return before, after, time.monotonic() - t0


def check_cost_arithmetic(r: dict) -> None:
    gpu = r["billed_seconds"] / HOUR * r["price_per_hour"]
    assert r["gpu_cost"] == pytest.approx(gpu, abs=2e-6)
    assert r["cost"] == pytest.approx(r["gpu_cost"] + r["storage_cost"], abs=2e-6)


def test_runpod_billing_running_stopped_terminated(sim, rp, uid, cleanup):
    body = pod_body(f"led-{uid}", sim.pubkey)
    body["gpu"]["count"] = 2
    pod = rp.post("/pods", json=body).json()
    cleanup("runpod", pod["id"])
    pid = pod["id"]
    price = RP_PRICE["NVIDIA GeForce RTX 4090"]["secure"] * 2
    assert pod["cost"] == pytest.approx(price)
    sim.wait_runpod(pid)

    b, a, wall = advance(sim, HOUR, pid)
    r0, r1 = b[pid], a[pid]
    assert r1["price_per_hour"] == pytest.approx(price)
    assert HOUR <= r1["billed_seconds"] - r0["billed_seconds"] <= HOUR + wall + 0.01
    assert r1["gpu_cost"] - r0["gpu_cost"] == pytest.approx(price * (r1["billed_seconds"] - r0["billed_seconds"])
                                                            / HOUR, abs=2e-6)
    check_cost_arithmetic(r1)
    assert r1["storage_cost"] == 0.0

    # stopped: the GPU is released and not billed, however long it stays stopped
    assert rp.post(f"/pods/{pid}/action", json={"action": "stop"}).json()["cost"] == 0.0
    b, a, _ = advance(sim, HOUR, pid)
    assert a[pid]["state"] == "exited"
    assert a[pid]["billed_seconds"] == b[pid]["billed_seconds"] and a[pid]["cost"] == b[pid]["cost"]

    # started again: billed again from the start
    rp.post(f"/pods/{pid}/action", json={"action": "start"})
    b, a, wall = advance(sim, 1800, pid)
    assert 1800 <= a[pid]["billed_seconds"] - b[pid]["billed_seconds"] <= 1800 + wall + 0.01

    # terminated: the row stays in the ledger, frozen
    assert rp.delete(f"/pods/{pid}").status_code == 204
    b, a, _ = advance(sim, HOUR, pid)
    assert a[pid]["state"] == "terminated" and a[pid]["terminated_at"] is not None
    assert a[pid] == b[pid]
    check_cost_arithmetic(a[pid])
    led = sim.client.ledger()
    assert pid not in led["live_instances"]
    assert led["total_cost"] == pytest.approx(sum(r["cost"] for r in led["instances"]), abs=1e-5)


def test_spot_pod_billed_at_its_bid(sim, gql, uid, cleanup):
    from test_api_graphql import rent, wait_runtime

    pid = rent(gql, f"led-{uid}", sim.pubkey, spot=True, bid=0.3).json()["data"]["podRentInterruptable"]["id"]
    cleanup("runpod", pid)
    wait_runtime(sim, gql, pid)
    b, a, wall = advance(sim, HOUR, pid)
    assert a[pid]["interruptible"] is True and a[pid]["price_per_hour"] == 0.3
    delta = a[pid]["gpu_cost"] - b[pid]["gpu_cost"]
    assert 0.3 - 2e-6 <= delta <= 0.3 * (HOUR + wall + 0.01) / HOUR + 2e-6


def test_vast_gpu_while_running_storage_from_create(sim, vast, sim_faults, uid, cleanup):
    # one instance that never boots (storage only), one that runs (GPU + storage)
    sim_faults.add_faults(f"faults: [{{type: boot_never, match: {{name: 'led-{uid}-stuck'}}}}]")
    stuck_offer = cheapest_vast_offer(vast)
    stuck = vast.put(f"/api/v0/asks/{stuck_offer['id']}/", json={"image": "img", "label": f"led-{uid}-stuck",
                                                                  "disk": 40}).json()["new_contract"]
    cleanup("vast", stuck)
    node = sim.create_vast(f"led-{uid}-run")  # disk 20
    cleanup("vast", node.id)
    m_run = VAST_MACHINES[sim.client.instance(node.id)["machine_id"]]
    m_stuck = VAST_MACHINES[stuck_offer["machine_id"]]

    b, a, wall = advance(sim, HOUR, stuck, node.id)
    s0, s1 = b[str(stuck)], a[str(stuck)]
    assert s1["billed_seconds"] == 0.0 and s1["gpu_cost"] == 0.0  # never ran: no GPU billed
    ds = s1["storage_seconds"] - s0["storage_seconds"]
    assert HOUR <= ds <= HOUR + wall + 0.01
    month = 30 * 86400.0
    # $/GB/month; the catalog loader's default when a machine omits it
    rate = m_stuck.get("storage_cost", VastMachine.__dataclass_fields__["storage_cost"].default)
    assert s1["storage_cost"] - s0["storage_cost"] == pytest.approx(ds / month * 40 * rate, abs=2e-6)
    r0, r1 = b[node.id], a[node.id]
    assert r1["price_per_hour"] == m_run["dph_total"]
    dg = r1["billed_seconds"] - r0["billed_seconds"]
    assert HOUR <= dg <= HOUR + wall + 0.01
    assert r1["gpu_cost"] - r0["gpu_cost"] == pytest.approx(dg / HOUR * m_run["dph_total"], abs=2e-6)
    check_cost_arithmetic(r1)

    # stopped: storage still billed, GPU not
    vast.put(f"/api/v0/instances/{node.id}/", json={"state": "stopped"})
    b, a, wall = advance(sim, HOUR, node.id)
    assert a[node.id]["billed_seconds"] == b[node.id]["billed_seconds"]
    assert HOUR <= a[node.id]["storage_seconds"] - b[node.id]["storage_seconds"] <= HOUR + wall + 0.01
    assert a[node.id]["storage_cost"] > b[node.id]["storage_cost"]


def test_ledger_is_served_over_http_and_needs_the_admin_token(sim):
    import requests

    r = requests.get(sim.client.url + "/_sim/ledger", timeout=10)
    assert r.status_code == 401
    led = sim.client.ledger()
    assert set(led) >= {"instances", "total_cost", "live_instances", "clock_offset"}
    r = requests.post(sim.client.url + "/_sim/clock", json={"advance": 1}, timeout=10)
    assert r.status_code == 401

