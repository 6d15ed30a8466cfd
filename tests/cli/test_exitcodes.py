"""Exit code mapping (gpuops.exitcodes): run record status first, bad input before everything, then ansible's rc."""

from __future__ import annotations

import pytest

from gpuops.events import Failure
from gpuops.exitcodes import EXIT_BAD_INPUT, EXIT_INFRA, EXIT_OK, EXIT_RUN_FAILED, exit_code_for
from gpuops.runner import RunResult


def result(status="succeeded", rc=0, record=None, failures=(), instances=(), playbook="gpu.ops.pipeline"):
    return RunResult(playbook=playbook, status=status, rc=rc, runner_status="successful" if rc == 0 else "failed",
                     record=record, failures=list(failures), instances=list(instances))


@pytest.mark.parametrize("status,code", [
    ("succeeded", EXIT_OK), ("failed", EXIT_RUN_FAILED), ("budget_exceeded", EXIT_RUN_FAILED),
    ("preempted", EXIT_RUN_FAILED), ("cancelled", EXIT_RUN_FAILED), ("running", EXIT_INFRA)])
def test_run_record_status(status, code):
    rc = 0 if status == "succeeded" else 2
    assert exit_code_for(result(status, rc, record={"status": status}, instances=[{"id": "1"}])) == code


def test_no_record_after_a_pipeline_is_infrastructure():
    assert exit_code_for(result("succeeded", 0)) == EXIT_INFRA
    assert exit_code_for(result("failed", 2)) == EXIT_INFRA
    assert exit_code_for(result("error", 250)) == EXIT_INFRA


@pytest.mark.parametrize("fail", [
    Failure("localhost", task="Validate the run spec", play="gpu.ops pipeline", action="ansible.builtin.validate_argument_spec"),
    Failure("localhost", task="check", play="Pipeline", action="assert"),
    Failure("localhost", task="ssh key usable", play="Preflight: spec, key, repo, offers", action="ansible.builtin.fail"),
])
def test_validation_failure_before_any_instance_is_bad_input(fail):
    assert exit_code_for(result("failed", 2, record={"status": "failed"}, failures=[fail])) == EXIT_BAD_INPUT


def test_validation_failure_after_instances_exist_is_the_run():
    fail = Failure("n0", task="health gate", play="Preflight again", action="assert")
    res = result("failed", 2, record={"status": "failed"}, failures=[fail], instances=[{"id": "1"}])
    assert exit_code_for(res) == EXIT_RUN_FAILED


@pytest.mark.parametrize("rc", [4, 5])
def test_ansible_parse_and_option_errors_are_bad_input(rc):
    assert exit_code_for(result("failed", rc)) == EXIT_BAD_INPUT


def test_actions_use_ansible_rc():
    assert exit_code_for(result("succeeded", 0, playbook="gpu.ops.reap"), "action") == EXIT_OK
    assert exit_code_for(result("failed", 2, playbook="gpu.ops.reap"), "action") == EXIT_INFRA
    assert exit_code_for(result("error", 0, playbook="gpu.ops.cost"), "action") == EXIT_INFRA
    # a playbook other than the pipeline that ran fine, without a record, as a run: ok
    assert exit_code_for(result("succeeded", 0, playbook="/tmp/x.yml")) == EXIT_OK


def test_rc_4_with_unreachable_hosts_is_not_bad_input():
    fail = Failure("n0", task="deploy", play="deploy", action="gpu.ops.workspace_deploy", unreachable=True)
    assert exit_code_for(result("failed", 4, failures=[fail], instances=[{"id": "1"}])) == EXIT_INFRA
    assert exit_code_for(result("failed", 4, record={"status": "failed"}, failures=[fail],
                                instances=[{"id": "1"}])) == EXIT_RUN_FAILED
