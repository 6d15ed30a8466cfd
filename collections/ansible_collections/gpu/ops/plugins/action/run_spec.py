# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.run_spec (documentation: plugins/modules/run_spec.py).

Runs on the controller only: it reads the run spec from the play's variables (extra vars from ``-e @run.yml``,
an AWX survey, ansible-runner's extravars), checks everything that can be checked before money is spent, and
returns the normalized spec. It never calls a provider API.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.plugin_utils import _run


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        raw = {}
        for key in _run.SPEC:
            if key in self._task.args:
                raw[key] = self._task.args[key]
            elif key in task_vars:
                raw[key] = self._templar.template(task_vars[key])
        unknown = sorted(set(self._task.args) - set(_run.SPEC))
        if unknown:
            return dict(result, failed=True, msg="unknown run spec key(s): %s" % ", ".join(unknown))
        try:
            raw = self._coerce(raw)
            spec = _run.normalize(raw, os.getcwd(), os.environ)
        except _run.SpecError as exc:
            problems = exc.problems
            return dict(result, failed=True, problems=problems, msg="the run spec cannot run (nothing was rented): "
                        + "; ".join(problems))
        return dict(result, changed=False, spec=spec, msg="run %s: spec valid" % spec["run_id"])

    @staticmethod
    def _coerce(raw):
        """Types as the argument spec says, with one clear message per bad value (surveys send strings)."""
        from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

        spec = {k: dict(v, default=None) for k, v in _run.SPEC.items()}
        for opt in spec.values():
            opt.pop("default")
        res = ArgumentSpecValidator(spec).validate({k: v for k, v in raw.items() if v not in (None, "")})
        if res.error_messages:
            raise _run.SpecError(list(res.error_messages))
        return {k: v for k, v in res.validated_parameters.items() if v is not None}
