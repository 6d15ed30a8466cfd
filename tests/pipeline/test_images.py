"""Real images (issue 19): the nodes are the containers the user chose, not friendly sshd boxes.

The simulator builds each node's PATH from its image (sim/data/images.yaml): pytorch/pytorch runtime images have
Python but no sshd, git or tmux; nvidia/cuda runtime images have not even Python; RunPod runs the image's own
entrypoint (no SSH unless it is one of RunPod's templates); pulls take time and RunPod says RUNNING meanwhile;
an image built for a newer CUDA than the host's driver fails the container.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gpuops.testing import leak_checked_simulator, wait_for, wait_ssh
from pipetools import Pipeline, localhost_inventory

pytestmark = pytest.mark.slow

IMAGES = {
    "pytorch-runtime": "pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime",  # no sshd, git, tmux
    "cuda-runtime": "nvidia/cuda:12.4.1-runtime-ubuntu22.04",  # no Python either
    "runpod-template": "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",  # sshd and the tools
}
NEEDS = {"pytorch-runtime": {"git", "tmux"}, "cuda-runtime": {"python3", "git", "tmux"}, "runpod-template": set()}


def _node_tools(run) -> dict:
    tools = run.record.get("node_tools") or {}
    assert tools, f"run.json has no node_tools: {run.record}"
    return tools


@pytest.mark.parametrize("provider", ["runpod", "vast"])
@pytest.mark.parametrize("image", sorted(IMAGES))
def test_pipeline_succeeds_on_real_images(pipeline, provider, image):
    run = pipeline.run(providers=[provider], image=IMAGES[image])
    assert run.proc.returncode == 0, run.output[-5000:]
    rec = run.record
    assert rec["status"] == "succeeded" and rec["torn_down"] is True
    assert "prepare" in rec["steps"], rec["steps"]
    (host, found), = _node_tools(run).items()
    assert set(found["installed"]) == NEEDS[image], found
    assert {"python3", "git", "tmux", "tar"} <= set(found["tools"]), found
    assert not pipeline.live(run.run_id)


def test_a_machine_that_is_not_rented_is_checked_never_changed_then_cached(pipeline, make_nodes, tmp_path):
    """A home-lab style node (already there, not rented) that lacks git and tmux: the run fails naming the command
    to install them and installs nothing; once the user installed them the run succeeds, and the next run on the
    warm node finds the marker of the first preparation."""
    node, = make_nodes(1, provider="runpod", image=IMAGES["pytorch-runtime"], args=_start_command())
    inv = localhost_inventory(tmp_path / "lab.yml", {"lab_gpus": {"hosts": {
        "lab1": {**node.hostvars(), "gpuops_gpu_count": 1}}}})
    lab = dict(target="homelab", homelab_group="lab_gpus", gpu=None, inventory=inv,
               env_drop=("RUNPOD_API_KEY", "VAST_API_KEY"))
    first = pipeline.run(**lab)
    assert first.proc.returncode != 0
    assert "lacks git, tmux" in first.record["message"], first.record
    assert "sudo apt-get install -y git tmux" in first.record["message"]
    assert node.ssh("command -v git || echo absent").stdout.strip() == "absent"
    node.ssh("apt-get update -qq && apt-get install -y -qq git tmux")
    second = pipeline.run(**lab)
    assert second.proc.returncode == 0, second.output[-3000:]
    assert _node_tools(second)["lab1"]["cached"] is False
    third = pipeline.run(**lab)
    assert third.proc.returncode == 0, third.output[-3000:]
    found = _node_tools(third)["lab1"]
    assert found["cached"] is True and found["installed"] == [], found


def _start_command() -> str:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))
    from ansible_collections.gpu.ops.plugins.module_utils.container_start import sshd_start_command

    return sshd_start_command()


# ---------------------------------------------------------------------------- a simulator with its own images
CATALOG_EXTRA = {
    "settings": {"image_pull_mb_per_s": 1000, "image_extract_mb_per_s": 50000, "package_install_seconds": 0},
    "images": [
        # 7 GB at 1000 MB/s: ~7 s of pulling, longer than the run's wait_timeout of 5 s
        {"match": "acme/big-trainer:*", "size_gb": 7.0, "entrypoint": "none", "tools": ["python3", "tar"],
         "package_manager": "apt", "cuda_from_tag": True},
        # deleted from its registry
        {"match": "acme/gone:*", "exists": False},
        # no package manager and not root: nothing can be installed
        {"match": "acme/locked:*", "size_gb": 0.1, "entrypoint": "sshd", "tools": ["python3", "tar", "openssh-server"],
         "package_manager": "none", "user": "trainer"},
        # a package manager, but not root and no sudo
        {"match": "acme/nonroot:*", "size_gb": 0.1, "entrypoint": "sshd", "tools": ["python3", "tar", "openssh-server"],
         "package_manager": "apt", "user": "trainer"},
    ],
}


@pytest.fixture(scope="module")
def image_sim(tmp_path_factory):
    base = tmp_path_factory.mktemp("sim-images")
    default = Path(__file__).resolve().parents[2] / "src" / "gpuops" / "sim" / "data" / "catalog.yaml"
    cat = yaml.safe_load(default.read_text())
    cat["settings"].update(CATALOG_EXTRA["settings"])
    cat["images"] = CATALOG_EXTRA["images"]
    path = base / "catalog.yaml"
    path.write_text(yaml.safe_dump(cat))
    with leak_checked_simulator(base / "sim", catalog=str(path)) as h:
        yield h


@pytest.fixture
def image_pipeline(image_sim, tmp_path, example_repo):
    image_sim.client.clear_faults()
    return Pipeline(image_sim, tmp_path, example_repo)


@pytest.mark.parametrize("provider", ["runpod", "vast"])
def test_a_pull_longer_than_the_ssh_wait_is_waited_for(image_pipeline, provider):
    run = image_pipeline.run(providers=[provider], image="acme/big-trainer:1.0-cuda12.4", wait_timeout=5)
    assert run.proc.returncode == 0, run.output[-5000:]
    assert run.record["status"] == "succeeded"
    (attempt,) = run.record["provision_attempts"]
    wait = attempt["wait"]
    assert wait["pull_seconds"] > 5, wait  # longer than wait_timeout, and not counted against it
    events = [e["event"] for e in wait["events"]]
    assert any(e.startswith("pulling the image") for e in events) and any("image pulled after" in e for e in events)
    assert "image pulled in" in run.output  # the plan's user sees it too


@pytest.mark.parametrize("image,why", [("acme/locked:1", "no package manager"),
                                       ("acme/nonroot:1", "not root and sudo -n does not work")])
def test_an_image_that_cannot_be_prepared_fails_with_the_fix_and_is_destroyed(image_pipeline, image, why):
    run = image_pipeline.run(providers=["runpod"], image=image)
    assert run.proc.returncode != 0
    rec = run.record
    assert rec["status"] == "failed" and rec["torn_down"] is True, rec
    msg = rec.get("message") or ""
    assert "lacks git, tmux" in msg and why in msg and "Fix the image" in msg, msg
    assert not image_pipeline.live(run.run_id)


def test_a_cuda_12_8_image_never_lands_on_a_host_that_supports_less(image_pipeline):
    """The cheapest Vast RTX 4090 (machine 11025) supports CUDA 12.2 only, the next ones 12.4; a 12.8 image must be
    rented on a 12.8 host, and the plan says so."""
    run = image_pipeline.run(providers=["vast"], image="nvidia/cuda:12.8.0-runtime-ubuntu22.04")
    assert run.proc.returncode == 0, run.output[-5000:]
    assert "CUDA >= 12.8 (host CUDA 12.8)" in run.output
    rows = image_pipeline.ledger_rows(run.run_id)
    assert rows and all(r["state"] == "terminated" for r in rows)
    # every instance the run rented (a container that failed on an old driver would be one more row)
    machines = {int(image_pipeline.sim.client.instance(r["id"])["machine_id"]) for r in rows}
    assert machines and 11025 not in machines, machines


def pod_when(image_sim, pod_id, done, timeout, what):
    """The pod as RunPod's API shows it once ``done(pod)`` holds (polled with backoff)."""
    def check():
        pod = image_sim._rp("GET", f"/pods/{pod_id}").json()
        return pod if done(pod) else None
    return wait_for(check, timeout, what)


def test_a_pod_of_a_plain_image_without_a_start_command_never_answers_ssh(image_sim):
    """Straight through the vendor API: RunPod runs pytorch/pytorch's own entrypoint, which starts no sshd."""
    pod = image_sim.create_runpod("plain-pytorch", wait=False, image=IMAGES["pytorch-runtime"])
    try:
        # RUNNING with a runtime: the container is up (provider-apis 1.9)
        p = pod_when(image_sim, pod["id"], lambda p: p["status"] == "RUNNING" and p["runtime"] is not None, 30,
                     "the pod's container")
        direct = p["ssh"]["direct"]
        assert direct, p
        with pytest.raises(TimeoutError):
            wait_ssh(direct["host"], direct["port"], direct["username"], str(image_sim.key), image_sim.known_hosts, 3)
    finally:
        image_sim.destroy(pod["id"], "runpod")


def test_an_image_no_registry_has_fails_as_the_vendor_says(image_sim):
    pod = image_sim.create_runpod("missing-image", wait=False, image="acme/gone:1")
    try:
        p = pod_when(image_sim, pod["id"], lambda p: p["status"] == "ERROR", 20, "the pod to fail")
        assert p["status"] == "ERROR", p
        assert "manifest unknown" in image_sim.client.instance(pod["id"])["status_msg"]
    finally:
        image_sim.destroy(pod["id"], "runpod")


@pytest.mark.parametrize("provider", ["runpod", "vast"])
def test_a_pull_that_stalls_ends_at_pull_timeout_and_is_destroyed(image_pipeline, provider):
    spec = image_pipeline.spec(providers=[provider], wait_timeout=3, pull_timeout=4, max_attempts=1)
    image_pipeline.sim.client.add_faults(
        f"faults: [{{type: pull_never, match: {{name: '{spec['run_id']}-*'}}}}]")
    run = image_pipeline.run(**spec)
    assert run.proc.returncode != 0
    assert "pull_timeout (4s)" in (run.record.get("message") or ""), run.record.get("message")
    assert run.record["torn_down"] is True and not image_pipeline.live(run.run_id)
