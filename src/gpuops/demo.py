"""`make demo`: the gpu.ops pipeline end to end on the local GPU-cloud simulator; no account, no cost.

Starts the simulator, makes a git repository of the example job (examples/train: a character-level language
model), and runs ``ansible-playbook gpu.ops.pipeline`` with a run spec for two nodes: it rents one RunPod pod
and one Vast instance through the vendors' HTTP APIs, deploys the repository, bootstraps, health-checks,
trains, collects the results, tears both nodes down and prints the run's summary and its loss plot. The
simulator is stopped and checked for leftovers on every path.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from .sim.cli import format_ledger
from .testing import REPO, SimHarness, ansible_env

DEMO_RUN = {
    "name": "charlm",
    "nodes": 2,
    "gpu": ["RTX 4090"],
    "max_price_per_hour": 0.70,
    "bootstrap": "python3 -c \"import json, math; print('stdlib only: nothing to install')\"",
    "command": "python3 train.py --steps 600 --step-seconds 0.005",
    "env": {"PYTHONUNBUFFERED": "1"},
    "ttl": "1h",
    "progress_interval": 3,
}


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def demo_catalog(work: Path) -> Path:
    """The default catalog with RunPod's community RTX 4090 priced between the two cheapest Vast offers, so the
    cheapest-first failover rents one node on each provider (Vast offers are single machines)."""
    src = Path(__file__).parent / "sim" / "data" / "catalog.yaml"
    doc = yaml.safe_load(src.read_text())
    for gpu in doc["runpod"]["gpu_types"]:
        if gpu["id"] == "NVIDIA GeForce RTX 4090":
            gpu["price"]["community"] = 0.32
    path = work / "demo-catalog.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def example_repo(work: Path) -> Path:
    """examples/train as its own git repository, as a user's project would be."""
    repo = work / "charlm"
    shutil.copytree(REPO / "examples" / "train", repo)
    git = ["git", "-C", str(repo), "-c", "user.name=gpu.ops demo", "-c", "user.email=demo@gpuops.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "charlm: the example training job"]):
        subprocess.run(git + args, check=True)
    return repo


def run_pipeline(sim: SimHarness, run_file: Path) -> int:
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "gpu.ops.pipeline", "-e", f"@{run_file}"]
    say("$ ansible-playbook gpu.ops.pipeline -e @" + run_file.name)
    return subprocess.run(cmd, env=ansible_env(sim.env), cwd=str(REPO)).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gpuops-demo", description=__doc__)
    ap.add_argument("--state-dir", default=str(REPO / ".sim" / "demo"))
    ap.add_argument("--runs-dir", default=str(REPO / "runs"))
    ap.add_argument("--keep", action="store_true", help="leave the simulator running afterwards")
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="gpuops-demo-"))
    sim = SimHarness(Path(a.state_dir), work, boot_seconds=1.0, catalog=str(demo_catalog(work)))
    t0 = time.monotonic()
    say("starting the local GPU-cloud simulator (RunPod REST v2 + GraphQL, Vast v0/v1, real sshd nodes)")
    sim.start()
    rc = 1
    summary = None
    try:
        spec = dict(DEMO_RUN, repo=str(example_repo(work)), ssh_private_key_file=str(sim.key), runs_dir=a.runs_dir)
        run_file = work / "run.yml"
        run_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        say(f"run spec {run_file} (the documented template is examples/run.yml)")
        rc = run_pipeline(sim, run_file)
        summary = latest_summary(Path(a.runs_dir))
    finally:
        rc = check_and_stop(sim, rc, keep=a.keep)
        shutil.rmtree(work, ignore_errors=True)
    if summary:
        print("\n" + summary["summary"])
    say(f"demo {'passed' if rc == 0 else 'FAILED'} in {time.monotonic() - t0:.1f}s")
    return rc


def latest_summary(runs_dir: Path) -> dict | None:
    found = sorted(runs_dir.glob("charlm-*/summary.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(found[-1].read_text()) if found else None


def check_and_stop(sim: SimHarness, rc: int, keep: bool) -> int:
    """Nothing may be left running: the ledger says what was billed, the leak check what is still alive."""
    sim.destroy_all()
    led = sim.client.ledger()
    print(format_ledger(led))
    leaks = sim.leaks()
    if leaks["live_instances"] or leaks["processes"]:
        say(f"LEAK: {leaks}")
        rc = rc or 1
    if not keep:
        say(sim.stop().strip())
    return rc


if __name__ == "__main__":
    sys.exit(main())
