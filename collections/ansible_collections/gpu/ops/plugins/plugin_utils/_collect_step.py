# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Collecting one node of a run, as one task (gpu.ops.run_node_collect). PRIVATE to the collection.

Stop the job if it still runs (teardown), then bring the job directory and the declared outputs home with
gpu.ops.collect_results and the arguments the collect role gives it (ROLE_DEFAULTS: the role's defaults the pipeline
never overrides, kept equal to roles/collect/defaults/main.yml by a unit test). The outcome is the fact
run_collected ({ok, job, files} or {ok: false, msg}); the task never fails.
"""

from __future__ import annotations

from ansible_collections.gpu.ops.plugins.plugin_utils._steps import StepFailed, StepUnreachable

ROLE_DEFAULTS = {"collect_jobs_dir": "~/.bifrost/jobs", "collect_exclude": [], "collect_transfer": "auto",
                 "collect_compress": False, "collect_verify_retries": 2, "collect_on_mismatch": "fail",
                 "collect_verify": "changed"}
ENDED = ("succeeded", "failed", "killed", "lost")
WATCHDOG_LOG = {"src": "~/.bifrost/watchdog/watchdog.log", "dest": "watchdog.log"}


def collect_args(spec, host, job_id, subdir):
    # the run's first job comes home to <host>/, every later job to jobs/<job_id>/<host>/; a restarted job of a
    # managed run (node_train_managed.yml) into restart-NN/
    results = (spec["job_results"] + "/") if spec.get("job_results") else ""
    args = {name[len("collect_"):]: value for name, value in ROLE_DEFAULTS.items()}
    # the watchdog's decisions come home with the results (cloud nodes)
    paths = list(spec.get("outputs") or []) + ([dict(WATCHDOG_LOG)] if spec["target"] == "cloud" else [])
    return dict(args, dest="%s/%s%s%s" % (spec["run_dir"], results, host, subdir or ""), job_id=job_id,
                paths=paths, base_dir=spec["node_workspace"])


def collect(steps, spec, host, job, job_id, subdir, stop_job):
    """Stop the job when asked and it may still run, then collect; the node's run_collected."""
    if stop_job and (job or {}).get("status", "running") not in ENDED:
        try:
            steps.call("stop", "job", {"job_id": job_id, "state": "killed"})
        except (StepFailed, StepUnreachable):
            pass  # as the playbook did (failed_when false): the collect below says whether the node answers
    try:
        res = steps.call("collect", "collect_results", collect_args(spec, host, job_id, subdir))
    except StepUnreachable:
        return {"ok": False, "job": {}, "files": 0, "msg": "unreachable while collecting: %s" % (
            steps.results["collect"].get("msg") or "no answer")}
    except StepFailed as exc:
        return {"ok": False, "msg": str(exc)}
    steps.mark("collect")
    return {"ok": True, "job": res.get("job") or {}, "files": res.get("files") or 0}
