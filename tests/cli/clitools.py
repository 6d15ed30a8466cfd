"""Helpers for the gpuops CLI / Python API suites."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gpuops.testing import REPO

PLAYBOOKS = REPO / "collections" / "ansible_collections" / "gpu" / "ops" / "playbooks"


def has_playbook(name: str) -> bool:
    return (PLAYBOOKS / f"{name}.yml").is_file()


def needs_playbook(name: str):
    """Skip until the playbook exists in this tree (the pipeline and reaper land in other branches)."""
    return pytest.mark.skipif(not has_playbook(name),
                              reason=f"playbook gpu.ops.{name} not in this tree")


def gpuops(*args, env=None, cwd=None, timeout=300, input=None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    exe = Path(sys.executable).parent / "gpuops"
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=e, cwd=cwd,
                          timeout=timeout, input=input)


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_run(runs_dir: Path, run_id: str, *, status="succeeded", started=None, instances=(), cost=None,
              **extra) -> Path:
    """A run record as the pipeline writes it (brief's contract)."""
    started = started or datetime.now(timezone.utc) - timedelta(minutes=5)
    record = {"run_id": run_id, "status": status, "torn_down": status != "running", "owner": "tester",
              "started_at": iso(started), "ended_at": None if status == "running" else iso(started + timedelta(minutes=3)),
              "instances": list(instances), "steps": {"provision": 12.5, "deploy": 3.1, "train": 140.0}, **extra}
    d = runs_dir / run_id
    d.mkdir(parents=True, exist_ok=True)
    (d / "run.json").write_text(json.dumps(record))
    if cost is not None:
        (d / "cost.json").write_text(json.dumps(cost))
    return d


def instance_of(node, *, created=None, destroyed=None, price=0.34) -> dict:
    """A run-record instance entry for a live simulator node."""
    return {"provider": node.provider, "id": node.id, "name": node.name, "gpu_model": "RTX 4090",
            "gpu_count": node.gpu_count, "price_per_hour": price, "ssh_host": node.host, "ssh_port": node.port,
            "ssh_user": node.user, "created_at": iso(created or datetime.now(timezone.utc)),
            "destroyed_at": iso(destroyed) if destroyed else None}
