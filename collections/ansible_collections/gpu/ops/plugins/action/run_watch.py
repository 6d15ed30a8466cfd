# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.run_watch (documentation: plugins/modules/run_watch.py).

One slice of a managed run's wait on one node: short node-side waits (so a lost node is noticed within seconds,
not after job_wait's connection retries), and on a lost connection or a job that ended badly the provider's own
view of the instance decides between "preempted" (the platform stopped it) and "the job failed by itself".
"""

from __future__ import annotations

import os
import time

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.utils.display import Display

from ansible_collections.gpu.ops.plugins.action.job_wait import ActionModule as JobWait, PeerBoard
from ansible_collections.gpu.ops.plugins.plugin_utils import _managed
from ansible_collections.gpu.ops.plugins.plugin_utils._job_action import JobActionBase, format_duration

display = Display()

ARGUMENT_SPEC = {
    "job_id": {"type": "str", "required": True},
    "timeout": {"type": "int", "required": True},
    "provider": {"type": "str"},
    "instance_id": {"type": "str"},
    "preemption_detect_s": {"type": "int", "default": 30},
    "stop_on_peer_failure": {"type": "bool", "default": False},
}
POLL = 3  # seconds a node-side wait lasts: the SSH connection is checked at least this often
LOG_LINES = 20


class ActionModule(JobActionBase):

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        host = (task_vars or {}).get("inventory_hostname", "?")
        peers = PeerBoard(args["job_id"], host) if args["stop_on_peer_failure"] else None
        start = time.monotonic()
        end = start + max(1, args["timeout"])
        job = {}
        while True:
            chunk = max(1, int(min(POLL, end - time.monotonic())))
            try:
                res = self._run_helper("wait", {"job_id": args["job_id"], "state": "finished",
                                                "timeout": chunk, "log_lines": LOG_LINES}, task_vars)
            except (AnsibleConnectionFailure, AnsibleError) as exc:
                res = {"unreachable": True, "msg": str(exc)}
            if res.get("unreachable"):
                return dict(result, **self._lost(args, task_vars, job, res.get("msg"), start, peers))
            if res.get("failed"):
                return dict(result, failed=True, msg=res.get("msg"))
            job = self._decorate(res.get("job") or {}, task_vars)
            if res.get("done"):
                return dict(result, **self._ended(args, task_vars, job, start, peers))
            peer = peers.failed_peer() if peers else None
            if peer:
                return dict(result, **self._stop_for_peer(args, task_vars, peer, start))
            if time.monotonic() >= end:
                display.display("  [%s] %s: %s %s | %s" % (
                    host, args["job_id"], job.get("status"), format_duration(job.get("duration_s")),
                    (job.get("last_line") or "")[:200]), color="cyan", stderr=True)
                return dict(result, changed=False, done=False, preempted=False, job=job,
                            elapsed=round(time.monotonic() - start, 2), msg="job %s %s" % (
                                args["job_id"], job.get("status")))

    def _classify(self, args, patient=True):
        """(gone, state, detail): the provider's view of the instance, asked until it says something clear or
        preemption_detect_s has passed (a stop takes a moment to show in the API). Not patient when SSH still
        answers: one look is enough then."""
        if not args["provider"] or not args["instance_id"]:
            return False, "unknown", "no provider instance (home lab)"
        deadline = time.monotonic() + (max(1, args["preemption_detect_s"]) if patient else 0)
        delay = 1.0
        while True:
            state, detail = _managed.provider_state(args["provider"], args["instance_id"], os.environ)
            if state in _managed.GONE_STATES:
                return True, state, detail
            if time.monotonic() + delay >= deadline:
                return False, state, detail
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _lost(self, args, task_vars, job, why, start, peers):
        detected = time.time()
        gone, state, detail = self._classify(args)
        out = {"changed": False, "done": True, "job": dict(job, status="lost"), "preempted": True, "lost": True,
               "provider_state": state, "detected_at": detected, "detect_s": round(time.time() - detected, 2),
               "elapsed": round(time.monotonic() - start, 2)}
        if gone:
            out["msg"] = "node preempted: %s (SSH: %s)" % (detail, (str(why or "").strip().splitlines() or ["?"])[-1])
        else:
            out["msg"] = "node lost: SSH does not answer (%s); provider: %s" % (
                (str(why or "").strip().splitlines() or ["?"])[-1], detail)
        if peers:
            peers.post({"status": "preempted", "exit_code": None})
        display.warning("[%s] %s" % (task_vars.get("inventory_hostname"), out["msg"]))
        return out

    def _ended(self, args, task_vars, job, start, peers):
        """The job ended. A job that did not succeed may have died with its node: the provider says which."""
        elapsed = time.monotonic() - start
        # the same words job_wait uses (status, exit code, the log's last lines)
        _failed, msg = JobWait._verdict("finished", {"job_id": args["job_id"], "fail_on_failure": True}, job,
                                        {"done": True}, elapsed)
        out = {"changed": False, "done": True, "job": job, "preempted": False, "elapsed": round(elapsed, 2),
               "msg": msg}
        if job.get("status") != "succeeded":
            detected = time.time()
            gone, state, detail = self._classify(args, patient=False)
            if gone:
                out.update(preempted=True, provider_state=state, detected_at=detected,
                           detect_s=round(time.time() - detected, 2),
                           msg="node preempted while job %s was %s: %s" % (args["job_id"], job.get("status"), detail))
            if peers:
                peers.post(job if not gone else {"status": "preempted", "exit_code": None})
        return out

    def _stop_for_peer(self, args, task_vars, peer, start):
        """Another rank ended (failed, preempted): stop this one, so every rank restarts from one checkpoint."""
        try:
            res = self._run_helper("kill", {"job_id": args["job_id"]}, task_vars)
            job = self._decorate(res.get("job") or {}, task_vars)
        except (AnsibleConnectionFailure, AnsibleError) as exc:
            return self._lost(args, task_vars, {}, str(exc), start, None)
        return {"changed": True, "done": True, "job": job, "preempted": False, "stopped_for_peer": peer,
                "elapsed": round(time.monotonic() - start, 2),
                "msg": "job %s stopped here: on %s it ended %s" % (args["job_id"], peer.get("host"),
                                                                   peer.get("status"))}
