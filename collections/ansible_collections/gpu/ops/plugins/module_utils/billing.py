# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the providers billed: per instance (for cost.json at teardown) and per run, owner and day (the report).

PRIVATE to the collection: the API may change between releases. No Ansible imports.

The providers' billing APIs (Provider.bills / Provider.billed) say which instance cost what on which day; who
the instance belonged to comes from the labels on live instances, the labels a bill carries (Vast), and the
run records ``<runs_dir>/<run_id>/run.json`` (their ``instances`` list), because a destroyed RunPod pod's bill
carries only its id.
"""

from __future__ import annotations

import datetime
import json
import os
import re

from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError, not_billed, parse_iso, utc_iso

UNKNOWN = "(unknown)"
_AGO = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(value, now, what="time"):
    """Epoch seconds from an ISO 8601 date or date-time (UTC unless it says otherwise), from "now", or from a
    duration back from now ("7d", "12h", "2w")."""
    v = str(value).strip().lower()
    if v == "now":
        return now
    m = _AGO.match(v)
    if m:
        return now - int(m.group(1)) * _UNITS[m.group(2)]
    if re.match(r"^\d{4}-\d{2}-\d{2}$", v):
        return datetime.datetime.strptime(v, "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc).timestamp()
    ts = parse_iso(value)
    if ts is None:
        raise ConfigError("%s %r is not a date (2026-11-01), a date-time (2026-11-01T10:00:00Z), 'now' or a "
                          "duration back from now (7d, 12h)" % (what, value))
    return ts


# ---------------------------------------------------------------------------- per instance (teardown)
def billed_for(providers, instances, since=None, until=None):
    """[{provider, id, billed_usd, billed_available, reason}] in the order of ``instances`` ({provider, id,
    created_at?}). Never raises for API errors: a bill that cannot be read is ``billed_available: False``."""
    if since is None:
        starts = [parse_iso(i.get("created_at")) for i in instances]
        starts = [s for s in starts if s is not None]
        since = min(starts) if starts else None
    wanted = {}
    for i in instances:
        wanted.setdefault(str(i.get("provider")), []).append(str(i.get("id")))
    answers = {}
    for name, ids in wanted.items():
        prov = providers.get(name)
        if prov is None:
            answers[name] = {iid: not_billed("provider %s is not configured (no API key)" % name) for iid in ids}
            continue
        try:
            answers[name] = prov.billed(ids, since, until)
        except http.ApiError as e:
            answers[name] = {iid: not_billed("%s billing failed: %s" % (name, e.message)) for iid in ids}
    out = []
    for i in instances:
        p, iid = str(i.get("provider")), str(i.get("id"))
        row = {"provider": p, "id": iid}
        row.update(answers.get(p, {}).get(iid) or not_billed("no answer for %s %s" % (p, iid)))
        out.append(row)
    return out


# ---------------------------------------------------------------------------- run records
class RunIndex:
    """Every ``<runs_dir>/*/run.json``: who each instance belonged to, and the runs' own estimates."""

    def __init__(self, runs_dir):
        self.runs = {}
        self.owner_of = {}  # (provider, id) -> (run_id, owner, name)
        if not runs_dir:
            return
        base = os.path.expanduser(runs_dir)
        try:
            names = sorted(os.listdir(base))
        except OSError:
            return
        for d in names:
            rec = _read_json(os.path.join(base, d, "run.json"))
            if not isinstance(rec, dict):
                continue
            run_id = str(rec.get("run_id") or d)
            cost = _read_json(os.path.join(base, d, "cost.json"))
            self.runs[run_id] = {"run_id": run_id, "owner": rec.get("owner"), "status": rec.get("status"),
                                 "started_at": rec.get("started_at"), "ended_at": rec.get("ended_at"),
                                 "estimated_usd": estimated_total(cost)}
            for inst in rec.get("instances") or []:
                if isinstance(inst, dict) and inst.get("provider") and inst.get("id") is not None:
                    self.owner_of[(str(inst["provider"]), str(inst["id"]))] = (run_id, rec.get("owner"), inst.get("name"))


def _read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def estimated_total(cost):
    """The run's own estimate from cost.json ({"total": {"estimated_usd": ..}} or the instances' sum), or None."""
    if not isinstance(cost, dict):
        return None
    total = cost.get("total")
    if isinstance(total, dict) and isinstance(total.get("estimated_usd"), (int, float)):
        return round(float(total["estimated_usd"]), 6)
    vals = [i.get("estimated_usd") for i in cost.get("instances") or [] if isinstance(i, dict)]
    vals = [v for v in vals if isinstance(v, (int, float))]
    return round(sum(vals), 6) if vals else None


# ---------------------------------------------------------------------------- the report
def report(providers, since, until, runs_dir=None, owner=None):
    """Spend per instance, run, owner, day and provider over [since, until) from the providers' bills.

    Returns a dict; ``provider_errors`` names the providers whose billing (or listing) failed: their spend is
    missing, and the caller must say so.
    """
    records, errors, who = [], {}, {}
    index = RunIndex(runs_dir)
    for name, prov in providers.items():
        try:
            records.extend(prov.bills(since, until))
        except http.ApiError as e:
            errors[name] = e.to_dict()
            continue
        try:  # live instances carry labels even where the bill does not
            for inst in prov.list():
                if inst.labels:
                    who[(name, str(inst.id))] = (inst.labels.get("run_id"), inst.labels.get("owner"), inst.name)
        except http.ApiError as e:
            errors[name] = e.to_dict()
    rows = {}
    for r in records:
        key = (r["provider"], r["instance_id"])
        run_id, own, name = index.owner_of.get(key) or who.get(key) or (
            r["labels"].get("run_id"), r["labels"].get("owner"), r.get("name"))
        row = rows.setdefault(key, {"provider": key[0], "id": key[1], "name": name or r.get("name"),
                                    "run_id": run_id or UNKNOWN, "owner": own or UNKNOWN, "billed_usd": 0.0,
                                    "days": {}})
        row["billed_usd"] += r["amount_usd"]
        row["days"][r["day"]] = round(row["days"].get(r["day"], 0.0) + r["amount_usd"], 6)
    inst_rows = [dict(x, billed_usd=round(x["billed_usd"], 6)) for x in rows.values()
                 if owner is None or x["owner"] == owner]
    inst_rows.sort(key=lambda x: (x["run_id"], x["provider"], x["id"]))
    out = {"since": utc_iso(since), "until": utc_iso(until), "instances": inst_rows,
           "by_run": _sum(inst_rows, lambda x: [(x["run_id"], x["billed_usd"])]),
           "by_owner": _sum(inst_rows, lambda x: [(x["owner"], x["billed_usd"])]),
           "by_provider": _sum(inst_rows, lambda x: [(x["provider"], x["billed_usd"])]),
           "by_day": _sum(inst_rows, lambda x: list(x["days"].items())),
           "total_usd": round(sum(x["billed_usd"] for x in inst_rows), 6),
           "provider_errors": errors}
    out["runs"] = [dict(index.runs[r], billed_usd=out["by_run"][r]) for r in sorted(out["by_run"]) if r in index.runs]
    return out


def _sum(rows, pairs):
    acc = {}
    for row in rows:
        for k, v in pairs(row):
            acc[k] = round(acc.get(k, 0.0) + v, 6)
    return dict(sorted(acc.items()))


def report_lines(rep):
    """A short text report: total, then spend per run, owner and day."""
    head = (rep["since"], rep["until"], rep["total_usd"], len(rep["instances"]))
    lines = ["billed %s .. %s: %.4f USD over %d instance(s)" % head]
    estimates = {r["run_id"]: r.get("estimated_usd") for r in rep.get("runs") or []}
    for title, key in (("run", "by_run"), ("owner", "by_owner"), ("day", "by_day"), ("provider", "by_provider")):
        for k, v in rep[key].items():
            est = estimates.get(k) if key == "by_run" else None
            lines.append("  %-8s %-40s %10.4f USD%s" % (title, k, v, "  (run's estimate %.4f)" % est if est else ""))
    for name, err in sorted(rep["provider_errors"].items()):
        lines.append("  MISSING  %s: %s" % (name, err.get("message")))
    return lines


def default_window(now, since=None, until=None):
    """(since, until) in epoch seconds: the last 7 days unless given."""
    until_ts = parse_when(until, now, "until") if until else now
    since_ts = parse_when(since, now, "since") if since else until_ts - 7 * 86400
    if since_ts >= until_ts:
        raise ConfigError("since (%s) must be before until (%s)" % (utc_iso(since_ts), utc_iso(until_ts)))
    return since_ts, until_ts
