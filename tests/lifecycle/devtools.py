"""Helpers of the lifecycle suites: a user's project (Dev) driven with the gpuops CLI against the simulator."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from gpuops.testing import ansible_env, wait_for

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@gpuops.invalid"]
TRAIN = """import os, sys, time
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
out = os.environ["GPUOPS_OUTPUTS"]
for i in range(steps):
    print(f"step {i} version {open('VERSION').read().strip()}", flush=True)
with open(os.path.join(out, "result.txt"), "w") as fh:
    fh.write("rank %s of %s\\n" % (os.environ.get("NODE_RANK"), os.environ.get("WORLD_SIZE")))
"""


class Dev:
    """One user's project: a git repository, a runs dir, a spec file, the CLI with the simulator's keys."""

    def __init__(self, sim, tmp: Path):
        self.sim, self.tmp = sim, tmp
        self.repo = tmp / "proj"
        self.repo.mkdir()
        (self.repo / "train.py").write_text(TRAIN)
        (self.repo / "VERSION").write_text("v1\n")
        (self.repo / "requirements.txt").write_text("# nothing yet\n")
        (self.repo / ".gitignore").write_text("scratch/\n")
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "v1"]):
            subprocess.run(GIT + ["-C", str(self.repo)] + args, check=True, capture_output=True)
        self.runs = tmp / "runs"
        self.run_ids: list[str] = []
        self.env = ansible_env(dict(sim.env))

    def spec(self, **over) -> Path:
        data = {"run_id": "dev-" + uuid.uuid4().hex[:8], "repo": str(self.repo), "gpu": ["RTX 4090"], "nodes": 1,
                "max_price_per_hour": 2.0, "bootstrap": "cat requirements.txt > /dev/null && echo bootstrapped",
                "command": "python3 train.py 3", "ssh_private_key_file": str(self.sim.key), "progress_interval": 2,
                "wait_timeout": 60, "ttl": "1h", "runs_dir": str(self.runs)}
        data.update(over)
        data = {k: v for k, v in data.items() if v is not None}
        path = self.tmp / f"{data['run_id']}.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.last_id = data["run_id"]
        self.run_ids.append(data["run_id"])
        return path

    def gpuops(self, *args, timeout=300, env=None) -> subprocess.CompletedProcess:
        exe = Path(sys.executable).parent / "gpuops"
        return subprocess.run([str(exe), "--runs-dir", str(self.runs), *map(str, args)], capture_output=True,
                              text=True, env=dict(self.env, **(env or {})), cwd=str(self.tmp), timeout=timeout)

    def playbook(self, name: str, *extra, timeout=300) -> subprocess.CompletedProcess:
        exe = Path(sys.executable).parent / "ansible-playbook"
        return subprocess.run([str(exe), name, *extra], capture_output=True, text=True, env=self.env,
                              cwd=str(self.tmp), timeout=timeout)

    def commit(self, path: str, text: str, msg: str) -> None:
        (self.repo / path).write_text(text)
        subprocess.run(GIT + ["-C", str(self.repo), "commit", "-qam", msg], check=True, capture_output=True)

    def record(self, run_id: str) -> dict:
        return json.loads((self.runs / run_id / "run.json").read_text())

    def live(self, run_id: str) -> list[dict]:
        led = self.sim.client.ledger()
        return [r for r in led["instances"] if r["id"] in led["live_instances"] and
                str(r["name"] or "").startswith(run_id + "-")]

    def created(self) -> int:
        return len(self.sim.client.ledger()["instances"])


def out(proc) -> str:
    return proc.stdout + proc.stderr


def node_file(sim, record: dict, rel: str) -> Path:
    inst = [i for i in record["instances"] if not i.get("destroyed_at")][0]
    return sim.state_dir / "nodes" / str(inst["id"]) / "home" / rel


def until(pred, what, timeout=60):
    """gpuops.testing.wait_for with this suite's argument order and default timeout."""
    return wait_for(pred, timeout, what)


__all__ = ["Dev", "out", "node_file", "until"]
