# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.job (documentation: plugins/modules/job.py).

Checks the arguments, starts or kills the job with one call of the jobs node helper, adds attach_command.
"""

from __future__ import annotations

from ansible_collections.gpu.ops.plugins.module_utils._secret_env import env_option
from ansible_collections.gpu.ops.plugins.plugin_utils._job_action import JobActionBase

ARGUMENT_SPEC = {
    "job_id": {"type": "str", "required": True},
    "state": {"type": "str", "default": "started", "choices": ["started", "killed"]},
    "command": {"type": "str"},
    "workdir": {"type": "str", "default": "~/.bifrost/workspace"},
    "env": env_option(),
    "bootstrap": {"type": "str", "default": "auto", "choices": ["auto", "wait", "skip"]},
    "bootstrap_timeout": {"type": "int", "default": 600},
    "kill_grace": {"type": "int", "default": 10},
    "shell": {"type": "str", "default": "/bin/bash"},
    "name": {"type": "str"},
    "metadata": {"type": "dict", "default": {}},
    "root": {"type": "str", "default": "~/.bifrost"},
}


class ActionModule(JobActionBase):

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC,
                                                   required_if=[("state", "started", ["command"])])
        res = self._run_helper("start" if args["state"] == "started" else "kill", args, task_vars)
        self._decorate(res.get("job"), task_vars)
        result.update(res)
        return result
