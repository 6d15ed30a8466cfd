# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.run_node_collect (documentation: plugins/modules/run_node_collect.py).

The collect step for one node in one task (plugins/plugin_utils/_collect_step.py). Never fails the host; the
outcome is facts.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.plugin_utils import _collect_step
from ansible_collections.gpu.ops.plugins.plugin_utils._steps import StepRunner

ARGUMENT_SPEC = {
    "spec": {"type": "dict", "required": True},
    "stop_job": {"type": "bool", "default": False},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        spec = args["spec"]
        steps = StepRunner(self, task_vars)
        # a managed run's restarted job has its own id and results folder (node_train_managed.yml)
        job_id = task_vars.get("run_job_id") or spec["job_id"]
        collected = _collect_step.collect(steps, spec, task_vars.get("inventory_hostname"), task_vars.get("run_job"),
                                          job_id, task_vars.get("run_collect_subdir"), args["stop_job"])
        if "collect" not in steps.marks:
            steps.mark("collect")
        changed = any(r.get("changed") for r in steps.results.values())
        done = steps.results.get("collect") or {}
        # dest, files, bytes: as gpu.ops.collect_results returns them (the collect's event for ansible-runner)
        return dict(result, changed=changed, msg=collected.get("msg") or "%s file(s) home" % collected["files"],
                    collected=collected, dest=done.get("dest"), files=done.get("files"), bytes=done.get("bytes"),
                    ansible_facts={"run_collected": collected, "run_marks": steps.marks})
