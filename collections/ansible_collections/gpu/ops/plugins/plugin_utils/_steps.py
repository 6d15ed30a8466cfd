# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One pipeline step as one task: a step action runs the collection's own actions in its worker. PRIVATE.

A task costs the controller a worker process, the templating of every variable in scope and a callback round,
about 20-50 ms of CPU per host, however little it does; a step written as a chain of include_role, set_fact and
marks paid that twenty times per node. A step action (``run_node_prepare``, ``run_node_train`` ...) calls the same
action plugins the roles call (``gpu.ops.node_tools``, ``gpu.ops.workspace_deploy`` ...) in-process, on the
task's connection, with the arguments the roles would give them, so the node work is the same code and the same
round trips; only the per-task bookkeeping is gone. Each sub-step's outcome is kept; an unreachable node or a
failing sub-step ends the step with its name, never the task (a failed host would end the playbook before its
teardown).
"""

from __future__ import annotations

import time

from ansible.errors import AnsibleConnectionFailure
from ansible.utils.display import Display

display = Display()


class StepUnreachable(Exception):
    """The node stopped answering during a sub-step."""

    def __init__(self, step, msg):
        Exception.__init__(self, msg)
        self.step = step


class StepFailed(Exception):
    def __init__(self, step, result):
        Exception.__init__(self, result.get("msg") or "%s failed" % step)
        self.step = step
        self.result = result


class StepRunner(object):
    """Runs collection actions inside a step action; keeps when each named sub-step ended (``marks``)."""

    def __init__(self, action, task_vars):
        self.action = action
        self.task_vars = task_vars
        self.marks = {"start": time.time()}
        self.results = {}

    def call(self, step, name, args, keep_as=None):
        """``gpu.ops.<name>`` with ``args`` on this task's connection; its result, kept under ``keep_as`` (default
        ``step``). Raises StepUnreachable when the node did not answer and StepFailed when the action failed,
        both naming ``step``."""
        parent = self.action
        task = parent._task.copy(exclude_parent=False, exclude_tasks=True)
        task.args = {k: v for k, v in args.items() if v is not None}
        task.action = "gpu.ops." + name
        handler = parent._shared_loader_obj.action_loader.get(
            "gpu.ops." + name, task=task, connection=parent._connection, play_context=parent._play_context,
            loader=parent._loader, templar=parent._templar, shared_loader_obj=parent._shared_loader_obj)
        try:
            result = handler.run(task_vars=self.task_vars)
        except AnsibleConnectionFailure as exc:
            self.results[keep_as or step] = {"failed": True, "unreachable": True, "msg": str(exc)}
            raise StepUnreachable(step, str(exc)) from exc
        except Exception as exc:  # pylint: disable=broad-except
            # any error ends the step with its name: a failed task would end the playbook before its teardown
            self.results[keep_as or step] = {"failed": True, "msg": "%s: %s" % (type(exc).__name__, exc)}
            raise StepFailed(step, self.results[keep_as or step]) from exc
        self.results[keep_as or step] = result
        if result.get("unreachable"):
            raise StepUnreachable(step, result.get("msg") or "no answer")
        if result.get("failed"):
            raise StepFailed(step, result)
        return result

    def mark(self, name):
        self.marks[name] = time.time()


def say(line):
    """A line for the person watching (stderr, as the progress lines of job_wait and workspace_deploy)."""
    display.display(line, stderr=True)
