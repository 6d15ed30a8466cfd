"""`make demo`: gpu.ops end to end on the local GPU-cloud simulator; no account, no cost.

Starts the simulator, rents one RunPod pod and one Vast instance through the vendors' HTTP APIs,
runs a command on each over SSH, destroys both and prints the billing ledger. Every failure path
still destroys what was created and stops the simulator.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from .sim.cli import format_ledger
from .testing import REPO, SimHarness


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gpuops-demo", description=__doc__)
    ap.add_argument("--state-dir", default=str(REPO / ".sim" / "demo"))
    ap.add_argument("--keep", action="store_true", help="leave the simulator running afterwards")
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="gpuops-demo-"))
    sim = SimHarness(Path(a.state_dir), work, boot_seconds=1.0)
    t0 = time.monotonic()
    say("starting the local GPU-cloud simulator (RunPod REST v2 + GraphQL, Vast v0/v1)")
    sim.start()
    say(f"simulator at {sim.client.url}; keys and URLs are what `eval \"$(gpuops-sim start)\"` exports")
    rc = 0
    try:
        say("RunPod: POST /v2/pods  (1x RTX 4090, 22/tcp, PUBLIC_KEY=our key)")
        pod = sim.create_runpod("gpuops-demo-pod")
        say(f"RunPod: pod {pod.id} RUNNING, ssh {pod.user}@{pod.host} -p {pod.port}")
        say("Vast: POST /api/v0/bundles/ (cheapest RTX 4090) then PUT /api/v0/asks/{id}/")
        vast = sim.create_vast("gpuops-demo-vast")
        say(f"Vast: instance {vast.id} running, ssh {vast.user}@{vast.host} -p {vast.port}")
        for node in (pod, vast):
            out = node.ssh("hostname >/dev/null; nvidia-smi --query-gpu=index,name,memory.total "
                           "--format=csv,noheader && echo \"home: $HOME\"").stdout.strip()
            for line in out.splitlines():
                say(f"  {node.provider:6} {node.id}: {line}")
    except Exception as e:  # the demo must always clean up
        say(f"FAILED: {e}")
        rc = 1
    finally:
        say("destroying every instance")
        sim.destroy_all()
        led = sim.client.ledger()
        print(format_ledger(led))
        leaks = sim.leaks()
        if leaks["live_instances"] or leaks["processes"]:
            say(f"LEAK: {leaks}")
            rc = 1
        if not a.keep:
            say(sim.stop().strip())
    say(f"done in {time.monotonic() - t0:.1f}s; cost ${led['total_cost']:.4f} (simulated)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
