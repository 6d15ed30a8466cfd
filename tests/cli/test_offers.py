"""`gpuops offers` against the simulator: the module's answer through ansible-runner, as a table and as JSON,
checked against the vendors' HTTP APIs asked directly."""

from __future__ import annotations

import json

import requests

from clitools import gpuops


def _vast_4090_prices(env) -> list[float]:
    body = {"gpu_name": {"eq": "RTX 4090"}, "rentable": {"eq": True}, "num_gpus": {"eq": 1},
            "dph_total": {"lte": 0.7}, "verified": {"eq": True}, "type": "ondemand"}
    r = requests.post(env["VAST_API_URL"] + "/api/v0/bundles/", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {env['VAST_API_KEY']}"})
    r.raise_for_status()
    return sorted(round(o["dph_total"], 4) for o in r.json()["offers"])


def test_offers_json_and_table(sim_env):
    proc = gpuops("offers", "--gpu", "4090", "--max-price", "0.7", "--gpu-count", "1", "--limit", "0", "--json",
                  env=sim_env)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    offers = found["offers"]
    assert offers and found["total"] == len(offers) and found["provider_errors"] == {}
    assert {o["provider"] for o in offers} == {"runpod", "vast"}
    assert all(o["gpu_model"] == "RTX 4090" and o["price_per_hour"] <= 0.7 for o in offers)
    prices = [o["price_per_hour"] for o in offers]
    assert prices == sorted(prices)
    # Vast's own answer to the same question (HTTP, no gpu.ops code; verified machines, the default) agrees
    assert sorted(round(o["price_per_hour"], 4) for o in offers if o["provider"] == "vast") == \
        _vast_4090_prices(sim_env)

    table = gpuops("offers", "--gpu", "4090", "--max-price", "0.7", "--gpu-count", "1", "--limit", "0", env=sim_env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["PROVIDER", "GPU", "N"]
    rows = lines[1:-1]
    assert len(rows) == len(offers)
    assert [r.split()[0] for r in rows] == [o["provider"] for o in offers]
    assert lines[-1] == f"{len(offers)} of {len(offers)} matching offer(s)"


def test_price_ceiling_below_every_offer(sim_env):
    proc = gpuops("offers", "--gpu", "H100", "--max-price", "0.01", env=sim_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("no offers match")


def test_unknown_gpu_is_bad_input(sim_env):
    proc = gpuops("offers", "--gpu", "GTX 9999", env=sim_env)
    assert proc.returncode == 2
    assert "unknown GPU model" in proc.stderr


def test_unreachable_providers_are_infrastructure(sim_env):
    env = dict(sim_env, RUNPOD_API_URL="http://127.0.0.1:9/v2", VAST_API_URL="http://127.0.0.1:9",
               RUNPOD_GRAPHQL_URL="http://127.0.0.1:9/graphql")
    proc = gpuops("offers", "--gpu", "4090", "--timeout", "2", env=env, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "every provider failed" in proc.stderr
    assert sim_env["RUNPOD_API_KEY"] not in proc.stderr + proc.stdout
