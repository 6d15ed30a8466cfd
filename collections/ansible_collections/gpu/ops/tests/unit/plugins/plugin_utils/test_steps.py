# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pipeline's step actions (run_node_prepare, run_node_train, run_node_collect): the arguments they give the
roles' actions are the roles' own (defaults and argument specs), the steps run in the roles' order, and every
failure ends as the node's state with the step's name, never as an exception."""

from __future__ import annotations

import os
import time

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.gpu.ops.plugins.action import collect_results, job, job_bootstrap, job_wait, node_health_check
from ansible_collections.gpu.ops.plugins.action import node_tools, node_watchdog, run_record, stage_artifacts
from ansible_collections.gpu.ops.plugins.action import workspace_deploy
from ansible_collections.gpu.ops.plugins.plugin_utils import _collect_step, _prepare, _train
from ansible_collections.gpu.ops.plugins.plugin_utils._steps import StepFailed, StepUnreachable

ROLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles")
SPECS = {"node_tools": node_tools.ARGUMENT_SPEC, "node_watchdog": node_watchdog.argument_spec(),
         "workspace_deploy": workspace_deploy.ARGUMENT_SPEC, "stage_artifacts": stage_artifacts.ARGUMENT_SPEC,
         "job_bootstrap": job_bootstrap.ARGUMENT_SPEC, "job_wait": job_wait.ARGUMENT_SPEC,
         "node_health_check": node_health_check.ARGUMENT_SPEC, "job": job.ARGUMENT_SPEC,
         "collect_results": collect_results.ARGUMENT_SPEC}
SPEC = {"run_id": "r1", "job_id": "train-r1", "job_name": "train", "target": "cloud", "nodes": 2, "max_cost": 2.0,
        "expires_at": "2026-12-08T00:00:00Z", "idle_timeout": 1800, "repo": "/src/repo", "dirty": "warn",
        "node_workspace": "~/.bifrost/workspaces/r1", "node_workdir": "~/.bifrost/workspaces/r1", "artifacts": [],
        "bootstrap": "pip install -r requirements.txt", "bootstrap_timeout": 600, "progress_interval": 30,
        "dependency_files": ["requirements.txt"], "health_min_score": 80, "gpu_count": 1, "command": "python3 t.py",
        "env": {"A": "1"}, "secret_env": [], "detach": False, "job_timeout": 3600, "run_dir": "/runs/r1",
        "job_results": "", "outputs": ["outputs/"]}
HOSTVARS = {"gpuops_provider": "runpod", "gpuops_id": "pod1", "gpuops_price_per_hour": 0.36,
            "gpuops_created_at": "2026-12-07T10:00:00Z", "ansible_host": "203.0.113.7", "gpuops_gpu_count": 2}


def role_defaults(role):
    with open(os.path.join(ROLES, role, "defaults", "main.yml")) as fh:
        return yaml.safe_load(fh)


@pytest.mark.parametrize("role,module", [
    ("node_tools", _prepare), ("watchdog", _prepare), ("workspace", _prepare), ("artifacts", _prepare),
    ("bootstrap", _prepare), ("node_health", _prepare), ("tmux_job", _train), ("collect", _collect_step)])
def test_the_step_actions_use_the_roles_own_defaults(role, module):
    wanted = module.ROLE_DEFAULTS.get(role, module.ROLE_DEFAULTS)
    defaults = role_defaults(role)
    for name, value in wanted.items():
        if name.startswith(role + "_"):
            assert defaults[name] == value, "%s: %s is %r in the role, %r in %s" % (
                role, name, defaults[name], value, module.__name__)


class FakeSteps(object):
    """A StepRunner that checks each call's arguments against the action's argument spec and answers from a
    script: {action name: result dict, or an exception to raise}."""

    def __init__(self, script=None):
        self.script = script or {}
        self.calls = []
        self.marks = {"start": time.time()}
        self.results = {}

    def call(self, step, name, args, keep_as=None):
        args = {k: v for k, v in args.items() if v is not None}
        checked = ArgumentSpecValidator(SPECS[name]).validate(args)
        assert not checked.error_messages, (name, checked.error_messages)
        self.calls.append((step, name, args))
        answer = self.script.get(name, {"changed": True})
        if isinstance(answer, Exception):
            self.results[keep_as or step] = {"failed": True, "msg": str(answer)}
            raise answer
        self.results[keep_as or step] = answer
        return answer

    def mark(self, name):
        self.marks[name] = time.time()

    def names(self):
        return [name for _step, name, _args in self.calls]


def test_prepare_runs_the_roles_steps_in_order_and_ends_ready():
    steps = FakeSteps({"job_bootstrap": {"state": "running"}, "workspace_deploy": {"provenance": {"commit": "abc"}},
                       "node_watchdog": {"credential": {"kind": "scoped"}}})
    facts = _prepare.prepare(steps, SPEC, HOSTVARS)
    assert steps.names() == ["node_tools", "node_watchdog", "workspace_deploy", "job_bootstrap", "job_wait",
                             "node_health_check"]
    assert facts["run_node_state"] == "ready" and "run_node_failure" not in facts
    assert list(facts["run_prepare_marks"]) == ["start", "prepare", "deploy", "bootstrap", "health"]
    assert facts["workspace_provenance"] == {"commit": "abc"} and facts["watchdog_result"]["credential"]
    assert facts["bootstrap_effective_id"] == "train-r1"
    watchdog = dict(steps.calls[1][2])
    # this node's share of max_cost plus 5 minutes of its price: the controller's own stop comes first
    assert watchdog["max_cost"] == pytest.approx(2.0 / 2 + 0.36 * 300 / 3600)
    assert watchdog["instance_id"] == "pod1" and watchdog["started_at"] == "2026-12-07T10:00:00Z"


def test_prepare_of_a_home_lab_node_installs_nothing_and_arms_no_watchdog():
    steps = FakeSteps({"job_bootstrap": {"state": "done"}})
    facts = _prepare.prepare(steps, dict(SPEC, target="homelab", artifacts=[{"url": "http://x/a", "dest": "a"}]),
                             HOSTVARS, health=False)
    assert steps.names() == ["node_tools", "workspace_deploy", "stage_artifacts", "job_bootstrap"]
    assert steps.calls[0][2]["install"] is False
    # artifacts are linked into this run's workspace, not the rented node's single default one
    assert steps.calls[2][2]["link_dir"] == "~/.bifrost/workspaces/r1" == steps.calls[1][2]["dest"]
    # without the gate the node is ready when its bootstrap is (the health mark closes the step)
    assert facts["run_node_state"] == "ready" and "health" in facts["run_prepare_marks"]


@pytest.mark.parametrize("action,error,state,step,words", [
    ("workspace_deploy", StepUnreachable("deploy", "ssh: connection refused"), "unhealthy", "deploy",
     ["unreachable while deploying", "connection refused"]),
    ("job_wait", StepFailed("bootstrap", {"msg": "bootstrap of train-r1 failed (exit code 1)"}), "failed",
     "bootstrap", ["exit code 1"]),
    ("node_health_check", StepFailed("health", {"msg": "score 40 < 80: GPU at 96 C"}), "unhealthy", "health",
     ["96 C"]),
    ("node_tools", StepFailed("prepare", {"msg": "the image lacks git, tmux"}), "failed", "prepare", ["lacks git"]),
])
def test_prepare_failures_name_the_step_and_never_raise(action, error, state, step, words):
    steps = FakeSteps({action: error, "job_bootstrap": {"state": "running"}})
    facts = _prepare.prepare(steps, SPEC, HOSTVARS)
    assert facts["run_node_state"] == state and facts["run_node_failure"]["step"] == step
    for word in words:
        assert word in facts["run_node_failure"]["msg"]
    assert steps.names()[-1] == action  # nothing ran after the step that stopped the node
    assert "health" not in facts["run_prepare_marks"]


def test_train_gives_each_rank_the_multi_node_env_and_reads_secrets_from_the_controller(monkeypatch):
    monkeypatch.setenv("GPUOPS_UNIT_SECRET", "s3cret")
    started = {"job_id": "train-r1", "status": "running", "attach_command": "ssh -t x"}
    steps = FakeSteps({"job": {"changed": True, "job": started},
                       "job_wait": {"job": {"status": "succeeded", "exit_code": 0}, "msg": "job succeeded"}})
    hostvars = {"n-0": dict(HOSTVARS, ansible_host="10.0.0.5"), "n-1": HOSTVARS}
    spec = dict(SPEC, secret_env=["GPUOPS_UNIT_SECRET"])
    run_job, job = _train.start(steps, spec, ["n-0", "n-1"], "n-1", hostvars)
    env = steps.calls[0][2]["env"]
    assert {k: env[k] for k in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "WORLD_SIZE", "NPROC_PER_NODE")} == {
        "MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "29500", "NODE_RANK": "1", "WORLD_SIZE": "2", "NPROC_PER_NODE": "2"}
    assert env["GPUOPS_UNIT_SECRET"] == "s3cret" and env["A"] == "1"
    assert job["job_id"] == "train-r1" and run_job["status"] == "running" and _train.waits_for(spec, job)
    out = _train.wait(steps, spec, ["n-0", "n-1"], run_job, 600, None)
    assert steps.calls[1][2]["stop_on_peer_failure"] is True and steps.calls[1][2]["timeout"] == 600
    assert out == {"status": "succeeded", "exit_code": 0, "msg": "job succeeded", "attach": "ssh -t x",
                   "budget_exceeded": False}


def test_a_detached_job_or_one_that_did_not_start_is_not_waited_for():
    steps = FakeSteps({"job": {"job": {"job_id": "train-r1", "status": "running", "attach_command": "ssh -t x"}}})
    run_job, job = _train.start(steps, dict(SPEC, detach=True), ["n-0"], "n-0", {"n-0": HOSTVARS})
    assert run_job["attach"] == "ssh -t x" and not _train.waits_for(dict(SPEC, detach=True), job)
    steps = FakeSteps({"job": StepFailed("start", {"msg": "tmux: no server", "job": {"status": "failed"}})})
    run_job, job = _train.start(steps, SPEC, ["n-0"], "n-0", {"n-0": HOSTVARS})
    assert run_job["status"] == "failed" and "tmux: no server" in run_job["msg"] and not _train.waits_for(SPEC, job)


def test_a_job_that_ended_before_its_start_returned_is_still_waited_for():
    # `exit 5` may be over when gpu.ops.job returns: the wait reads its exit code and says how it ended
    steps = FakeSteps({"job": {"job": {"job_id": "train-r1", "status": "failed", "exit_code": 5}}})
    run_job, job = _train.start(steps, SPEC, ["n-0"], "n-0", {"n-0": HOSTVARS})
    assert _train.waits_for(SPEC, job)


@pytest.mark.parametrize("wait_seconds,budget,done,status,exceeded", [
    (120, 120, False, "budget_exceeded", True),   # the wait was cut at the budget and the job still ran
    (3600, None, False, "running", False),        # job_timeout: not a budget stop
    (120, 120, True, "failed", False),            # the job ended by itself (its own exit code)
])
def test_train_tells_a_budget_stop_from_a_failure(wait_seconds, budget, done, status, exceeded):
    failure = StepFailed("wait", {"done": done, "msg": "job train-r1 failed", "job": {"status": status if not exceeded
                                                                                      else "running", "exit_code": 1}})
    steps = FakeSteps({"job_wait": failure})
    out = _train.wait(steps, SPEC, ["n-0"], {"status": "running", "attach": "a"}, wait_seconds, budget)
    assert out["status"] == status and out["budget_exceeded"] is exceeded
    assert ("budget (max_cost $2.0)" in out["msg"]) is exceeded


def test_a_node_lost_while_training_is_lost_not_running():
    steps = FakeSteps({"job_wait": StepUnreachable("wait", "no route")})
    out = _train.wait(steps, SPEC, ["n-0"], {"status": "running"}, 600, None)
    assert out["status"] == "lost" and "unreachable while training: no route" in out["msg"]


@pytest.mark.parametrize("job_status,stop_job,stops", [
    ("running", True, True), ("succeeded", True, False), ("lost", True, False), ("running", False, False)])
def test_collect_stops_only_a_job_that_may_still_run(job_status, stop_job, stops):
    steps = FakeSteps({"collect_results": {"files": 3, "job": {"status": "killed"}}})
    out = _collect_step.collect(steps, SPEC, "n-0", {"status": job_status}, "train-r1", "", stop_job)
    assert (steps.names()[0] == "job") is stops and steps.names()[-1] == "collect_results"
    args = steps.calls[-1][2]
    assert args["dest"] == "/runs/r1/n-0" and args["paths"][-1]["dest"] == "watchdog.log"
    assert out == {"ok": True, "job": {"status": "killed"}, "files": 3}


def test_collect_from_a_node_that_does_not_answer_is_not_ok():
    steps = FakeSteps({"collect_results": StepUnreachable("collect", "timed out")})
    out = _collect_step.collect(steps, dict(SPEC, target="ssh"), "n-0", {"status": "succeeded"}, "train-r1",
                                "/restart-01", True)
    assert out["ok"] is False and "unreachable while collecting" in out["msg"]
    assert steps.calls[0][2]["dest"] == "/runs/r1/n-0/restart-01" and steps.calls[0][2]["paths"] == ["outputs/"]


def test_the_record_reads_the_marks_of_every_host_of_the_play():
    task_vars = {"ansible_play_hosts_all": ["a", "b", "c"], "hostvars": {
        "a": {"run_prepare_marks": {"start": 1, "deploy": 3}, "node_tools_result": {"tools": {"git": "2.39"}}},
        "b": {"run_prepare_marks": {"start": 1, "deploy": 5}}, "c": {}}}
    got = run_record.play_marks(task_vars, "run_prepare_marks")
    assert got == {"marks": [{"start": 1, "deploy": 3}, {"start": 1, "deploy": 5}],
                   "node_tools": {"a": {"tools": {"git": "2.39"}}}}


@pytest.mark.parametrize("forks,nodes,command,batches", [
    (5, 8, "launch", 2), (5, 11, "up", 3), (20, 8, "launch", None), (5, 8, "down", None), (None, 8, "launch", None)])
def test_the_plan_warns_when_forks_make_node_steps_run_in_batches(monkeypatch, forks, nodes, command, batches):
    from ansible import context

    from ansible_collections.gpu.ops.plugins.action import run_spec

    monkeypatch.setattr(context, "CLIARGS", {"forks": forks})
    warning = run_spec.forks_warning({"nodes": nodes, "target": "cloud"}, command)
    if batches is None:
        assert warning is None
    else:
        assert "runs in %d batches" % batches in warning and "set forks to %d" % nodes in warning
