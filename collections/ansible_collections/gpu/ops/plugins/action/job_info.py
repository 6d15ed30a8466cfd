# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.job_info (documentation: plugins/modules/job_info.py).

Reads one job or all jobs with one call of the jobs node helper, adds attach_command.
"""

from __future__ import annotations

from ansible_collections.gpu.ops.plugins.plugin_utils._job_action import JobActionBase

ARGUMENT_SPEC = {
    "job_id": {"type": "str"},
    "name": {"type": "str"},
    "log_lines": {"type": "int", "default": 20},
    "root": {"type": "str", "default": "~/.bifrost"},
}


class ActionModule(JobActionBase):

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC,
                                                   mutually_exclusive=[("job_id", "name")])
        res = self._run_helper("info", args, task_vars)
        self._decorate(res.get("job"), task_vars)
        for job in res.get("jobs") or []:
            self._decorate(job, task_vars)
        result.update(res)
        return result
