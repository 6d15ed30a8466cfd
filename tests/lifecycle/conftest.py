"""Runs that outlive one launch, as a user drives them with the gpuops CLI against the session simulator."""

from __future__ import annotations

import pytest

from devtools import Dev


@pytest.fixture
def dev(sim, sim_faults, tmp_path):
    d = Dev(sim, tmp_path)
    yield d
    led = sim.client.ledger()
    for row in led["instances"]:  # nothing a failed test left may bill on
        if row["id"] in led["live_instances"] and any(str(row["name"] or "").startswith(r + "-") for r in d.run_ids):
            sim.destroy(row["id"], row["provider"])

