# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.collect_results (documentation: plugins/modules/collect_results.py).

The work is ``plugin_utils/_collect_local.Collector`` (shared with the gpuops CLI's exec and sync) over the task's
connection: one manifest call of the collect node helper, one stream per source, every file verified.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.gpu.ops.plugins.plugin_utils._collect_local import CollectError, Collector
from ansible_collections.gpu.ops.plugins.plugin_utils._node_helper import ActionTransport, HelperFailed, NodeHelper

display = Display()

ARGUMENT_SPEC = {
    "dest": {"type": "path", "required": True},
    "job_id": {"type": "str"},
    "jobs_dir": {"type": "str", "default": "~/.bifrost/jobs"},
    "paths": {"type": "list", "elements": "raw", "default": []},
    "base_dir": {"type": "str", "default": "~/.bifrost/workspace"},
    "exclude": {"type": "list", "elements": "str", "default": []},
    "transfer": {"type": "str", "default": "auto", "choices": ["auto", "rsync", "tar", "fetch"]},
    "compress": {"type": "bool", "default": False},
    "verify_retries": {"type": "int", "default": 2},
    "on_mismatch": {"type": "str", "default": "fail", "choices": ["fail", "warn"]},
    "verify": {"type": "str", "default": "changed", "choices": ["changed", "always"]},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        transport = ActionTransport(self, task_vars)
        collector = Collector(transport, NodeHelper(transport, "collect"), check_mode=self._task.check_mode,
                              progress=lambda msg: display.display(msg, stderr=True))
        try:
            return collector.collect(result, args, task_vars.get("inventory_hostname", "node"))
        except (CollectError, HelperFailed) as exc:
            return dict(result, failed=True, msg=str(exc))
