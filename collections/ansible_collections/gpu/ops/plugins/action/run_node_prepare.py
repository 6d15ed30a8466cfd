# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.run_node_prepare (documentation: plugins/modules/run_node_prepare.py).

The pipeline's prepare step for one node in one task (plugins/plugin_utils/_prepare.py): the same actions the
roles call, in this worker, on this task's connection. Never fails the host; the outcome is facts.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.plugin_utils import _prepare
from ansible_collections.gpu.ops.plugins.plugin_utils._steps import StepRunner, say

ARGUMENT_SPEC = {
    "spec": {"type": "dict", "required": True},
    "health": {"type": "bool", "default": True},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        steps = StepRunner(self, task_vars)
        facts = _prepare.prepare(steps, args["spec"], task_vars, health=args["health"])
        host = task_vars.get("inventory_hostname")
        line = self._summary(facts)
        say("  [%s] %s" % (host, line))
        changed = any(r.get("changed") for r in steps.results.values())
        return dict(result, changed=changed, msg=line, state=facts["run_node_state"],
                    failure=facts.get("run_node_failure"), steps=sorted(steps.results), ansible_facts=facts)

    @staticmethod
    def _summary(facts):
        if facts["run_node_state"] != "ready":
            failure = facts["run_node_failure"]
            return "%s at %s: %s" % (facts["run_node_state"], failure["step"], failure["msg"])
        if "node_health_result" in facts:
            return "ready; " + _prepare.health_line(facts["node_health_result"])
        return "ready (no health gate)"
