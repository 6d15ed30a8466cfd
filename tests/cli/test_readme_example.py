"""The README's Python API example runs as written against the simulator."""

from __future__ import annotations

import os
import re
import subprocess
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from clitools import has_playbook
from gpuops.testing import REPO


def readme_snippet() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_snippet_is_there_and_compiles():
    code = readme_snippet()
    compile(code, "README.md", "exec")
    assert "run_pipeline(" in code and "offers(" in code


@pytest.mark.skipif(not has_playbook("pipeline"), reason="playbook gpu.ops.pipeline not in this tree")
@pytest.mark.skipif(not (REPO / "examples" / "run.yml").is_file(), reason="examples/run.yml not in this tree")
def test_snippet_runs_against_the_simulator(sim, sim_env, tmp_path):
    # a user's machine: ~/.ssh/id_ed25519 exists (examples/run.yml names it); a short HOME, because ssh's
    # ControlPath (~/.ansible/cp/<hash>) must stay under 108 bytes
    home = Path(tempfile.mkdtemp(prefix="h", dir="/tmp"))
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_bytes(sim.key.read_bytes())
    (home / ".ssh" / "id_ed25519").chmod(0o600)
    (home / ".ssh" / "id_ed25519.pub").write_text(sim.pubkey + "\n")
    env = dict(os.environ, **sim_env, HOME=str(home), GPUOPS_RUNS_DIR=str(tmp_path / "runs"))
    proc = subprocess.run([sys.executable, "-c", readme_snippet()], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cheapest: " in proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("succeeded "), proc.stdout[-3000:]
    assert sim_env["RUNPOD_API_KEY"] not in proc.stdout + proc.stderr
    shutil.rmtree(home, ignore_errors=True)
