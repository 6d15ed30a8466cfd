# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.run_node_train (documentation: plugins/modules/run_node_train.py).

A plain run's train step for one node (plugins/plugin_utils/_train.py): phase start runs gpu.ops.job, phase wait
gpu.ops.job_wait, in this worker, on this task's connection. Never fails the host; the outcome is the fact run_job.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.plugin_utils import _train
from ansible_collections.gpu.ops.plugins.plugin_utils._steps import StepRunner, say

ARGUMENT_SPEC = {
    "spec": {"type": "dict", "required": True},
    "phase": {"type": "str", "required": True, "choices": ["start", "wait"]},
    "hosts": {"type": "list", "elements": "str", "default": []},
    "wait_seconds": {"type": "int", "default": 0},
    "budget_seconds": {"type": "raw"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        spec, host = args["spec"], task_vars.get("inventory_hostname")
        hosts = args["hosts"] or [host]
        steps = StepRunner(self, task_vars)
        if args["phase"] == "start":
            run_job, job = _train.start(steps, spec, hosts, host, task_vars.get("hostvars") or {})
            if spec.get("detach"):
                say("  [%s] %s; attach: %s" % (host, run_job["status"], run_job["attach"] or "-"))
            # job: what gpu.ops.job returned (the job_id, session and attach command of the start event)
            return dict(result, changed=bool(steps.results.get("start", {}).get("changed")), msg=run_job["msg"],
                        job=job, ansible_facts={"run_job": run_job, "run_train_marks": steps.marks,
                                                "run_train_started": job})
        run_job = dict(task_vars.get("run_job") or {})
        marks = dict(task_vars.get("run_train_marks") or {"start": steps.marks["start"]})
        waited = {}
        if _train.waits_for(spec, task_vars.get("run_train_started")):
            budget = args["budget_seconds"]
            run_job = _train.wait(steps, spec, hosts, run_job, args["wait_seconds"],
                                  None if budget in (None, "") else budget)
            waited = steps.results.get("wait") or {}
        marks["train"] = time.time()
        # job, done, elapsed: as gpu.ops.job_wait returns them (the wait's event for ansible-runner's consumers)
        return dict(result, changed=False, msg=run_job.get("msg", ""), job=waited.get("job") or {},
                    done=bool(waited.get("done")), elapsed=waited.get("elapsed", 0), outcome=run_job,
                    ansible_facts={"run_job": run_job, "run_train_marks": marks})
