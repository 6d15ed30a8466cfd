# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.job_bootstrap (documentation: plugins/modules/job_bootstrap.py).

Runs the node module, keeps ``env`` values out of the result and adds the bootstrap session's attach command.
"""

from __future__ import annotations

from ansible_collections.gpu.ops.plugins.plugin_utils._job_action import JobActionBase, attach_command


class ActionModule(JobActionBase):

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        res = self._run_node_module("job_bootstrap", self._task.args, task_vars)
        if res.get("session") and not res.get("failed"):
            res["attach_command"] = attach_command(res["session"], **self._target(task_vars))
        result.update(res)
        return result
