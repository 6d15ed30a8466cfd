"""Multi-node: two simulator nodes (2 GPUs each) run `torchrun --nnodes 2` with the gloo backend doing an
all_reduce (the example workload roles/ddp_allreduce through gpu.ops.tmux_job).

torch is installed once into a venv outside the node homes (.cache/, reused across test sessions; the nodes
run as the same user on this machine and reach it by path), with the node Python /usr/bin/python3.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gpuops.testing import REPO
from jobs_helpers import free_port, play

TORCH = "2.13.0"
NODE_PYTHON = "/usr/bin/python3"


def _local_cpu_wheel() -> str | None:
    dirs = [d for d in os.environ.get("PIP_FIND_LINKS", "").split() if d and not d.startswith(("http:", "https:"))]
    for d in dirs + ["/opt/wheels"]:
        hits = sorted(glob.glob(os.path.join(d.removeprefix("file://"), f"torch-{TORCH}+cpu-*.whl")))
        if hits:
            return hits[-1]
    return None


@pytest.fixture(scope="session")
def torch_python() -> str:
    """A venv with the CPU build of torch; built once (file lock for parallel workers), then reused."""
    if not os.access(NODE_PYTHON, os.X_OK):
        pytest.skip(f"{NODE_PYTHON} not found")
    tag = subprocess.run([NODE_PYTHON, "-c", "import sys;print('cp%d%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    base = Path(os.environ.get("GPUOPS_TORCH_VENV") or REPO / ".cache" / f"torch-{TORCH}-cpu-{tag}")
    base.parent.mkdir(parents=True, exist_ok=True)
    stamp = base / ".gpuops-complete"
    with open(str(base) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            shutil.rmtree(base, ignore_errors=True)
            subprocess.run([NODE_PYTHON, "-m", "venv", str(base)], check=True)
            wheel = _local_cpu_wheel()
            # never a bare "torch" from PyPI: that is the CUDA build (GBs); take the CPU wheel on disk or index
            spec = [wheel] if wheel else [f"torch=={TORCH}", "--index-url", "https://download.pytorch.org/whl/cpu",
                                          "--extra-index-url", "https://pypi.org/simple"]
            res = subprocess.run([str(base / "bin" / "python"), "-m", "pip", "install", "-q", "--only-binary=:all:",
                                  *spec], capture_output=True, text=True, timeout=1200)
            assert res.returncode == 0, f"torch install failed: {res.stderr[-3000:]}"
            stamp.write_text(TORCH + "\n")
    return str(base / "bin" / "python")


@pytest.mark.slow
def test_torchrun_two_nodes_gloo_all_reduce(make_nodes, sim, tmp_path, torch_python):
    nodes = make_nodes(1, "runpod", prefix="ddp-rp", count=2) + make_nodes(1, "vast", prefix="ddp-va", num_gpus=2)
    assert [n.gpu_count for n in nodes] == [2, 2]
    port = free_port()
    p = play(sim, nodes, tmp_path, "jobs_ddp_allreduce.yml",
             {"ddp_allreduce_python": torch_python, "ddp_allreduce_master_port": port, "ddp_allreduce_timeout": 240,
              "ddp_allreduce_rendezvous_timeout": 90})
    assert p.rc == 0, p.failures()
    world = 4  # 2 nodes x NPROC_PER_NODE 2 (gpuops_gpu_count, not 1)
    seen = {}
    for rank_node, node in enumerate(nodes):
        res = p.task("Wait for job", node.name)
        job = res["job"]
        assert (job["status"], job["exit_code"]) == ("succeeded", 0), res["msg"]
        assert job["metadata"]["distributed"] == {
            "MASTER_ADDR": nodes[0].host, "MASTER_PORT": str(port), "NODE_RANK": str(rank_node), "WORLD_SIZE": "2",
            "NPROC_PER_NODE": "2"}
        files = node.ssh(f"for f in {job['job_dir']}/outputs/allreduce-rank*.json; do cat $f; echo; done").stdout
        out = [json.loads(line) for line in files.splitlines() if line.strip()]
        assert len(out) == 2
        for r in out:
            assert r["ok"] and r["value"] == r["expected"] == world * (world + 1) / 2
            assert r["world_size"] == world and r["local_world_size"] == 2
            assert r["group_rank"] == rank_node and r["node_rank_env"] == str(rank_node)
            seen[r["rank"]] = r
    assert sorted(seen) == list(range(world))


def test_a_failing_rank_stops_the_job_on_the_other_node(make_nodes, sim, tmp_path):
    """tmux_job_stop_on_peer_failure: rank 0 dies at once; rank 1 (which would wait on it forever) is stopped."""
    nodes = make_nodes(2, "mixed", prefix="gang")
    for node in nodes:
        node.ssh("mkdir -p ~/.bifrost/workspace")
    command = 'if [ "$NODE_RANK" = 0 ]; then echo "rank 0: CUDA error"; exit 3; fi; echo "rank 1 waiting"; sleep 300'
    p = play(sim, nodes, tmp_path, "jobs_roles.yml", {
        "jobs_bootstrap": False, "tmux_job_command": command, "tmux_job_stop_on_peer_failure": True,
        "tmux_job_wait_timeout": 120})
    rank0, rank1 = (p.task("Wait for job", n.name) for n in nodes)
    assert rank0["failed"] and (rank0["job"]["status"], rank0["job"]["exit_code"]) == ("failed", 3)
    assert "rank 0: CUDA error" in rank0["msg"]
    assert rank1["failed"] and rank1["job"]["status"] == "killed"
    assert rank1["stopped_for_peer"] == {"host": nodes[0].name, "status": "failed", "exit_code": 3}
    assert rank1["elapsed"] < 60
    assert f"on {nodes[0].name} it ended failed with exit code 3" in rank1["msg"]
