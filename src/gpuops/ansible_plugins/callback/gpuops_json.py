"""Stdout callback for tests and tools: one JSON document at the end of the run.

The shape follows ansible.posix.json (not part of ansible-core, and not installed here):
``{"plays": [{"play": {...}, "tasks": [{"task": {"name", "id", "duration_s"}, "hosts": {host: result}}]}],
"stats": {...}}``; ``duration_s`` runs from the task's start to its last host result, ``cpu_s`` is the controller CPU from the task's
start to the next one's (this process and its reaped workers), ``action`` and ``role`` say what ran (benchmarks
read them).
Used by gpuops.testing.run_playbook(json_output=True).
"""

from __future__ import annotations

import json
import resource
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: gpuops_json
type: stdout
short_description: the whole run as one JSON document (ansible.posix.json shape)
description: Collects every task result per host and prints one JSON document when the run ends.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "gpuops_json"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.plays: list[dict] = []

    def v2_playbook_on_play_start(self, play):
        self._close_task()
        self.plays.append({"play": {"name": play.get_name(), "id": str(play._uuid)}, "tasks": []})

    @staticmethod
    def _cpu() -> float:
        """Controller CPU so far: this process and its reaped children (the task workers and their ssh)."""
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def _close_task(self):
        """The CPU of the task that just ended (the linear strategy runs one task at a time): up to now."""
        if self.plays and self.plays[-1]["tasks"] and "_cpu0" in self.plays[-1]["tasks"][-1]:
            entry = self.plays[-1]["tasks"][-1]
            entry["task"]["cpu_s"] = round(self._cpu() - entry.pop("_cpu0"), 4)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close_task()
        if not self.plays:
            self.plays.append({"play": {"name": "", "id": ""}, "tasks": []})
        self.plays[-1]["tasks"].append({"task": {"name": task.get_name(), "id": str(task._uuid), "duration_s": 0.0,
                                                 "action": task.action, "role": task._role.get_name() if task._role else None},
                                        "hosts": {}, "_t0": time.monotonic(), "_cpu0": self._cpu()})

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _record(self, result, **extra):
        res = getattr(result, "result", None)
        if res is None:
            res = result._result
        data = json.loads(self._dump_results(res, indent=None))
        data.update(extra)
        host = result.host if hasattr(result, "host") else result._host
        task = result.task if hasattr(result, "task") else result._task
        for entry in reversed(self.plays[-1]["tasks"] if self.plays else []):
            if entry["task"]["id"] == str(task._uuid):
                entry["hosts"][host.get_name()] = data
                entry["task"]["duration_s"] = round(time.monotonic() - entry["_t0"], 4)
                return

    def v2_runner_on_ok(self, result, **kwargs):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._record(result, unreachable=True)

    def v2_runner_on_skipped(self, result, **kwargs):
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats):
        self._close_task()
        summary = {h: stats.summarize(h) for h in sorted(stats.processed)}
        for play in self.plays:
            for entry in play["tasks"]:
                entry.pop("_t0", None)
        self._display.display(json.dumps({"plays": self.plays, "stats": summary}, indent=1, sort_keys=True))
