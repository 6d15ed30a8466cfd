# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/lifecycle.py: the run's states, the command table, the one writer of state and status."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.gpu.ops.plugins.module_utils import lifecycle as lc


def me(command="launch"):
    return lc.owner_of(os.getpid(), command)


def dead_owner():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return lc.owner_of(proc.pid, "launch")  # start time None: the pid is gone


def write(run_dir, rec):
    os.makedirs(run_dir, exist_ok=True)
    lc.write_json(os.path.join(run_dir, "run.json"), rec)


def test_every_command_has_a_verdict_for_every_state_and_a_doc_line():
    for cmd in lc.COMMANDS:
        assert cmd in lc.DOES
        for state in lc.SEEN:
            assert lc.TABLE[cmd].get(state, lc.REFUSE) in (lc.RUN, lc.NOOP, lc.REFUSE)
    assert "| `down` |" in lc.table_markdown()


def test_a_pipeline_walks_planned_to_torn_down(tmp_path):
    rd = str(tmp_path / "r")
    for to in ("planned", "provisioning", "running", "tearing_down", "torn_down"):
        rec = lc.transition(rd, to, owner=me())
    assert rec["state"] == "torn_down" and rec["torn_down"] and rec["owner"] is None
    assert [h["state"] for h in rec["history"]] == ["planned", "provisioning", "running", "tearing_down", "torn_down"]


@pytest.mark.parametrize("frm,to", [("torn_down", "running"), ("ready", "torn_down"), ("kept", "ready"),
                                    ("planned", "running")])
def test_steps_that_are_not_lifecycle_steps_are_refused(tmp_path, frm, to):
    rd = str(tmp_path / "r")
    write(rd, {"run_id": "r", "state": frm, "owner": me()})
    with pytest.raises(lc.LifecycleError):
        lc.transition(rd, to, owner=me())


def test_a_dead_owner_shows_the_truth_underneath(tmp_path):
    dead = dead_owner()
    assert lc.effective_state({"state": "running", "owner": dead}) == "detached"
    assert lc.effective_state({"state": "provisioning", "owner": dead}) == "interrupted"
    assert lc.effective_state({"state": "provisioning", "owner": me()}) == "provisioning"
    other_host = dict(dead, host="some-other-machine")
    assert lc.effective_state({"state": "running", "owner": other_host}) == "running"  # cannot check: alive


def test_kept_and_detached_are_never_a_dead_playbook_and_down_is_idempotent():
    kept = {"run_id": "r", "state": "kept", "status": "failed"}
    assert lc.decide("down", kept).verdict == lc.RUN
    gone = {"run_id": "r", "state": "torn_down", "status": "succeeded", "ended_at": "T"}
    d = lc.decide("down", gone)
    assert d.verdict == lc.NOOP and d.exit_code == 0 and "already torn down (succeeded at T)" in d.msg
    for cmd in ("deploy", "train", "exec"):
        d = lc.decide(cmd, gone)
        assert d.verdict == lc.REFUSE and "torn down" in d.msg
    assert lc.decide("exec", gone).exit_code == 125 and lc.decide("train", gone).exit_code == 2


def test_a_busy_run_refuses_a_second_job_and_names_its_owner():
    rec = {"run_id": "r", "state": "running", "owner": me("exec"), "jobs": [{"job_id": "exec-r"}]}
    d = lc.decide("exec", rec)
    assert d.verdict == lc.REFUSE and "job exec-r" in d.msg and "pid %d" % os.getpid() in d.msg
    assert lc.decide("down", rec).verdict == lc.RUN  # down interrupts the owner first (take_over)
    assert lc.decide("down", dict(rec, state="tearing_down")).verdict == lc.REFUSE
    assert lc.decide("stop", rec).verdict == lc.RUN


def test_down_takes_over_from_a_live_owner_by_interrupting_it(tmp_path):
    rd = str(tmp_path / "r")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write(rd, {"run_id": "r", "state": "running", "owner": lc.owner_of(owner.pid, "exec")})
        assert lc.effective_state(lc.read_record(rd)) == "running"
        rec = lc.take_over(rd, timeout=20)  # SIGINT: the sleeping owner ends (as Ctrl-C there)
        assert owner.wait(timeout=10) != 0
        assert lc.effective_state(rec) == "detached"  # what down then sees: a job nobody waits for
    finally:
        if owner.poll() is None:
            owner.kill()
    far = {"run_id": "r", "state": "running", "owner": dict(lc.owner_of(os.getpid(), "launch"), host="elsewhere")}
    write(rd, far)
    with pytest.raises(lc.LifecycleError, match="another machine"):
        lc.take_over(rd, timeout=1)


def test_legacy_records_keep_their_meaning():
    assert lc.effective_state({"torn_down": True, "status": "succeeded"}) == "torn_down"
    assert lc.effective_state({"status": "running", "detached": True}) == "detached"
    assert lc.nodes_released({"status": "failed"}) == "run record says failed"
    assert lc.nodes_released({"status": "failed", "kept": True}) is None
    assert lc.nodes_released({"state": "kept", "status": "failed"}) is None  # kept until it expires
    assert lc.nodes_released({"state": "torn_down"}) == "run record says torn_down"


def test_an_outcome_is_written_once(tmp_path):
    rd = str(tmp_path / "r")
    write(rd, {"run_id": "r", "status": "running"})
    assert lc.decide_outcome(rd, "succeeded")["status"] == "succeeded"
    assert lc.decide_outcome(rd, "cancelled", "torn down before the job finished")["status"] == "succeeded"
    with pytest.raises(lc.LifecycleError):
        lc.update_record(rd, {"status": "cancelled"})
    rec = lc.restart(rd, me(), {"expires_at": "later"})  # a new launch of the same run id starts a new outcome
    assert rec["status"] == "running" and rec["state"] == "planned"


def test_jobs_get_fresh_ids_and_their_own_results(tmp_path):
    rd = str(tmp_path / "r")
    write(rd, {"run_id": "r"})
    assert lc.next_job_id({}, "train", "r") == "train-r"
    lc.job_started(rd, {"job_id": "train-r", "kind": "pipeline"})
    rec = lc.job_started(rd, {"job_id": lc.next_job_id(lc.read_record(rd), "train", "r"), "kind": "train"})
    assert [j["job_id"] for j in rec["jobs"]] == ["train-r", "train-r-2"] and rec["job_id"] == "train-r-2"
    assert [j["results"] for j in rec["jobs"]] == ["", os.path.join("jobs", "train-r-2")]
    ends = {"a": {"status": "succeeded", "exit_code": 0}, "b": {"status": "failed", "exit_code": 3}}
    entry = lc.job_ended(rd, "train-r-2", ends)
    assert entry["status"] == "failed" and entry["exit_code"] == 3
    on_disk = json.loads((tmp_path / "r" / "jobs" / "train-r-2" / "job.json").read_text())
    assert on_disk["hosts"]["b"]["exit_code"] == 3


def test_unknown_keys_name_the_nearest_one():
    problems = lc.unknown_keys_problems(["comand", "min_vram_gb", "nodes"], ["command", "nodes", "gpu_count"])
    assert problems == ["unknown run spec key 'comand' (did you mean 'command'?)",
                        "unknown run spec key 'min_vram_gb'"]


def test_live_nodes_include_hosts_until_torn_down():
    rec = {"instances": [{"name": "a"}, {"name": "b", "destroyed_at": "x"}], "hosts": [{"name": "lab1"}]}
    assert [n["name"] for n in lc.live_nodes(rec)] == ["a", "lab1"]
    assert [n["name"] for n in lc.live_nodes(dict(rec, state="torn_down"))] == ["a"]


def test_records_are_private(tmp_path):
    rd = str(tmp_path / "r")
    lc.transition(rd, "planned", owner=me())
    assert oct(os.stat(os.path.join(rd, "run.json")).st_mode & 0o777) == "0o600"
    assert oct(os.stat(rd).st_mode & 0o777) == "0o700"


def test_a_guardian_counts_only_while_it_is_the_guardian():
    assert not lc.guardian_alive({"guardian_pid": os.getpid()})  # a live pid that is not a guardian
    assert not lc.guardian_alive({"guardian_pid": dead_owner()["pid"]})
    assert not lc.guardian_alive({})
