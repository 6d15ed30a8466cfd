"""The lifecycle bugs of a run that outlives its launch (issue 18): keep_on_failure, detach, repeated commands.
Each of these failed before the lifecycle module: kept nodes were torn down by the guardian and then leaked,
detached runs exited 3 and lost their results, a second down rewrote a succeeded run to cancelled."""

from __future__ import annotations

import json

from devtools import out


def test_keep_on_failure_keeps_then_down_destroys_and_records_truthfully(dev):
    spec = dev.spec(command="python3 train.py 2 && exit 7", keep_on_failure=True)
    run_id = dev.last_id
    launch = dev.gpuops("launch", spec)
    assert launch.returncode == 1, out(launch)[-3000:]
    assert f"gpuops down {run_id}" in launch.stdout  # the summary says how to end it
    rec = dev.record(run_id)
    assert (rec["state"], rec["status"]) == ("kept", "failed") and rec["kept"] is True
    assert len(dev.live(run_id)) == 1  # the node is kept ...
    guardian = (dev.runs / run_id / "guardian.log").read_text()
    assert "is kept (status failed); nothing to do" in guardian  # ... and the guardian left it alone
    assert "teardown attempt" not in guardian
    status = dev.gpuops("status", run_id)
    assert status.returncode == 0 and f"run {run_id}: kept: failed" in status.stdout, out(status)

    down = dev.gpuops("down", run_id)
    assert down.returncode == 0, out(down)[-3000:]
    assert not dev.live(run_id)
    rec = dev.record(run_id)
    assert (rec["state"], rec["status"]) == ("torn_down", "failed")  # the outcome is not rewritten
    assert [h["state"] for h in rec["history"]][-3:] == ["kept", "tearing_down", "torn_down"]
    assert rec["jobs"][0]["hosts"][f"{run_id}-0"]["exit_code"] == 7

    again = dev.gpuops("down", run_id)
    assert again.returncode == 0 and "already torn down (failed at" in again.stdout, out(again)
    assert dev.record(run_id)["history"] == rec["history"]  # a no-op writes nothing
    for playbook in ("gpu.ops.deploy", "gpu.ops.train"):
        proc = dev.playbook(playbook, "-e", f"run_id={run_id}", "-e", f"runs_dir={dev.runs}")
        assert proc.returncode == 2 and "is torn down" in proc.stdout, (playbook, proc.stdout[-2000:])
    exe = dev.gpuops("exec", run_id, "--", "true")
    assert exe.returncode == 125 and "is torn down" in exe.stderr, out(exe)
    assert dev.record(run_id)["history"] == rec["history"]


def test_detach_status_logs_and_down_collect_the_results(dev):
    spec = dev.spec(command="python3 train.py 40 && sleep 2", detach=True)
    run_id = dev.last_id
    launch = dev.gpuops("launch", spec)
    assert launch.returncode == 0, out(launch)[-3000:]
    rec = dev.record(run_id)
    assert (rec["state"], rec["status"]) == ("detached", "running")
    assert f"gpuops logs {run_id} -f" in launch.stdout
    logs = dev.gpuops("logs", run_id, "-f", timeout=120)  # ends when the job ends, with 0
    assert logs.returncode == 0, out(logs)
    assert "step 39 version v1" in logs.stdout and "status=succeeded" in logs.stdout
    status = dev.gpuops("status", run_id, "--json")  # asks the node: the detached job ended
    rec = json.loads(status.stdout)
    assert (rec["state"], rec["status"]) == ("ready", "succeeded"), rec
    assert rec["jobs"][0]["status"] == "succeeded" and len(dev.live(run_id)) == 1

    down = dev.gpuops("down", run_id)
    assert down.returncode == 0, out(down)[-3000:]
    rec = dev.record(run_id)
    assert (rec["state"], rec["status"]) == ("torn_down", "succeeded")
    host = dev.runs / run_id / f"{run_id}-0"
    assert (host / "outputs" / "result.txt").read_text() == "rank 0 of 1\n"  # collected before the destroy
    assert "step 39" in (host / "job.log").read_text()
    assert not dev.live(run_id)
    again = dev.gpuops("down", run_id)
    assert again.returncode == 0 and "already torn down (succeeded" in again.stdout
    assert dev.record(run_id)["status"] == "succeeded"  # not "cancelled ... torn down before the job finished"
    old = dev.gpuops("logs", run_id)  # after teardown: the copy that came home
    assert old.returncode == 0 and "step 39 version v1" in old.stdout, out(old)


def test_a_typo_in_the_spec_is_refused_with_the_nearest_key_before_anything_is_rented(dev):
    before = dev.created()
    spec = dev.spec(comand="python3 train.py", min_vram_gb=80)
    proc = dev.gpuops("launch", spec)
    assert proc.returncode == 2
    assert "unknown run spec key 'comand' (did you mean 'command'?)" in proc.stderr
    assert "unknown run spec key 'min_vram_gb'" in proc.stderr
    direct = dev.playbook("gpu.ops.pipeline", "-e", f"@{spec}")  # the same check without the CLI
    assert direct.returncode == 2 and "did you mean 'command'?" in direct.stdout, direct.stdout[-2000:]
    assert dev.created() == before
    mine = dev.gpuops("launch", dev.spec(x_mine=1, gpu=["GTX 9999"]))  # x_ keys are the user's own: they pass
    assert mine.returncode == 2 and "x_mine" not in mine.stderr and "unknown GPU model" in out(mine), out(mine)[-2000:]
