"""inventories/homelab (a static UGRO-style inventory) drives the roles unchanged.

The home lab's hosts, groups and gpuops_* vars come from the real file; an overlay source only
points the connection at simulator nodes (as the LAN's addresses would be)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from gpuops.testing import REPO, ansible_env, run_playbook

HOMELAB = REPO / "inventories" / "homelab" / "hosts.yml"


def test_homelab_inventory_runs_roles_on_sim_nodes(sim, make_nodes, tmp_path):
    nodes = make_nodes(3, "runpod", prefix="homelab")
    names = ["gpu-master", "gpu1", "gpu2"]
    overlay = {"all": {"hosts": {}}}
    for name, node in zip(names, nodes, strict=True):
        hv = node.hostvars()
        overlay["all"]["hosts"][name] = {k: hv[k] for k in ("ansible_host", "ansible_port", "ansible_user",
                                                            "ansible_ssh_private_key_file", "ansible_ssh_common_args",
                                                            "ansible_python_interpreter")}
    ov = tmp_path / "lan.yml"
    ov.write_text(yaml.safe_dump(overlay))

    res = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(HOMELAB), "-i", str(ov),
                          "--list"], capture_output=True, text=True, env=ansible_env(), cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    inv = json.loads(res.stdout)
    assert inv["head"]["hosts"] == ["gpu-master"] and sorted(inv["workers"]["hosts"]) == ["gpu1", "gpu2"]
    assert set(inv["gpu_nodes"]["children"]) == {"head", "workers"}
    hv = inv["_meta"]["hostvars"]["gpu1"]
    assert hv["gpuops_gpu_type"] == "RTX 4070" and hv["gpuops_provider"] == "homelab"  # from the home-lab file
    assert hv["ansible_port"] == nodes[1].port  # from the overlay

    res = run_playbook(REPO / "tests" / "inventory" / "playbooks" / "homelab_roles.yml", inventory=HOMELAB,
                       args=["-i", str(ov)])
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "gpu-master" in res.stdout and "failed=0" in res.stdout
