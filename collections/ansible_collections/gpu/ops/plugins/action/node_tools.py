# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.node_tools (documentation: plugins/modules/node_tools.py).

One POSIX sh round trip over the task's connection (plugins/plugin_utils/_node_tools.py): the node may have
no Python yet, so no module and no node helper can run before this.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.plugin_utils import _node_tools as tools

ARGUMENT_SPEC = {
    "require": {"type": "list", "elements": "str", "default": list(tools.DEFAULT_REQUIRE),
                "choices": sorted(tools.PACKAGES)},
    "optional": {"type": "list", "elements": "str", "default": list(tools.DEFAULT_OPTIONAL),
                 "choices": sorted(tools.PACKAGES)},
    "install": {"type": "bool", "default": True},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        install = args["install"] and not self._task.check_mode
        cmd = tools.script(args["require"], args["optional"], install)
        res = self._low_level_execute_command(cmd, sudoable=True)
        found = tools.parse(res.get("stdout") or "")
        if res.get("rc") != 0 and "missing" not in found and "cached" not in found:
            result.update(failed=True, msg="node preparation did not run (rc %s): %s" % (
                res.get("rc"), (res.get("stderr") or res.get("stdout") or "no output").strip()[-500:]))
            return result
        out = tools.outcome(found, args["require"], args["install"])
        if self._task.check_mode and out.get("missing"):
            # nothing was installed: say what a real run would do
            out.update(changed=True, failed=False, msg="would install %s" % ", ".join(out["missing"]))
        result.update(out)
        return result
