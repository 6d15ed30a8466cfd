"""Typed progress events built from ansible-runner's event stream.

ansible-runner hands every Ansible callback event (and every line printed outside one, as ``verbose``) to an
event handler. ``EventTranslator`` turns the ones a user cares about into small dataclasses:

- ``StepStarted`` / ``StepEnded``: a play (``kind="play"``, the pipeline's steps) or a task (``kind="task"``).
- ``NodeReady``: an instance a provisioning module returned with SSH reachable.
- ``JobStarted``: ``gpu.ops.job`` started a job on a host (its job id, tmux session, attach command).
- ``JobProgress``: a ``gpu.ops.job_wait`` progress line, or the wait's final result (``done=True``).
- ``CollectDone``: ``gpu.ops.collect_results`` copied a host's results.
- ``Failure``: a task failed (not ignored) or a host was unreachable.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# gpu.ops.job_wait's line: "  [host] <job_id>: <what>, waited <dur> | <last log line>"
PROGRESS = re.compile(r"^\s*\[(?P<host>[^\]]+)\] (?P<job_id>\S+): (?P<what>.*?), waited (?P<waited>\S+) \| ?(?P<line>.*)$")


def _is_instance_action(action: str) -> bool:
    """gpu.ops.gpu_instance and every provider's own <provider>_instance module."""
    return action.endswith("_instance")


@dataclass
class Event:
    at: float = field(default_factory=time.time, kw_only=True)

    @property
    def kind_name(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict:
        return {"event": self.kind_name, **asdict(self)}


@dataclass
class StepStarted(Event):
    name: str
    kind: str = "play"  # play | task
    play: str = ""


@dataclass
class StepEnded(Event):
    name: str
    kind: str = "play"
    play: str = ""
    seconds: float = 0.0
    failed: bool = False


@dataclass
class NodeReady(Event):
    name: str
    provider: str = ""
    id: str = ""
    ssh_host: str = ""
    ssh_port: int | None = None
    ssh_user: str = ""
    gpu_model: str = ""
    gpu_count: int | None = None
    price_per_hour: float | None = None


@dataclass
class JobStarted(Event):
    host: str
    job_id: str = ""
    session: str = ""
    attach_command: str = ""


@dataclass
class JobProgress(Event):
    host: str
    job_id: str = ""
    state: str = ""
    waited: str = ""
    last_line: str = ""
    done: bool = False
    exit_code: int | None = None


@dataclass
class CollectDone(Event):
    host: str
    dest: str = ""
    files: int | None = None
    bytes: int | None = None


@dataclass
class Failure(Event):
    host: str
    task: str = ""
    play: str = ""
    action: str = ""
    msg: str = ""
    unreachable: bool = False


def _short(action: str) -> str:
    return (action or "").rsplit(".", 1)[-1]


class EventTranslator:
    """Feed raw ansible-runner events with ``feed(raw)``; returns the typed events they mean (often none)."""

    def __init__(self, mask=None):
        self.mask = mask or (lambda s: s)
        self.play: tuple[str, float] | None = None
        self.task: tuple[str, float] | None = None
        self.play_failed = False
        self.task_failed = False
        self.failures: list[Failure] = []
        self.stats: dict = {}
        self.first_failure_step: str | None = None

    def feed(self, raw: dict) -> list[Event]:
        kind = raw.get("event")
        data = raw.get("event_data") or {}
        handler = getattr(self, "_on_" + str(kind), None)
        return handler(raw, data) if handler else []

    def close(self) -> list[Event]:
        return self._end_task() + self._end_play()

    # ----------------------------------------------------------------- steps
    def _end_task(self) -> list[Event]:
        if not self.task:
            return []
        name, t0 = self.task
        self.task = None
        play = self.play[0] if self.play else ""
        return [StepEnded(name, "task", play, round(time.monotonic() - t0, 3), self.task_failed)]

    def _end_play(self) -> list[Event]:
        if not self.play:
            return []
        name, t0 = self.play
        self.play = None
        return [StepEnded(name, "play", name, round(time.monotonic() - t0, 3), self.play_failed)]

    def _on_playbook_on_play_start(self, raw, data):
        out = self._end_task() + self._end_play()
        name = data.get("play") or data.get("name") or ""
        self.play, self.play_failed = (name, time.monotonic()), False
        return out + [StepStarted(name, "play", name)]

    def _on_playbook_on_task_start(self, raw, data):
        out = self._end_task()
        name = data.get("task") or data.get("name") or ""
        self.task, self.task_failed = (name, time.monotonic()), False
        return out + [StepStarted(name, "task", data.get("play") or "")]

    def _on_playbook_on_stats(self, raw, data):
        self.stats = data.get("artifact_data") or {}
        return self.close()

    # ----------------------------------------------------------------- results
    def _on_runner_on_ok(self, raw, data):
        res = data.get("res") or {}
        action = _short(data.get("task_action"))
        host = data.get("host") or ""
        if _is_instance_action(action):
            return [self._node(i) for i in _instances(res)]
        # the pipeline's step actions run those actions inside (gpu.ops.run_node_train, run_node_collect) and return
        # the same fields
        if action == "run_node_train":
            action = "job" if res.get("outcome") is None else "job_wait"
            if action == "job_wait" and not res.get("job"):
                return []  # nothing was waited for (detached, or the job did not start)
        if action == "run_node_collect":
            action = "collect_results" if res.get("dest") else ""
        if action == "job" and isinstance(res.get("job"), dict) and res["job"].get("job_id"):
            job = res["job"]
            return [JobStarted(host, str(job.get("job_id")), str(job.get("session") or ""),
                               str(job.get("attach_command") or ""))]
        if action == "job_wait":
            return [self._wait_result(host, res)]
        if action == "collect_results":
            return [CollectDone(host, str(res.get("dest") or ""), res.get("files"), res.get("bytes"))]
        return []

    def _on_runner_on_failed(self, raw, data):
        res = data.get("res") or {}
        action = _short(data.get("task_action"))
        host = data.get("host") or ""
        out: list[Event] = [self._wait_result(host, res)] if action == "job_wait" and res.get("job") else []
        if data.get("ignore_errors"):
            return out
        return out + [self._failure(data, res, unreachable=False)]

    def _on_runner_on_unreachable(self, raw, data):
        if data.get("ignore_unreachable"):
            return []
        return [self._failure(data, data.get("res") or {}, unreachable=True)]

    def _on_verbose(self, raw, data):
        out = []
        for line in ANSI.sub("", raw.get("stdout") or "").splitlines():
            m = PROGRESS.match(line)
            if m:
                out.append(JobProgress(m["host"], m["job_id"], m["what"], m["waited"], self.mask(m["line"])))
        return out

    def _wait_result(self, host, res) -> JobProgress:
        job = res.get("job") or {}
        return JobProgress(host, str(job.get("job_id") or ""), str(job.get("status") or ""),
                           f"{res.get('elapsed', 0)}s", self.mask(str(job.get("last_line") or "")),
                           done=bool(res.get("done")), exit_code=job.get("exit_code"))

    def _failure(self, data, res, unreachable) -> Failure:
        self.task_failed = self.play_failed = True
        play = data.get("play") or ""
        if self.first_failure_step is None:
            self.first_failure_step = play
        msg = res.get("msg") or res.get("stderr") or res.get("reason") or ""
        f = Failure(data.get("host") or "", data.get("task") or "", play, str(data.get("task_action") or ""),
                    self.mask(str(msg)), unreachable)
        self.failures.append(f)
        return f

    @staticmethod
    def _node(inst: dict) -> NodeReady:
        return NodeReady(str(inst.get("name") or inst.get("id") or ""), str(inst.get("provider") or ""),
                         str(inst.get("id") or ""), str(inst.get("ssh_host") or ""), inst.get("ssh_port"),
                         str(inst.get("ssh_user") or ""), str(inst.get("gpu_model") or ""), inst.get("gpu_count"),
                         inst.get("price_per_hour"))


def _instances(res: dict) -> list[dict]:
    """Ready instances of a provisioning result: ``instances`` (gpu_instance) or ``instance`` (per provider)."""
    items = res.get("instances")
    if not isinstance(items, list):
        one = res.get("instance")
        items = [one] if isinstance(one, dict) else []
    return [i for i in items if isinstance(i, dict) and i.get("ssh_host") and i.get("status", "running") == "running"]
