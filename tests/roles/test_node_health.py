"""gpu.ops.node_health on simulator nodes: real nvidia-smi parsing over SSH on 1/2/4/8 GPUs, the gate
and its message, sim GPU faults (hot GPU, ECC, no driver) and the circuit breaker.

Parser, score and breaker edge cases on fixture outputs are unit tests in the collection
(tests/unit/plugins/module_utils/test_node_health.py); these tests drive the role as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from gpuops.testing import run_playbook, task_results

PLAYBOOKS = Path(__file__).parent / "playbooks"


def results(proc, task_name: str) -> dict:
    return task_results(proc, task_name)


CHECK = "Check GPU and node health (one nvidia-smi probe, disk, memory, load; score and gate)"


def gpu_problems(res: dict) -> list[str]:
    return [p["message"] for p in res["problems"] if p["check"] not in ("host_memory", "disk")]


def test_molecule_node_health(make_nodes, run_molecule):
    """converge, idempotence (changed=0 on rerun), verify (incl. check mode writes nothing) on a 4-GPU RunPod pod
    and a 2-GPU Vast box."""
    nodes = make_nodes(1, "runpod", prefix="mh-rp", count=4) + make_nodes(1, "vast", prefix="mh-vast", num_gpus=2)
    res = run_molecule("node_health", nodes)
    out = res.stdout + res.stderr
    assert "idempotence" in out.lower()


def test_fleet_gate_names_gpu_and_problem(make_nodes, sim_faults, tmp_path, sim):
    sim_faults.add_faults("""
faults:
  - {type: gpu, match: {name: "hf-hot-*"}, gpus: [2], temperature: 91}
  - {type: gpu, match: {name: "hf-ecc-*"}, gpus: [1], ecc_uncorrected: 3}
  - {type: gpu, match: {name: "hf-nodrv-*"}, driver_missing: true}
""")
    ok1 = make_nodes(1, "runpod", prefix="hf-ok1")[0]
    ok8 = make_nodes(1, "runpod", prefix="hf-ok8", count=8)[0]
    hot = make_nodes(1, "vast", prefix="hf-hot", num_gpus=4)[0]
    ecc = make_nodes(1, "runpod", prefix="hf-ecc", gpu="NVIDIA A100 80GB PCIe", count=2)[0]
    nodrv = make_nodes(1, "runpod", prefix="hf-nodrv")[0]
    short = make_nodes(1, "runpod", prefix="hf-short", count=2)[0]
    inv = sim.inventory([ok1, ok8, hot, ecc, nodrv, short], tmp_path / "inv.yml")
    # the inventory says 4 GPUs were rented; the node shows 2 (gpuops_gpu_count is the role's default)
    doc = yaml.safe_load(inv.read_text())
    doc["all"]["children"]["gpu_nodes"]["hosts"][short.name]["gpuops_gpu_count"] = 4
    inv.write_text(yaml.safe_dump(doc))

    proc = run_playbook(PLAYBOOKS / "node_health.yml", inv, json_output=True)
    assert proc.returncode == 2, proc.stderr  # some hosts failed, none unreachable
    r = results(proc, CHECK)

    for node, count, name in ((ok1, 1, "NVIDIA GeForce RTX 4090"), (ok8, 8, "NVIDIA GeForce RTX 4090")):
        res = r[node.name]
        assert not res.get("failed"), res.get("msg")
        assert res["gpu_count"] == count and [g["index"] for g in res["gpus"]] == list(range(count))
        assert {g["name"] for g in res["gpus"]} == {name}
        assert all(g["ecc_uncorrected"] is None for g in res["gpus"])  # [N/A] on GeForce
        assert len({g["uuid"] for g in res["gpus"]}) == count
        assert gpu_problems(res) == [] and res["healthy"] is True and res["changed"] is False

    res = r[hot.name]
    assert res["failed"] and res["gpu_count"] == 4
    assert [g["temperature_c"] for g in res["gpus"]][2] == 91
    assert "GPU 2 (NVIDIA GeForce RTX 4090): temperature 91 C > 85 C (-30)" in res["msg"]
    assert res["msg"].startswith(f"health score {res['score']}/100 is below min_score 80: ")
    assert gpu_problems(res) == ["GPU 2 (NVIDIA GeForce RTX 4090): temperature 91 C > 85 C"]
    assert res["score"] <= 70

    res = r[ecc.name]
    assert res["failed"] and [g["ecc_uncorrected"] for g in res["gpus"]] == [0, 3]
    assert "GPU 1 (NVIDIA A100 80GB PCIe): 3 uncorrected ECC error(s) since the driver loaded (-50)" in res["msg"]

    res = r[nodrv.name]
    assert res["failed"] and res["score"] == 0 and res["gpus"] == [] and res["driver"]["available"] is False
    assert ("no GPU driver: nvidia-smi exited 9 (the NVIDIA driver is not loaded): NVIDIA-SMI has failed because "
            "it couldn't communicate with the NVIDIA driver.") in res["msg"]

    res = r[short.name]
    assert res["failed"] and res["gpu_count"] == 2
    assert "expected 4 GPU(s), nvidia-smi lists 2 (-50)" in res["msg"]

    # the failed hosts stopped at the gate; the healthy ones went on to the summary
    summary = results(proc, "Show the health summary")
    assert set(summary) == {ok1.name, ok8.name}
    assert "8 GPU(s) NVIDIA GeForce RTX 4090" in summary[ok8.name]["msg"]


def test_circuit_breaker_holds_a_flapping_node(make_nodes, sim_faults, sim, tmp_path):
    node = make_nodes(1, "runpod", prefix="hb-flap")[0]
    inv = sim.inventory([node], tmp_path / "inv.yml")
    # the GPU overheats while the node runs (live fault through the admin API)
    sim_faults.add_faults('faults: [{type: gpu, match: {name: "hb-flap-*"}, temperature: 88}]')
    proc = run_playbook(PLAYBOOKS / "node_health_repeat.yml", inv, json_output=True)
    loop = results(proc, "Check health")[node.name]["results"]
    assert [x["breaker"]["failures_in_window"] for x in loop] == [1, 2, 3]
    assert [x["breaker"]["state"] for x in loop] == ["closed", "closed", "open"]
    assert [x["healthy"] for x in loop] == [False, False, False]
    assert loop[2]["msg"].startswith("circuit breaker open: 3 failed health checks within 300 s (threshold 3)")

    # cooled down: the reading is fine, but the node stays marked unhealthy inside the window
    sim_faults.add_faults('faults: [{type: gpu, match: {name: "hb-flap-*"}, temperature: 45, count: 1}]')
    proc = run_playbook(PLAYBOOKS / "node_health.yml", inv, json_output=True)
    res = results(proc, CHECK)[node.name]
    assert proc.returncode == 2 and res["failed"]
    assert res["passed"] is True and res["status"] == "unhealthy" and res["breaker"]["state"] == "open"
    assert gpu_problems(res) == []
    assert res["msg"].startswith("circuit breaker open: 3 failed health checks within 300 s")

    # the history on the node has all four checks, written by the node itself
    hist = json.loads(node.ssh("cat ~/.bifrost/health/history.json").stdout)
    assert [c["passed"] for c in hist["checks"]] == [False, False, False, True]
    assert "temperature 88 C > 85 C" in hist["checks"][0]["problems"][0]

