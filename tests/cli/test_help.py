"""`--help` of the console script and of every subcommand."""

from __future__ import annotations

import json

import pytest

from clitools import gpuops

SUBCOMMANDS = {
    "launch": ["--detach", "-e", "spec"],
    "status": ["RUN_ID", "--json", "--live"],
    "logs": ["RUN_ID", "--follow", "--host", "--bootstrap", "--json"],
    "down": ["RUN_ID", "--json"],
    "reap": ["--check", "--json"],
    "cost": ["--since", "--json"],
    "offers": ["--gpu", "--max-price", "--json"],
    "ssh": ["RUN_ID", "HOST", "--print"],
}


def test_top_level_help_lists_every_command():
    proc = gpuops("--help")
    assert proc.returncode == 0, proc.stderr
    for name in [*SUBCOMMANDS, "sim"]:
        assert f"gpuops {name}" in proc.stdout
    assert "Exit codes" in proc.stdout


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_help(name):
    proc = gpuops(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: gpuops {name}")
    for word in SUBCOMMANDS[name]:
        assert word in proc.stdout, f"{word} missing from `gpuops {name} --help`"


def test_sim_help_is_the_simulators():
    proc = gpuops("sim", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: gpuops-sim")
    assert "ledger" in proc.stdout


def test_no_command_is_bad_input():
    proc = gpuops()
    assert proc.returncode == 2
    assert "required" in proc.stderr


def test_sim_subcommand_is_the_simulator(sim):
    proc = gpuops("sim", "status", "--json", "--state-dir", sim.state_dir)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["url"] == sim.client.url
