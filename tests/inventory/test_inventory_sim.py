"""gpu.ops.cloud against the simulator: real ansible-inventory and ansible runs over real SSH nodes.

One fleet per module (3 RunPod pods, 3 Vast instances, two of each labelled with a run id) keeps the
suite fast; tests that need their own nodes (pending) create and destroy them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpuops.testing import REPO, ansible_env

RUN = "exp7"


def cli(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@pytest.fixture(scope="module")
def fleet(sim):
    nodes = []
    try:
        for i in range(3):
            env = {"PUBLIC_KEY": sim.pubkey}
            if i < 2:
                env["GPUOPS_RUN_ID"] = RUN
            nodes.append(sim.create_runpod(f"inv-rp-{i}", env=env, gpu="NVIDIA GeForce RTX 4090" if i else
                                           "NVIDIA RTX A6000"))
        for i in range(3):
            label = f"inv-vast-{i}" + (f";run_id={RUN}" if i < 2 else "")
            nodes.append(sim.create_vast(label, gpu_name="RTX 4090" if i else "RTX A6000"))
        yield nodes
    finally:
        for n in nodes:
            sim.destroy(n)


def write_config(tmp_path: Path, **options) -> Path:
    cfg = {"plugin": "gpu.ops.cloud",
           "keyed_groups": [{"key": "gpuops_gpu_model | lower | regex_replace('[^a-z0-9]+', '_')", "prefix": "gpu"},
                            {"key": "gpuops_run_id", "prefix": "run"}]}
    cfg.update(options)
    path = tmp_path / "test.cloud.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def inventory_list(sim, source, extra_env=None, check=True):
    env = ansible_env({**sim.env, **(extra_env or {})})
    res = subprocess.run([cli("ansible-inventory"), "-i", str(source), "--list"], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=120)
    if check:
        assert res.returncode == 0, res.stderr
    return res, (plain(json.loads(res.stdout)) if res.returncode == 0 else None)


def plain(value):
    """ansible-inventory marks values that came from an API as unsafe ({"__ansible_unsafe": v}): unwrap."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def hosts_of(inv: dict, group: str) -> list[str]:
    return sorted(inv.get(group, {}).get("hosts", []))


def test_lists_exactly_the_running_nodes_and_ping_works(sim, fleet, tmp_path):
    res, inv = inventory_list(sim, write_config(tmp_path))
    names = sorted(n.name.split(";")[0] for n in fleet)
    assert hosts_of(inv, "gpu_nodes") == names
    assert hosts_of(inv, "runpod") == [n for n in names if n.startswith("inv-rp")]
    assert hosts_of(inv, "vast") == [n for n in names if n.startswith("inv-vast")]
    # keyed groups by GPU model and run id
    assert hosts_of(inv, "gpu_rtx_a6000") == ["inv-rp-0", "inv-vast-0"]
    assert hosts_of(inv, "gpu_rtx_4090") == ["inv-rp-1", "inv-rp-2", "inv-vast-1", "inv-vast-2"]
    assert hosts_of(inv, f"run_{RUN}") == ["inv-rp-0", "inv-rp-1", "inv-vast-0", "inv-vast-1"]
    hv = inv["_meta"]["hostvars"]
    by_name = {n.name.split(";")[0]: n for n in fleet}
    for name, node in by_name.items():
        assert (hv[name]["ansible_host"], hv[name]["ansible_port"], hv[name]["ansible_user"]) == (
            node.host, node.port, node.user)
        assert hv[name]["gpuops_id"] == node.id
    # the connection vars work: ad-hoc ping over SSH on every node
    ping = subprocess.run(
        [cli("ansible"), "-i", str(tmp_path / "test.cloud.yml"), "gpu_nodes", "-m", "ansible.builtin.ping",
         "--private-key", str(sim.key), "-e", "ansible_python_interpreter=/usr/bin/python3",
         f"--ssh-common-args=-o UserKnownHostsFile={sim.known_hosts} -o StrictHostKeyChecking=accept-new"],
        capture_output=True, text=True, env=ansible_env(sim.env), cwd=REPO, timeout=180)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert ping.stdout.count("SUCCESS") == 6
    assert sim.env["RUNPOD_API_KEY"] not in res.stdout + res.stderr + ping.stdout + ping.stderr


def test_default_sim_inventory_shows_live_nodes(sim, fleet):
    res = subprocess.run([cli("ansible-inventory"), "-i", "inventories/sim", "--graph"], capture_output=True,
                         text=True, env=ansible_env(sim.env), cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    for n in fleet:
        assert n.name.split(";")[0] in res.stdout
    assert "@gpu_nodes" in res.stdout and "localhost" in res.stdout


def test_warm_cache_makes_zero_api_calls(sim, fleet, tmp_path):
    cfg = write_config(tmp_path, cache=True, cache_plugin="ansible.builtin.jsonfile",
                       cache_connection=str(tmp_path / "cache"), cache_timeout=600)
    sim.client.reset_stats()
    _, cold = inventory_list(sim, cfg)
    cold_calls = sim.client.stats()["total"]
    assert cold_calls >= 2  # one RunPod listing + one Vast page
    sim.client.reset_stats()
    _, warm = inventory_list(sim, cfg)
    assert sim.client.stats()["total"] == 0
    assert warm["_meta"]["hostvars"] == cold["_meta"]["hostvars"]
    # --flush-cache goes back to the API
    res = subprocess.run([cli("ansible-inventory"), "-i", str(cfg), "--list", "--flush-cache"], capture_output=True,
                         text=True, env=ansible_env(sim.env), cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    assert sim.client.stats()["total"] == cold_calls


def test_pending_nodes_grouped_without_connection_vars(sim, sim_faults, tmp_path):
    sim_faults.add_faults("faults: [{type: boot_never, match: {name: 'inv-pending*'}}]")
    pod = sim.create_runpod("inv-pending-0", wait=False)
    try:
        _, inv = inventory_list(sim, write_config(tmp_path, statuses=["running", "pending"], pending="group"))
        assert "inv-pending-0" in hosts_of(inv, "pending")
        assert "inv-pending-0" not in hosts_of(inv, "gpu_nodes") + hosts_of(inv, "runpod")
        hv = inv["_meta"]["hostvars"]["inv-pending-0"]
        assert "ansible_host" not in hv and hv["gpuops_status"] == "pending" and hv["gpuops_pending"] is True
        _, inv = inventory_list(sim, write_config(tmp_path, statuses=["running", "pending"]))
        assert "inv-pending-0" not in json.dumps(inv)
    finally:
        sim.destroy(pod["id"], "runpod")


def test_one_provider_down_strict_false_warns_and_keeps_the_other(sim, fleet, tmp_path):
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    res, inv = inventory_list(sim, write_config(tmp_path, strict=False, api_timeout=2), {"VAST_API_URL": dead})
    assert hosts_of(inv, "vast") == []
    assert len(hosts_of(inv, "runpod")) == 3
    assert "vast" in res.stderr and "test.cloud.yml" in res.stderr
    res, _ = inventory_list(sim, write_config(tmp_path, strict=True, api_timeout=2), {"VAST_API_URL": dead},
                            check=False)
    assert "test.cloud.yml" in res.stderr and "vast" in res.stderr


def test_bad_key_is_a_one_line_error(sim, tmp_path):
    res, _ = inventory_list(sim, write_config(tmp_path, strict=True, providers=["runpod"]),
                            {"RUNPOD_API_KEY": "wrong-key-123456"}, check=False)
    assert "RunPod API key rejected" in res.stderr and "test.cloud.yml" in res.stderr
    assert "wrong-key-123456" not in res.stderr + res.stdout
