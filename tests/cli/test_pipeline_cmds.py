"""launch / status --live / logs / down / reap / cost on the real playbooks against the simulator.

The pipeline and step playbooks are built in other branches; each test skips until its playbook is in this
tree. Bad input that gpuops itself catches (spec file, -e values) needs no playbook.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml

from clitools import gpuops, has_playbook, needs_playbook


def _repo(tmp_path):
    repo = tmp_path / "work"
    repo.mkdir()
    (repo / "train.py").write_text("import time\nfor i in range(3):\n    print(f'step {i} loss {3 - i}', flush=True)\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "."],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=repo, check=True)
    return repo


@pytest.fixture
def spec(sim, tmp_path):
    """A one-node run spec for the simulator (the brief's flat vars)."""
    def make(**kw):
        data = {"name": "clitest", "repo": str(_repo(tmp_path)), "nodes": 1, "gpu": "RTX 4090", "gpu_count": 1,
                "max_price_per_hour": 0.7, "command": "python3 train.py", "target": "cloud",
                "ssh_private_key_file": str(sim.key), "runs_dir": str(tmp_path / "runs"), "ttl": "1h", **kw}
        path = tmp_path / f"run-{len(list(tmp_path.glob('run-*.yml')))}.yml"
        path.write_text(yaml.safe_dump(data))
        return path
    return make


def _no_secret(sim_env, *texts):
    for t in texts:
        assert sim_env["RUNPOD_API_KEY"] not in t and sim_env["VAST_API_KEY"] not in t


def _live(sim, run_id):
    led = sim.client.ledger()
    return [r for r in led["instances"] if r["id"] in led["live_instances"] and str(r["name"]).startswith(run_id)]


def test_bad_spec_file_and_extra_vars(tmp_path):
    assert gpuops("launch", tmp_path / "missing.yml").returncode == 2
    (tmp_path / "list.yml").write_text("- a\n- b\n")
    proc = gpuops("launch", tmp_path / "list.yml")
    assert proc.returncode == 2 and "must be a mapping" in proc.stderr
    (tmp_path / "ok.yml").write_text("name: x\n")
    proc = gpuops("launch", tmp_path / "ok.yml", "-e", "novalue")
    assert proc.returncode == 2 and "expected key=value" in proc.stderr


@needs_playbook("pipeline")
def test_launch_succeeds_and_records(sim, sim_env, spec, tmp_path):
    proc = gpuops("launch", spec(), "-e", "run_id=cli-ok-1", "--json", env=sim_env, timeout=900)
    _no_secret(sim_env, proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    assert res["status"] == "succeeded" and res["run_id"] == "cli-ok-1" and res["exit_code"] == 0
    record = json.loads(gpuops("--runs-dir", tmp_path / "runs", "status", "cli-ok-1", "--json").stdout)
    assert record["status"] == "succeeded" and record["torn_down"] is True and len(record["instances"]) == 1
    assert not _live(sim, "cli-ok-1")


@needs_playbook("pipeline")
def test_launch_job_failure_is_exit_1(sim, sim_env, spec):
    proc = gpuops("launch", spec(command="exit 1"), env=sim_env, timeout=900)
    assert proc.returncode == 1, proc.stderr[-3000:]


@needs_playbook("pipeline")
def test_launch_unknown_gpu_is_exit_2_and_creates_nothing(sim, sim_env, spec):
    before = len(sim.client.ledger()["instances"])
    proc = gpuops("launch", spec(gpu="GTX 9999"), env=sim_env, timeout=900)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(sim.client.ledger()["instances"]) == before


@needs_playbook("pipeline")
@needs_playbook("teardown")
def test_detach_logs_status_down(sim, sim_env, spec, tmp_path):
    runs = tmp_path / "runs"
    path = spec(command="python3 train.py && sleep 600", run_id="cli-detach-1")
    proc = gpuops("launch", path, "--detach", env=sim_env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "gpuops logs cli-detach-1 -f" in proc.stdout
    deadline, lines = time.monotonic() + 120, ""
    delay = 0.2
    while "step 2 loss 1" not in lines and time.monotonic() < deadline:
        lines = gpuops("--runs-dir", runs, "logs", "cli-detach-1").stdout
        time.sleep(delay)
        delay = min(delay * 1.5, 3)
    assert "step 2 loss 1" in lines
    if has_playbook("status"):
        live = gpuops("--runs-dir", runs, "status", "cli-detach-1", "--live", "--json", env=sim_env)
        assert live.returncode == 0, live.stderr
    down = gpuops("--runs-dir", runs, "down", "cli-detach-1", env=sim_env, timeout=600)
    assert down.returncode == 0, down.stderr[-3000:]
    assert json.loads((runs / "cli-detach-1" / "run.json").read_text())["torn_down"] is True
    assert not _live(sim, "cli-detach-1")


@needs_playbook("reap")
def test_reap_check(sim_env):
    proc = gpuops("reap", "--check", "--json", env=sim_env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["rc"] == 0


@needs_playbook("cost")
def test_cost_json(sim_env, tmp_path):
    proc = gpuops("--runs-dir", tmp_path, "cost", "--json", env=sim_env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    json.loads(proc.stdout)
