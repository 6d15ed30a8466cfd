"""gpu.ops.bootstrap on simulator nodes: success, skip on an unchanged dependency hash, force, failure, timeout,
and a job that waits for its bootstrap (and aborts when the bootstrap session dies)."""

from __future__ import annotations

import json

from jobs_helpers import job_file, pid_alive, play, workspace


def test_bootstrap_runs_then_skips_unchanged_hash_until_forced_or_changed(runpod_node, sim, tmp_path):
    workspace(runpod_node, {"deps.txt": "torch==2.13.0\n"})
    p = play(sim, [runpod_node], tmp_path, "jobs_bootstrap_cache.yml", {"jobs_prefix": "bsc"}).ok()
    host = runpod_node.name
    starts = {i: p.task(f"Start the bootstrap of bsc-{i}", host) for i in (1, 2, 3, 4)}
    assert [starts[i]["outcome"] for i in (1, 2, 3, 4)] == ["started", "skipped", "started", "started"]
    assert [starts[i]["changed"] for i in (1, 2, 3, 4)] == [True, False, True, True]
    assert starts[2]["cached"] and starts[2]["hash"] == starts[1]["hash"]
    assert starts[4]["hash"] != starts[1]["hash"]
    # the command really ran three times, not four
    assert runpod_node.ssh("cat ~/bootstrap-runs").stdout.count("bootstrap ran") == 3
    done = json.loads(job_file(runpod_node, "bsc-2", "bootstrap_done"))
    assert done["cached"] is True and done["exit_code"] == 0
    assert "SKIPPED" in job_file(runpod_node, "bsc-2", "bootstrap.log")
    # the skipped bootstrap never started a session, and every waited bootstrap is done
    assert p.task("Wait for the bootstrap of bsc-1", host)["msg"].startswith("bootstrap of bsc-1 done")
    assert p.task("Wait for the bootstrap of bsc-2", host).get("skipped")


def test_bootstrap_failure_fails_the_role_and_the_waiting_job(runpod_node, sim, tmp_path):
    workspace(runpod_node)
    p = play(sim, [runpod_node], tmp_path, "jobs_bootstrap_outcomes.yml", {
        "jobs_id": "bsfail", "jobs_bootstrap_command": "echo resolving; echo 'no such package: nope' >&2; exit 3"})
    host = runpod_node.name
    wait = p.task("Wait for the bootstrap of bsfail", host)
    assert wait["failed"]
    assert "exit code 3" in wait["msg"] and "no such package: nope" in wait["msg"]
    assert json.loads(job_file(runpod_node, "bsfail", "bootstrap_failed"))["exit_code"] == 3
    # the job for this id never ran its command and says why
    job = p.task("Wait for job bsfail", host)
    assert job["job"]["status"] == "bootstrap_failed" and job["job"]["exit_code"] == 3
    assert job_file(runpod_node, "bsfail", "started_at") is None
    assert "the command never ran" in job["msg"] and "no such package: nope" in job["msg"]
    assert p.rc != 0


def test_bootstrap_timeout_stops_it_and_the_job_reports_bootstrap_timeout(runpod_node, sim, tmp_path):
    workspace(runpod_node)
    p = play(sim, [runpod_node], tmp_path, "jobs_bootstrap_outcomes.yml", {
        "jobs_id": "bstime", "jobs_bootstrap_command": "echo downloading; sleep 300", "jobs_bootstrap_timeout": 2})
    host = runpod_node.name
    wait = p.task("Wait for the bootstrap of bstime", host)
    assert wait["failed"] and "timed out" in wait["msg"] and "downloading" in wait["msg"]
    flag = json.loads(job_file(runpod_node, "bstime", "bootstrap_failed"))
    assert flag == {**flag, "exit_code": 124, "reason": "timeout"}
    # the bootstrap's processes are gone (its own process group was stopped)
    assert not pid_alive(runpod_node, job_file(runpod_node, "bstime", "bootstrap_child_pid"))
    job = p.task("Wait for job bstime", host)["job"]
    assert job["status"] == "bootstrap_timeout" and job["exit_code"] == 124


def test_job_aborts_when_bootstrap_session_dies_without_a_flag(runpod_node, sim, tmp_path):
    workspace(runpod_node)
    p = play(sim, [runpod_node], tmp_path, "jobs_roles.yml", {
        "bootstrap_job_id": "bsdie", "bootstrap_command": "sleep 300", "bootstrap_wait": False,
        "tmux_job_command": "echo should-not-run", "tmux_job_wait": False}).ok()
    assert p.task("Start job bsdie", runpod_node.name)["job"]["status"] in ("starting", "bootstrapping")
    # the bootstrap runner dies hard (no chance to write a flag); its child group goes too
    runpod_node.ssh("d=~/.bifrost/jobs/bsdie; kill -9 $(cat $d/bootstrap.pid); kill -9 -$(cat $d/bootstrap_child_pid)")
    p = play(sim, [runpod_node], tmp_path, "jobs_control.yml", {"jobs_actions": ["wait"], "jobs_id": "bsdie",
                                                                 "jobs_timeout": 30})
    res = p.task("Wait for the job", runpod_node.name)
    assert res["failed"] and res["job"]["status"] == "bootstrap_failed"
    assert "should-not-run" not in job_file(runpod_node, "bsdie", "job.log")
    assert "ended without writing a flag" in job_file(runpod_node, "bsdie", "job.log")
