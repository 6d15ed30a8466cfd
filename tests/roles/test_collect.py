"""gpu.ops.collect on simulator nodes: a job dir and declared outputs come home verified; reruns resume;
tampering on either side is detected and re-fetched; a file that keeps changing fails clearly; failed jobs,
jobs that never started and missing paths are handled; rsync and tar streams.

Manifest, hash cache and tar stream details are unit-tested in the collection
(tests/unit/plugins/plugin_utils/test_collect_node.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from gpuops.testing import run_playbook, task_results

PLAYBOOK = Path(__file__).parent / "playbooks" / "collect.yml"
SECRETS = ("env", "bootstrap.env", "env.tmp-42")
COLLECT = "Copy the job directory and declared outputs home (sha256-verified, resumable)"


def results(proc, task_name: str) -> dict:
    return task_results(proc, task_name, prefix=True)


def collect(inv, runs: Path, ok: bool = True, **extra) -> tuple[dict, object]:
    proc = run_playbook(PLAYBOOK, inv, {"collect_runs_dir": str(runs), "collect_run_id": "run1", **extra},
                        json_output=True)
    if ok:
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return results(proc, COLLECT), proc


def make_job(node, job_id: str, status: str = "succeeded", exit_code: int = 0) -> None:
    """A job dir as tmux_job leaves it, plus outputs and a checkpoint dir in the workspace (written on the node)."""
    node.ssh(f"""set -e
d=~/.bifrost/jobs/{job_id}; mkdir -p $d/outputs/samples ~/.bifrost/workspace/checkpoints
printf 'step 1\\nstep 2\\n' > $d/job.log; echo {status} > $d/status; echo {exit_code} > $d/exit_code
echo '{{"job_id": "{job_id}"}}' > $d/metadata.json; date -u +%FT%TZ > $d/started_at
for i in 1 2 3 4 5; do head -c 20000 /dev/urandom > $d/outputs/samples/s$i.bin; done
head -c 300000 /dev/urandom > ~/.bifrost/workspace/checkpoints/model.pt
ln -sf samples/s1.bin $d/outputs/latest""")


def local_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in ("collect.json", "manifest.sha256")}


def node_tree(node, job_id: str, checkpoints: bool = True) -> dict[str, str]:
    cmd = f"cd ~/.bifrost/jobs/{job_id} && find . -type f -exec sha256sum {{}} +"
    if checkpoints:
        cmd += "; cd ~/.bifrost/workspace && find checkpoints -type f -exec sha256sum {} +"
    out = node.ssh(cmd).stdout
    return {line.split("  ", 1)[1].removeprefix("./"): line.split("  ", 1)[0] for line in out.splitlines()}


def test_collect_verified_resume_and_tamper_on_both_providers(make_nodes, sim, tmp_path):
    nodes = make_nodes(2, "mixed")
    inv = sim.inventory(nodes, tmp_path / "inv.yml")
    runs = tmp_path / "runs"
    for node in nodes:
        make_job(node, "train-1")
        # a runner that died before reading its env files left them behind: they hold secrets, never collected
        node.ssh("cd ~/.bifrost/jobs/train-1 && echo '{\"HF_TOKEN\": \"hf_leftover\"}' | tee env bootstrap.env "
                 "> env.tmp-42")
    # a directory and a single file renamed on the way, besides the job dir
    extra = {"collect_job_id": "train-1",
             "collect_paths": ["checkpoints", {"src": "~/.bifrost/jobs/train-1/job.log", "dest": "logs/train.log"}]}

    res, _ = collect(inv, runs, **extra)
    for node in nodes:
        r, dest = res[node.name], runs / "run1" / node.name
        assert r["changed"] and r["transfer"] == "rsync" and r["fetched"] == r["files"] == 12
        want = {k: v for k, v in node_tree(node, "train-1").items() if k not in SECRETS}
        assert local_tree(dest) == {**want, "logs/train.log": want["job.log"]}  # every byte, as on the node
        assert r["job"]["status"] == "succeeded" and r["job"]["exit_code"] == "0"
        assert {s["path"]: s["reason"] for s in r["skipped_files"]} == {
            "outputs/latest": "symlink", **{k: "secret env file (never collected)" for k in SECRETS}}
        assert not any(b"hf_leftover" in p.read_bytes() for p in dest.rglob("*") if p.is_file())
        # manifest.sha256 is what the node wrote, and it checks out against what arrived
        manifest = (dest / "manifest.sha256").read_text()
        assert manifest == node.ssh(f"cat {r['node_manifest']}").stdout
        listed = dict(reversed(line.split("  ", 1)) for line in manifest.splitlines())
        assert listed == local_tree(dest) and len(listed) == 12
        state = json.loads((dest / "collect.json").read_text())
        assert set(state["files"]) == set(listed) and state["job"]["status"] == "succeeded"

    res, _ = collect(inv, runs, **extra)
    assert all(r["changed"] is False and r["fetched"] == 0 for r in res.values())

    # interrupted earlier: one file missing, one truncated (a partial transfer) -> only those two travel
    a, b = nodes
    dest_a = runs / "run1" / a.name
    (dest_a / "outputs" / "samples" / "s2.bin").unlink()
    with open(dest_a / "checkpoints" / "model.pt", "r+b") as fh:
        fh.truncate(1000)
    # tampered on the controller (same size, so only the hash can tell)
    blob = bytearray((dest_a / "outputs" / "samples" / "s3.bin").read_bytes())
    blob[100] ^= 0xFF
    (dest_a / "outputs" / "samples" / "s3.bin").write_bytes(bytes(blob))
    # changed on the node after the last collect
    b.ssh("echo 'step 3' >> ~/.bifrost/jobs/train-1/job.log")
    res, _ = collect(inv, runs, **extra)
    assert sorted(res[a.name]["to_fetch"]) == ["checkpoints/model.pt", "outputs/samples/s2.bin",
                                               "outputs/samples/s3.bin"]
    assert res[a.name]["fetched"] == 3 and sorted(res[b.name]["to_fetch"]) == ["job.log", "logs/train.log"]
    for node in nodes:
        want = {k: v for k, v in node_tree(node, "train-1").items() if k not in SECRETS}
        assert local_tree(runs / "run1" / node.name) == {**want, "logs/train.log": want["job.log"]}
    assert (runs / "run1" / b.name / "job.log").read_text().endswith("step 3\n")

    # changed in place here with the same size and mtime: the collect.json cache cannot tell (documented), and
    # verify=always hashes every file and fetches that one again
    s4 = runs / "run1" / a.name / "outputs" / "samples" / "s4.bin"
    st = s4.stat()
    blob = bytearray(s4.read_bytes())
    blob[7] ^= 0xFF
    s4.write_bytes(bytes(blob))
    os.utime(s4, ns=(st.st_atime_ns, st.st_mtime_ns))
    res, _ = collect(inv, runs, **extra)
    assert res[a.name]["fetched"] == 0 and res[a.name]["changed"] is False
    res, _ = collect(inv, runs, collect_verify="always", **extra)
    assert res[a.name]["to_fetch"] == ["outputs/samples/s4.bin"] and res[a.name]["fetched"] == 1
    assert res[b.name]["fetched"] == 0
    want = {k: v for k, v in node_tree(a, "train-1").items() if k not in SECRETS}
    assert local_tree(runs / "run1" / a.name) == {**want, "logs/train.log": want["job.log"]}


def test_checksum_mismatch_refetched_then_reported(runpod_node, sim, tmp_path):
    node = runpod_node
    inv = sim.inventory([node], tmp_path / "inv.yml")
    runs = tmp_path / "runs"
    make_job(node, "mm-1")
    res, _ = collect(inv, runs, collect_job_id="mm-1")
    r = res[node.name]
    assert r["fetched"] == 10 and r["attempts"] == 1
    cache_dir = os.path.dirname(r["node_manifest"])

    # a stale hash on the node (the cache says one thing, the bytes say another) + the file missing here:
    # the first copy does not match, the node re-hashes without its cache, and the second attempt verifies
    hashes = json.loads(node.ssh(f"cat {cache_dir}/hashes.json").stdout)
    key = next(k for k in hashes if k.endswith("/outputs/samples/s4.bin"))
    hashes[key][4] = "0" * 64
    node.ssh(f"cat > {cache_dir}/hashes.json", input=json.dumps(hashes))
    (runs / "run1" / node.name / "outputs" / "samples" / "s4.bin").unlink()
    res, _ = collect(inv, runs, collect_job_id="mm-1")
    r = res[node.name]
    assert r["attempts"] == 2 and r["mismatched"] == [] and r["fetched"] == 2
    assert local_tree(runs / "run1" / node.name) == node_tree(node, "mm-1", checkpoints=False)
    assert "0" * 64 not in (runs / "run1" / node.name / "manifest.sha256").read_text()

    # a file rewritten all the time (a job still writing it): detected as changing on the node, retried, then
    # reported without failing the play; it stays unverified so the next collect fetches it again
    pid = node.ssh("mkdir -p ~/.bifrost/tmp; nohup sh -c 'cd ~/.bifrost/jobs/mm-1/outputs && while :; do "
                   "head -c 65536 /dev/urandom > ~/.bifrost/tmp/live && mv ~/.bifrost/tmp/live live.bin; sleep 0.005; "
                   "done' </dev/null >/dev/null 2>&1 & echo $!").stdout.strip()
    try:
        node.ssh("for i in $(seq 100); do [ -f ~/.bifrost/jobs/mm-1/outputs/live.bin ] && break; sleep 0.05; done")
        res, proc = collect(inv, runs, collect_job_id="mm-1")
        r = res[node.name]
        assert not r.get("failed") and r["changing"] == ["outputs/live.bin"] and r["mismatched"] == []
        assert r["attempts"] == 3
        state = json.loads((runs / "run1" / node.name / "collect.json").read_text())
        assert state["changing"] == ["outputs/live.bin"]
        assert "outputs/live.bin" not in state["files"] and "job.log" in state["files"]
    finally:
        node.ssh(f"kill {pid}", check=False)

    # a stable file on the node whose copy here keeps failing (a directory is in the way): that is a failure,
    # named, after the retries; verified files stay verified; on_mismatch=warn reports it without failing
    dest = runs / "run1" / node.name
    (dest / "outputs" / "samples" / "s5.bin").unlink()
    (dest / "outputs" / "samples" / "s5.bin").mkdir()
    (dest / "outputs" / "samples" / "s5.bin" / "blocker").write_text("in the way")
    res, proc = collect(inv, runs, ok=False, collect_job_id="mm-1")
    r = res[node.name]
    assert proc.returncode != 0 and r["failed"]
    assert "checksum mismatch after 3 attempt(s) for 1 file(s) that did not change on the node: " \
           "outputs/samples/s5.bin" in r["msg"] and "here nothing" in r["msg"]
    assert [m["path"] for m in r["mismatched"]] == ["outputs/samples/s5.bin"]
    # meanwhile live.bin has stopped changing: this run fetched and verified it
    assert "outputs/live.bin" in json.loads((dest / "collect.json").read_text())["files"] and r["changing"] == []
    res, proc = collect(inv, runs, collect_job_id="mm-1", collect_on_mismatch="warn", collect_verify_retries=0)
    assert res[node.name]["mismatched"][0]["path"] == "outputs/samples/s5.bin" and not res[node.name].get("failed")
    shutil.rmtree(dest / "outputs" / "samples" / "s5.bin")
    res, _ = collect(inv, runs, collect_job_id="mm-1")
    assert res[node.name]["to_fetch"] == ["outputs/samples/s5.bin"] and res[node.name]["mismatched"] == []
    assert local_tree(dest) == node_tree(node, "mm-1", checkpoints=False)


def test_failed_job_never_started_job_and_missing_paths_tar(make_nodes, sim, tmp_path):
    failed, fresh = make_nodes(2, "mixed")
    inv = sim.inventory([failed, fresh], tmp_path / "inv.yml")
    runs = tmp_path / "runs"
    make_job(failed, "crash-1", status="failed", exit_code=137)
    fresh.ssh("rm -rf ~/.bifrost/jobs")  # the job never started: no job dir at all
    extra = {"collect_job_id": "crash-1", "collect_transfer": "tar",
             "collect_paths": ["checkpoints", {"src": "wandb/latest-run", "dest": "wandb"},
                               {"src": "~/.bifrost/jobs/crash-1/job.log", "dest": "logs/train.log"}]}
    res, proc = collect(inv, runs, **extra)
    r = res[failed.name]
    assert r["transfer"] == "tar" and r["job"] == {"dir": r["job"]["dir"], "exists": True, "status": "failed",
                                                   "exit_code": "137"}
    dest = runs / "run1" / failed.name
    assert (dest / "logs" / "train.log").read_text() == "step 1\nstep 2\n"
    assert local_tree(dest) == {**node_tree(failed, "crash-1"), "logs/train.log": node_tree(failed, "crash-1")["job.log"]}
    assert r["missing"] == ["wandb/latest-run"]

    r = res[fresh.name]
    assert not r.get("failed") and r["job"]["exists"] is False and r["files"] == 0
    assert set(r["missing"]) == {"~/.bifrost/jobs/crash-1", "checkpoints", "wandb/latest-run",
                                 "~/.bifrost/jobs/crash-1/job.log"}
    state = json.loads((runs / "run1" / fresh.name / "collect.json").read_text())
    assert state["job"]["exists"] is False and state["files"] == {}

    # the same run again over tar: nothing new
    res, _ = collect(inv, runs, **extra)
    assert res[failed.name]["changed"] is False and res[failed.name]["fetched"] == 0

    # a job whose session died without a final status: collect.json and the copied status file say lost
    make_job(failed, "gone-1", status="running")
    res, _ = collect(inv, runs, collect_job_id="gone-1", collect_run_id="run2")
    assert res[failed.name]["job"]["status"] == "lost"
    dest = runs / "run2" / failed.name
    assert json.loads((dest / "collect.json").read_text())["job"]["status"] == "lost"
    assert (dest / "status").read_text() == "lost\n" and "bifrost-gone-1" in (dest / "lost_reason").read_text()

    # no run id: the role's argument validation stops the play before anything runs on the nodes
    proc = run_playbook(PLAYBOOK, inv, {"collect_runs_dir": str(runs)}, json_output=True)
    assert proc.returncode != 0
    msg = results(proc, "Validating arguments against arg spec 'main'")[failed.name]["msg"]
    assert "collect_run_id" in msg

    # a path marked required fails the host with a clear message, before anything is copied
    res, proc = collect(inv, runs, ok=False, collect_job_id="crash-1",
                        collect_paths=[{"src": "final/model.safetensors", "required": True}])
    assert proc.returncode != 0
    assert "required path(s) missing on the node: final/model.safetensors" in res[fresh.name]["msg"]
