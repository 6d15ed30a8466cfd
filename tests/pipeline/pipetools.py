"""Run gpu.ops playbooks the way a user does (ansible-playbook, a run spec file) against the simulator, and read
what a run left: its record, its results, the simulator's ledger."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gpuops.testing import REPO, ansible_env, wait_for

PLAYBOOK_BIN = str(Path(sys.executable).parent / "ansible-playbook")
QUICK_JOB = "python3 train.py --steps 200"
SLOW_JOB = "python3 train.py --steps 20000 --step-seconds 0.01"


def make_example_repo(dest: Path) -> Path:
    shutil.copytree(REPO / "examples" / "train", dest)
    git = ["git", "-C", str(dest), "-c", "user.name=t", "-c", "user.email=t@gpuops.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "example"]):
        subprocess.run(git + args, check=True, capture_output=True)
    return dest


def localhost_inventory(path: Path, extra: dict | None = None) -> Path:
    inv = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                           "ansible_python_interpreter": sys.executable}},
                   "children": extra or {}}}
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


@dataclass
class Run:
    proc: subprocess.CompletedProcess
    run_id: str
    run_dir: Path
    spec: dict = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr

    @property
    def record(self) -> dict:
        return json.loads((self.run_dir / "run.json").read_text())

    def json(self, name: str) -> dict:
        return json.loads((self.run_dir / name).read_text())

    def metrics(self) -> list[dict]:
        path = self.run_dir / "metrics.jsonl"
        return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []


class Pipeline:
    """pipeline.run(**spec) -> Run. Each test gets its own run_id (faults match on it) and its own cwd."""

    def __init__(self, sim, work: Path, repo: Path):
        self.sim = sim
        self.work = work
        self.repo = repo
        self.inventory = localhost_inventory(work / "inventory.yml")

    def spec(self, **over) -> dict:
        spec = {"run_id": "t-" + uuid.uuid4().hex[:8], "repo": str(self.repo), "gpu": ["RTX 4090"],
                "nodes": 1, "max_price_per_hour": 2.0, "bootstrap": "true", "command": QUICK_JOB,
                "ssh_private_key_file": str(self.sim.key), "progress_interval": 2, "wait_timeout": 60,
                "runs_dir": str(self.work / "runs")}
        spec.update(over)
        return {k: v for k, v in spec.items() if v is not None}

    def command(self, spec: dict, playbook: str = "gpu.ops.pipeline", inventory: Path | None = None) -> list[str]:
        path = self.work / f"{spec.get('run_id', 'run')}.yml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return [PLAYBOOK_BIN, playbook, "-e", f"@{path}", "-i", str(inventory or self.inventory)]

    def env(self, extra: dict | None = None, drop: tuple = ()) -> dict:
        env = ansible_env(dict(self.sim.env, **(extra or {})))
        for key in drop:
            env.pop(key, None)
        return env

    def run(self, playbook: str = "gpu.ops.pipeline", env_extra: dict | None = None, env_drop: tuple = (),
            inventory: Path | None = None, timeout: float = 300, **over) -> Run:
        spec = self.spec(**over)
        proc = subprocess.run(self.command(spec, playbook, inventory), capture_output=True, text=True,
                              timeout=timeout, env=self.env(env_extra, env_drop), cwd=str(self.work))
        return Run(proc, spec.get("run_id", ""), Path(spec["runs_dir"]) / spec.get("run_id", ""), spec)

    def start(self, **over) -> tuple[subprocess.Popen, Run]:
        """The pipeline in the background (own process group, as a terminal would run it)."""
        spec = self.spec(**over)
        log = open(self.work / f"{spec['run_id']}.log", "w")
        proc = subprocess.Popen(self.command(spec), stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                                cwd=str(self.work), start_new_session=True)
        return proc, Run(None, spec["run_id"], Path(spec["runs_dir"]) / spec["run_id"], spec)

    # ---------------------------------------------------------------- what the simulator saw
    def ledger_rows(self, run_id: str) -> list[dict]:
        return [r for r in self.sim.client.ledger()["instances"] if (r["name"] or "").startswith(run_id + "-")]

    def live(self, run_id: str) -> list[dict]:
        return [r for r in self.ledger_rows(run_id) if r["state"] != "terminated"]


def job_running(sim, run: Run) -> bool:
    """True once the run's job reports `running` on every node and has logged a step (read from the simulated
    nodes' files, as `cat ~/.bifrost/jobs/<id>/status` on the node would)."""
    path = run.run_dir / "run.json"
    if not path.exists():
        return False
    rec = json.loads(path.read_text())
    if not rec.get("instances"):
        return False
    for inst in rec["instances"]:
        job = sim.state_dir / "nodes" / str(inst["id"]) / "home" / ".bifrost" / "jobs" / rec["job_id"]
        try:
            if (job / "status").read_text().strip() != "running" or "step " not in (job / "job.log").read_text():
                return False
        except OSError:
            return False
    return True


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    os.killpg(proc.pid, sig)


__all__ = ["Pipeline", "Run", "make_example_repo", "wait_for", "job_running", "signal_group", "SLOW_JOB",
           "QUICK_JOB", "signal"]
