# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin base of the instance modules: run the module as Ansible's ``normal`` action would (async and
check mode included), with ``env`` handed over as one no_log string. PRIVATE to the collection, may change.

Why: see ``module_utils/_secret_env.py`` - secrets in ``env`` must reach no log, and a no_log dict would make
Ansible star out short values such as ``1`` everywhere in the result.
"""

from __future__ import annotations

from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.gpu.ops.plugins.module_utils._secret_env import opaque_env, redact_env


class EnvActionModule(NormalAction):

    def _execute_module(self, module_name=None, module_args=None, *args, **kwargs):  # pylint: disable=keyword-arg-before-vararg
        if module_args is None:
            module_args = self._task.args
        return super(EnvActionModule, self)._execute_module(module_name, opaque_env(module_args), *args, **kwargs)

    def run(self, tmp=None, task_vars=None):
        return redact_env(super(EnvActionModule, self).run(tmp, task_vars))
