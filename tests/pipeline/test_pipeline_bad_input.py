"""Bad input: one clear message before anything is rented (the ledger does not change)."""

from __future__ import annotations

import os

import pytest


def no_new_instances(pipeline, before):
    assert len(pipeline.sim.client.ledger()["instances"]) == before


@pytest.mark.parametrize("over,env_drop,words", [
    ({}, ("RUNPOD_API_KEY", "VAST_API_KEY"), ["no API key", "RUNPOD_API_KEY"]),
    ({"gpu": ["RTX 9999"]}, (), ["unknown GPU model 'RTX 9999'", "close matches"]),
    ({"max_price_per_hour": 0.01}, (), ["at or below $0.01/h", "the cheapest is $"]),
    ({"command": ""}, (), ["command is empty"]),
    ({"command": "   "}, (), ["command is empty"]),
    ({"target": "mars"}, (), ["target", "mars"]),
    ({"nodes": 0}, (), ["nodes must be at least 1"]),
    ({"secret_env": ["GPUOPS_SURELY_NOT_SET_X"]}, (), ["GPUOPS_SURELY_NOT_SET_X", "not set"]),
    ({"ttl": "soon"}, (), ["ttl"]),
    ({"ssh_private_key_file": "/nonexistent/id_ed25519"}, (), ["does not exist"]),
])
def test_bad_spec_is_refused_before_renting(pipeline, over, env_drop, words):
    before = len(pipeline.sim.client.ledger()["instances"])
    run = pipeline.run(env_drop=env_drop, **over)
    assert run.proc.returncode != 0
    for word in words:
        assert word in run.output, run.output[-3000:]
    assert "Nothing was rented" in run.output or "nothing was rented" in run.output
    no_new_instances(pipeline, before)


def test_repo_that_is_not_git(pipeline, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    before = len(pipeline.sim.client.ledger()["instances"])
    run = pipeline.run(repo=str(plain))
    assert run.proc.returncode != 0 and "is not a git repository" in run.output
    no_new_instances(pipeline, before)


def test_key_readable_by_others(pipeline, tmp_path):
    key = tmp_path / "open_key"
    key.write_bytes(pipeline.sim.key.read_bytes())
    os.chmod(key, 0o644)
    before = len(pipeline.sim.client.ledger()["instances"])
    run = pipeline.run(ssh_private_key_file=str(key))
    assert run.proc.returncode != 0 and "accessible by group or others" in run.output
    no_new_instances(pipeline, before)


def test_key_that_is_not_a_key(pipeline, tmp_path):
    key = tmp_path / "not_a_key"
    key.write_text("hello\n")
    os.chmod(key, 0o600)
    run = pipeline.run(ssh_private_key_file=str(key))
    assert run.proc.returncode != 0 and "does not look like" in run.output
