# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.run_record (documentation: plugins/modules/run_record.py). Controller only."""

from __future__ import annotations

import os
import time

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.plugin_utils import _run

ARGUMENT_SPEC = {
    "state": {"type": "str", "required": True, "choices": ["init", "update", "outcome", "finish"]},
    "spec": {"type": "dict", "required": True},
    "instances": {"type": "list", "elements": "dict", "default": []},
    "destroyed": {"type": "list", "elements": "str", "default": []},
    "steps": {"type": "dict", "default": {}},
    "marks": {"type": "list", "elements": "dict", "default": []},
    "fields": {"type": "dict", "default": {}},
    "status": {"type": "str", "choices": list(_run.FINAL_STATUSES) + ["running"]},
    "failure": {"type": "dict"},
    "jobs": {"type": "list", "elements": "dict", "default": []},
    "collected": {"type": "list", "elements": "dict", "default": []},
    "exit_code": {"type": "int"},
    "message": {"type": "str"},
    "hosts": {"type": "list", "elements": "str", "default": []},
    "provenance": {"type": "dict", "default": {}},
    "billed": {"type": "list", "elements": "dict", "default": []},
    "torn_down": {"type": "bool"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        spec = args["spec"]
        run_dir = spec["run_dir"]
        if args["state"] == "outcome":  # reads nothing, writes nothing
            return dict(result, changed=False, **_run.outcome(spec, args["failure"], args["jobs"], args["collected"],
                                                              args["status"], args["message"]))
        if self._task.check_mode:
            return dict(result, changed=False, run_dir=run_dir, msg="check mode: %s not written" % run_dir)
        handler = getattr(self, "_" + args["state"])
        return dict(result, changed=True, run_dir=run_dir, **handler(args, spec, run_dir))

    def _init(self, args, spec, run_dir):
        """A new run's record, or a rerun of the same run_id: then what it rented and timed so far stays."""
        os.makedirs(run_dir, exist_ok=True)
        _run.write_json(os.path.join(run_dir, "spec.json"), _run.public_spec(spec))
        fresh = _run.read_json(os.path.join(run_dir, "run.json")) is None
        base = {"run_id": spec["run_id"], "status": "running", "torn_down": False, "owner": spec["owner"],
                "target": spec["target"], "started_at": spec["started_at"], "ended_at": None,
                "expires_at": spec["expires_at"], "run_dir": run_dir, "max_cost": spec.get("max_cost"),
                "job_id": spec["job_id"], "spec": _run.public_spec(spec), "detached": bool(spec.get("detach")),
                "kept": False}
        if fresh:
            base.update({"instances": [], "steps": {}})
        return {"record": _run.update_record(run_dir, dict(base, **args["fields"]))}

    def _update(self, args, spec, run_dir):
        now = time.time()
        changes = dict(args["fields"])
        if args["torn_down"] is not None:
            changes["torn_down"] = args["torn_down"]
        steps = dict(args["steps"], **_run.step_times(args["marks"]))
        rec = _run.update_record(run_dir, changes, instances=[_run.instance_entry(i, now) for i in args["instances"]],
                                 steps=steps)
        if args["destroyed"]:
            gone = set(str(i) for i in args["destroyed"])
            stamped = [dict(i, destroyed_at=_run.iso_ms(now)) for i in rec.get("instances", [])
                       if str(i.get("id")) in gone and not i.get("destroyed_at")]
            rec = _run.update_record(run_dir, {}, instances=stamped)
        left = _run.budget_seconds_left(rec.get("instances", []), spec.get("max_cost"), now)
        return {"record": rec, "budget_seconds_left": left}

    def _finish(self, args, spec, run_dir):
        now = time.time()
        changes = {"status": args["status"] or "failed", "exit_code": args["exit_code"],
                   "message": args["message"], "ended_at": _run.iso_ms(now)}
        if args["torn_down"] is not None:
            changes["torn_down"] = args["torn_down"]
        self._update(args, spec, run_dir)
        rec = _run.update_record(run_dir, dict(changes, **args["fields"]))
        billed = {(b.get("provider"), str(b.get("id"))): b for b in args["billed"]}
        cost = _run.cost_document(rec.get("instances", []), billed, now)
        _run.write_json(os.path.join(run_dir, "cost.json"), cost)
        _run.write_json(os.path.join(run_dir, "provenance.json"),
                        _run.provenance(args["provenance"], spec, rec.get("instances", [])))
        metrics = _run.merge_metrics(run_dir, args["hosts"])
        plot, why_no_plot = _run.plot_loss(run_dir, metrics)
        trend = _run.loss_trend(metrics)
        lines = _run.summary_lines(rec, cost, trend, plot)
        summary = {"run_id": rec["run_id"], "status": rec["status"], "exit_code": rec.get("exit_code"),
                   "run_dir": run_dir, "cost_usd": cost["total"]["estimated_usd"],
                   "billed_usd": cost["total"].get("billed_usd"), "steps": rec.get("steps", {}),
                   "nodes": [i.get("name") for i in rec.get("instances", [])] or rec.get("homelab_hosts", []),
                   "loss": list(trend) if trend else None, "summary": "\n".join(lines)}
        _run.write_json(os.path.join(run_dir, "summary.json"), summary)
        return {"record": rec, "cost": cost, "summary": summary, "summary_lines": lines, "plot": plot,
                "plot_skipped": why_no_plot}
