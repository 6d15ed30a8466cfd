"""The pipeline's happy paths: one node, two nodes across providers, home lab; what a run leaves behind."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpuops.testing import REPO
from pipetools import localhost_inventory

pytestmark = pytest.mark.slow


def assert_clean(pipeline, run):
    assert not pipeline.live(run.run_id), f"instances of {run.run_id} still live: {pipeline.live(run.run_id)}"
    rec = run.record
    assert rec["torn_down"] is True
    assert rec["status"] in ("succeeded", "failed", "budget_exceeded", "cancelled")


def assert_cost_matches_ledger(pipeline, run):
    """cost.json's estimate against the simulator's ledger: per instance, billed seconds within 1 % plus what the
    controller cannot see: createdAt is whole seconds, a destroy is stamped when the task that made it returns
    (up to ~1 s later), and Vast bills the GPU from running only (boot)."""
    cost = run.json("cost.json")
    rows = {r["id"]: r for r in pipeline.ledger_rows(run.run_id)}
    assert {c["id"] for c in cost["instances"]} == set(rows)
    for c in cost["instances"]:
        led = rows[c["id"]]
        slack = 0.01 * led["billed_seconds"] + 2.0 + (pipeline.sim.boot_seconds if c["provider"] == "vast" else 0)
        assert abs(c["billed_seconds"] - led["billed_seconds"]) <= slack, (c, led)
    assert abs(cost["total"]["estimated_usd"] - sum(r["cost"] for r in rows.values())) <= \
        0.01 * sum(r["cost"] for r in rows.values()) + sum(r["price_per_hour"] for r in rows.values()) * 3 / 3600


def assert_billed_matches_ledger(pipeline, run):
    """cost.json's `billed` is what the providers' billing APIs say; it equals the simulator's ledger within 1 %
    (Vast reports charges to 3 decimals, so there the rounding is the bound when it is larger)."""
    cost = run.json("cost.json")
    rows = {r["id"]: r for r in pipeline.ledger_rows(run.run_id)}
    billed = [c for c in cost["instances"] if c["billed_available"]]
    assert billed, cost
    for c in billed:
        led = rows[c["id"]]["cost"]
        bound = max(0.01 * led, 0.0005 if c["provider"] == "vast" else 1e-6)
        assert abs(c["billed_usd"] - led) <= bound, (c, rows[c["id"]])


def test_one_node_end_to_end(pipeline):
    run = pipeline.run(secret_env=["GPUOPS_TEST_SECRET"], env_extra={"GPUOPS_TEST_SECRET": "s3cr3t-Zq81"},
                       env={"TOKEN_NAME_ONLY": "visible"})
    assert run.proc.returncode == 0, run.output[-4000:]
    rec = run.record
    assert rec["status"] == "succeeded" and rec["exit_code"] in (None, 0)
    assert_clean(pipeline, run)
    host = rec["instances"][0]["name"]
    job_dir = run.run_dir / host / "job"
    assert (run.run_dir / host).is_dir()
    metrics = run.metrics()
    losses = [m["loss"] for m in metrics]
    assert len(losses) == 200 and [m["step"] for m in metrics] == list(range(1, 201))
    assert sum(losses[-20:]) / 20 < sum(losses[:20]) / 20 - 0.5, "the example's loss must fall clearly"
    assert (run.run_dir / "loss.png").stat().st_size > 1000
    prov = run.json("provenance.json")
    head = subprocess.run(["git", "-C", str(pipeline.repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert prov["commit"] == head and prov["gpu_models"] == ["RTX 4090"] and prov["ansible_version"]
    assert set(rec["steps"]) >= {"provision", "deploy", "bootstrap", "health", "train", "collect"}
    assert rec["spec"]["secret_env"] == ["GPUOPS_TEST_SECRET"]
    summary = run.json("summary.json")
    assert summary["status"] == "succeeded" and run.run_id in summary["summary"]
    assert "gpu.ops run %s: succeeded" % run.run_id in run.output
    assert_cost_matches_ledger(pipeline, run)
    assert_billed_matches_ledger(pipeline, run)
    # the node's watchdog was armed with the instance's own key, and its decisions came home
    assert rec["watchdog"] == {host: True}, rec.get("watchdog")
    assert '"armed"' in (run.run_dir / host / "watchdog.log").read_text() or \
        "arm" in (run.run_dir / host / "watchdog.log").read_text()
    assert "watchdog: armed on 1 node(s)" in summary["summary"]
    # the secret reached the job and nothing else; API keys appear nowhere
    assert job_dir.exists() or any(run.run_dir.rglob("job.log"))
    for secret in ("s3cr3t-Zq81", pipeline.sim.env["RUNPOD_API_KEY"], pipeline.sim.env["VAST_API_KEY"]):
        assert secret not in run.output
        for path in run.run_dir.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"{secret[:4]}... in {path}"


def test_rerun_with_same_run_id_after_teardown_starts_fresh_nodes(pipeline):
    first = pipeline.run(run_id="t-rerun-" + os.urandom(3).hex())
    assert first.proc.returncode == 0, first.output[-3000:]
    again = pipeline.run(run_id=first.run_id)
    assert again.proc.returncode == 0, again.output[-3000:]
    assert len(again.record["instances"]) == 2  # both runs' instances are in the record, both destroyed
    assert not pipeline.live(first.run_id)


def test_two_nodes_get_the_multi_node_env(pipeline):
    run = pipeline.run(nodes=2, command="env | grep -E '^(NODE_RANK|WORLD_SIZE|MASTER_ADDR)=' "
                                          "| sort > $GPUOPS_OUTPUTS/dist.env && python3 train.py --steps 50")
    assert run.proc.returncode == 0, run.output[-3000:]
    assert_clean(pipeline, run)
    envs = sorted((p.read_text() for p in run.run_dir.rglob("dist.env")))
    assert len(envs) == 2
    ranks = sorted(re.search(r"NODE_RANK=(\d)", e).group(1) for e in envs)
    assert ranks == ["0", "1"] and all("WORLD_SIZE=2" in e for e in envs)
    masters = {re.search(r"MASTER_ADDR=(\S+)", e).group(1) for e in envs}
    assert len(masters) == 1
    hosts = {m["host"] for m in run.metrics()}
    assert len(hosts) == 2


def test_homelab_target_uses_the_inventory_and_rents_nothing(pipeline, make_nodes, tmp_path):
    nodes = make_nodes(1, "runpod", prefix="homelab-" + os.urandom(2).hex())
    before = pipeline.sim.client.ledger()["total_cost"]
    created_before = len(pipeline.sim.client.ledger()["instances"])
    inv = localhost_inventory(tmp_path / "homelab.yml", {"lab_gpus": {"hosts": {
        "lab1": {**nodes[0].hostvars(), "gpuops_gpu_count": 1}}}})
    # an artifact from the controller, staged into this run's own workspace on the lab machine, where the job reads it
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("lab vocabulary %s\n" % os.urandom(4).hex())
    digest = hashlib.sha256(vocab.read_bytes()).hexdigest()
    run = pipeline.run(target="homelab", homelab_group="lab_gpus", gpu=None, inventory=inv,
                       secret_env=["GPUOPS_TEST_SECRET"], env_extra={"GPUOPS_TEST_SECRET": "lab-s3cr3t-77"},
                       env_drop=("RUNPOD_API_KEY", "VAST_API_KEY"),
                       artifacts=[{"name": "vocab", "src": str(vocab), "sha256": digest, "dest": "data/vocab.txt"}],
                       command="python3 train.py --steps 200 && sha256sum data/vocab.txt")
    assert run.proc.returncode == 0, run.output[-3000:]
    assert f"{digest}  data/vocab.txt" in (run.run_dir / "lab1" / "stdout.log").read_text()
    assert len(pipeline.sim.client.ledger()["instances"]) == created_before  # nothing rented
    assert pipeline.sim.client.ledger()["live_instances"]  # the lab node is still there (the fixture owns it)
    assert run.record["status"] == "succeeded" and run.record["torn_down"] is True
    assert (run.run_dir / "lab1").is_dir() and run.metrics()
    # the record knows the lab node as a node (logs, ssh, status reach it), and the run had its own workspace there,
    # removed once its results were home (another run on the same machine has its own)
    host = run.record["hosts"][0]
    assert (host["name"], host["kind"], host["ssh_port"]) == ("lab1", "homelab", nodes[0].port)
    assert run.record["spec"]["node_workspace"] == f"~/.bifrost/workspaces/{run.run_id}"
    assert not (pipeline.sim.state_dir / "nodes" / nodes[0].id / "home" / ".bifrost" / "workspaces" / run.run_id).exists()
    logs = subprocess.run([str(Path(sys.executable).parent / "gpuops"), "--runs-dir", str(run.run_dir.parent), "logs",
                           run.run_id], capture_output=True, text=True)
    assert logs.returncode == 0 and "BIFROST JOB END" in logs.stdout, logs.stderr
    assert before <= pipeline.sim.client.ledger()["total_cost"]
    # the secret is nowhere on the node (the runner deleted the env file) nor in the records
    node_home = pipeline.sim.state_dir / "nodes" / nodes[0].id / "home"
    hits = subprocess.run(["grep", "-rl", "lab-s3cr3t-77", str(node_home), str(run.run_dir)],
                          capture_output=True, text=True).stdout
    assert not hits.strip(), hits


def test_examples_run_yml_is_a_valid_spec(pipeline, tmp_path):
    doc = yaml.safe_load((REPO / "examples" / "run.yml").read_text())
    assert doc["command"] and doc["gpu"]
    spec = dict(doc, repo=str(REPO), ssh_private_key_file=str(pipeline.sim.key))
    path = tmp_path / "run.yml"
    path.write_text(yaml.safe_dump(spec))
    play = tmp_path / "check.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"gpu.ops.run_spec": None, "register": "r"}, {"ansible.builtin.debug": {"var": "r.spec.run_id"}}]}]))
    proc = subprocess.run(pipeline.command(spec, str(play)), capture_output=True, text=True, env=pipeline.env(),
                          cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert re.search(r"r\.spec\.run_id: \S+", proc.stdout)


def test_record_is_json_and_guardian_left_no_process(pipeline):
    run = pipeline.run()
    assert run.proc.returncode == 0, run.output[-3000:]
    rec = run.record
    json.dumps(rec)
    pid = rec.get("guardian_pid")
    assert pid, rec
    from pipetools import wait_for
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
             30, "the guardian to exit")
    assert "nothing to do" in (run.run_dir / "guardian.log").read_text()
