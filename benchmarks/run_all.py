"""`make bench`: run every benchmarks/bench_*.py, print their tables, collect their JSON.

Each bench script is standalone (`python benchmarks/bench_x.py`), prints a human table and writes
benchmarks/results/<name>.json via benchmarks/_common.py. Figures are compared as ratios measured in
the same run; absolute times on shared machines are noisy.

bench_pipeline.py (the whole gpu.ops.pipeline vs baseline_bare_ssh.py, the seeds' ssh/scp way, on 1 and 8 nodes)
is the slowest (a few minutes): `python benchmarks/run_all.py pipeline` runs only it. baseline_bare_ssh.py is a
helper of it (no bench_ prefix), not a benchmark of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main(argv: list[str]) -> int:
    only = set(argv)
    RESULTS.mkdir(exist_ok=True)
    scripts = sorted(p for p in HERE.glob("bench_*.py") if not only or p.stem.removeprefix("bench_") in only)
    summary, failed = {}, []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        name = script.stem.removeprefix("bench_")
        out = RESULTS / f"{name}.json"
        summary[name] = {"rc": rc, "seconds": round(time.monotonic() - t0, 1),
                         "result": json.loads(out.read_text()) if out.exists() and rc == 0 else None}
        if rc != 0:
            failed.append(name)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nbenchmarks: {len(scripts) - len(failed)}/{len(scripts)} ok; JSON in {RESULTS}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
