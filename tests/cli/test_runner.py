"""run_playbook end to end: ansible-runner, a gpu.ops module against the simulator, typed events, the private
data dir (removed, or kept and free of secret values), and the result read from set_stats and run.json."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from gpuops import api, runner
from gpuops.events import (CollectDone, Failure, JobProgress, JobStarted, NodeReady, StepEnded, StepStarted)
from gpuops.testing import REPO

TOKEN = "tok-" + uuid.uuid4().hex  # a secret_env value: must never reach the data dir


def _playbook(tmp_path: Path, *, fail: bool) -> Path:
    write_record = {"ansible.builtin.copy": {
        "dest": "{{ runs_dir }}/{{ run_id }}/run.json", "mode": "0600",
        "content": "{{ {'run_id': run_id, 'status': 'succeeded', 'torn_down': true, 'owner': 'me',"
                   " 'instances': fleet.instances, 'steps': {'provision': 1.0}} | to_json }}"}}
    plays = [
        {"name": "provision", "hosts": "localhost", "gather_facts": False, "tasks": [
            {"name": "offers", "gpu.ops.gpu_offer_info": {"gpu": ["4090"], "limit": 2}, "register": "found"},
            {"name": "a careless task", "ansible.builtin.debug": {
                "msg": "token {{ lookup('ansible.builtin.env', 'GPUOPS_TEST_TOKEN') }}"}},
            {"name": "nodes", "gpu.ops.gpu_instance": {
                "name_prefix": "{{ run_id }}", "count": 1, "gpu": ["RTX 4090"], "max_price_per_hour": 0.7,
                "images": {"runpod": "runpod/pytorch:2.4.0", "vast": "vastai/base-image:cuda-12.4"},
                "run_id": "{{ run_id }}", "ssh_private_key_file": "{{ key }}",
                "known_hosts_file": "{{ runs_dir }}/known_hosts", "wait_timeout": 60}, "register": "fleet"},
            {"name": "run dir", "ansible.builtin.file": {"path": "{{ runs_dir }}/{{ run_id }}", "state": "directory",
                                                         "mode": "0700"}},
            {"name": "record", **write_record}]},
        {"name": "train", "hosts": "localhost", "gather_facts": False, "tasks": [
            {"name": "the job", "ansible.builtin.fail": {"msg": "job exited 1"}, "when": fail}]},
        {"name": "teardown", "hosts": "localhost", "gather_facts": False, "tasks": [
            {"name": "destroy", "gpu.ops.gpu_instance": {"name_prefix": "{{ run_id }}", "state": "absent"}},
            {"name": "summary", "ansible.builtin.set_stats": {"data": {"gpuops_summary": {
                "run_id": "{{ run_id }}", "status": "succeeded", "summary": "run {{ run_id }} done",
                "run_dir": "{{ runs_dir }}/{{ run_id }}"}}}}]},
    ]
    if fail:  # the teardown play must still run after the failure: put the train play's failure in a block
        plays[1]["tasks"] = [{"block": plays[1]["tasks"], "rescue": [
            {"name": "note", "ansible.builtin.debug": {"msg": "failed"}}]}]
        plays[1]["tasks"][0]["block"][0].pop("when")
        plays[1]["tasks"][0]["rescue"].append({"name": "mark", "ansible.builtin.set_fact": {"train_failed": True}})
    pb = tmp_path / "tiny.yml"
    pb.write_text(yaml.safe_dump(plays, sort_keys=False))
    return pb


def _inventory():
    return {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                            "ansible_python_interpreter": sys.executable}}}}


@pytest.fixture
def tiny(sim, sim_env, tmp_path):
    def run(*, keep=False, fail=False):
        run_id = "t-" + uuid.uuid4().hex[:6]
        parent = tmp_path / f"data-{run_id}"
        parent.mkdir()
        events = []
        env = dict(sim_env, GPUOPS_TEST_TOKEN=TOKEN)
        res = runner.run_playbook(
            str(_playbook(tmp_path, fail=fail)),
            {"run_id": run_id, "runs_dir": str(tmp_path / "runs"), "key": str(sim.key), "secret_env": ["GPUOPS_TEST_TOKEN"]},
            on_event=events.append, keep_artifacts=keep, env=env, inventory=_inventory(), data_dir_parent=str(parent))
        return res, events, parent, env

    return run


def test_events_result_and_data_dir_removed(tiny, sim):
    res, events, parent, _env = tiny()
    assert res.rc == 0, res.to_dict()
    plays = [e.name for e in events if isinstance(e, StepStarted) and e.kind == "play"]
    assert plays == ["provision", "train", "teardown"]
    ended = [e for e in events if isinstance(e, StepEnded) and e.kind == "play"]
    assert [e.name for e in ended] == plays and not any(e.failed for e in ended)
    tasks = [e.name for e in events if isinstance(e, StepStarted) and e.kind == "task"]
    assert "nodes" in tasks and "destroy" in tasks
    ready = [e for e in events if isinstance(e, NodeReady)]
    assert len(ready) == 1 and ready[0].name.startswith(res.run_id) and ready[0].ssh_port
    # the result: set_stats summary and the run record
    assert res.status == "succeeded" and res.summary == f"run {res.run_id} done"
    assert res.run_dir and res.run_dir.name == res.run_id
    assert [i["id"] for i in res.instances] == [ready[0].id]
    assert res.exit_code() == 0
    assert res.cost["source"] == "price x time"
    assert list(parent.iterdir()) == []  # the private data dir is gone
    assert not sim.client.ledger()["live_instances"]


def test_keep_artifacts_holds_no_secret_value(tiny, sim_env):
    res, events, parent, env = tiny(keep=True, fail=True)
    assert res.artifacts_dir and res.artifacts_dir.parent == parent
    secrets = [env["RUNPOD_API_KEY"], env["VAST_API_KEY"], TOKEN]
    assert all(len(s) >= 8 for s in secrets)
    files = [p for p in res.artifacts_dir.rglob("*") if p.is_file()]
    assert any(p.name == "command" for p in files) and any(p.parent.name == "job_events" for p in files)
    for path in files:
        data = path.read_bytes()
        for s in secrets:
            assert s.encode() not in data, f"a secret value is in {path}"
    # the keys never went through ansible-runner's recorded environment at all (not only masked afterwards)
    command = json.loads(next(p for p in files if p.name == "command").read_text())
    assert "RUNPOD_API_KEY" not in command["env"] and "GPUOPS_TEST_TOKEN" not in command["env"]
    # ... yet the module had them: offers were found, and the careless task saw the token (masked in events)
    stdout = next(p for p in files if p.name == "stdout").read_text()
    assert "token ********" in stdout and "offers" in stdout
    fails = [e for e in events if isinstance(e, Failure)]
    assert [f.msg for f in fails] == ["job exited 1"] and fails[0].play == "train"
    assert res.failure == "job exited 1"


def test_missing_playbook_is_infrastructure(sim_env, tmp_path):
    res = runner.run_playbook("gpu.ops.no_such_playbook", {}, env=sim_env, data_dir_parent=str(tmp_path))
    assert res.status == "error" and res.rc == 1
    assert "gpu.ops.no_such_playbook" in res.failure and "could not be found" in res.failure
    assert res.exit_code("action") == 3 and res.exit_code("run") == 3
    assert list(tmp_path.iterdir()) == []


def test_api_is_an_alias():
    assert api.run_playbook is runner.run_playbook and api.run_pipeline is runner.run_pipeline


def test_job_wait_progress_lines_become_events():
    """The translator reads the line job_wait really prints (its own formatter, not a copy of the format)."""
    sys.path.insert(0, str(REPO / "collections"))
    try:
        from ansible_collections.gpu.ops.plugins.action.job_wait import ActionModule
    finally:
        sys.path.pop(0)
    from gpuops.events import EventTranslator

    line = ActionModule._progress_line("node-0", "finished", {"job_id": "train-20260101-000000-abcd1234",
                                                              "status": "running", "duration_s": 75,
                                                              "last_line": "step 40 loss 1.93"}, 92.0, {})
    evs = EventTranslator().feed({"event": "verbose", "stdout": "\x1b[0;36m" + line + "\x1b[0m"})
    assert evs == [JobProgress("node-0", "train-20260101-000000-abcd1234", evs[0].state, evs[0].waited,
                               "step 40 loss 1.93", at=evs[0].at)]
    assert evs[0].state.startswith("running")
    tr = EventTranslator()
    started = tr.feed({"event": "runner_on_ok", "event_data": {"host": "n0", "task_action": "gpu.ops.job", "res": {
        "job": {"job_id": "j1", "session": "bifrost-j1", "attach_command": "tmux attach -t bifrost-j1"}}}})
    assert started == [JobStarted("n0", "j1", "bifrost-j1", "tmux attach -t bifrost-j1", at=started[0].at)]
    done = tr.feed({"event": "runner_on_ok", "event_data": {"host": "n0", "task_action": "gpu.ops.collect_results",
                                                            "res": {"dest": "/r/n0", "files": 3, "bytes": 10}}})
    assert done == [CollectDone("n0", "/r/n0", 3, 10, at=done[0].at)]


def test_the_pipeline_step_actions_give_the_same_events():
    """run_node_train (start, wait) and run_node_collect run job, job_wait and collect_results inside one task each;
    their results carry the same fields, so a consumer sees the same JobStarted, JobProgress and CollectDone."""
    from gpuops.events import EventTranslator

    tr = EventTranslator()

    def ok(action, res):
        return tr.feed({"event": "runner_on_ok", "event_data": {"host": "n0", "task_action": action, "res": res}})

    started = ok("gpu.ops.run_node_train", {"job": {"job_id": "j1", "session": "bifrost-j1",
                                                    "attach_command": "ssh -t n0 tmux attach -t bifrost-j1"}})
    assert started == [JobStarted("n0", "j1", "bifrost-j1", "ssh -t n0 tmux attach -t bifrost-j1", at=started[0].at)]
    waited = ok("gpu.ops.run_node_train", {"job": {"job_id": "j1", "status": "succeeded", "exit_code": 0},
                                           "done": True, "elapsed": 4.2, "outcome": {"status": "succeeded"}})
    assert [(e.job_id, e.state, e.done, e.exit_code) for e in waited] == [("j1", "succeeded", True, 0)]
    # a detached job's wait phase waited for nothing: no event
    assert ok("gpu.ops.run_node_train", {"job": {}, "done": False, "outcome": {"status": "running"}}) == []
    done = ok("gpu.ops.run_node_collect", {"dest": "/r/n0", "files": 3, "bytes": 10, "collected": {"ok": True}})
    assert done == [CollectDone("n0", "/r/n0", 3, 10, at=done[0].at)]
    assert ok("gpu.ops.run_node_collect", {"collected": {"ok": False, "msg": "unreachable"}}) == []


def test_secret_env_names_are_secret():
    from gpuops.secrets import secret_names

    env = {"RUNPOD_API_KEY": "k", "VAST_API_KEY": "k", "THIRDCLOUD_API_KEY": "k", "HOME": "/h"}
    assert secret_names({"secret_env": ["HF_TOKEN"]}, environ=env) == [
        "RUNPOD_API_KEY", "THIRDCLOUD_API_KEY", "VAST_API_KEY", "HF_TOKEN"]
    assert "WANDB_API_KEY" in secret_names({"secret_env": {"WANDB_API_KEY": None}})
    assert os.environ.get("GPUOPS_SECRETS_FIFO") is None
