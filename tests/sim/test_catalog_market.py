"""The catalog can hold a realistic market and realistic boots (issue 10): ``vast.generate`` adds thousands of
seeded offers and the search applies ``limit`` after filtering and sorting, as Vast does; with
``settings.sshd_start_seconds`` the API reports the port mapping before sshd answers, as real images do."""

from __future__ import annotations

import socket
import time

import pytest
import requests
import yaml

from gpuops.sim.catalog import DEFAULT_CATALOG, load_catalog
from gpuops.testing import leak_checked_simulator


def write_catalog(tmp_path, **settings):
    cat = yaml.safe_load(DEFAULT_CATALOG.read_text())
    cat["settings"].update(settings)
    cat["vast"]["generate"] = [{"count": 2000, "hardware": "rtx3060", "gpu_name": "RTX 3060",
                                "dph_total": [0.03, 0.2], "seed": 3}]
    p = tmp_path / "catalog.yaml"
    p.write_text(yaml.safe_dump(cat))
    return p


def test_generated_market_is_seeded_and_searched_like_vast(tmp_path):
    p = write_catalog(tmp_path)
    a, b = load_catalog(p), load_catalog(p)
    gen = [m for m in a.vast_machines.values() if m.gpu_name == "RTX 3060"]
    assert len(gen) == 2000 and [m.dph_total for m in gen] == [
        m.dph_total for m in b.vast_machines.values() if m.gpu_name == "RTX 3060"]
    assert all(0.03 <= m.dph_total <= 0.2 and 0.95 <= m.reliability <= 0.999 for m in gen)
    with leak_checked_simulator(tmp_path / "sim", catalog=str(p)) as sim:
        def search(q):
            r = requests.post(sim.env["VAST_API_URL"] + "/api/v0/bundles/", json=q, timeout=30,
                              headers={"Authorization": "Bearer " + sim.env["VAST_API_KEY"]})
            r.raise_for_status()
            return r.json()["offers"]
        order = [["dph_total", "asc"]]
        cheapest = search({"order": order, "limit": 256, "num_gpus": {"eq": 1}})
        assert len(cheapest) == 256 and {o["gpu_name"] for o in cheapest} == {"RTX 3060"}
        h100 = search({"order": order, "limit": 256, "gpu_name": {"in": ["H100 SXM", "H100 PCIE"]}})
        assert [o["gpu_name"] for o in h100] == ["H100 SXM", "H100 SXM"]  # the limit comes after the filter


def _accepts(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("provider", ["runpod", "vast"])
def test_the_mapping_is_reported_before_sshd_answers(tmp_path, provider):
    with leak_checked_simulator(tmp_path / "sim", catalog=str(write_catalog(tmp_path, sshd_start_seconds=3))) as sim:
        node = sim.create_runpod("early", wait=False) if provider == "runpod" else sim.create_vast("early", wait=False)
        iid = node["id"] if isinstance(node, dict) else node
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            d = sim.client.instance(str(iid))
            if d["phase"] == "running" and not d["pulling"]:  # RunPod says RUNNING while it still pulls
                break
            time.sleep(0.05)
        assert d["phase"] == "running" and d["ssh_port"] and d["sshd_at"] is None
        assert not _accepts(d["ip"], d["ssh_port"])  # mapped and reported, sshd not up yet
        while time.monotonic() < deadline and sim.client.instance(str(iid))["sshd_at"] is None:
            time.sleep(0.05)
        d2 = sim.client.instance(str(iid))
        assert d2["sshd_at"] - d["started_at"] >= 2.5 and d2["ssh_port"] == d["ssh_port"]
        assert _accepts(d["ip"], d["ssh_port"])
        sim.destroy(str(iid), provider)
