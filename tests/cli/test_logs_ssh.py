"""`gpuops logs` and `gpuops ssh` read the run record's connection info and talk to real sshd nodes (a run
record written here for a simulator node; the pipeline writes the same fields)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from clitools import gpuops, instance_of, write_run
from gpuops import runner


@pytest.fixture
def run_on_node(make_nodes, sim, tmp_path):
    """Two live nodes with a job dir (job.log, bootstrap.log) and a run record naming them."""
    nodes = make_nodes(2, "mixed")
    job = "train-20260101-000000-" + uuid.uuid4().hex[:8]
    for i, n in enumerate(nodes):
        n.ssh(f"mkdir -p ~/.bifrost/jobs/{job} && printf 'step 1 loss 2.0\\nstep 2 loss 1.{i}\\n' "
              f"> ~/.bifrost/jobs/{job}/job.log && echo 'pip install ok' > ~/.bifrost/jobs/{job}/bootstrap.log")
    runs = tmp_path / "runs"
    run_id = "logs-" + uuid.uuid4().hex[:6]
    write_run(runs, run_id, status="running", instances=[instance_of(n) for n in nodes],
              inputs={"ssh_private_key_file": str(sim.key)})
    return runs, run_id, nodes, job


def test_logs_of_every_node(run_on_node):
    runs, run_id, nodes, _job = run_on_node
    proc = gpuops("--runs-dir", runs, "logs", run_id)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for i, n in enumerate(nodes):
        assert f"[{n.name}] step 1 loss 2.0" in lines and f"[{n.name}] step 2 loss 1.{i}" in lines
    one = gpuops("--runs-dir", runs, "logs", run_id, "--host", nodes[1].name, "-n", "1")
    assert one.stdout == "step 2 loss 1.1\n", one.stderr
    boot = gpuops("--runs-dir", runs, "logs", run_id, "--host", nodes[0].id, "--bootstrap", "--json")
    assert [json.loads(x) for x in boot.stdout.splitlines()] == [{"host": nodes[0].name, "line": "pip install ok"}]


def test_logs_named_job_id_and_missing_log(run_on_node):
    runs, run_id, nodes, job = run_on_node
    record = json.loads((runs / run_id / "run.json").read_text())
    record["job_id"] = "train-none"
    (runs / run_id / "run.json").write_text(json.dumps(record))
    proc = gpuops("--runs-dir", runs, "logs", run_id, "--host", nodes[0].name)
    assert proc.returncode == 3 and "train-none" in proc.stderr


def test_follow_yields_new_lines_until_closed(run_on_node):
    runs, run_id, nodes, job = run_on_node
    gen = runner.logs(run_id, follow=True, host=nodes[0].name, runs_dir=runs)
    seen = [next(gen).line, next(gen).line]
    assert seen == ["step 1 loss 2.0", "step 2 loss 1.0"]
    nodes[0].ssh(f"echo 'step 3 loss 0.5' >> ~/.bifrost/jobs/{job}/job.log")
    assert next(gen).line == "step 3 loss 0.5"  # blocks until the line arrives (test timeout is the deadline)
    gen.close()  # ends the ssh process
    def tails():
        return subprocess.run(["pgrep", "-f", f"tail .*{job}"], capture_output=True, text=True).stdout.split()

    left = tails()
    deadline = time.monotonic() + 10
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = tails()
    assert not left


def test_unknown_host_and_unknown_run(run_on_node):
    runs, run_id, _nodes, _job = run_on_node
    assert gpuops("--runs-dir", runs, "logs", run_id, "--host", "nope").returncode == 2
    assert gpuops("--runs-dir", runs, "logs", "no-such-run").returncode == 2


def test_ssh_attaches_to_the_job_session(run_on_node):
    """`gpuops ssh` under a real pty: the job's tmux screen shows, and detaching ends ssh."""
    pexpect = pytest.importorskip("pexpect")
    if not shutil.which("tmux"):
        pytest.skip("tmux not installed")
    runs, run_id, nodes, job = run_on_node
    node = nodes[0]
    node.ssh(f"tmux new-session -d -s bifrost-{job} \"echo MARK-{job[-8:]}; sleep 300\"")
    printed = gpuops("--runs-dir", runs, "ssh", run_id, node.name, "--print")
    assert printed.returncode == 0 and f"bifrost-{job}" not in printed.stdout  # no job id recorded: newest session
    child = pexpect.spawn(str(Path(sys.executable).parent / "gpuops"), ["--runs-dir", str(runs), "ssh", run_id,
                                                                       node.name], timeout=30, encoding="utf-8")
    try:
        child.expect(f"MARK-{job[-8:]}")
        child.sendcontrol("b")
        child.send("d")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
        node.ssh(f"tmux kill-session -t bifrost-{job}", check=False)
