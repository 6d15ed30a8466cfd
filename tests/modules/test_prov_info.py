"""runpod_instance_info, vast_instance_info and gpu_offer_info against the simulator: filters, Vast v1
pagination (one listing, no per-instance calls), the connection options set once through
module_defaults for group/gpu.ops.all, and one normalized, ranked offer list across providers."""

from __future__ import annotations

import math

import pytest


@pytest.fixture
def bulk(sim, uid):
    """API-only instances (no sshd behind them) for listing tests; destroyed afterwards."""
    made = []

    def make(provider, count, prefix):
        ids = sim.client.bulk(provider, count, name_prefix=prefix)
        made.extend((provider, i) for i in ids)
        return ids

    yield make
    for provider, iid in made:
        try:
            sim.destroy(iid, provider)
        except Exception:  # noqa: BLE001 - best effort; the session leak check reports leftovers
            pass


def test_info_modules_with_module_defaults_and_pagination(play, sim, sim_env, bulk, uid, recorder):
    vast_ids = bulk("vast", 30, "pg-%s-" % uid)
    rp_ids = bulk("runpod", 3, "pr-%s-" % uid)
    vast_total = len([i for i in sim.client.status() if i["provider"] == "vast"])
    env = {k: v for k, v in sim_env.items() if not k.startswith(("RUNPOD_", "VAST_"))}  # nothing from the env
    defaults = {"group/gpu.ops.all": {
        "runpod_api_key": sim_env["RUNPOD_API_KEY"], "runpod_api_url": sim_env["RUNPOD_API_URL"],
        "runpod_graphql_url": sim_env["RUNPOD_GRAPHQL_URL"], "vast_api_key": sim_env["VAST_API_KEY"],
        "vast_api_url": sim_env["VAST_API_URL"]}}
    r = play([{"name": "info", "hosts": "localhost", "gather_facts": False, "module_defaults": defaults, "tasks": [
        {"name": "vast all of them", "gpu.ops.vast_instance_info": {"name_prefix": "pg-%s-" % uid}},
        {"name": "vast by id", "gpu.ops.vast_instance_info": {"ids": vast_ids[:2]}},
        {"name": "runpod by prefix", "gpu.ops.runpod_instance_info": {"name_prefix": "pr-%s-" % uid,
                                                                      "statuses": ["running"]}},
        {"name": "runpod by name", "gpu.ops.runpod_instance_info": {"name": "pr-%s-1" % uid}},
        {"name": "runpod nothing", "gpu.ops.runpod_instance_info": {"run_id": "no-such-run"}},
        {"name": "offers", "gpu.ops.gpu_offer_info": {"gpu": ["4090"], "limit": 0}},
    ]}], env=env)
    assert r.rc == 0, r
    v = r["vast all of them"]
    assert sorted(i["id"] for i in v["instances"]) == sorted(vast_ids) and v["changed"] is False
    assert {i["provider"] for i in v["instances"]} == {"vast"} and all(i["status"] == "running" for i in v["instances"])
    assert v["api_requests"] == math.ceil(vast_total / 25.0)  # pages of 25, no per-instance GETs
    assert sorted(i["id"] for i in r["vast by id"]["instances"]) == sorted(vast_ids[:2])
    assert sorted(i["id"] for i in r["runpod by prefix"]["instances"]) == sorted(rp_ids)
    assert [i["name"] for i in r["runpod by name"]["instances"]] == ["pr-%s-1" % uid]
    assert r["runpod by name"]["api_requests"] == 1
    assert r["runpod nothing"]["instances"] == []
    pages = [x for x in recorder.since() if x["path"].rstrip("/") == "/api/v1/instances"]
    assert len(pages) == 2 * math.ceil(vast_total / 25.0)
    assert all(x["query"].count("limit=25") == 1 for x in pages)
    assert {x.get("auth") for x in recorder.since() if "auth" in x} <= {"bearer"}
    assert r["offers"]["total"] >= 2


def test_offer_search_across_providers(play, sim, recorder):
    r = play([
        {"name": "4090", "gpu.ops.gpu_offer_info": {"gpu": ["4090"], "limit": 0}},
        {"name": "4090 spot", "gpu.ops.gpu_offer_info": {"gpu": ["RTX 4090"], "interruptible": True}},
        {"name": "big memory in the US or Romania", "gpu.ops.gpu_offer_info": {
            "min_vram_gb": 80, "regions": ["US", "RO"], "sort_by": "price_per_gpu", "gpu_count": 1}},
        {"name": "vast only reliable", "gpu.ops.gpu_offer_info": {"providers": ["vast"], "min_reliability": 0.997,
                                                                  "sort_by": "reliability", "limit": 3}},
        {"name": "too cheap", "gpu.ops.gpu_offer_info": {"gpu": ["H100"], "max_price_per_hour": 0.5}},
        {"name": "typo", "gpu.ops.gpu_offer_info": {"gpu": ["RTX 4909"]}, "ignore_errors": True},
    ])
    assert r.rc == 0, r
    offers = r["4090"]["offers"]
    assert {o["provider"] for o in offers} == {"runpod", "vast"}
    assert {o["gpu_model"] for o in offers} == {"RTX 4090"}  # "NVIDIA GeForce RTX 4090" and "RTX 4090" are one model
    prices = [o["price_per_hour"] for o in offers]
    assert prices == sorted(prices) and len(offers) == r["4090"]["total"]
    rp = [o for o in offers if o["provider"] == "runpod"]
    assert {o["cloud_type"] for o in rp} == {"SECURE", "COMMUNITY"} and all(o["data_centers"] for o in rp)
    assert all(o["verified"] for o in offers if o["provider"] == "vast")

    spot = r["4090 spot"]["offers"]
    assert spot and all(o["interruptible"] for o in spot) and {o["provider"] for o in spot} == {"runpod", "vast"}
    on_demand = {(o["provider"], o["cloud_type"]): o["price_per_hour"] for o in rp}
    for o in spot:
        if o["provider"] == "runpod":
            assert o["price_per_hour"] < on_demand[("runpod", o["cloud_type"])]

    big = r["big memory in the US or Romania"]["offers"]
    assert big and all(o["vram_gb"] >= 80 for o in big)
    assert all(o["country"] == "US" or any(d.split("-")[1] == "RO" or d.startswith("US") for d in o["data_centers"])
               for o in big)
    per_gpu = [o["price_per_gpu_hour"] for o in big]
    assert per_gpu == sorted(per_gpu)

    rel = r["vast only reliable"]["offers"]
    assert 0 < len(rel) <= 3 and all(o["reliability"] >= 0.997 for o in rel)
    assert [o["reliability"] for o in rel] == sorted((o["reliability"] for o in rel), reverse=True)

    assert r["too cheap"]["offers"] == [] and r["too cheap"].get("failed") is not True
    typo = r["typo"]
    assert typo["failed"] and "unknown GPU model 'RTX 4909'" in typo["msg"] and "RTX 4090" in typo["msg"]
    assert recorder.creates() == []  # searching never rents anything
