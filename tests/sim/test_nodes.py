"""The real SSH nodes behind simulated instances: keys, isolation, teardown, the fake nvidia-smi."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

from gpuops.testing import make_keypair

SMI_QUERY = ("nvidia-smi --query-gpu=index,name,temperature.gpu,utilization.gpu,memory.used,memory.total,"
             "ecc.errors.uncorrected.volatile.total --format=csv,noheader,nounits")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_ssh_with_the_right_key_only(runpod_node, tmp_path):
    assert runpod_node.ssh("echo hello").stdout.strip() == "hello"
    other = make_keypair(tmp_path / "other")
    wrong = dataclasses.replace(runpod_node, key=str(other))
    r = wrong.ssh("echo hello", check=False, timeout=20)
    assert r.returncode == 255 and "Permission denied" in r.stderr
    # no password or keyboard-interactive fallback either
    r = subprocess.run(["ssh", *wrong.ssh_args, "-o", "PreferredAuthentications=password,keyboard-interactive",
                        f"{wrong.user}@{wrong.host}", "true"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 255


def test_key_from_create_call_is_the_only_authorized_one(sim, tmp_path):
    from gpuops.testing import wait_ssh

    other = make_keypair(tmp_path / "other")
    other_pub = Path(str(other) + ".pub").read_text().strip()
    pod = sim.create_runpod("nodes-otherkey", pubkey=other_pub, wait=False)
    try:
        p = sim.client.wait_until(lambda: (lambda x: x if x["ssh"]["direct"] else None)(
            sim._rp("GET", f"/pods/{pod['id']}").json()), 20, "direct ssh")
        d = p["ssh"]["direct"]
        wait_ssh(d["host"], d["port"], d["username"], str(other), sim.known_hosts, 20)  # PUBLIC_KEY gets in
        r = subprocess.run(["ssh", "-i", str(sim.key), "-p", str(d["port"]), "-o", "BatchMode=yes",
                            "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={sim.known_hosts}",
                            "-o", "StrictHostKeyChecking=accept-new", f"{d['username']}@{d['host']}", "true"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 255  # the harness key, never given to this pod, does not
    finally:
        sim.destroy(pod["id"], "runpod")


def test_instances_are_isolated(make_nodes):
    a, b = make_nodes(2, "runpod")
    ha = a.ssh("echo $HOME").stdout.strip()
    hb = b.ssh("echo $HOME").stdout.strip()
    assert ha != hb and ha.endswith("/home") and hb.endswith("/home")
    # ~ and the passwd entry point at the instance's own home, as in a container
    assert a.ssh("cd ~ && pwd; getent passwd $(id -un) | cut -d: -f6").stdout.split() == [ha, ha]
    a.ssh("echo secret-a > ~/only-in-a.txt; tmux new-session -d -s job-a 'sleep 300'")
    assert b.ssh("ls ~").stdout.split() == [x for x in b.ssh("ls ~").stdout.split() if x != "only-in-a.txt"]
    assert b.ssh("test -e ~/only-in-a.txt", check=False).returncode == 1
    # separate tmux servers (TMUX_TMPDIR per instance): b sees no session of a
    assert "job-a" in a.ssh("tmux ls").stdout
    rb = b.ssh("tmux ls", check=False)
    assert "job-a" not in rb.stdout
    ta = a.ssh("echo $TMUX_TMPDIR").stdout.strip()
    tb = b.ssh("echo $TMUX_TMPDIR").stdout.strip()
    assert ta and tb and ta != tb
    # the instance's own environment, as RunPod images expose it
    assert a.ssh("echo $RUNPOD_POD_ID").stdout.strip() == a.id
    assert b.ssh("echo $RUNPOD_POD_ID").stdout.strip() == b.id


def test_destroy_kills_every_process_of_the_instance(sim, make_nodes):
    node = make_nodes(1, "runpod")[0]
    keep = make_nodes(1, "runpod", prefix="bystander")[0]
    out = node.ssh(
        "tmux new-session -d -s train 'sleep 1000'; "
        "nohup sleep 1001 >/dev/null 2>&1 </dev/null & echo bg=$!; "
        # a daemon that double-forks into its own session, re-parented to init
        "setsid sh -c 'sleep 1002 & echo dd=$! > ~/dd.pid.tmp; mv ~/dd.pid.tmp ~/dd.pid' "
        "</dev/null >/dev/null 2>&1 & "
        # wait (bounded) for the daemon to record its pid
        "for i in $(seq 200); do [ -s ~/dd.pid ] && break; sleep 0.05; done; "
        "cat ~/dd.pid; tmux list-panes -t train -F 'tm=#{pane_pid}'").stdout
    pids = {k: int(v) for k, v in (line.split("=") for line in out.split() if "=" in line)}
    assert set(pids) == {"bg", "dd", "tm"}, out
    assert all(alive(p) for p in pids.values())
    bystander_pid = int(keep.ssh("nohup sleep 1003 >/dev/null 2>&1 </dev/null & echo $!").stdout.strip())
    detail = sim.client.instance(node.id)
    procs = set(detail["processes"])
    assert set(pids.values()) <= procs  # the simulator knows them all
    node_dir = Path(detail["node_dir"])
    assert node_dir.is_dir()

    sim.destroy(node)
    dead = [p for p in procs if alive(p)]
    assert dead == [], f"survived destroy: {dead}"
    assert not node_dir.exists()
    # the other instance is untouched
    assert alive(bystander_pid) and keep.ssh("echo up").stdout.strip() == "up"


def test_nvidia_smi_answers_the_real_query_flags(sim, make_nodes):
    # a multi-GPU Vast machine (RTX 4090 x2 or x4, whichever is free) and a 2-GPU RunPod A6000 pod (ECC capable)
    offers = sim._vast("POST", "/api/v0/bundles/", json={"gpu_name": {"eq": "RTX 4090"}, "num_gpus": {"gte": 2},
                                                          "order": [["num_gpus", "asc"]]}).json()["offers"]
    assert offers, "no multi-GPU RTX 4090 machine free"
    n = offers[0]["num_gpus"]
    v = make_nodes(1, "vast", num_gpus=n)[0]
    lines = v.ssh(SMI_QUERY).stdout.strip().splitlines()
    assert len(lines) == n == v.gpu_count
    rows = [[c.strip() for c in line.split(",")] for line in lines]
    assert [r[0] for r in rows] == [str(i) for i in range(n)]
    assert {r[1] for r in rows} == {"NVIDIA GeForce RTX 4090"}
    assert all(r[5] == "24564" and r[2].isdigit() for r in rows)
    assert {r[6] for r in rows} == {"[N/A]"}  # consumer card: no ECC
    assert v.ssh("nvidia-smi -L").stdout.count("GPU ") == n

    p = make_nodes(1, "runpod", gpu="NVIDIA RTX A6000", count=2)[0]
    rows = [[c.strip() for c in line.split(",")] for line in p.ssh(SMI_QUERY).stdout.strip().splitlines()]
    assert len(rows) == 2 and {r[1] for r in rows} == {"NVIDIA RTX A6000"} and {r[6] for r in rows} == {"0"}
    with_units = p.ssh("nvidia-smi --query-gpu=name,memory.total --format=csv -i 1").stdout.splitlines()
    assert with_units == ["name, memory.total [MiB]", "NVIDIA RTX A6000, 49140 MiB"]
    r = p.ssh("nvidia-smi --query-gpu=bogus.field --format=csv", check=False)
    assert r.returncode != 0 and "not a valid field" in r.stdout
    assert "Driver Version" in p.ssh("nvidia-smi").stdout


def test_files_move_over_scp_and_sftp(runpod_node, tmp_path):
    src = tmp_path / "payload.txt"
    src.write_text("payload\n")
    n = runpod_node
    opts = ["-i", n.key, "-P", str(n.port), "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={n.known_hosts}",
            "-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR"]
    subprocess.run(["scp", *opts, str(src), f"{n.user}@{n.host}:payload.txt"], check=True, timeout=30)
    assert n.ssh("cat ~/payload.txt").stdout == "payload\n"
    r = subprocess.run(["sftp", *opts, f"{n.user}@{n.host}"], input="get payload.txt back.txt\n", text=True,
                       capture_output=True, timeout=30, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back.txt").read_text() == "payload\n"


def test_nodes_run_as_the_invoking_user(runpod_node):
    assert runpod_node.ssh("id -u").stdout.strip() == str(os.getuid())


def test_destroy_drops_open_connections_of_controlpersist_masters(sim, make_nodes):
    """Ansible keeps ControlPersist masters open (ansible.cfg); sshd lets connections outlive their listener,
    so without care a 'destroyed' node would keep serving them. Destroy must drop them too."""
    import tempfile

    node = make_nodes(1, "runpod")[0]
    short = tempfile.mkdtemp(prefix="cp", dir="/tmp")  # unix socket paths are limited to ~100 bytes
    ctl = f"{short}/%C"
    master = ["-o", "ControlMaster=auto", "-o", f"ControlPath={ctl}", "-o", "ControlPersist=300"]
    base = ["ssh", *node.ssh_args, *master, f"{node.user}@{node.host}"]
    assert subprocess.run([*base, "echo via-master"], capture_output=True, text=True, timeout=30,
                          check=True).stdout.strip() == "via-master"
    assert subprocess.run(["ssh", *master, "-O", "check", f"{node.user}@{node.host}", "-p", str(node.port)],
                          capture_output=True, timeout=10).returncode == 0
    detail = sim.client.instance(node.id)
    sshd = [p for p in detail["processes"] if Path(f"/proc/{p}/comm").read_text().strip() == "sshd"]
    assert len(sshd) >= 2  # the listener and the master's connection
    sim.destroy(node)
    assert [p for p in detail["processes"] if alive(p)] == []
    # the master noticed: its connection is gone, a command through it fails
    r = subprocess.run([*base, "-o", "ControlMaster=no", "true"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 255
    subprocess.run(["ssh", *master, "-O", "exit", f"{node.user}@{node.host}", "-p", str(node.port)],
                   capture_output=True, timeout=10)
    import shutil

    shutil.rmtree(short, ignore_errors=True)
