"""Run records on the controller: ``<runs_dir>/<run_id>/run.json`` and ``cost.json``.

Standard library only, and nothing here imports Ansible: ``gpuops status`` reads these files and must stay fast
(50 runs in well under 0.5 s). The record is written by the pipeline playbooks; this module only reads it.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

RUN_STATUSES = ("running", "succeeded", "failed", "budget_exceeded", "preempted", "cancelled", "ended")
FINAL_STATUSES = frozenset(RUN_STATUSES) - {"running"}
# the lifecycle's states (plugins/module_utils/lifecycle.py; docs/lifecycle.md), for display only
HELD_STATES = ("ready", "detached", "kept")


class RunNotFound(LookupError):
    """No run record for this run id in the runs directory."""


def default_runs_dir(runs_dir: str | os.PathLike | None = None) -> Path:
    """``runs_dir`` as given, else ``$GPUOPS_RUNS_DIR``, else ``./runs`` of the current directory (the pipeline's
    default), always absolute."""
    chosen = runs_dir or os.environ.get("GPUOPS_RUNS_DIR") or "runs"
    return Path(chosen).expanduser().resolve()


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"_error": f"{path.name}: {exc}"}


def parse_time(value) -> float | None:
    """Epoch seconds of an ISO 8601 time (``Z`` or an offset; naive times are UTC), or None."""
    if not value or not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def instance_cost_so_far(inst: dict, now: float) -> float:
    """price × time alive: an estimate for runs still going (cost.json holds the real figures at the end)."""
    start = parse_time(inst.get("created_at"))
    price = inst.get("price_per_hour")
    if start is None or not isinstance(price, (int, float)):
        return 0.0
    end = parse_time(inst.get("destroyed_at")) or now
    return max(0.0, end - start) * float(price) / 3600.0


def cost_summary(record: dict, cost: dict | None, now: float | None = None) -> dict:
    """``{"estimated_usd", "billed_usd", "source"}``: cost.json when the pipeline wrote it, else price × time."""
    now = time.time() if now is None else now
    if cost and not cost.get("_error"):
        total = cost.get("total") or {}
        est = total.get("estimated_usd")
        if est is None:
            est = sum(float(i.get("estimated_usd") or 0) for i in cost.get("instances") or [])
        return {"estimated_usd": round(float(est), 6), "billed_usd": total.get("billed_usd"), "source": "cost.json"}
    est = sum(instance_cost_so_far(i, now) for i in record.get("instances") or [])
    return {"estimated_usd": round(est, 6), "billed_usd": None, "source": "price x time"}


def load_run(run_id: str, runs_dir: str | os.PathLike | None = None, now: float | None = None) -> dict:
    """The run record of ``run_id`` with ``run_dir`` and a ``cost`` summary added."""
    if not run_id or "/" in run_id or run_id in (".", ".."):
        raise RunNotFound(f"not a run id: {run_id!r}")
    run_dir = default_runs_dir(runs_dir) / run_id
    record = _read_json(run_dir / "run.json")
    if record is None:
        raise RunNotFound(f"no run {run_id} in {run_dir.parent} (no {run_dir / 'run.json'})")
    return _decorate(record, run_dir, now)


def _decorate(record, run_dir: Path, now: float | None) -> dict:
    if not isinstance(record, dict):
        record = {"_error": "run.json is not a JSON object"}
    out = dict(record)
    out.setdefault("run_id", run_dir.name)
    out["run_dir"] = str(run_dir)
    cost = _read_json(run_dir / "cost.json")
    out["cost"] = cost_summary(out, cost if isinstance(cost, dict) else None, now)
    return out


def list_runs(runs_dir: str | os.PathLike | None = None, now: float | None = None) -> list[dict]:
    """Every run record in ``runs_dir``, newest first (by ``started_at``, else the file's mtime)."""
    base = default_runs_dir(runs_dir)
    now = time.time() if now is None else now
    out = []
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        record = _read_json(Path(entry.path) / "run.json")
        if record is None:
            continue
        out.append(_decorate(record, Path(entry.path), now))
    out.sort(key=lambda r: parse_time(r.get("started_at")) or 0.0, reverse=True)
    return out


def live_instances(record: dict) -> list[dict]:
    return [i for i in record.get("instances") or [] if not i.get("destroyed_at")]


def live_nodes(record: dict) -> list[dict]:
    """Cloud instances not destroyed, and the home-lab/ssh hosts of a run that is not torn down (the same rule as
    the collection's lifecycle module; this module stays free of Ansible for ``gpuops status``)."""
    out = [dict(i, kind=i.get("kind") or "cloud") for i in live_instances(record)]
    if record.get("state") != "torn_down" and not record.get("torn_down"):
        out += [dict(n, kind=n.get("kind") or "homelab") for n in record.get("hosts") or [] if isinstance(n, dict)]
    return out


def display_status(record: dict) -> str:
    """One word (or two) for a run: its outcome once torn down, else its state, with the outcome when decided
    (``kept: failed``). Records from before the lifecycle show their status."""
    state, status = record.get("state"), record.get("status") or record.get("_error") or "?"
    if not state or state == "torn_down":
        return str(status)
    if state in HELD_STATES and status not in ("running", "?"):
        return f"{state}: {status}"
    return str(state)


def elapsed_seconds(record: dict, now: float | None = None) -> float | None:
    start = parse_time(record.get("started_at"))
    if start is None:
        return None
    end = parse_time(record.get("ended_at")) or (time.time() if now is None else now)
    return max(0.0, end - start)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
