"""`gpuops status` over run records the pipeline writes (synthetic records in a temp runs dir)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from clitools import gpuops, iso, write_run


def _inst(i, created, destroyed=None, price=0.5):
    return {"provider": "runpod" if i % 2 else "vast", "id": f"id{i}", "name": f"n{i}", "gpu_model": "RTX 4090",
            "gpu_count": 1, "price_per_hour": price, "ssh_host": "127.0.0.1", "ssh_port": 2200 + i,
            "ssh_user": "root", "created_at": iso(created), "destroyed_at": iso(destroyed) if destroyed else None}


@pytest.fixture
def runs(tmp_path):
    base = datetime.now(timezone.utc) - timedelta(days=1)
    d = tmp_path / "runs"
    statuses = ["succeeded", "failed", "budget_exceeded", "preempted", "cancelled"]
    for i in range(49):
        started = base + timedelta(minutes=i)
        write_run(d, f"r{i:02d}", status=statuses[i % 5], started=started,
                  instances=[_inst(i, started, started + timedelta(minutes=2))],
                  cost={"instances": [{"provider": "vast", "id": f"id{i}", "estimated_usd": 0.01 * i,
                                       "billed_usd": None, "billed_available": False}],
                        "total": {"estimated_usd": 0.01 * i, "billed_usd": None}})
    # one live run, no cost.json yet: cost so far is price x time alive
    started = datetime.now(timezone.utc) - timedelta(hours=2)
    write_run(d, "live-run", status="running", started=started,
              instances=[_inst(1, started, price=1.5), _inst(2, started, price=0.5)])
    (d / ".gpuops").mkdir()  # side files of --detach are not runs
    (d / "not-a-run").mkdir()
    return d


def test_lists_every_run_newest_first(runs):
    proc = gpuops("--runs-dir", runs, "status")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["RUN_ID", "STATUS", "NODES"]
    ids = [ln.split()[0] for ln in lines[1:]]
    assert len(ids) == 50
    assert ids[0] == "live-run" and ids[1] == "r48" and ids[-1] == "r00"
    assert lines[1].split()[1:3] == ["running", "2/2"]


def test_json_matches_the_records(runs):
    proc = gpuops("--runs-dir", runs, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    data = {r["run_id"]: r for r in json.loads(proc.stdout)}
    assert len(data) == 50
    for rid, rec in data.items():
        on_disk = json.loads((runs / rid / "run.json").read_text())
        assert rec["status"] == on_disk["status"]
        assert rec["instances"] == on_disk["instances"]
    assert data["r07"]["cost"] == {"estimated_usd": 0.07, "billed_usd": None, "source": "cost.json"}
    live = data["live-run"]["cost"]
    assert live["source"] == "price x time"
    assert 3.9 < live["estimated_usd"] < 4.1  # 2 h x (1.5 + 0.5) $/h


def test_one_run(runs):
    proc = gpuops("--runs-dir", runs, "status", "live-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("run live-run: running")
    assert "n1" in proc.stdout and "n2" in proc.stdout and "provision 12s" in proc.stdout
    assert "gpuops logs live-run -f" in proc.stdout
    one = json.loads(gpuops("--runs-dir", runs, "status", "r03", "--json").stdout)
    assert one["status"] == "preempted" and one["run_dir"] == str(runs / "r03")


def test_unknown_run_is_bad_input(runs):
    proc = gpuops("--runs-dir", runs, "status", "nope")
    assert proc.returncode == 2
    assert "no run nope" in proc.stderr


def test_empty_runs_dir(tmp_path):
    proc = gpuops("--runs-dir", tmp_path / "none", "status")
    assert proc.returncode == 0 and "no runs in" in proc.stdout
    assert json.loads(gpuops("--runs-dir", tmp_path / "none", "status", "--json").stdout) == []


def test_runs_dir_from_env_and_cwd(runs, tmp_path):
    assert gpuops("status", "--json", env={"GPUOPS_RUNS_DIR": str(runs)}).stdout.count('"run_id"') == 50
    assert "r00" in gpuops("status", cwd=runs.parent).stdout  # ./runs, the pipeline's default


def test_status_path_imports_no_ansible(runs):
    """The read path stays cheap: no ansible, ansible_runner or yaml import."""
    code = ("import sys; from gpuops import cli; rc = cli.main(['--runs-dir', sys.argv[1], 'status']); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('ansible', 'ansible_runner', 'yaml', 'requests')];"
            "print('IMPORTED', bad, file=sys.stderr); sys.exit(rc or (1 if bad else 0))")
    proc = subprocess.run([sys.executable, "-c", code, str(runs)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "IMPORTED []" in proc.stderr
