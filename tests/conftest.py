"""Shared fixtures: one simulator per test session (per xdist worker), with a leak check at the end.

Fixtures:
  sim        the SimHarness (simulator + SSH key + helpers to create nodes through the vendor APIs)
  sim_env    env vars a user would export (API URLs and keys) for ansible/ansible-runner
  sim_faults function-scoped: the simulator's admin client; clears faults after the test
  runpod_node / vast_node   one running SSH node, destroyed after the test
  make_nodes factory: make_nodes(n, provider="runpod"|"vast"|"mixed") -> [Node], destroyed after the test
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpuops.testing import REPO, leak_checked_simulator

# ../shared beside the checkout (as in CI); GPUOPS_SHARED_DIR points elsewhere
SHARED = Path(os.environ.get("GPUOPS_SHARED_DIR") or REPO.parent / "shared")
SPECS = SHARED / "reference" / "specs"


def pytest_report_header(config):
    return [f"vendored specs: {'present at ' + str(SPECS) if SPECS.is_dir() else 'ABSENT (spec tests skip)'}"]


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    with leak_checked_simulator(tmp_path_factory.mktemp("sim")) as h:
        yield h


@pytest.fixture
def sim_env(sim):
    return dict(sim.env)


@pytest.fixture
def sim_faults(sim):
    sim.client.clear_faults()
    yield sim.client
    sim.client.clear_faults()


@pytest.fixture
def make_nodes(sim, request):
    created = []

    def make(n: int = 1, provider: str = "runpod", prefix: str | None = None, **kw):
        base = prefix or request.node.name.replace("[", "-").replace("]", "")[:40]
        out = []
        for i in range(n):
            prov = provider if provider != "mixed" else ("runpod", "vast")[i % 2]
            name = f"{base}-{i}"
            node = sim.create_runpod(name, **kw) if prov == "runpod" else sim.create_vast(name, **kw)
            created.append(node)
            out.append(node)
        return out

    yield make
    for node in created:
        try:
            sim.destroy(node)
        except Exception:
            pass


@pytest.fixture
def runpod_node(make_nodes):
    return make_nodes(1, "runpod")[0]


@pytest.fixture
def vast_node(make_nodes):
    return make_nodes(1, "vast")[0]


@pytest.fixture
def specs_dir():
    if not SPECS.is_dir():
        pytest.skip(f"vendored specs not found at {SPECS}: contract-vs-spec checks skipped (they run in CI)")
    return SPECS


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
