"""The edit-run loop on warm nodes: gpuops up, exec (x3, with a code change and a dependency change), a second
exec refused while one runs, exec --detach and stop, sync, down; and the commands that must say no."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from devtools import out, until


def _exec_popen(dev, run_id, *cmd):
    exe = Path(sys.executable).parent / "gpuops"
    return subprocess.Popen([str(exe), "--runs-dir", str(dev.runs), "exec", run_id, "--", *cmd],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dev.env)




def test_up_exec_three_times_sync_and_down(dev):
    spec = dev.spec(idle_timeout=600)
    run_id = dev.last_id
    up = dev.gpuops("up", spec)
    assert up.returncode == 0, out(up)[-3000:]
    assert f"gpuops exec {run_id}" in up.stdout
    rec = dev.record(run_id)
    assert (rec["state"], rec["status"], rec["kind"]) == ("ready", "running", "session")
    again = dev.gpuops("up", spec)
    assert again.returncode == 0 and "is already up" in again.stdout, out(again)
    launch = dev.gpuops("launch", spec)
    assert launch.returncode == 2 and "use gpuops exec" in launch.stderr, out(launch)

    first = dev.gpuops("exec", run_id, "--", "python3", "train.py", "2")
    assert first.returncode == 0, out(first)
    assert f"[{run_id}-0] step 1 version v1" in first.stdout
    boot_runs = lambda: (node_home(dev, run_id) / ".bifrost" / "cache").exists()  # noqa: E731
    assert boot_runs()

    dev.commit("VERSION", "v2\n", "v2")  # a one-line change: the next exec runs it
    second = dev.gpuops("exec", run_id, "--json", "--", "python3", "train.py", "1")
    res = json.loads(second.stdout)
    assert second.returncode == 0 and res["exit_code"] == 0, out(second)
    node = res["nodes"][f"{run_id}-0"]
    assert node["stdout"] == "step 0 version v2\n" and node["stderr"] == ""
    assert "bootstrap" not in second.stderr  # the dependency files did not change: no bootstrap ran
    assert res["pushed_bytes"] > 0 and res["timings"]["total"] < 30

    dev.commit("requirements.txt", "# now with a dependency\n", "deps")
    third = dev.gpuops("exec", run_id, "--", "sh", "-c", "echo to-err >&2; exit 4")
    assert third.returncode == 4, out(third)  # the job's own exit code
    assert "bootstrap: the dependency files changed" in third.stderr
    assert f"[{run_id}-0] to-err" in third.stdout

    rec = dev.record(run_id)
    jobs = rec["jobs"]
    assert [j["job_id"] for j in jobs] == [f"exec-{run_id}", f"exec-{run_id}-2", f"exec-{run_id}-3"]
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded", "failed"] and jobs[2]["exit_code"] == 4
    assert jobs[0]["commit"] != jobs[1]["commit"]
    res_dir = dev.runs / run_id / "jobs" / f"exec-{run_id}-2" / f"{run_id}-0"
    assert (res_dir / "outputs" / "result.txt").read_text() == "rank 0 of 1\n"
    assert (res_dir / "stderr.log").read_text() == ""
    assert rec["state"] == "ready"

    dirty = dev.repo / "VERSION"
    dirty.write_text("v3-uncommitted\n")
    shipped = dev.gpuops("exec", run_id, "--dirty", "--", "python3", "train.py", "1")
    assert shipped.returncode == 0 and "version v3-uncommitted" in shipped.stdout, out(shipped)
    plain = dev.gpuops("exec", run_id, "--", "python3", "train.py", "1")  # the next push replaces the layer
    assert plain.returncode == 0 and "version v2" in plain.stdout and "NOT deployed" in plain.stderr, out(plain)
    dirty.write_text("v2\n")

    sync = dev.gpuops("sync", run_id)
    assert sync.returncode == 0 and "verified" in sync.stdout, out(sync)
    again = dev.gpuops("sync", run_id)  # incremental: what is home and verified does not travel again
    assert again.returncode == 0 and "0 file(s) fetched" in again.stdout, out(again)
    down = dev.gpuops("down", run_id)
    assert down.returncode == 0, out(down)[-3000:]
    rec = dev.record(run_id)
    assert (rec["state"], rec["status"]) == ("torn_down", "ended") and not dev.live(run_id)
    assert dev.gpuops("exec", run_id, "--", "true").returncode == 125


def test_a_second_exec_is_refused_detach_and_stop(dev):
    up = dev.gpuops("up", dev.spec())
    run_id = dev.last_id
    assert up.returncode == 0, out(up)[-3000:]
    slow = _exec_popen(dev, run_id, "sh", "-c", "echo started; sleep 60")
    try:
        until(lambda: dev.record(run_id)["state"] == "running", "the first exec to run its job")
        second = dev.gpuops("exec", run_id, "--", "true")
        # refused, naming the first exec (its state says so; the exec lock would say it too)
        assert second.returncode == 125 and f"for exec (pid {slow.pid}" in second.stderr, out(second)
        down = dev.gpuops("sync", run_id)  # reading results while a job runs is fine
        assert down.returncode == 0, out(down)
        stopped = dev.gpuops("stop", run_id)
        assert stopped.returncode == 0, out(stopped)
        rc = slow.wait(timeout=60)
        assert rc == 130, slow.stderr.read()  # the job was stopped: exec ends as interrupted
    finally:
        if slow.poll() is None:
            slow.kill()
    assert dev.record(run_id)["state"] == "ready"

    ctrl_c = _exec_popen(dev, run_id, "sh", "-c", "echo started; sleep 60")
    try:
        until(lambda: dev.record(run_id)["state"] == "running", "the exec to run its job")
        until(lambda: "running" in (node_home(dev, run_id) / ".bifrost" / "jobs" / f"exec-{run_id}-2" / "status")
              .read_text() if (node_home(dev, run_id) / ".bifrost" / "jobs" / f"exec-{run_id}-2" / "status").exists()
              else False, "the job to run")
        ctrl_c.send_signal(signal.SIGINT)  # Ctrl-C: the job stops on every node, the nodes stay
        assert ctrl_c.wait(timeout=60) == 130
    finally:
        if ctrl_c.poll() is None:
            ctrl_c.kill()
    rec = dev.record(run_id)
    assert rec["state"] == "ready" and rec["jobs"][-1]["status"] == "killed" and len(dev.live(run_id)) == 1
    status = (node_home(dev, run_id) / ".bifrost" / "jobs" / f"exec-{run_id}-2" / "status").read_text().strip()
    assert status == "killed"

    det = dev.gpuops("exec", run_id, "--detach", "--", "sh", "-c", "sleep 30")
    assert det.returncode == 0 and "runs detached" in det.stderr, out(det)
    assert dev.record(run_id)["state"] == "detached"
    busy = dev.gpuops("exec", run_id, "--", "true")
    assert busy.returncode == 125 and "detached" in busy.stderr, out(busy)
    assert dev.gpuops("stop", run_id).returncode == 0
    rec = dev.record(run_id)
    assert rec["state"] == "ready" and rec["jobs"][-1]["status"] == "killed", rec["jobs"][-1]
    quiet = dev.gpuops("stop", run_id)
    assert quiet.returncode == 0 and "nothing to stop" in quiet.stdout
    assert dev.gpuops("down", run_id).returncode == 0 and not dev.live(run_id)


def node_home(dev, run_id) -> Path:
    inst = [i for i in dev.record(run_id)["instances"] if not i.get("destroyed_at")][0]
    return dev.sim.state_dir / "nodes" / str(inst["id"]) / "home"


def test_the_step_playbooks_run_new_jobs_on_an_up_run(dev):
    """deploy then train, twice, with ansible-playbook alone: each train is a new job with a fresh id that runs
    the code deployed last; a dependency change re-runs the bootstrap at the next deploy."""
    up = dev.playbook("gpu.ops.up", "-e", f"@{dev.spec(command='python3 train.py 1')}")
    run_id = dev.last_id
    assert up.returncode == 0, up.stdout[-3000:]
    ids = ["-e", f"run_id={run_id}", "-e", f"runs_dir={dev.runs}"]
    for n, version in ((1, "v1"), (2, "v2")):
        if version == "v2":
            dev.commit("VERSION", "v2\n", "v2")
            dev.commit("requirements.txt", "# changed\n", "deps")
        deploy = dev.playbook("gpu.ops.deploy", *ids)
        assert deploy.returncode == 0, deploy.stdout[-3000:]
        train = dev.playbook("gpu.ops.train", *ids)
        assert train.returncode == 0, train.stdout[-3000:]
        rec = dev.record(run_id)
        assert len(rec["jobs"]) == n and rec["state"] == "ready"
        job = rec["jobs"][-1]
        assert job["kind"] == "train" and job["status"] == "succeeded"
        jdir = node_home(dev, run_id) / ".bifrost" / "jobs" / job["job_id"]
        assert f"step 0 version {version}" in (jdir / "job.log").read_text()
        boot = (jdir / "bootstrap.log").read_text()
        if version == "v2":  # the dependency files changed: the bootstrap ran again, for this job
            assert "bootstrapped" in boot and "SKIPPED" not in boot, boot
    assert [j["job_id"] for j in rec["jobs"]] == [f"train-{run_id}", f"train-{run_id}-2"]
    ran = dev.playbook("gpu.ops.exec", *ids, "-e", "exec_command='python3 train.py 2 && echo from-exec'")
    assert ran.returncode == 0, ran.stdout[-3000:]
    job = dev.record(run_id)["jobs"][-1]
    assert (job["job_id"], job["kind"], job["status"]) == (f"train-{run_id}-3", "exec", "succeeded")
    home = dev.runs / run_id / "jobs" / job["job_id"] / f"{run_id}-0"
    assert "from-exec" in (home / "stdout.log").read_text() and (home / "outputs" / "result.txt").is_file()
    bad = dev.playbook("gpu.ops.exec", *ids, "-e", "exec_command='exit 5'")
    assert bad.returncode == 2 and dev.record(run_id)["jobs"][-1]["exit_code"] == 5, bad.stdout[-2000:]
    assert dev.record(run_id)["state"] == "ready"
    assert dev.playbook("gpu.ops.teardown", *ids).returncode == 0
    assert dev.record(run_id)["status"] == "ended" and not dev.live(run_id)
