"""Offer search in a realistic Vast market (issue 10, items 1 and 6): thousands of offers, most of them cheaper
than the GPU asked for, so a search that filters models locally after taking the cheapest ``limit`` never
sees it; and a clear answer when offers of the GPU exist but other filters excluded them."""

from __future__ import annotations

import pytest
import yaml

from gpuops.sim.catalog import DEFAULT_CATALOG
from gpuops.testing import leak_checked_simulator


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """A simulator whose Vast market has 1,500 cheap RTX 3060 offers in front of the few big GPUs."""
    base = tmp_path_factory.mktemp("market")
    cat = yaml.safe_load(DEFAULT_CATALOG.read_text())
    cat["vast"]["generate"] = [{"count": 1500, "hardware": "rtx3060", "gpu_name": "RTX 3060",
                                "dph_total": [0.03, 0.25], "seed": 7}]
    path = base / "catalog.yaml"
    path.write_text(yaml.safe_dump(cat))
    with leak_checked_simulator(base, catalog=str(path)) as h:
        yield h


def test_big_gpus_are_found_behind_thousands_of_cheaper_offers(play, market):
    r = play([
        {"name": "h100", "gpu.ops.gpu_offer_info": {"providers": ["vast"], "gpu": ["H100"], "limit": 0}},
        {"name": "a100x8", "gpu.ops.gpu_offer_info": {"providers": ["vast"], "gpu": ["A100"], "gpu_count": 8}},
        {"name": "cheap", "gpu.ops.gpu_offer_info": {"providers": ["vast"], "limit": 0}},
    ], env=dict(market.env))
    assert r.rc == 0, r
    h100 = r["h100"]["offers"]
    assert [(o["gpu_type"], o["gpu_count"]) for o in h100] == [("H100 SXM", 1)], h100
    assert [(o["gpu_type"], o["gpu_count"]) for o in r["a100x8"]["offers"]] == [("A100 PCIE", 8)]
    # without a model filter the cheapest page of the market comes back: it holds no H100 at all
    cheap = r["cheap"]["offers"]
    assert len(cheap) >= 200 and not any("H100" in o["gpu_type"] for o in cheap)


def test_offers_excluded_by_other_filters_are_named_per_filter(play, sim_env, ssh_vars):
    # the default market has five RTX 4090 machines: 1, 1, 2 and 4 GPUs, and one unverified at 0.29 USD/h
    r = play([{"name": "rent", "gpu.ops.vast_instance": dict(
        name="never", gpu=["RTX 4090"], gpu_count=1, max_price_per_hour=0.30, image="img", **ssh_vars),
        "ignore_errors": True}], check=True)
    msg = r["rent"]["msg"]
    assert r["rent"].get("failed"), r["rent"]
    assert "offers of RTX 4090 exist but they were excluded by" in msg, msg
    assert "gpu_count=1" in msg and "they have 2, 4 GPUs" in msg
    assert "verified_only (1 offer: unverified machines)" in msg
    assert "max_price_per_hour=0.3" in msg and "close matches" not in msg
