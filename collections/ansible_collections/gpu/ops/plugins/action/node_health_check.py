# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.node_health_check (documentation: plugins/modules/node_health_check.py).

Checks the arguments here, then runs the whole check on the node in one call of the ``health`` node helper
(``plugins/plugin_utils/_health_node.py``): one SSH round trip instead of a module payload.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.plugin_utils._node_helper import HelperActionMixin

# paths are "str", not "path": "~" is the node's home, expanded on the node
ARGUMENT_SPEC = {
    "min_score": {"type": "int", "default": 80},
    "expected_gpus": {"type": "int", "default": 0},
    "require_gpu": {"type": "bool", "default": True},
    "workspace": {"type": "str", "default": "~/.bifrost/workspace"},
    "history_dir": {"type": "str", "default": "~/.bifrost/health"},
    "history": {"type": "bool", "default": True},
    "breaker_failures": {"type": "int", "default": 3},
    "breaker_window": {"type": "int", "default": 300},
    "nvidia_smi": {"type": "str", "default": "nvidia-smi"},
    "timeout": {"type": "int", "default": 30},
}


class ActionModule(HelperActionMixin, ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        result.update(self._node_call("health", "check", args, task_vars))
        return result
