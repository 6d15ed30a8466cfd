"""`gpuops launch --detach` with a real job: a small stand-in for the pipeline provisions a simulator node,
records the run, starts a tmux job with gpu.ops.job and waits with gpu.ops.job_wait. --detach must return once the
job runs; then `gpuops logs` reads the job's log over SSH and the background launch keeps streaming typed events
(JobProgress parsed from job_wait's real progress lines)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest
import yaml

from clitools import gpuops

NODE = {"name_prefix": "{{ run_id }}", "count": 1, "gpu": ["RTX 4090"], "max_price_per_hour": 0.7,
        "images": {"runpod": "runpod/pytorch:2.4.0", "vast": "vastai/base-image:cuda-12.4"}, "run_id": "{{ run_id }}",
        "ssh_private_key_file": "{{ ssh_private_key_file }}", "known_hosts_file": "{{ runs_dir }}/known_hosts",
        "wait_timeout": 60}
RECORD = ("{{ {'run_id': run_id, 'status': 'running', 'torn_down': false, 'owner': 'me',"
          " 'started_at': now(utc=true).strftime('%Y-%m-%dT%H:%M:%SZ'),"
          " 'instances': fleet.instances, 'steps': {}, 'inputs': {'ssh_private_key_file': ssh_private_key_file}}"
          " | to_json }}")
PLAYS = [
    {"name": "provision", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "nodes", "gpu.ops.gpu_instance": NODE, "register": "fleet"},
        {"name": "run dir", "ansible.builtin.file": {"path": "{{ runs_dir }}/{{ run_id }}", "state": "directory",
                                                     "mode": "0700"}},
        {"name": "record", "ansible.builtin.copy": {"dest": "{{ runs_dir }}/{{ run_id }}/run.json", "mode": "0600",
                                                    "content": RECORD}},
        {"name": "hosts", "ansible.builtin.add_host": {
            "name": "{{ item.name }}", "groups": "gpu_nodes", "ansible_host": "{{ item.connection.ansible_host }}",
            "ansible_port": "{{ item.connection.ansible_port }}", "ansible_user": "{{ item.connection.ansible_user }}",
            "ansible_ssh_private_key_file": "{{ ssh_private_key_file }}",
            "ansible_ssh_common_args": "{{ item.connection.ansible_ssh_common_args }}",
            "ansible_python_interpreter": "python3"}, "loop": "{{ fleet.instances }}"}]},
    {"name": "train", "hosts": "gpu_nodes", "gather_facts": False, "tasks": [
        {"name": "start", "gpu.ops.job": {"job_id": "train-{{ run_id }}", "workdir": "~",
                                          "command": "for i in 1 2 3; do echo \"step $i loss 0.$i\"; done; sleep 600"}},
        {"name": "wait", "gpu.ops.job_wait": {"job_id": "train-{{ run_id }}", "timeout": 600,
                                              "progress_interval": 1}}]},
]


@pytest.fixture
def detached(sim, sim_env, tmp_path):
    pb = tmp_path / "stand_in.yml"
    pb.write_text(yaml.safe_dump(PLAYS, sort_keys=False))
    spec = tmp_path / "run.yml"
    runs = tmp_path / "runs"
    spec.write_text(yaml.safe_dump({"name": "det", "run_id": "det-" + os.urandom(3).hex(),
                                    "ssh_private_key_file": str(sim.key), "runs_dir": str(runs)}))
    state = {}
    yield spec, pb, runs, state
    pid = state.get("pid")
    if pid:
        try:
            os.killpg(pid, signal.SIGTERM)  # gpuops forwards it to ansible-playbook, which ends; then gpuops ends
        except ProcessLookupError:
            pass

        def gone():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False
        _wait(gone, "the background launch to end after SIGTERM", timeout=60)
    led = sim.client.ledger()
    for row in led["instances"]:
        if row["id"] in led["live_instances"] and str(row["name"]).startswith("det-"):
            sim.destroy(row["id"], row["provider"])


def _wait(pred, what, timeout=120):
    deadline, delay = time.monotonic() + timeout, 0.1
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(delay)
        delay = min(delay * 1.5, 2)
    raise AssertionError(f"timed out waiting for {what}")


def test_detach_returns_when_the_job_runs(detached, sim_env):
    spec, pb, runs, state = detached
    run_id = yaml.safe_load(spec.read_text())["run_id"]
    proc = gpuops("launch", spec, "--playbook", pb, "--detach", env=sim_env, timeout=300)
    state["pid"] = int(proc.stderr.split("(pid ")[1].split(")")[0])
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout
    assert f"job train-{run_id} running on {run_id}-0" in proc.stdout
    assert f"gpuops logs {run_id} -f" in proc.stdout
    os.kill(state["pid"], 0)  # the launch goes on in the background

    logs = _wait(lambda: (lambda p: p.stdout if "step 3 loss 0.3" in p.stdout else None)(
        gpuops("--runs-dir", runs, "logs", run_id)), "the job's log")
    steps = [ln for ln in logs.splitlines() if ln.startswith("step ")]
    assert steps == ["step 1 loss 0.1", "step 2 loss 0.2", "step 3 loss 0.3"]
    events = runs / ".gpuops" / f"{run_id}.events.jsonl"

    def progress():
        evs = [json.loads(x) for x in events.read_text().splitlines() if x.strip()]
        return [e for e in evs if e["event"] == "JobProgress"]
    got = _wait(progress, "a JobProgress event from job_wait's progress line")
    assert got[0]["host"] == f"{run_id}-0" and got[0]["job_id"] == f"train-{run_id}"
    assert got[0]["state"].startswith("running") and got[0]["last_line"] == "step 3 loss 0.3"
    status = gpuops("--runs-dir", runs, "status")
    assert run_id in status.stdout and "running" in status.stdout
    side = runs / ".gpuops"
    assert sim_env["RUNPOD_API_KEY"] not in (side / f"{run_id}.launch.log").read_text()
    assert {oct(p.stat().st_mode & 0o777) for p in side.iterdir()} == {"0o600"}
    assert sys.executable  # the console script and the background launch use this interpreter
