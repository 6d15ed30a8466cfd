"""An unused node of an up run is destroyed by its own watchdog after idle_timeout, and status says so."""

from __future__ import annotations


import pytest
from devtools import out, until

from gpuops.testing import leak_checked_simulator


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A simulator of this module's own: the test moves its virtual clock ahead (the watchdogs read it), which would
    shift the creation times and bills of every later test on the session simulator."""
    with leak_checked_simulator(tmp_path_factory.mktemp("sim-idle")) as h:
        yield h




def test_an_unused_node_is_destroyed_by_its_watchdog_after_idle_timeout_and_status_says_so(dev):
    up = dev.gpuops("up", dev.spec(idle_timeout=60))
    run_id = dev.last_id
    assert up.returncode == 0, out(up)[-3000:]
    dev.sim.client.advance(130)  # nobody talks to the node for longer than idle_timeout (the watchdog's clock)
    until(lambda: not dev.live(run_id), "the watchdog to destroy the idle node", timeout=90)
    status = dev.gpuops("status", run_id)
    assert status.returncode == 0, out(status)
    assert f"run {run_id}: ended" in status.stdout and "watchdog" in status.stdout and "idle_timeout 60" in \
        status.stdout, status.stdout
    assert dev.record(run_id)["state"] == "torn_down"
