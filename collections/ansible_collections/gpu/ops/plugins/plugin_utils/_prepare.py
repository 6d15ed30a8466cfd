# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Preparing one node of a run, as one task (gpu.ops.run_node_prepare). PRIVATE to the collection.

The order and the arguments are those of the roles the step was written with before (node_tools, watchdog,
workspace, artifacts, bootstrap, node_health, called from roles/run/tasks/node_prepare.yml): ROLE_DEFAULTS holds the
roles' defaults that the pipeline never overrides, and a unit test keeps it equal to the roles' defaults/main.yml.
The outcome is the node's state (ready, unhealthy: replace it, failed: a new node would fail too) with the step
and the reason, never a failed task.
"""

from __future__ import annotations

from ansible_collections.gpu.ops.plugins.plugin_utils._steps import StepFailed, StepRunner, StepUnreachable

ROLE_DEFAULTS = {
    "node_tools": {"node_tools_require": ["python3", "git", "tmux", "tar"], "node_tools_optional": ["rsync"]},
    "watchdog": {"watchdog_interval": 15, "watchdog_stop_grace": 30},
    "workspace": {"workspace_version": "HEAD", "workspace_submodules": True, "workspace_clean": False,
                  "workspace_clean_ignored": False,
                  "workspace_clean_exclude": ["outputs/", "checkpoints/", "runs/", "wandb/"]},
    "artifacts": {"artifacts_cache_dir": "~/.bifrost/cache", "artifacts_link_dir": "~/.bifrost/workspace",
                  "artifacts_link_type": "symlink", "artifacts_verify": "changed", "artifacts_force": False,
                  "artifacts_timeout": 60, "artifacts_retries": 3, "artifacts_validate_certs": True,
                  "artifacts_lock_timeout": 600},
    "bootstrap": {"bootstrap_force": False, "bootstrap_env": {}, "bootstrap_python": "python3",
                  "bootstrap_venv": ".venv", "bootstrap_system_site_packages": False},
    "node_health": {"node_health_require_gpu": True, "node_health_history_dir": "~/.bifrost/health",
                    "node_health_record": True, "node_health_breaker_failures": 3, "node_health_breaker_window": 300,
                    "node_health_nvidia_smi": "nvidia-smi", "node_health_timeout": 30},
}
UNREACHABLE_WORDS = {"prepare": "preparing", "watchdog": "arming the watchdog", "deploy": "deploying",
                     "artifacts": "staging artifacts", "bootstrap": "bootstrapping", "health": "checking health"}


def _d(role, name):
    return ROLE_DEFAULTS[role]["%s_%s" % (role, name)]


def watchdog_budget(spec, price):
    """The node's backstop budget: its share of max_cost plus 5 minutes of its price (the controller's own stop,
    collect and teardown come first; the watchdog must never destroy results that are not home)."""
    if not spec.get("max_cost"):
        return 0.0
    return float(spec["max_cost"]) / int(spec["nodes"]) + float(price or 0) * 300 / 3600


def node_tools_args(spec):
    # packages are installed on rented nodes only; a machine of the user's own is checked, never changed
    return {"require": _d("node_tools", "require"), "optional": _d("node_tools", "optional"),
            "install": spec["target"] == "cloud"}


def watchdog_args(spec, hostvars):
    price = hostvars.get("gpuops_price_per_hour") or 0
    return {"state": "present", "provider": hostvars.get("gpuops_provider"),
            "instance_id": hostvars.get("gpuops_id") or None, "run_id": spec["run_id"] or None,
            "expires_at": spec.get("expires_at") or None, "idle_timeout": spec["idle_timeout"],
            "max_cost": watchdog_budget(spec, price), "price_per_hour": float(price),
            "started_at": hostvars.get("gpuops_created_at") or None,
            "interval": _d("watchdog", "interval"), "stop_grace": _d("watchdog", "stop_grace")}


def workspace_args(spec):
    return {"src": spec["repo"], "dest": spec["node_workspace"], "version": _d("workspace", "version"),
            "dirty": spec["dirty"], "submodules": _d("workspace", "submodules"), "clean": _d("workspace", "clean"),
            "clean_ignored": _d("workspace", "clean_ignored"), "clean_exclude": _d("workspace", "clean_exclude")}


def artifacts_args(spec):
    args = {name: _d("artifacts", name) for name in (
        "cache_dir", "link_type", "verify", "force", "timeout", "retries", "validate_certs", "lock_timeout")}
    # linked into the run's own workspace (a home-lab or ssh host has one per run; the role's default is the
    # rented node's single workspace, where the links used to go for every target)
    return dict(args, manifest=list(spec["artifacts"]), link_dir=spec["node_workspace"])


def bootstrap_args(spec, job_id):
    return {"job_id": job_id, "workdir": spec["node_workdir"], "command": spec.get("bootstrap") or None,
            "timeout": int(spec["bootstrap_timeout"]), "force": _d("bootstrap", "force"),
            "env": dict(_d("bootstrap", "env")), "python": _d("bootstrap", "python"),
            "venv": _d("bootstrap", "venv"), "system_site_packages": _d("bootstrap", "system_site_packages"),
            "hash_files": list(spec.get("dependency_files") or [])}


def bootstrap_wait_args(spec, job_id):
    # the bootstrap's own deadline stops it after bootstrap_timeout; the margin covers stopping it
    return {"job_id": job_id, "state": "bootstrapped", "timeout": int(spec["bootstrap_timeout"]) + 60,
            "progress_interval": int(spec["progress_interval"])}


def health_args(spec, hostvars):
    expected = spec["gpu_count"] if spec["target"] == "cloud" else (hostvars.get("gpuops_gpu_count") or 0)
    return {"min_score": int(spec["health_min_score"]), "expected_gpus": int(expected),
            "require_gpu": _d("node_health", "require_gpu"), "workspace": spec["node_workspace"],
            "history_dir": _d("node_health", "history_dir"), "history": _d("node_health", "record"),
            "breaker_failures": _d("node_health", "breaker_failures"),
            "breaker_window": _d("node_health", "breaker_window"), "nvidia_smi": _d("node_health", "nvidia_smi"),
            "timeout": _d("node_health", "timeout")}


def health_line(res):
    """The health gate's summary, as the node_health role prints it."""
    gpus = res.get("gpus") or []
    host = res.get("host") or {}
    problems = "; ".join(p.get("message", "") for p in res.get("problems") or [])
    return "health %s/100 (%s), %s GPU(s)%s, disk %s GiB free, memory %s %% used%s" % (
        res.get("score"), res.get("status"), res.get("gpu_count"), (" " + gpus[0]["name"]) if gpus else "",
        (host.get("disk") or {}).get("free_gib", "?"), (host.get("memory") or {}).get("used_pct", "?"),
        ("; " + problems) if problems else "")


def prepare(steps, spec, hostvars, health=True):
    """Runs the steps in order on ``steps`` (a StepRunner); the node's outcome as facts."""
    state, failure = "ready", None
    job_id = spec["job_id"]
    try:
        steps.call("prepare", "node_tools", node_tools_args(spec))
        steps.mark("prepare")
        if spec["target"] == "cloud":
            steps.call("watchdog", "node_watchdog", watchdog_args(spec, hostvars))
        steps.call("deploy", "workspace_deploy", workspace_args(spec))
        steps.mark("deploy")
        if spec.get("artifacts"):
            steps.call("artifacts", "stage_artifacts", artifacts_args(spec))
        started = steps.call("bootstrap", "job_bootstrap", bootstrap_args(spec, job_id))
        if started.get("state") != "done":
            steps.call("bootstrap", "job_wait", bootstrap_wait_args(spec, job_id), keep_as="bootstrap_wait")
        steps.mark("bootstrap")
        if health:
            state, failure = _health_gate(steps, spec, hostvars)
        if state == "ready":
            steps.mark("health")
    except StepUnreachable as exc:
        # a node that stopped answering is replaced like an unhealthy one
        state, failure = "unhealthy", {"step": exc.step, "msg": "unreachable while %s: %s" % (
            UNREACHABLE_WORDS.get(exc.step, exc.step), exc)}
    except StepFailed as exc:
        state, failure = "failed", {"step": exc.step, "msg": str(exc)}
    return facts(steps, state, failure, job_id)


def _health_gate(steps, spec, hostvars):
    try:
        steps.call("health", "node_health_check", health_args(spec, hostvars))
    except StepFailed as exc:
        # a node that fails the gate is replaced while replacements are left
        return "unhealthy", {"step": "health", "msg": str(exc)}
    return "ready", None


def facts(steps, state, failure, job_id):
    """What the later plays read, under the names the roles register (teardown reads watchdog_result.credential
    and workspace_provenance, the step record node_tools_result and run_prepare_marks, a managed run's recovery
    times run_prepare_marks, tmux_job bootstrap_effective_id).

    Facts an action returns rank below set_fact: none of these names is ever set with set_fact in the pipeline, so
    a node replaced under the same name gets its new values."""
    res = steps.results
    out = {"run_node_state": state, "run_prepare_marks": steps.marks, "bootstrap_effective_id": job_id}
    if failure:
        out["run_node_failure"] = failure
    for step, name in (("prepare", "node_tools_result"), ("watchdog", "watchdog_result"),
                       ("deploy", "workspace_result"), ("artifacts", "artifacts_result"),
                       ("bootstrap", "bootstrap_result"), ("health", "node_health_result")):
        if step in res:
            out[name] = res[step]
    if res.get("deploy", {}).get("provenance"):
        out["workspace_provenance"] = res["deploy"]["provenance"]
    return out


__all__ = ["StepRunner", "prepare", "health_line", "ROLE_DEFAULTS"]
