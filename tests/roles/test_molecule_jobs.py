"""Molecule scenarios for gpu.ops.bootstrap and gpu.ops.tmux_job: converge, idempotence, verify on sim nodes."""

from __future__ import annotations

import re


def assert_all_steps_passed(res, steps: int = 4):
    out = res.stdout + res.stderr
    assert "Idempotence test failed" not in out, out[-4000:]
    assert re.search(rf"actions={steps}\s+successful={steps}\b.*failed=0", out), out[-4000:]


def test_molecule_bootstrap(make_nodes, run_molecule):
    """syntax, converge, idempotence, verify. Detected pip bootstrap creates the venv; a second job with unchanged deps is skipped (cached)."""
    nodes = make_nodes(1, "runpod", prefix="mol-bs")
    assert_all_steps_passed(run_molecule("bootstrap", nodes))


def test_molecule_tmux_job(make_nodes, run_molecule):
    """Two nodes (RunPod + Vast, 2 GPUs each): the job waits for its bootstrap; rank, world size,
    NPROC_PER_NODE and the env reach it; a rerun changes nothing."""
    nodes = make_nodes(1, "runpod", prefix="mol-job-rp", count=2) + make_nodes(1, "vast", prefix="mol-job-va",
                                                                             num_gpus=2)
    assert_all_steps_passed(run_molecule("tmux_job", nodes))
