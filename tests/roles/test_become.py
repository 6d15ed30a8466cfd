"""Node work honours ``become``: the jobs, health and collect helpers run through the connection's become plugin
(proved on a real sshd node with ``su``, which root can use without a password), and collect's rsync/tar streams,
which run outside the connection, refuse a become method they cannot honour with a message saying what to do."""

from __future__ import annotations

import pytest
from jobs_helpers import play


def test_helpers_run_under_become_and_streams_refuse_what_they_cannot_honour(runpod_node, sim, tmp_path):
    if runpod_node.ssh("id -u").stdout.strip() != "0":
        pytest.skip("su without a password needs the node's login user to be root")
    p = play(sim, [runpod_node], tmp_path, "become.yml", {
        "test_become_method": "ansible.builtin.su", "test_job_id": "bec", "test_dest": str(tmp_path / "got")})
    host = runpod_node.name
    assert p.task("Start a job", host)["changed"] is True
    assert p.task("Wait for the job", host)["job"]["status"] == "succeeded"
    health = p.task("Check health", host)
    assert not health.get("failed") and health["gpu_count"] >= 1, health
    collect = p.task("Collect the outputs", host)
    assert collect["failed"] and "become_method=su" in collect["msg"] and "passwordless" in collect["msg"], collect
    assert p.rc == 0, p.failures()
