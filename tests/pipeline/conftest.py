"""Pipeline suites: gpu.ops playbooks run as a user runs them, against the session simulator."""

from __future__ import annotations

import pytest

from pipetools import Pipeline, make_example_repo


@pytest.fixture(scope="session")
def example_repo(tmp_path_factory):
    return make_example_repo(tmp_path_factory.mktemp("example") / "charlm")


@pytest.fixture
def pipeline(sim, sim_faults, tmp_path, example_repo):
    return Pipeline(sim, tmp_path, example_repo)
