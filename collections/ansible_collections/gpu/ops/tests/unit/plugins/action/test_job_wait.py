# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verdict and progress line of the gpu.ops.job_wait action plugin."""

from __future__ import annotations

import pytest

from ansible_collections.gpu.ops.plugins.action.job_wait import ActionModule

ARGS = {"job_id": "j1", "fail_on_failure": True, "ready_url": "http://127.0.0.1:8000/v1/models"}


def job(status, code=None, **extra):
    base = {"job_id": "j1", "status": status, "exit_code": code, "duration_s": 65, "session": "bifrost-j1",
            "log": "/n/job.log", "log_tail": ["epoch 1", "Traceback: boom"], "last_line": "Traceback: boom",
            "bootstrap": {"state": "none", "log": "/n/bootstrap.log", "log_tail": ["pip: no such package"]}}
    base.update(extra)
    return base


@pytest.mark.parametrize("status,code,failed,needles", [
    ("succeeded", 0, False, ["succeeded (exit code 0) in 0:01:05"]),
    ("failed", 1, True, ["failed with exit code 1", "Traceback: boom"]),
    ("failed", 137, True, ["exit code 137"]),
    ("killed", 143, True, ["killed with exit code 143"]),
    ("bootstrap_failed", 3, True, ["bootstrap failed (exit code 3)", "never ran", "pip: no such package"]),
    ("bootstrap_timeout", 124, True, ["bootstrap timeout (exit code 124)"]),
    ("lost", None, True, ["lost: gone", "Traceback: boom"]),
])
def test_finished_verdict(status, code, failed, needles):
    res = {"done": True}
    f, msg = ActionModule._verdict("finished", ARGS, job(status, code, lost_reason="gone"), res, 3)
    assert f is failed
    for n in needles:
        assert n in msg


def test_failure_can_be_tolerated():
    f, msg = ActionModule._verdict("finished", dict(ARGS, fail_on_failure=False), job("failed", 2), {"done": True}, 1)
    assert f is False and "exit code 2" in msg


def test_deadline_and_missing_job():
    f, msg = ActionModule._verdict("finished", ARGS, job("running"), {"done": False}, 30)
    assert f and "still running after 30s" in msg and "keeps running" in msg
    f, msg = ActionModule._verdict("finished", ARGS, job(None), {"done": True}, 0)
    assert f and "no job j1" in msg


def test_ready_verdicts():
    ok = ActionModule._verdict("ready", ARGS, job("running"), {"done": True, "ready": True, "ready_detail": "HTTP 200"}, 4)
    assert ok == (False, "job j1 ready after 4s: HTTP 200")
    f, msg = ActionModule._verdict("ready", ARGS, job("failed", 5), {"done": True, "ready": False}, 2)
    assert f and "ended (failed, exit code 5) before http://127.0.0.1:8000/v1/models answered" in msg
    f, msg = ActionModule._verdict("ready", ARGS, job("running"), {"done": False, "ready_detail": "refused"}, 9)
    assert f and "not ready after 9s: refused" in msg


@pytest.mark.parametrize("bstate,failed,needle", [
    ("done", False, "bootstrap of j1 done"),
    ("failed", True, "bootstrap of j1 failed (exit code 3"),
    ("timeout", True, "timed out"),
    ("lost", True, "lost"),
    ("running", True, "still running"),
    ("none", True, "no bootstrap"),
])
def test_bootstrapped_verdicts(bstate, failed, needle):
    boot = {"state": bstate, "exit_code": 3, "log": "/n/bootstrap.log", "log_tail": ["x"], "session": "s"}
    f, msg = ActionModule._verdict("bootstrapped", ARGS, job(None, bootstrap=boot), {"done": True}, 1)
    assert f is failed and needle in msg


def test_progress_line_shows_status_time_and_last_line():
    line = ActionModule._progress_line("gpu-1", "finished", job("running", last_line="epoch 3/10 loss 0.41"),
                                       75, {})
    assert line == "  [gpu-1] j1: running 0:01:05, waited 0:01:15 | epoch 3/10 loss 0.41"
    line = ActionModule._progress_line("gpu-1", "ready", job("running", last_line="loading"), 5,
                                       {"ready_detail": "connection refused"})
    assert "connection refused | loading" in line


def test_peer_board(tmp_path, monkeypatch):
    from ansible_collections.gpu.ops.plugins.action import job_wait

    monkeypatch.setattr(job_wait.C, "DEFAULT_LOCAL_TMP", str(tmp_path))
    a, b = job_wait.PeerBoard("j1", "node-a"), job_wait.PeerBoard("j1", "node-b")
    other_job = job_wait.PeerBoard("j2", "node-c")
    assert a.failed_peer() is None
    a.post({"status": "failed", "exit_code": 3})
    other_job.post({"status": "failed", "exit_code": 1})
    assert a.failed_peer() is None  # its own note does not count
    assert b.failed_peer() == {"host": "node-a", "status": "failed", "exit_code": 3}


class _Conn(object):
    resets = 0

    def reset(self):
        self.resets += 1


def _action_with(outcomes):
    """An ActionModule whose node calls return or raise ``outcomes`` in turn (no real connection)."""
    action = object.__new__(ActionModule)
    action._connection = _Conn()
    calls = []

    def run_helper(name, args, task_vars):
        calls.append(name)
        out = outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out

    action._run_helper = run_helper
    return action, calls


def test_a_dropped_connection_is_retried_with_backoff(monkeypatch):
    import time as _time

    from ansible.errors import AnsibleConnectionFailure

    from ansible_collections.gpu.ops.plugins.action import job_wait

    slept = []
    monkeypatch.setattr(job_wait.time, "sleep", slept.append)
    action, calls = _action_with([AnsibleConnectionFailure("ssh: Connection reset"),
                                  AnsibleConnectionFailure("ssh: Connection refused"), {"done": True}])
    res = action._round({"job_id": "j1"}, {}, "h", _time.monotonic() + 600)
    assert res == {"done": True} and len(calls) == 3 and slept == [2.0, 4.0] and action._connection.resets == 2

    action, calls = _action_with([AnsibleConnectionFailure("down")] * job_wait.CONNECTION_TRIES)
    with pytest.raises(AnsibleConnectionFailure):
        action._round({"job_id": "j1"}, {}, "h", _time.monotonic() + 600)
    assert len(calls) == job_wait.CONNECTION_TRIES

    action, calls = _action_with([AnsibleConnectionFailure("down"), {"done": True}])
    with pytest.raises(AnsibleConnectionFailure):  # no time left before the deadline: no retry
        action._round({"job_id": "j1"}, {}, "h", _time.monotonic() + 1)
