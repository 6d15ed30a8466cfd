"""Shared bench helpers: a simulator for the run, a table printer, result writing."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from gpuops.testing import SimHarness  # noqa: E402

RESULTS = HERE / "results"


@contextmanager
def simulator(boot_seconds: float = 0.3, catalog: str | None = None):
    base = Path(tempfile.mkdtemp(prefix="gpuops-bench-"))
    h = SimHarness(base / "state", base / "work", boot_seconds=boot_seconds, catalog=catalog)
    h.start()
    try:
        yield h
    finally:
        h.destroy_all()
        h.stop()


@contextmanager
def timer():
    box = {}
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - t0


def stats(samples: list[float]) -> dict:
    return {"min": round(min(samples), 4), "median": round(statistics.median(samples), 4),
            "max": round(max(samples), 4), "n": len(samples)}


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    p = RESULTS / f"{name}.json"
    data = {"benchmark": name, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **data}
    p.write_text(json.dumps(data, indent=2))
    print(json.dumps(data))
    return p
