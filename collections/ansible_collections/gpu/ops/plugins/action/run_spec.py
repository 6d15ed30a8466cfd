# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.run_spec (documentation: plugins/modules/run_spec.py).

Runs on the controller only: it reads the run spec from the play's variables (extra vars from ``-e @run.yml``,
an AWX survey, ansible-runner's extravars), checks everything that can be checked before money is spent (a key
that is not a spec key among the extra vars is a typo: refused, with the nearest key), reads the run's record and
asks the lifecycle (``module_utils/lifecycle.py``) whether the playbook's ``lifecycle_command`` may act in the run's state,
and returns the normalized spec. It never calls a provider API.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.module_utils import lifecycle
from ansible_collections.gpu.ops.plugins.plugin_utils import _run


def extra_var_keys(loader):
    """The names of every extra variable of this ansible-playbook run (``-e`` files, mappings and k=v)."""
    try:
        from ansible import context
        from ansible.utils.vars import load_extra_vars
    except ImportError:
        return []
    if not context.CLIARGS.get("extra_vars"):
        return []
    return list(load_extra_vars(loader))


def _truthy(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def unknown_key_problems(keys):
    known = set(_run.SPEC) | _run.CONTROL_VARS | _run.NORMALIZED_KEYS
    keys = [k for k in keys if not str(k).startswith(_run.FOREIGN_PREFIXES)]
    return lifecycle.unknown_keys_problems(keys, known)


def forks_warning(spec, command):
    """Node steps run on every node at once only with a fork per node; with fewer they run in batches."""
    from ansible import context

    forks = (context.CLIARGS or {}).get("forks")
    nodes = int(spec.get("nodes") or 1)
    if command not in ("launch", "up") or spec.get("target") != "cloud" or not forks or int(forks) >= nodes:
        return None
    return ("forks is %s for %d nodes: every node step runs in %d batches, one after the other; set forks to %d or "
            "more (-f, ANSIBLE_FORKS, or [defaults] forks in ansible.cfg)" % (
                forks, nodes, -(-nodes // int(forks)), nodes))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        args = dict(self._task.args)
        command = args.pop("lifecycle_command", None) or "launch"
        if command not in lifecycle.TABLE:
            return dict(result, failed=True, msg="lifecycle_command must be one of %s" % ", ".join(lifecycle.COMMANDS))
        raw = {}
        for key in _run.SPEC:
            if key in args:
                raw[key] = args[key]
            elif key in task_vars:
                raw[key] = self._templar.template(task_vars[key])
        problems = lifecycle.unknown_keys_problems(args, _run.SPEC) + unknown_key_problems(
            extra_var_keys(self._loader))
        if problems:
            return dict(result, failed=True, problems=problems,
                        msg="the run spec cannot run (nothing was rented): " + "; ".join(problems))
        decision, record = self._decide(command, raw)
        if command == "down" and decision.verdict == lifecycle.RUN and decision.state in lifecycle.TRANSIENT \
                and not _truthy(task_vars.get("force")):
            try:  # a live owner here (a pipeline, an exec) ends its own run first; then decide again
                lifecycle.take_over(self._run_dir(raw))
            except lifecycle.LifecycleError as exc:
                return dict(result, failed=True, msg=str(exc))
            decision, record = self._decide(command, raw)
        if decision.verdict == lifecycle.REFUSE:
            return dict(result, failed=True, lifecycle=decision.to_dict(), msg=decision.msg)
        try:
            raw = self._coerce(raw)
            spec = _run.normalize(raw, os.getcwd(), os.environ, record=record, command=command)
        except _run.SpecError as exc:
            problems = exc.problems
            return dict(result, failed=True, problems=problems, msg="the run spec cannot run (nothing was rented): "
                        + "; ".join(problems))
        if spec["target"] == "ssh" and command in ("launch", "up") and not self._task.check_mode:
            problems = _run.probe_ssh_nodes(spec)
            if problems:
                return dict(result, failed=True, problems=problems,
                            msg="the run cannot use its ssh hosts (nothing was started): " + "; ".join(problems))
        out = dict(result, changed=False, spec=spec, lifecycle=decision.to_dict(),
                   noop=decision.verdict == lifecycle.NOOP, msg=decision.msg or "run %s: spec valid" % spec["run_id"])
        few = forks_warning(spec, command)
        if few:
            out["warnings"] = [few]
        return out

    @staticmethod
    def _run_dir(raw):
        runs_dir = os.path.abspath(os.path.expanduser(str(raw.get("runs_dir") or _run.SPEC["runs_dir"]["default"])))
        return os.path.join(runs_dir, str(raw["run_id"]))

    def _decide(self, command, raw):
        """The lifecycle's decision for the run named by ``run_id`` (a new run: no record)."""
        rec = lifecycle.read_record(self._run_dir(raw)) if raw.get("run_id") else None
        return lifecycle.decide(command, rec, raw.get("run_id")), rec

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
