# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.job_bootstrap (documentation: plugins/modules/job_bootstrap.py).

Checks the arguments, starts (or skips) the bootstrap with one call of the jobs node helper, adds the bootstrap
session's attach command.
"""

from __future__ import annotations

from ansible_collections.gpu.ops.plugins.module_utils._secret_env import env_option
from ansible_collections.gpu.ops.plugins.plugin_utils._job_action import JobActionBase, attach_command

ARGUMENT_SPEC = {
    "job_id": {"type": "str", "required": True},
    "workdir": {"type": "str", "default": "~/.bifrost/workspace"},
    "command": {"type": "str"},
    "timeout": {"type": "int", "default": 600},
    "force": {"type": "bool", "default": False},
    "env": env_option(),
    "python": {"type": "str", "default": "python3"},
    "venv": {"type": "str", "default": ".venv"},
    "system_site_packages": {"type": "bool", "default": False},
    "hash_files": {"type": "list", "elements": "str", "default": []},
    "kill_grace": {"type": "int", "default": 10},
    "shell": {"type": "str", "default": "/bin/bash"},
    "root": {"type": "str", "default": "~/.bifrost"},
}


class ActionModule(JobActionBase):

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        res = self._run_helper("bootstrap", args, task_vars)
        if res.get("session") and not res.get("failed"):
            res["attach_command"] = attach_command(res["session"], **self._target(task_vars))
        result.update(res)
        return result
