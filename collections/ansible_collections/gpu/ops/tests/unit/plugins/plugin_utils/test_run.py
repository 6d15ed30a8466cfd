# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the run spec and the run record (plugin_utils/_run.py) and the guardian's process checks."""

from __future__ import annotations

import datetime
import json
import os
import subprocess

import pytest

from ansible_collections.gpu.ops.plugins.module_utils import lifecycle
from ansible_collections.gpu.ops.plugins.plugin_utils import _guardian, _run

WHEN = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "proj"
    path.mkdir()
    (path / "train.py").write_text("print('hi')\n")
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@x.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "one"]):
        subprocess.run(git + args, check=True, capture_output=True)
    return path


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "id_test"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True,
                   stdin=subprocess.DEVNULL)
    return path


def spec_of(repo, key, **over):
    raw = {"repo": str(repo), "command": "python3 train.py", "gpu": ["RTX 4090"], "ssh_private_key_file": str(key)}
    raw.update(over)
    return raw


ENV = {"RUNPOD_API_KEY": "rk", "SECRET_A": "s"}


def test_a_valid_spec_gets_defaults_an_id_and_its_expiry(repo, key, tmp_path):
    s = _run.normalize(spec_of(repo, key, name="Char LM!"), str(tmp_path), ENV, WHEN)
    assert s["run_id"].startswith("char-lm-20261201-120000-") and len(s["run_id"].rsplit("-", 1)[1]) == 4
    assert s["expires_at"] == "2026-12-02T12:00:00Z" and s["started_at"] == "2026-12-01T12:00:00Z"
    assert s["providers"] == ["runpod"]  # only the provider whose key is set
    assert s["run_dir"] == os.path.join(str(tmp_path), "runs", s["run_id"])
    assert s["job_id"] == "train-" + s["run_id"] and s["node_workdir"] == "~/.bifrost/workspace"


@pytest.mark.parametrize("over,env,expect", [
    ({"command": " "}, ENV, "command is empty"),
    ({"nodes": 0}, ENV, "nodes must be at least 1"),
    ({"gpu": []}, ENV, "gpu is required"),
    ({"secret_env": ["NOT_SET_X"]}, ENV, "NOT_SET_X"),
    ({"secret_env": ["bad-name"]}, ENV, "is not valid"),
    ({"env": {"A": "1"}, "secret_env": ["A"]}, dict(ENV, A="x"), "in both env and secret_env"),
    ({"ttl": "soon"}, ENV, "ttl"),
    ({"max_cost": 0}, ENV, "max_cost must be greater than 0"),
    ({"health_replacements": 9}, ENV, "health_replacements must be between 0 and 3"),
    ({"run_id": "Has Spaces"}, ENV, "run_id"),
    ({"workdir": "../x"}, ENV, "relative path inside"),
    ({"workdir": "nope"}, ENV, "is not a directory"),
    ({"providers": ["aws"]}, ENV, "unknown provider"),
    ({}, {}, "no API key"),
    ({"providers": ["runpod", "vast"]}, ENV, "VAST_API_KEY is not set"),
])
def test_bad_specs_say_why(repo, key, tmp_path, over, env, expect):
    with pytest.raises(_run.SpecError) as err:
        _run.normalize(spec_of(repo, key, **over), str(tmp_path), env, WHEN)
    assert expect in str(err.value)


def test_every_problem_is_reported_at_once(repo, key, tmp_path):
    with pytest.raises(_run.SpecError) as err:
        _run.normalize(spec_of(repo, key, command="", nodes=0, ttl="x"), str(tmp_path), ENV, WHEN)
    assert len(err.value.problems) == 3


def test_repo_problems(tmp_path, key, repo):
    with pytest.raises(_run.SpecError, match="not a git repository"):
        _run.normalize(spec_of(tmp_path, key), str(tmp_path), ENV, WHEN)
    (repo / "train.py").write_text("changed\n")
    with pytest.raises(_run.SpecError, match="uncommitted change"):
        _run.normalize(spec_of(repo, key, dirty="fail"), str(tmp_path), ENV, WHEN)
    assert _run.normalize(spec_of(repo, key), str(tmp_path), ENV, WHEN)["repo_facts"]["dirty_files"] == 1


def test_homelab_needs_no_provider_key(repo, key, tmp_path):
    s = _run.normalize(spec_of(repo, key, target="homelab", gpu=[]), str(tmp_path), {}, WHEN)
    assert s["target"] == "homelab"


def test_an_existing_run_continues_from_its_saved_spec(repo, key, tmp_path):
    first = _run.normalize(spec_of(repo, key, run_id="r-1", nodes=2), str(tmp_path), ENV, WHEN)
    os.makedirs(first["run_dir"])
    lifecycle.write_json(os.path.join(first["run_dir"], "spec.json"), _run.public_spec(first))
    later = datetime.datetime(2026, 12, 3, tzinfo=datetime.timezone.utc)
    again = _run.normalize({"run_id": "r-1"}, str(tmp_path), ENV, later)
    assert again["existing"] and again["nodes"] == 2 and again["command"] == "python3 train.py"
    assert again["expires_at"] == first["expires_at"] and again["job_id"] == first["job_id"]


def test_record_updates_merge_instances_and_add_steps(tmp_path):
    run_dir = str(tmp_path / "r")
    lifecycle.update_record(run_dir, {"target": "cloud"}, instances=[{"provider": "vast", "id": "1", "name": "a"}],
                            steps={"health": 1.0})
    rec = lifecycle.update_record(run_dir, {}, instances=[{"provider": "vast", "id": "1", "destroyed_at": "x"},
                                                          {"provider": "runpod", "id": "1", "name": "b"}],
                                  steps={"health": 0.5})
    assert rec["target"] == "cloud" and rec["steps"] == {"health": 1.5}
    assert {(i["provider"], i.get("name"), i.get("destroyed_at")) for i in rec["instances"]} == {
        ("vast", "a", "x"), ("runpod", "b", None)}
    assert json.loads((tmp_path / "r" / "run.json").read_text()) == rec
    with pytest.raises(lifecycle.LifecycleError):  # state and status have their own writers
        lifecycle.update_record(run_dir, {"status": "succeeded"})


def test_step_times_take_the_slowest_node():
    marks = [{"start": 10, "deploy": 12, "bootstrap": 15}, {"start": 10, "deploy": 13, "bootstrap": 14}]
    assert _run.step_times(marks) == {"deploy": 3.0, "bootstrap": 3.0}


def test_cost_estimate_billed_and_budget():
    t0 = 1_000_000.0
    inst = [{"provider": "runpod", "id": "p", "price_per_hour": 0.36, "created_at": t0, "destroyed_at": t0 + 100},
            {"provider": "vast", "id": "7", "price_per_hour": 0.72, "created_at": t0}]
    doc = _run.cost_document(inst, {("runpod", "p"): {"billed_usd": 0.01}}, now=t0 + 50)
    rows = {r["id"]: r for r in doc["instances"]}
    assert rows["p"]["estimated_usd"] == pytest.approx(0.01) and rows["p"]["billed_available"]
    assert rows["7"]["estimated_usd"] == pytest.approx(0.01) and not rows["7"]["billed_available"]
    assert "billed_usd" not in doc["total"]  # not every instance billed yet
    assert doc["total"]["price_per_hour"] == 0.72  # the running one
    # 0.02 spent at 0.72 $/h: 0.01 more lasts 50 s
    assert _run.budget_seconds_left(inst, 0.03, now=t0 + 50) == 50
    assert _run.budget_seconds_left(inst, None) is None


@pytest.mark.parametrize("kw,status", [
    ({"jobs": [{"status": "succeeded"}, {"status": "succeeded"}]}, "succeeded"),
    ({"jobs": [{"status": "succeeded"}, {"status": "failed", "exit_code": "1", "msg": "boom"}]}, "failed"),
    ({"jobs": [{"status": "killed", "budget_exceeded": True, "msg": "budget"}]}, "budget_exceeded"),
    ({"failure": {"step": "preflight", "msg": "no offer"}}, "failed"),
    ({"status": "cancelled", "message": "guardian"}, "cancelled"),
    ({"collected": [{"job": {"status": "succeeded"}}]}, "succeeded"),
    ({"collected": [{"job": {"status": "running"}}]}, "cancelled"),
])
def test_outcome(kw, status):
    out = _run.outcome({"keep_on_failure": False}, **kw)
    assert out["status"] == status
    if status == "failed" and "jobs" in kw:
        assert out["exit_code"] == 1 and "boom" in out["message"]


def test_keep_on_failure_keeps_only_failed_runs():
    assert _run.outcome({"keep_on_failure": True}, failure={"step": "x", "msg": "y"})["keep"]
    assert not _run.outcome({"keep_on_failure": True}, jobs=[{"status": "succeeded"}])["keep"]
    detached = _run.outcome({"detach": True}, jobs=[{"status": "running", "attach": "ssh ..."}])
    assert detached["status"] == "running" and detached["keep"] and detached["attach"] == ["ssh ..."]


def test_metrics_merge_tags_hosts_and_skips_cut_lines(tmp_path):
    for host, lines in (("a", ['{"step": 1, "loss": 4.0}', '{"step": 2, "loss": 3.0}', '{"step": 3, "lo']),
                        ("b", ['{"step": 1, "loss": 4.5}'])):
        out = tmp_path / host / "job" / "outputs"
        out.mkdir(parents=True)
        (out / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    merged = _run.merge_metrics(str(tmp_path), ["a", "b"])
    assert [(m["host"], m["step"]) for m in merged] == [("a", 1), ("a", 2), ("b", 1)]
    assert _run.loss_trend(merged) == (4.0, 3.0)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_summary_names_status_nodes_cost_and_results():
    rec = {"run_id": "r", "status": "failed", "exit_code": 1, "message": "job failed", "run_dir": "/x/r",
           "instances": [{"name": "r-0", "provider": "vast", "id": "7", "gpu_model": "RTX 4090", "gpu_count": 1,
                          "price_per_hour": 0.3, "destroyed_at": "t"}],
           "steps": {"train": 70, "deploy": 2}, "watchdog": {"r-0": False}}
    cost = {"instances": [{}], "total": {"estimated_usd": 0.01}}
    text = "\n".join(_run.summary_lines(rec, cost, (4.0, 2.5), "/x/r/loss.png"))
    assert "gpu.ops run r: failed (exit code 1)" in text and "why: job failed" in text
    assert "deploy 2s, train 1m10s" in text and "$0.0100 estimated (provider bill pending)" in text
    assert "no instance credential on r-0" in text and "loss: 4.0000 -> 2.5000" in text


def test_guardian_knows_a_live_process_by_its_start_time():
    me = os.getpid()
    start = _guardian.proc_start_time(me)
    assert start and _guardian.alive(me, start)
    assert not _guardian.alive(me, str(int(start) + 1))  # same pid, another process
    assert _guardian.proc_start_time(2 ** 22 + 12345) is None
