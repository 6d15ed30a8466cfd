# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.workspace_deploy (documentation: plugins/modules/workspace_deploy.py).

The work is ``plugin_utils/_workspace_deploy.Deployer`` (shared with the gpuops CLI's exec) over the task's
connection: one probe, and when something is missing one more call that carries the bundles.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.gpu.ops.plugins.plugin_utils._node_helper import ActionTransport, HelperFailed, NodeHelper
from ansible_collections.gpu.ops.plugins.plugin_utils._workspace_deploy import Deployer
from ansible_collections.gpu.ops.plugins.plugin_utils._workspace_local import GitError, LocalRepo

display = Display()

ARGUMENT_SPEC = {
    "src": {"type": "path"},
    "dest": {"type": "str", "default": "~/.bifrost/workspace"},
    "version": {"type": "str", "default": "HEAD"},
    "dirty": {"type": "str", "default": "warn", "choices": ["warn", "ship", "fail", "ignore"]},
    "submodules": {"type": "bool", "default": True},
    "clean": {"type": "bool", "default": False},
    "clean_ignored": {"type": "bool", "default": False},
    "clean_exclude": {"type": "list", "elements": "str", "default": []},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if args["state"] == "absent":
            try:
                out = NodeHelper.for_action(self, task_vars, "workspace").run(
                    "remove", {"dest": args["dest"], "check_mode": self._task.check_mode})
            except HelperFailed as exc:
                return dict(result, failed=True, msg=str(exc))
            return dict(result, **out)
        src = args["src"] or self._loader.get_basedir()
        host = (task_vars or {}).get("inventory_hostname", "node")
        timings = {}
        t0 = time.monotonic()
        try:
            repo = LocalRepo(src)
        except GitError as exc:
            return dict(result, failed=True, msg=str(exc))
        transport = ActionTransport(self, task_vars)
        deployer = Deployer(transport, NodeHelper(transport, "workspace"), check_mode=self._task.check_mode,
                            progress=lambda msg: display.display(msg, stderr=True))
        try:
            return deployer.deploy(result, args, repo, host, timings, t0)
        except (GitError, HelperFailed) as exc:
            return dict(result, failed=True, msg=str(exc))
        finally:
            repo.close()
