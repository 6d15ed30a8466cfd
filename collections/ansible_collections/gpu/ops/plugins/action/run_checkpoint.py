# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.run_checkpoint (documentation: plugins/modules/run_checkpoint.py). Controller only."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.plugin_utils import _managed

ARGUMENT_SPEC = {
    "run_dir": {"type": "path", "required": True},
    "hosts": {"type": "list", "elements": "str", "required": True},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        chosen = _managed.select_checkpoint(args["run_dir"], args["hosts"])
        msg = ("restart from checkpoint step %d" % chosen["step"]) if chosen["step"] else \
            "no complete checkpoint synced yet: the job restarts from scratch"
        return dict(result, changed=False, msg=msg, **chosen)
