"""Helpers for the provider-module suites: run a playbook of gpu.ops tasks against the session simulator
and read each task's result from the json callback. Modules run for real (ansible-playbook, AnsiballZ);
only the clouds are simulated.
"""

from __future__ import annotations

import json
import sys
import uuid

import pytest
import yaml

from gpuops.testing import run_playbook
from provtools import PlayResult, is_create, live


@pytest.fixture
def uid():
    return uuid.uuid4().hex[:6]


@pytest.fixture
def play(sim, sim_env, tmp_path):
    """play(tasks | plays, env=None, check=False) -> PlayResult. ``tasks`` run on localhost."""
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    counter = [0]

    def run(tasks_or_plays, env=None, check=False, extra_vars=None):
        counter[0] += 1
        if tasks_or_plays and "hosts" in tasks_or_plays[0]:
            plays = tasks_or_plays
        else:
            plays = [{"name": "provision", "hosts": "localhost", "gather_facts": False, "tasks": tasks_or_plays}]
        pb = tmp_path / ("play%d.yml" % counter[0])
        pb.write_text(yaml.safe_dump(plays, sort_keys=False))
        proc = run_playbook(pb, inv, extra_vars=extra_vars, env=sim_env if env is None else env,
                            args=["--check"] if check else [], json_output=True, timeout=300)
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("ansible-playbook did not print the json document (rc %s):\n%s\n%s" % (
                proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])) from None
        return PlayResult(proc, doc)

    return run


@pytest.fixture
def ssh_vars(sim, tmp_path):
    """Options every instance task needs: the test key and a per-test known_hosts file."""
    return {"ssh_private_key_file": str(sim.key), "known_hosts_file": str(tmp_path / "known_hosts")}


@pytest.fixture
def recorder(sim):
    """Requests the simulator recorded since the fixture was created (for no-create and contract checks)."""

    class Rec:
        def __init__(self):
            self.seq = sim.client.requests(10 ** 12)["seq"]

        def since(self):
            return sim.client.requests(self.seq)["requests"]

        def creates(self):
            out = []
            for r in self.since():
                if is_create(r["method"], r["path"]) or (r["api"] == "graphql" and "podRentInterruptable" in json.dumps(
                        r.get("body"))):
                    out.append(r)
            return out

    return Rec()


@pytest.fixture
def cleanup(sim):
    """Destroy anything left with the registered prefixes after the test (the test asserts there is nothing)."""
    prefixes = []
    yield prefixes.append
    for p in prefixes:
        for inst in live(sim, p):
            try:
                sim.destroy(inst["id"], inst["provider"])
            except Exception:  # noqa: BLE001 - best effort; the session leak check reports it
                pass


