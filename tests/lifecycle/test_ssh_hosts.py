"""Machines that are not rented as a run's nodes: gpuops up --ssh user@host[:port] (and target homelab). A host that
cannot be used is refused before anything starts, naming it; two runs on one machine do not share a workspace;
logs, ssh, status and exec reach these nodes like cloud ones; nothing is ever destroyed."""

from __future__ import annotations

import socket
import threading

from devtools import out

from gpuops.testing import make_keypair


def _not_ssh_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_unusable_ssh_hosts_are_refused_naming_the_host(dev, make_nodes, tmp_path):
    box = make_nodes(1, "runpod", prefix="box-" + dev.tmp.name[-6:])[0]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    http = _not_ssh_server()
    try:
        cases = [
            (f"root@127.0.0.1:{dead_port}", {}, "no SSH server answers (TCP connect failed"),
            (f"root@127.0.0.1:{http.getsockname()[1]}", {}, "something other than an SSH banner"),
            (f"{box.user}@{box.host}:{box.port}", {"ssh_private_key_file": str(make_keypair(tmp_path, "other"))},
             "login with"),
        ]
        for target, over, words in cases:
            spec = dev.spec(gpu=None, **over)
            proc = dev.gpuops("up", spec, "--ssh", target)
            assert proc.returncode == 2, out(proc)[-2000:]
            assert f"ssh host {target}" in proc.stderr and words in proc.stderr, proc.stderr[-2000:]
            assert not (dev.runs / dev.last_id).exists()  # nothing was started, nothing is left
    finally:
        http.close()


def test_an_ssh_box_serves_two_runs_without_clobbering_and_is_never_destroyed(dev, make_nodes):
    box = make_nodes(1, "vast", prefix="box-" + dev.tmp.name[-6:])[0]
    target = f"{box.user}@{box.host}:{box.port}"
    before = dev.created()
    runs = []
    for version in ("one", "two"):
        dev.commit("VERSION", version + "\n", version)
        up = dev.gpuops("up", dev.spec(gpu=None), "--ssh", target)
        assert up.returncode == 0, out(up)[-3000:]
        runs.append(dev.last_id)
    assert dev.created() == before  # nothing rented
    for run_id, version in zip(runs, ("one", "two"), strict=True):  # each run deployed into its own workspace
        assert box.ssh(f"cat ~/.bifrost/workspaces/{run_id}/VERSION").stdout.strip() == version
    for run_id in runs:
        exe = dev.gpuops("exec", run_id, "--", "cat", "VERSION")  # exec pushes the current commit to its run only
        assert exe.returncode == 0 and f"[{run_id}-0] two" in exe.stdout, out(exe)
    for run_id in runs:
        rec = dev.record(run_id)
        assert rec["target"] == "ssh" and rec["hosts"][0]["ssh_port"] == box.port
        assert rec["spec"]["node_workspace"] == f"~/.bifrost/workspaces/{run_id}"
        logs = dev.gpuops("logs", run_id)
        assert logs.returncode == 0 and "two" in logs.stdout, out(logs)
        ssh = dev.gpuops("ssh", run_id, "--print")
        assert ssh.returncode == 0 and f"-p {box.port}" in ssh.stdout and "tmux attach" in ssh.stdout, out(ssh)
        status = dev.gpuops("status", run_id)
        assert "ready" in status.stdout and "your machine" in status.stdout, status.stdout
    for run_id in runs:
        down = dev.gpuops("down", run_id)
        assert down.returncode == 0, out(down)[-3000:]
        assert dev.record(run_id)["state"] == "torn_down"
        assert (dev.runs / run_id / "jobs" / f"exec-{run_id}" / f"{run_id}-0" / "job.log").is_file()
        # results home, then the run's workspace leaves the user's machine
        assert box.ssh(f"test -e ~/.bifrost/workspaces/{run_id} || echo gone").stdout.strip() == "gone"
    assert box.id in dev.sim.client.ledger()["live_instances"]  # the user's machine is left as it was
    box.ssh("true")


def test_a_detached_home_lab_run_is_followed_and_ended_without_its_inventory(dev, make_nodes):
    """The record knows the lab node: status --live, logs -f and down reach it with no -i (issue 18: home-lab runs
    were second class), and down collects and leaves the machine running."""
    import yaml

    box = make_nodes(1, "runpod", prefix="lab-" + dev.tmp.name[-6:])[0]
    inv = dev.tmp / "lab.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                                   "ansible_python_interpreter": __import__("sys").executable}},
                                           "children": {"lab": {"hosts": {"lab1": box.hostvars()}}}}}))
    spec = dev.spec(gpu=None, target="homelab", homelab_group="lab", detach=True, command="python3 train.py 30")
    run_id = dev.last_id
    launch = dev.playbook("gpu.ops.pipeline", "-i", str(inv), "-e", f"@{spec}")
    assert launch.returncode == 0, launch.stdout[-3000:]
    assert dev.record(run_id)["state"] == "detached"
    logs = dev.gpuops("logs", run_id, "-f", timeout=120)
    assert logs.returncode == 0 and "step 29 version v1" in logs.stdout, out(logs)
    live = dev.gpuops("status", run_id, "--live")
    assert live.returncode == 0 and "lab1" in live.stdout, out(live)[-2000:]
    down = dev.gpuops("down", run_id)
    assert down.returncode == 0, out(down)[-3000:]
    rec = dev.record(run_id)
    assert (rec["state"], rec["status"]) == ("torn_down", "succeeded")
    assert (dev.runs / run_id / "lab1" / "outputs" / "result.txt").is_file()
    assert box.id in dev.sim.client.ledger()["live_instances"]
