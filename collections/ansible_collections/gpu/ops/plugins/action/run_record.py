# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.run_record (documentation: plugins/modules/run_record.py). Controller only.

The run's state and status are written through ``module_utils/lifecycle.py`` only (its transitions are checked
there); everything else is merged into run.json under the same lock.
"""

from __future__ import annotations

import os
import time

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.module_utils import lifecycle
from ansible_collections.gpu.ops.plugins.plugin_utils import _run

ARGUMENT_SPEC = {
    "state": {"type": "str", "required": True, "choices": ["init", "update", "outcome", "finish"]},
    "spec": {"type": "dict", "required": True},
    "instances": {"type": "list", "elements": "dict", "default": []},
    "destroyed": {"type": "list", "elements": "str", "default": []},
    "destroyed_at": {"type": "dict", "default": {}},
    "steps": {"type": "dict", "default": {}},
    "marks": {"type": "list", "elements": "dict", "default": []},
    "node_tools": {"type": "dict", "default": {}},
    "play_marks": {"type": "str"},
    "fields": {"type": "dict", "default": {}},
    "status": {"type": "str", "choices": list(lifecycle.OUTCOMES)},
    "failure": {"type": "dict"},
    "jobs": {"type": "list", "elements": "dict", "default": []},
    "job_hosts": {"type": "dict", "default": {}},
    "collected": {"type": "list", "elements": "dict", "default": []},
    "exit_code": {"type": "int"},
    "message": {"type": "str"},
    "hosts": {"type": "list", "elements": "str", "default": []},
    "nodes": {"type": "list", "elements": "dict", "default": []},
    "provenance": {"type": "dict", "default": {}},
    "billed": {"type": "list", "elements": "dict", "default": []},
    "torn_down": {"type": "bool"},
    "to": {"type": "str", "choices": list(lifecycle.STATES)},
    "command": {"type": "str", "default": "launch"},
    "job": {"type": "dict"},
    "ending": {"type": "str", "default": "pipeline", "choices": ["pipeline", "down"]},
    "final_state": {"type": "str", "choices": ["torn_down", "kept", "detached", "tearing_down"]},
}


def playbook_owner(command):
    """The owner of a transient state written from a task: the ansible-playbook process (this worker's parent)."""
    return lifecycle.owner_of(os.getppid(), command)


NODE_TOOLS_KEYS = ("tools", "installed", "missing", "cached", "manager", "failed")


def _node_tools(run_dir, results):
    """What node preparation found per host, merged over the record's earlier rounds (replacements)."""
    merged = dict((lifecycle.read_record(run_dir) or {}).get("node_tools") or {})
    for host, res in results.items():
        merged[host] = {k: res.get(k) for k in NODE_TOOLS_KEYS if k in res}
    return merged


def play_marks(task_vars, name):
    """The step marks (the variable ``name``) and node preparation results (``node_tools_result``) of the play's
    hosts, read from their variables (one task at the end of a node play instead of templating them per host)."""
    hostvars = task_vars.get("hostvars") or {}
    marks, tools = [], {}
    for host in task_vars.get("ansible_play_hosts_all") or []:
        hv = hostvars.get(host) or {}
        if hv.get(name):
            marks.append(dict(hv[name]))
        if hv.get("node_tools_result"):
            tools[host] = dict(hv["node_tools_result"])
    return {"marks": marks, "node_tools": tools}


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
        if args["play_marks"]:
            args = dict(args, **play_marks(task_vars, args["play_marks"]))
        if args["state"] == "outcome":  # reads the record, writes nothing
            rec = lifecycle.read_record(run_dir) or {}
            return dict(result, changed=False, **_run.outcome(
                spec, args["failure"], args["jobs"], args["collected"], args["status"], args["message"],
                ending=args["ending"], record=rec))
        if self._task.check_mode:
            return dict(result, changed=False, run_dir=run_dir, msg="check mode: %s not written" % run_dir)
        handler = getattr(self, "_" + args["state"])
        try:
            return dict(result, changed=True, run_dir=run_dir, **handler(args, spec, run_dir))
        except lifecycle.LifecycleError as exc:
            return dict(result, failed=True, msg=str(exc))

    def _init(self, args, spec, run_dir):
        """A new run's record (state planned), or a new launch of a run id that ended: then what it rented, timed
        and ran so far stays."""
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        lifecycle.write_json(os.path.join(run_dir, "spec.json"), _run.public_spec(spec))
        fresh = lifecycle.read_record(run_dir) is None
        base = {"run_id": spec["run_id"], "owner_name": spec["owner"], "target": spec["target"],
                "started_at": spec["started_at"], "expires_at": spec["expires_at"], "run_dir": run_dir,
                "max_cost": spec.get("max_cost"), "job_id": spec["job_id"], "spec": _run.public_spec(spec),
                "kind": "session" if args["command"] == "up" else "pipeline", "idle_timeout": spec.get("idle_timeout"),
                "ttl": spec.get("ttl")}
        if fresh:
            base.update({"instances": [], "steps": {}, "jobs": [], "hosts": []})
        base.update(args["fields"])
        owner = playbook_owner(args["command"])
        if fresh:
            rec = lifecycle.transition(run_dir, "planned", owner=owner, fields=dict(base, status="running"))
        else:
            rec = lifecycle.restart(run_dir, owner, base)
        return {"record": rec}

    def _update(self, args, spec, run_dir):
        now = time.time()
        changes = dict(args["fields"])
        if args["nodes"]:
            changes["hosts"] = args["nodes"]
        if args["node_tools"]:
            changes["node_tools"] = _node_tools(run_dir, args["node_tools"])
        steps = dict(args["steps"], **_run.step_times(args["marks"]))
        rec = lifecycle.update_record(run_dir, changes, instances=[_run.instance_entry(i, now) for i in args["instances"]],
                                      steps=steps)
        if args["destroyed"]:
            gone = set(str(i) for i in args["destroyed"])
            when = {str(k): float(v) for k, v in args["destroyed_at"].items()}
            stamped = [dict(i, destroyed_at=_run.iso_ms(min(when.get(str(i.get("id")), now), now)))
                       for i in rec.get("instances", []) if str(i.get("id")) in gone and not i.get("destroyed_at")]
            rec = lifecycle.update_record(run_dir, {}, instances=stamped)
        if args["job"]:
            rec = lifecycle.job_started(run_dir, args["job"])
        if args["job_hosts"]:
            lifecycle.job_ended(run_dir, spec["job_id"], _job_hosts(args["job_hosts"]))
        if args["to"]:
            rec = lifecycle.transition(run_dir, args["to"], owner=playbook_owner(args["command"]))
        left = _run.budget_seconds_left(rec.get("instances", []), spec.get("max_cost"), now)
        return {"record": rec, "budget_seconds_left": left}

    def _finish(self, args, spec, run_dir):
        now = time.time()
        self._update(dict(args, to=None), spec, run_dir)
        lifecycle.decide_outcome(run_dir, args["status"] or "failed", args["message"], args["exit_code"])
        final = args["final_state"] or ("torn_down" if args["torn_down"] is not False else "tearing_down")
        fields = dict(args["fields"], ended_at=_run.iso_ms(now))
        # a teardown that could not destroy everything stays tearing_down with no owner: `gpuops down` again
        owner = None if final == "tearing_down" else playbook_owner(args["command"])
        current = lifecycle.read_record(run_dir) or {}
        if final == "torn_down" and current.get("state") == "torn_down":
            # another teardown of the same run (the guardian's, a second gpuops down) finished first
            rec = lifecycle.update_record(run_dir, {k: v for k, v in fields.items() if k != "ended_at"})
        else:
            rec = lifecycle.transition(run_dir, final, owner=owner, fields=fields)
        billed = {(b.get("provider"), str(b.get("id"))): b for b in args["billed"]}
        cost = _run.cost_document(rec.get("instances", []), billed, now)
        lifecycle.write_json(os.path.join(run_dir, "cost.json"), cost)
        lifecycle.write_json(os.path.join(run_dir, "provenance.json"),
                             _run.provenance(args["provenance"], spec, rec.get("instances", [])))
        results = os.path.join(run_dir, spec.get("job_results") or "")
        metrics = _run.merge_metrics(run_dir, args["hosts"], results)
        plot, why_no_plot = _run.plot_loss(run_dir, metrics)
        trend = _run.loss_trend(metrics)
        lines = _run.summary_lines(rec, cost, trend, plot)
        summary = {"run_id": rec["run_id"], "status": rec["status"], "state": rec["state"],
                   "exit_code": rec.get("exit_code"), "run_dir": run_dir, "cost_usd": cost["total"]["estimated_usd"],
                   "billed_usd": cost["total"].get("billed_usd"), "steps": rec.get("steps", {}),
                   "nodes": [n.get("name") for n in (rec.get("instances") or []) + (rec.get("hosts") or [])],
                   "loss": list(trend) if trend else None, "summary": "\n".join(lines)}
        lifecycle.write_json(os.path.join(run_dir, "summary.json"), summary)
        return {"record": rec, "cost": cost, "summary": summary, "summary_lines": lines, "plot": plot,
                "plot_skipped": why_no_plot}


def _job_hosts(job_hosts):
    """{host: run_job fact} -> {host: {status, exit_code, msg}} for the record's job entry."""
    out = {}
    for host, job in job_hosts.items():
        if not isinstance(job, dict):
            continue
        status = "budget_exceeded" if job.get("budget_exceeded") in (True, "True", "true") else job.get("status")
        out[host] = {"status": status, "exit_code": _run._int_or_none(job.get("exit_code")),
                     "msg": str(job.get("msg") or "")[:2000]}
    return out
