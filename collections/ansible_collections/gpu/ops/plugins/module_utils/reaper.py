# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reaper: find gpu.ops instances that should not exist any more and destroy them.

PRIVATE to the collection: the API may change between releases. No Ansible imports.

An instance is a candidate only when it carries gpu.ops labels (``run_id`` and ``owner``) and its owner is
the one asked for (or every owner was asked for). It is reaped for any of these reasons:

* ``expired``   -- its ``expires_at`` label is in the past;
* ``torn_down`` -- ``<runs_dir>/<run_id>/run.json`` says the run was torn down (``module_utils/lifecycle.py``;
  a kept, up or detached run keeps its nodes until they expire);
* ``named``     -- its run was named by the caller.

Every provider is listed once (every page) before anything is destroyed. When a listing fails, the picture
is incomplete and nothing is destroyed on any provider (``on_provider_error=abort``, the default): an API
that answers 500 or 410 must never be read as "no instances", and a reaper acting on half a picture is how
a deprecated endpoint becomes a silent leak or a wrong kill. ``reap_others`` still destroys on the providers
that answered; the failing ones are reported and the reaper fails either way.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils import lifecycle
from ansible_collections.gpu.ops.plugins.module_utils.provider import parse_iso, utc_iso

FINAL_STATUSES = tuple(sorted(lifecycle.FINAL_OUTCOMES))  # kept for importers; the record rule is lifecycle.nodes_released
REASONS = ("expired", "torn_down", "named")
ON_PROVIDER_ERROR = ("abort", "reap_others")


def default_owner():
    """The owner the modules write on instances when none is given: GPUOPS_OWNER, else the current user."""
    if os.environ.get("GPUOPS_OWNER"):
        return os.environ["GPUOPS_OWNER"]
    try:
        return getpass.getuser()
    except Exception:  # pylint: disable=broad-except
        return "unknown"


class RunRecords:
    """Run records ``<runs_dir>/<run_id>/run.json``, read only for the run ids met on instances."""

    def __init__(self, runs_dir):
        self.runs_dir = os.path.expanduser(runs_dir) if runs_dir else None
        self._cache = {}
        self.unreadable = {}

    def get(self, run_id):
        if not self.runs_dir or not run_id or "/" in run_id or run_id.startswith("."):
            return None
        if run_id not in self._cache:
            self._cache[run_id] = self._read(run_id)
        return self._cache[run_id]

    def _read(self, run_id):
        path = os.path.join(self.runs_dir, run_id, "run.json")
        try:
            with open(path) as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            self.unreadable[run_id] = "%s: %s" % (path, e)  # a broken record is no licence to destroy
            return None
        return data if isinstance(data, dict) else None

    def ended(self, run_id):
        """Why the record says the run's instances should be gone (the run is torn down), or None: a run that is
        kept after a failure, up (``gpuops up``) or detached keeps its nodes until they expire."""
        return lifecycle.nodes_released(self.get(run_id))


def is_labelled(inst):
    """gpu.ops labels: every instance gpu.ops makes carries run_id and owner (expires_at when it has a ttl)."""
    return bool(inst.labels.get("run_id")) and bool(inst.labels.get("owner"))


def reasons_for(inst, now, run_ids, records):
    """[(reason, detail)] why ``inst`` should be reaped; empty when it should stay."""
    out = []
    labels = inst.labels
    exp = parse_iso(labels.get("expires_at"))
    if exp is not None and exp <= now:
        out.append(("expired", "expired %s ago (expires_at %s)" % (ago(now - exp), labels["expires_at"])))
    ended = records.ended(labels.get("run_id"))
    if ended:
        out.append(("torn_down", ended))
    if labels.get("run_id") in run_ids:
        out.append(("named", "run %s named for reaping" % labels["run_id"]))
    return out


def ago(seconds):
    seconds = int(max(0, seconds))
    if seconds < 3600:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    if seconds < 86400:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dd%02dh" % (seconds // 86400, seconds % 86400 // 3600)


def cost_so_far(inst, now):
    """Estimated USD since creation at today's price (providers do not bill stopped GPUs; this is an upper bound)."""
    created = parse_iso(inst.created_at)
    if created is None or inst.price_per_hour is None:
        return None
    return round(max(0.0, now - created) / 3600.0 * float(inst.price_per_hour), 4)


def row_for(prov_name, inst, reasons, now):
    return {"provider": prov_name, "id": str(inst.id), "name": inst.name, "status": inst.status,
            "run_id": inst.labels.get("run_id"), "owner": inst.labels.get("owner"),
            "expires_at": inst.labels.get("expires_at"), "gpu_model": inst.gpu_model, "gpu_count": inst.gpu_count,
            "price_per_hour": inst.price_per_hour, "created_at": inst.created_at,
            "cost_so_far": cost_so_far(inst, now), "reasons": [r for r, _d in reasons],
            "why": "; ".join(d for _r, d in reasons), "action": "would_destroy"}


RETRYABLE = (http.UNAVAILABLE, http.RATE_LIMITED, http.ERROR, http.AMBIGUOUS)


def terminate_with_retries(prov, instance_id, deadline=120.0, sleep=time.sleep, clock=time.monotonic):
    """``prov.terminate`` again on transient failures (5xx, "Something went wrong") until ``deadline`` seconds."""
    end = clock() + deadline
    delay = 0.5
    while True:
        try:
            return prov.terminate(instance_id)
        except http.ApiError as e:
            if e.category not in RETRYABLE or clock() + delay > end:
                raise
        sleep(delay)
        delay = min(delay * 2, 10.0)


class Reaper:
    """``providers``: {name: Provider}. ``terminate(provider, instance_id)`` destroys one (with retries);
    ``workers`` destroys that many at once (the listing is the only serial part)."""

    def __init__(self, providers, owner=None, all_owners=False, run_ids=(), runs_dir=None, now=None,
                 terminate=None, on_provider_error="abort", workers=8):
        if not all_owners and not owner:
            raise ValueError("an owner is required unless all_owners is set")
        if on_provider_error not in ON_PROVIDER_ERROR:
            raise ValueError("on_provider_error must be one of %s" % ", ".join(ON_PROVIDER_ERROR))
        self.providers = providers
        self.owner = owner
        self.all_owners = all_owners
        self.run_ids = set(run_ids or ())
        self.records = RunRecords(runs_dir)
        self.now = time.time() if now is None else now
        self.terminate = terminate or terminate_with_retries
        self.workers = max(1, int(workers))
        self.on_provider_error = on_provider_error
        self.errors = {}
        self.rows = []
        self.counts = {"listed": 0, "unlabelled": 0, "other_owner": 0, "kept": 0}

    def plan(self):
        """List every provider, then decide. Fills ``rows`` (candidates) and ``errors`` ({provider: error})."""
        listed = {}
        for name, prov in self.providers.items():
            try:
                listed[name] = (prov, prov.list())
            except http.ApiError as e:
                self.errors[name] = provider_error(name, e)
        for name, (prov, instances) in listed.items():
            for inst in instances:
                self._consider(name, prov, inst)
        return self.rows

    def _consider(self, name, prov, inst):
        if inst.status == "terminated":
            return
        self.counts["listed"] += 1
        if not is_labelled(inst):
            self.counts["unlabelled"] += 1
            return
        if not self.all_owners and inst.labels.get("owner") != self.owner:
            self.counts["other_owner"] += 1
            return
        reasons = reasons_for(inst, self.now, self.run_ids, self.records)
        if not reasons:
            self.counts["kept"] += 1
            return
        row = row_for(name, inst, reasons, self.now)
        row["_provider"] = prov
        self.rows.append(row)

    def may_act_on(self, provider_name):
        if provider_name in self.errors:
            return False
        return not self.errors or self.on_provider_error == "reap_others"

    def mark_blocked(self):
        """Rows on providers the reaper may not act on (see ``on_provider_error``); the others, to do."""
        todo = []
        for row in self.rows:
            if self.may_act_on(row["provider"]):
                todo.append(row)
            else:
                row["action"] = "not_destroyed_provider_error"
        return todo

    def reap(self):
        """Destroy the planned rows where allowed; each row's ``action`` says what happened."""
        todo = self.mark_blocked()
        if len(todo) > 1 and self.workers > 1:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(todo))) as pool:
                list(pool.map(self._destroy, todo))
        else:
            for row in todo:
                self._destroy(row)
        return self.rows

    def _destroy(self, row):
        try:
            gone = self.terminate(row["_provider"], row["id"])
        except http.ApiError as e:
            row["action"] = "destroy_failed"
            row["error"] = e.message
            return
        row["action"] = "destroyed" if gone is not False else "already_gone"

    def result_rows(self):
        return [{k: v for k, v in r.items() if not k.startswith("_")} for r in self.rows]

    def failures(self):
        """Messages that must fail the run: provider listings that failed, destroys that failed."""
        out = ["%s: %s" % (n, e["message"]) for n, e in sorted(self.errors.items())]
        out += ["could not destroy %s %s (%s): %s" % (r["provider"], r["id"], r["name"], r.get("error"))
                for r in self.rows if r["action"] == "destroy_failed"]
        return out


def provider_error(name, err):
    d = err.to_dict()
    d["provider"] = name
    hint = ""
    if err.status == 410:
        hint = " (the endpoint is gone: update gpu.ops)"
    d["message"] = "listing %s failed, so nothing was read as 'no instances': %s%s" % (name, err.message, hint)
    return d


# ---------------------------------------------------------------------------- the table people read
COLUMNS = (("provider", "PROVIDER"), ("id", "ID"), ("name", "NAME"), ("run_id", "RUN"), ("owner", "OWNER"),
           ("price", "USD/H"), ("cost", "COST SO FAR"), ("action", "ACTION"), ("why", "WHY"))


def table(rows, now=None):
    """Lines of a fixed-width table (one per instance) and a total line."""
    if not rows:
        return ["nothing to reap"]
    cells = []
    for r in rows:
        cells.append({"provider": r["provider"], "id": r["id"], "name": r["name"] or "", "run_id": r["run_id"] or "",
                      "owner": r["owner"] or "", "action": r["action"], "why": r["why"],
                      "price": "%.3f" % r["price_per_hour"] if r["price_per_hour"] is not None else "?",
                      "cost": "%.2f" % r["cost_so_far"] if r["cost_so_far"] is not None else "?"})
    widths = {k: max(len(h), max(len(c[k]) for c in cells)) for k, h in COLUMNS}
    lines = ["  ".join(h.ljust(widths[k]) for k, h in COLUMNS).rstrip()]
    for c in cells:
        lines.append("  ".join(c[k].ljust(widths[k]) for k, _h in COLUMNS).rstrip())
    per_hour = sum(r["price_per_hour"] or 0 for r in rows)
    cost = sum(r["cost_so_far"] or 0 for r in rows)
    when = " at %s" % utc_iso(now) if now is not None else ""
    lines.append("%d instance(s), %.3f USD/h, about %.2f USD so far%s" % (len(rows), per_hour, cost, when))
    return lines
