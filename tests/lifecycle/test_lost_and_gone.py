"""A run's nodes go away: a node lost mid-exec, a run reaped or expired under the user, an idle node destroyed by its
watchdog. Each is reported as such, nothing new is created, and nothing hangs past its deadline."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from devtools import out, until




def test_a_node_lost_during_exec_is_reported_and_the_others_are_stopped(dev):
    up = dev.gpuops("up", dev.spec(nodes=2))
    run_id = dev.last_id
    assert up.returncode == 0, out(up)[-3000:]
    rec = dev.record(run_id)
    victim = rec["instances"][1]
    exe = Path(sys.executable).parent / "gpuops"
    t0 = time.monotonic()
    proc = subprocess.Popen([str(exe), "--runs-dir", str(dev.runs), "exec", run_id, "--lost-after", "20", "--json",
                             "--", "sh", "-c", "echo rank $NODE_RANK of $WORLD_SIZE; sleep 120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dev.env)
    until(lambda: dev.record(run_id)["state"] == "running" and len(dev.record(run_id)["jobs"]) == 1,
          "the job to start")
    job_id = dev.record(run_id)["jobs"][0]["job_id"]
    victim_log = dev.sim.state_dir / "nodes" / str(victim["id"]) / "home" / ".bifrost" / "jobs" / job_id / "job.log"
    # the job runs on the node that will be lost (its first line is in its log), not a fixed pause
    until(lambda: victim_log.exists() and "rank" in victim_log.read_text(errors="replace"), "the job on the victim")
    dev.sim.destroy(str(victim["id"]), victim["provider"])  # the provider takes the node away
    stdout, stderr = proc.communicate(timeout=90)
    assert time.monotonic() - t0 < 60  # no hang: the provider said the node is gone
    assert proc.returncode == 255, stderr[-3000:]
    res = json.loads(stdout)
    lost = res["nodes"][victim["name"]]
    assert lost["lost"] and lost["status"] == "lost" and "gone at the provider" in lost["msg"], lost
    other = res["nodes"][rec["instances"][0]["name"]]
    assert other["status"] == "killed", other  # stopped with the lost rank
    assert "stopping the other nodes" in stderr
    rec = dev.record(run_id)
    assert rec["state"] == "ready" and rec["jobs"][-1]["hosts"][victim["name"]]["lost"] is True
    assert dev.gpuops("down", run_id).returncode == 0 and not dev.live(run_id)


def test_exec_on_a_reaped_or_expired_run_says_so_and_creates_nothing(dev):
    up = dev.gpuops("up", dev.spec())
    run_id = dev.last_id
    assert up.returncode == 0, out(up)[-3000:]
    inst = dev.record(run_id)["instances"][0]
    before = dev.created()
    dev.sim.destroy(str(inst["id"]), inst["provider"])  # as gpuops reap (or the provider) would
    exe = dev.gpuops("exec", run_id, "--", "true")
    assert exe.returncode == 125 and "gone at the provider" in exe.stderr and "nothing was started" in exe.stderr, \
        out(exe)
    assert dev.created() == before and not dev.record(run_id).get("jobs")
    status = dev.gpuops("status", run_id, "--json")
    rec = json.loads(status.stdout)
    assert (rec["state"], rec["status"]) == ("torn_down", "ended") and "destroyed outside" in rec["gone_reason"], rec
    assert dev.gpuops("down", run_id).stdout.startswith(f"run {run_id} is already torn down")

    up = dev.gpuops("up", dev.spec())
    run_id = dev.last_id
    assert up.returncode == 0
    rec_path = dev.runs / run_id / "run.json"
    rec = json.loads(rec_path.read_text())
    rec["expires_at"] = "2020-01-01T00:00:00Z"  # the ttl passed while the user was away
    rec_path.write_text(json.dumps(rec))
    exe = dev.gpuops("exec", run_id, "--", "true")
    assert exe.returncode == 125 and "expired at 2020-01-01" in exe.stderr, out(exe)
    assert dev.gpuops("down", run_id).returncode == 0 and not dev.live(run_id)
