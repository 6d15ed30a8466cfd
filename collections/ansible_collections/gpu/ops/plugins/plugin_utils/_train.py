# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Training on one node of a plain (unmanaged) run, in two tasks (gpu.ops.run_node_train). PRIVATE.

Start the run's job with the multi-node environment (gpu.ops.job), then, in a second task (so that the start is an
event of its own for ansible-runner's consumers), wait for it unless detached, with progress lines
(gpu.ops.job_wait). The arguments are those the tmux_job role gives them (ROLE_DEFAULTS: the role's defaults the
pipeline never overrides; a unit test keeps them equal to roles/tmux_job/defaults/main.yml). The outcome is the
fact run_job ({status, exit_code, msg, attach, budget_exceeded}); the task never fails.
"""

from __future__ import annotations

import os

from ansible_collections.gpu.ops.plugins.plugin_utils._steps import StepFailed, StepUnreachable

ROLE_DEFAULTS = {"tmux_job_bootstrap": "auto", "tmux_job_master_port": 29500, "tmux_job_kill_grace": 10,
                 "tmux_job_ready_status": [200], "tmux_job_fail_on_failure": True, "tmux_job_log_lines": 20}


def distributed_env(hosts, host, hostvars):
    """MASTER_ADDR (the first node's address), MASTER_PORT, NODE_RANK (order of ``hosts``), WORLD_SIZE,
    NPROC_PER_NODE (the node's GPUs), as the tmux_job role sets them."""
    first = hostvars.get(hosts[0]) or {}
    return {"MASTER_ADDR": str(first.get("ansible_host") or hosts[0]),
            "MASTER_PORT": str(ROLE_DEFAULTS["tmux_job_master_port"]),
            "NODE_RANK": str(hosts.index(host)), "WORLD_SIZE": str(len(hosts)),
            "NPROC_PER_NODE": str((hostvars.get(host) or {}).get("gpuops_gpu_count") or 1)}


def secret_values(spec):
    """The values of the spec's secret_env names, from the controller's environment (never from the spec)."""
    return {name: os.environ.get(name, "") for name in spec.get("secret_env") or []}


def job_args(spec, dist, host):
    env = dict(dist, **dict(spec.get("env") or {}, **secret_values(spec)))
    return {"job_id": spec["job_id"], "command": spec["command"], "workdir": spec["node_workdir"], "env": env,
            "bootstrap": ROLE_DEFAULTS["tmux_job_bootstrap"], "bootstrap_timeout": int(spec["bootstrap_timeout"]),
            "kill_grace": ROLE_DEFAULTS["tmux_job_kill_grace"], "name": spec["job_name"],
            "metadata": {"run_id": spec["run_id"], "inventory_hostname": host, "distributed": dist}}


def wait_args(spec, wait_seconds, peers):
    return {"job_id": spec["job_id"], "state": "finished", "ready_status": ROLE_DEFAULTS["tmux_job_ready_status"],
            "timeout": int(wait_seconds), "progress_interval": int(spec["progress_interval"]),
            "fail_on_failure": ROLE_DEFAULTS["tmux_job_fail_on_failure"], "stop_on_peer_failure": peers > 1,
            "log_lines": ROLE_DEFAULTS["tmux_job_log_lines"]}


def _attach(res):
    return ((res or {}).get("job") or {}).get("attach_command") or ""


def start(steps, spec, hosts, host, hostvars):
    """Start the job on ``host`` with the multi-node environment; (the node's run_job, the start's job dict)."""
    dist = distributed_env(hosts, host, hostvars)
    try:
        started = steps.call("start", "job", job_args(spec, dist, host))
    except StepUnreachable as exc:
        return {"status": "lost", "exit_code": None, "msg": "unreachable while starting the job: %s" % exc,
                "attach": "", "budget_exceeded": False}, {}
    except StepFailed as exc:
        job = exc.result.get("job") or {}
        return {"status": job.get("status") or "failed", "exit_code": job.get("exit_code"),
                "msg": exc.result.get("msg") or "the job did not start", "attach": "", "budget_exceeded": False}, job
    job = started.get("job") or {}
    return {"status": job.get("status") or "running", "exit_code": None, "msg": "started", "attach": _attach(started),
            "budget_exceeded": False}, job


def waits_for(spec, started):
    """Whether the wait phase has a job to wait for: the start phase started one (``started``: the job dict
    gpu.ops.job returned; it may have ended already, the wait then says how) and the run is not detached."""
    return not spec.get("detach") and bool((started or {}).get("job_id"))


def wait(steps, spec, hosts, run_job, wait_seconds, budget_seconds):
    """Wait for the started job (progress lines); the node's run_job when the wait ended."""
    attach = run_job.get("attach") or ""
    try:
        waited = steps.call("wait", "job_wait", wait_args(spec, wait_seconds, len(hosts)))
    except StepUnreachable as exc:
        # the node stopped answering (job_wait retries a dropped connection first): the job is lost to this run
        return {"status": "lost", "exit_code": None, "msg": "unreachable while training: %s" % exc,
                "attach": attach, "budget_exceeded": False}
    except StepFailed as exc:
        return failed_outcome(spec, exc.result, wait_seconds, budget_seconds, attach)
    job = waited.get("job") or {}
    return {"status": job.get("status") or run_job.get("status") or "running", "exit_code": job.get("exit_code"),
            "msg": waited.get("msg") or "started", "attach": attach, "budget_exceeded": False}


def failed_outcome(spec, res, wait_seconds, budget_seconds, attach):
    """How the job failed: the budget (the wait was cut short by it and the job still ran), its own exit code, or
    the node."""
    budget_hit = (budget_seconds is not None and not res.get("done", True)
                  and int(wait_seconds) < int(spec["job_timeout"]))
    job = res.get("job") or {}
    if budget_hit:
        msg = "the budget (max_cost $%s) was spent after %s s of training; the job is stopped" % (
            spec.get("max_cost"), wait_seconds)
    else:
        msg = res.get("msg") or "failed"
    return {"status": "budget_exceeded" if budget_hit else (job.get("status") or "failed"),
            "exit_code": job.get("exit_code"), "msg": msg, "attach": job.get("attach_command") or attach,
            "budget_exceeded": budget_hit}
