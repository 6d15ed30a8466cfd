"""The README's Python API example runs as written against the simulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys

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
    env = dict(os.environ, **sim_env, GPUOPS_RUNS_DIR=str(tmp_path / "runs"))
    proc = subprocess.run([sys.executable, "-c", readme_snippet()], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cheapest: " in proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("succeeded "), proc.stdout[-3000:]
    assert sim_env["RUNPOD_API_KEY"] not in proc.stdout + proc.stderr
