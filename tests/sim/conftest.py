"""Helpers for the simulator's own suites: vendor API clients bound to the session simulator, and a
factory for extra simulators (CLI and isolation tests only; everything else uses the session ``sim``).

Every call goes over HTTP exactly as a client would send it; nothing here touches simulator internals.
"""

from __future__ import annotations

import uuid

import pytest
from simapi import Api, GraphQL

from gpuops.sim.nodes import pids_with_marker
from gpuops.testing import SimHarness


@pytest.fixture
def uid() -> str:
    """A short unique tag for names/labels, so faults can target only this test's instances."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def rp(sim):
    """RunPod REST v2 (base .../v2)."""
    return Api(sim.env["RUNPOD_API_URL"], sim.env["RUNPOD_API_KEY"])


@pytest.fixture
def gql(sim):
    return GraphQL(sim.env["RUNPOD_GRAPHQL_URL"], sim.env["RUNPOD_API_KEY"])


@pytest.fixture
def vast(sim):
    return Api(sim.env["VAST_API_URL"], sim.env["VAST_API_KEY"])


@pytest.fixture
def cleanup(sim):
    """Register instances created through raw API calls; they are destroyed after the test."""
    items: list[tuple[str, str]] = []

    def add(provider: str, iid) -> None:
        items.append((provider, str(iid)))

    yield add
    if items:
        sim.client.clear_faults()  # a terminate_fails fault of the test must not outlive it
    for provider, iid in items:
        sim.destroy(iid, provider)


@pytest.fixture
def extra_sim(tmp_path):
    """Factory for an additional simulator in its own state dir; stopped (and checked clean) after the test."""
    made: list[SimHarness] = []

    def make(boot_seconds: float = 0.2, name: str | None = None) -> SimHarness:
        base = tmp_path / (name or f"sim{len(made)}")
        h = SimHarness(base / "state", base / "work", boot_seconds=boot_seconds)
        h.start()
        made.append(h)
        return h

    yield make
    for h in made:
        token = (h.client.info or {}).get("token") if h.client else None
        h.stop()
        if token:
            assert pids_with_marker(f"{token}:") == [], "extra simulator left processes behind"
