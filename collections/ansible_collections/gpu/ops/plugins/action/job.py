# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.job (documentation: plugins/modules/job.py): runs the node module, adds attach_command."""

from __future__ import annotations

from ansible_collections.gpu.ops.plugins.plugin_utils._job_action import JobActionBase


class ActionModule(JobActionBase):

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        res = self._run_node_module("job", self._task.args, task_vars)
        self._decorate(res.get("job"), task_vars)
        result.update(res)
        return result
