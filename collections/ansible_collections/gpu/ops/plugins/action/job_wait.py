# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.job_wait (documentation: plugins/modules/job_wait.py).

Waits in rounds: each round is one call of the node module, which itself waits (polling files with backoff)
for at most one progress interval, so completion is seen at once and a progress line per host is printed
between rounds. The deadline is the controller's; the job keeps running when it passes.
"""

from __future__ import annotations

import json
import math
import os
import time

from ansible import constants as C
from ansible.errors import AnsibleConnectionFailure
from ansible.utils.display import Display

from ansible_collections.gpu.ops.plugins.plugin_utils._job_action import JobActionBase, format_duration

display = Display()

ARGUMENT_SPEC = {
    "job_id": {"type": "str", "required": True},
    "state": {"type": "str", "default": "finished", "choices": ["finished", "ready", "bootstrapped"]},
    "timeout": {"type": "int", "default": 86400},
    "progress_interval": {"type": "int", "default": 30},
    "progress": {"type": "bool", "default": True},
    "ready_url": {"type": "str"},
    "ready_status": {"type": "list", "elements": "int", "default": [200]},
    "ready_match": {"type": "str"},
    "fail_on_failure": {"type": "bool", "default": True},
    "log_lines": {"type": "int", "default": 20},
    "stop_on_peer_failure": {"type": "bool", "default": False},
    "root": {"type": "str", "default": "~/.bifrost"},
}
FIRST_ROUND = 10
PEER_POLL = 5
CONNECTION_TRIES = 5


class PeerBoard(object):
    """Controller-side notes between the forks waiting on the same job id (one file per host that failed).

    The forks of one ansible-playbook run share its local temp directory; job ids are unique per run.
    """

    def __init__(self, job_id, host):
        self.dir = os.path.join(C.DEFAULT_LOCAL_TMP, "gpuops-job-peers-%s" % job_id)
        self.host = host

    def post(self, job):
        try:
            os.makedirs(self.dir, exist_ok=True)
            with open(os.path.join(self.dir, "%s.json" % self.host.replace("/", "_")), "w") as fh:
                json.dump({"host": self.host, "status": job.get("status"), "exit_code": job.get("exit_code")}, fh)
        except OSError:
            pass

    def failed_peer(self):
        try:
            names = sorted(os.listdir(self.dir))
        except OSError:
            return None
        for name in names:
            try:
                with open(os.path.join(self.dir, name)) as fh:
                    peer = json.load(fh)
            except (OSError, ValueError):
                continue
            if peer.get("host") != self.host:
                return peer
        return None


def _tail_text(lines, indent="  "):
    lines = [ln for ln in (lines or []) if ln is not None]
    if not lines:
        return "%s(empty)" % indent
    return "\n".join(indent + ln for ln in lines)


class ActionModule(JobActionBase):

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC,
                                                   required_if=[("state", "ready", ["ready_url"])])
        host = (task_vars or {}).get("inventory_hostname", "?")
        job_id = args["job_id"]
        state = args["state"]
        interval = max(1, args["progress_interval"])
        peers = PeerBoard(job_id, host) if args["stop_on_peer_failure"] and state == "finished" else None
        # with peers to watch, look more often than we print
        poll = min(interval, PEER_POLL) if peers else interval
        start = time.monotonic()
        deadline = start + max(0, args["timeout"])
        next_print = start + min(interval, FIRST_ROUND)
        rounds = 0
        while True:
            left = deadline - time.monotonic()
            chunk = max(0, min(left, FIRST_ROUND if rounds == 0 else poll, poll))
            module_args = dict(args, timeout=int(math.ceil(chunk)))
            res = self._round(module_args, task_vars, host, deadline)
            rounds += 1
            if res.get("failed"):
                if self._task.check_mode and "no job" in str(res.get("msg", "")):
                    result.update(skipped=True, changed=False,
                                  msg="check mode: job %s was not started, nothing to wait for" % job_id)
                    return result
                result.update(res)
                return result
            job = self._decorate(res.get("job") or {}, task_vars)
            elapsed = time.monotonic() - start
            if res.get("done") or time.monotonic() >= deadline:
                break
            failed_peer = peers.failed_peer() if peers else None
            if failed_peer:
                return self._stop_for_peer(result, args, failed_peer, task_vars, elapsed)
            if args["progress"] and time.monotonic() >= next_print - 0.5:
                display.display(self._progress_line(host, state, job, elapsed, res), color="cyan", stderr=True)
                next_print = time.monotonic() + interval
        result.update(changed=False, done=bool(res.get("done")), ready=bool(res.get("ready")),
                      ready_detail=res.get("ready_detail"), job=job, elapsed=round(elapsed, 2))
        failed, msg = self._verdict(state, args, job, res, elapsed)
        result["msg"] = msg
        if failed:
            result["failed"] = True
            if peers and res.get("done"):
                peers.post(job)
        return result

    def _round(self, module_args, task_vars, host, deadline):
        """One node-side wait. A dropped SSH connection during a long wait is retried with backoff (the job runs
        on regardless); only CONNECTION_TRIES failures in a row, or the deadline, end the wait."""
        delay = 2.0
        for attempt in range(1, CONNECTION_TRIES + 1):
            try:
                return self._run_helper("wait", module_args, task_vars)
            except AnsibleConnectionFailure as exc:
                if attempt == CONNECTION_TRIES or time.monotonic() + delay >= deadline:
                    raise
                why = (str(exc).strip().splitlines() or ["?"])[-1]
                display.warning("[%s] lost the connection while waiting for job %s (%s); retrying in %ds"
                                % (host, module_args["job_id"], why, delay))
                try:
                    self._connection.reset()
                except Exception:  # pylint: disable=broad-exception-caught
                    pass  # a connection that cannot even reset is retried below anyway
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise AnsibleConnectionFailure("unreachable")  # not reached

    def _stop_for_peer(self, result, args, peer, task_vars, elapsed):
        """A peer's part of the same job ended badly: stop ours instead of waiting on a collective that hangs."""
        res = self._run_helper("kill", {"job_id": args["job_id"], "root": args["root"]}, task_vars)
        job = self._decorate(res.get("job") or {}, task_vars)
        result.update(changed=bool(res.get("changed")), failed=True, done=True, ready=False, ready_detail=None,
                      job=job, elapsed=round(elapsed, 2), stopped_for_peer=peer,
                      msg="job %s stopped on this node (%s, exit code %s): on %s it ended %s with exit code %s" % (
                          args["job_id"], job.get("status"), job.get("exit_code"), peer["host"], peer["status"],
                          peer.get("exit_code")))
        return result

    @staticmethod
    def _progress_line(host, state, job, elapsed, res):
        status = job.get("status")
        if status == "bootstrapping" or state == "bootstrapped":
            boot = job.get("bootstrap") or {}
            what = "bootstrap %s" % boot.get("state")
        else:
            what = "%s %s" % (status, format_duration(job.get("duration_s")))
        line = job.get("last_line") or ""
        if state == "ready" and res.get("ready_detail"):
            line = "%s | %s" % (res["ready_detail"], line)
        return "  [%s] %s: %s, waited %s | %s" % (host, job.get("job_id"), what, format_duration(elapsed),
                                                  line[:200])

    @staticmethod
    def _verdict(state, args, job, res, elapsed):
        """(failed, msg) for the end of a wait."""
        job_id = args["job_id"]
        status = job.get("status")
        code = job.get("exit_code")
        boot = job.get("bootstrap") or {}
        where = "session %s, log %s" % (job.get("session"), job.get("log"))
        if state == "bootstrapped":
            bstate = boot.get("state")
            if bstate == "done":
                cached = " (skipped: dependencies unchanged)" if boot.get("cached") else ""
                return False, "bootstrap of %s done%s" % (job_id, cached)
            if bstate == "running":
                return True, ("bootstrap of %s still running after %ds (deadline); its session %s keeps running"
                              % (job_id, elapsed, boot.get("session")))
            if bstate == "none":
                return True, "no bootstrap was started for job %s" % job_id
            return True, ("bootstrap of %s %s (exit code %s, reason %s); last lines of %s:\n%s" % (
                job_id, "timed out" if bstate == "timeout" else bstate, boot.get("exit_code"),
                boot.get("reason", bstate), boot.get("log"), _tail_text(boot.get("log_tail"))))
        if status is None:
            return True, "no job %s was started on this node (only a bootstrap exists)" % job_id
        if state == "ready":
            if res.get("ready"):
                return False, "job %s ready after %ds: %s" % (job_id, elapsed, res.get("ready_detail"))
            if res.get("done"):
                return True, ("job %s ended (%s, exit code %s) before %s answered; last lines of job.log:\n%s"
                              % (job_id, status, code, args["ready_url"], _tail_text(job.get("log_tail"))))
            return True, ("job %s not ready after %ds: %s; the job is %s and keeps running (stop it with "
                          "gpu.ops.job state=killed); last log line: %s" % (
                              job_id, elapsed, res.get("ready_detail"), status, job.get("last_line")))
        if not res.get("done"):
            return True, ("job %s still %s after %ds (deadline); it keeps running (%s); last log line: %s"
                          % (job_id, status, elapsed, where, job.get("last_line")))
        if status == "succeeded":
            return False, "job %s succeeded (exit code 0) in %s" % (job_id, format_duration(job.get("duration_s")))
        if status in ("bootstrap_failed", "bootstrap_timeout"):
            detail = ("job %s %s (exit code %s): the command never ran; last lines of %s:\n%s" % (
                job_id, status.replace("_", " "), code, boot.get("log"), _tail_text(boot.get("log_tail"))))
        elif status == "lost":
            detail = "job %s lost: %s; last lines of job.log:\n%s" % (
                job_id, job.get("lost_reason"), _tail_text(job.get("log_tail")))
        else:
            detail = "job %s %s with exit code %s after %s (%s); last lines of job.log:\n%s" % (
                job_id, status, code, format_duration(job.get("duration_s")), where, _tail_text(job.get("log_tail")))
        return bool(args["fail_on_failure"]), detail
