"""gpu.ops.cloud documentation renders, and every EXAMPLES configuration works against the simulator."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from gpuops.testing import REPO, ansible_env

BIN = Path(sys.executable).parent


def test_ansible_doc_renders_and_examples_run(sim, runpod_node, tmp_path):
    res = subprocess.run([str(BIN / "ansible-doc"), "-t", "inventory", "-j", "gpu.ops.cloud"], capture_output=True,
                         text=True, env=ansible_env(), cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)["gpu.ops.cloud"]
    assert {"providers", "pending", "strict", "cache", "keyed_groups"} <= set(doc["doc"]["options"])
    examples = [e for e in re.split(r"^---$", doc["examples"].strip(), flags=re.M) if e.strip()]
    assert len(examples) >= 3
    env = ansible_env({**sim.env, "HOME": str(tmp_path)})  # the cached example writes under ~/.cache
    for i, text in enumerate(examples):
        cfg = yaml.safe_load(text)
        if cfg.get("run_id"):  # the filtered example: label our node's run instead of creating another
            cfg["run_id"] = None
        path = tmp_path / f"example{i}.cloud.yml"
        path.write_text(yaml.safe_dump({k: v for k, v in cfg.items() if v is not None}))
        out = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(path), "--list"], capture_output=True,
                             text=True, env=env, cwd=REPO, timeout=120)
        assert out.returncode == 0, f"example {i}:\n{text}\n{out.stderr}"
        assert runpod_node.name in out.stdout, f"example {i} does not list the running pod"
