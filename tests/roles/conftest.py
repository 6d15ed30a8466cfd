"""Role tests: run a molecule scenario (molecule/<name>/) against fresh simulator nodes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gpuops.testing import REPO, ansible_env


@pytest.fixture
def run_molecule(sim, tmp_path):
    """run_molecule(scenario, nodes, command="test") -> CompletedProcess (asserted rc 0 unless check=False)."""

    def run(scenario: str, nodes, command: str = "test", check: bool = True, extra_env: dict | None = None):
        inv = sim.inventory(nodes, tmp_path / f"{scenario}-inventory.yml")
        env = ansible_env({"GPUOPS_MOLECULE_INVENTORY": str(inv), **sim.env, **(extra_env or {})})
        env.pop("ANSIBLE_CONFIG", None)  # molecule writes its own from molecule.yml
        res = subprocess.run([str(Path(sys.executable).parent / "molecule"), command, "-s", scenario],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        if check and res.returncode != 0:
            pytest.fail(f"molecule {command} -s {scenario} failed (rc {res.returncode}):\n"
                        f"{res.stdout[-6000:]}\n{res.stderr[-3000:]}")
        return res

    return run
