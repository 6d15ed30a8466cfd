"""Collect: gpu.ops.collect vs plain `rsync -a` for a job directory of 200 files / 200 MB.

A simulator node holds ~/.bifrost/jobs/bench-1/ with job.log, status, exit_code, metadata.json and
outputs/ with 200 files of 1 MiB random bytes (written over SSH). Two settings:
  loopback   the node's sshd directly: node and controller share this machine's cores, so every byte hashed
             on either side competes with the copy itself (CPU-bound; the worst case for verification)
  link       through a TCP proxy pacing each direction at LINK_MBS MB/s (benchmarks/_wire.py), as between
             a controller and a cloud GPU, where the network is the limit
Each round copies the directory to a fresh directory on the controller:
  rsync -a        over the same SSH (the task's ControlPath: one warm master for everything)
  gpu.ops cold    the collect role with the node's hash cache cleared: manifest (sha256 of 200 MB on the
                  node), one rsync stream, sha256 of every received file on the controller
  gpu.ops warm    the same with the node's hash cache kept (a collect that follows an earlier one)
  gpu.ops rerun   the same destination again: nothing to copy
Times are the collect task's own duration (from the json callback) and, separately, the whole
ansible-playbook run (Ansible start-up ~1.5 s). The goal compares the task with rsync. Per-step times on
1 and 8 nodes (20 files / 20 MB each) come from the action's timings: manifest (node round trip),
local_check (controller: what is already verified), transfer_verify (stream + hashes), total.

    python benchmarks/bench_collect.py [ROUNDS]     # table + benchmarks/results/collect.json
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from _common import HERE, simulator, stats, table, timer, write_result
from _wire import CountingProxy

from gpuops.testing import run_playbook

PLAYBOOK = HERE.parent / "tests" / "roles" / "playbooks" / "collect.yml"
TASK = "Copy the job directory and declared outputs home (sha256-verified, resumable)"
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
LINK_MBS = float(sys.argv[2]) if len(sys.argv) > 2 else 100.0
MAKE_JOB = r"""python3 - <<'EOF'
import json, os
d = os.path.expanduser("~/.bifrost/jobs/bench-1")
os.makedirs(d + "/outputs", exist_ok=True)
for name, text in (("job.log", "step 1\n" * 1000), ("status", "succeeded\n"), ("exit_code", "0\n")):
    open(os.path.join(d, name), "w").write(text)
json.dump({"job_id": "bench-1"}, open(os.path.join(d, "metadata.json"), "w"))
for i in range(%(files)d):
    with open(os.path.join(d, "outputs", "shard-%%04d.bin" %% i), "wb") as fh:
        fh.write(os.urandom(%(size)d))
EOF"""


class Endpoint:
    """How both rsync and Ansible reach the node: directly, or through a pacing proxy. One ControlPath."""

    def __init__(self, node, work: Path, rate_mbs: float = 0.0):
        self.node = node
        self.proxy = CountingProxy(node.host, node.port, rate=rate_mbs * 1e6) if rate_mbs else None
        self.host = "127.0.0.1" if self.proxy else node.host
        self.port = self.proxy.port if self.proxy else node.port
        known = str(work / "known_hosts_bench")
        self.ssh_args = ["-i", node.key, "-p", str(self.port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                         "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=accept-new",
                         "-o", "LogLevel=ERROR", "-o", "ControlMaster=auto", "-o", "ControlPersist=300s",
                         "-o", "ControlPath=~/.ansible/cp/%C", "-o", f"User={node.user}"]
        hv = dict(node.hostvars(), ansible_host=self.host, ansible_port=self.port,
                  ansible_ssh_common_args=f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=accept-new "
                                          "-o IdentitiesOnly=yes")
        self.inventory = work / f"inv-{'link' if self.proxy else 'loop'}.yml"
        self.inventory.write_text(yaml.safe_dump({"all": {"children": {"gpu_nodes": {"hosts": {node.name: hv}}}}}))
        subprocess.run(["ssh", *self.ssh_args, self.host, "true"], check=True)  # the master everything rides on

    def rsync(self, dest: Path) -> float:
        e = " ".join(shlex.quote(a) for a in ["ssh", *self.ssh_args])
        with timer() as t:
            subprocess.run(["rsync", "-a", "-e", e, f"{self.host}:.bifrost/jobs/bench-1/", f"{dest}/"], check=True,
                           capture_output=True)
        return round(t["s"], 4)

    def close(self):
        if self.proxy:
            self.proxy.close()


def collect(inv: Path, runs: Path, run_id: str) -> dict:
    with timer() as t:
        proc = run_playbook(PLAYBOOK, inv, {"collect_runs_dir": str(runs), "collect_run_id": run_id,
                                            "collect_job_id": "bench-1"}, json_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"collect failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    for task in json.loads(proc.stdout)["plays"][0]["tasks"]:
        if task["task"]["name"].endswith(TASK):
            hosts = task["hosts"]
            assert all(r["verified"] == r["files"] and not r["mismatched"] for r in hosts.values())
            return {"playbook_s": round(t["s"], 4), "task_s": task["task"]["duration_s"], "hosts": hosts}
    raise SystemExit("collect task not found")


def one_setting(node, work: Path, rate_mbs: float) -> dict:
    ep = Endpoint(node, work, rate_mbs)
    try:
        rows = {"rsync -a": [], "gpu.ops cold": [], "gpu.ops warm": [], "gpu.ops rerun": []}
        steps = []
        for i in range(ROUNDS):  # interleaved, so load changes on the machine hit every method alike
            # every copy starts with no dirty pages: the previous copy's 200 MB are deleted, not written back
            dest = work / f"rsync-{i}"
            os.sync()
            rows["rsync -a"].append({"task_s": ep.rsync(dest)})
            shutil.rmtree(dest)
            node.ssh("rm -rf ~/.bifrost/cache/collect")
            os.sync()
            c = collect(ep.inventory, work / "runs", f"cold-{i}")
            rows["gpu.ops cold"].append(c)
            steps.append(next(iter(c["hosts"].values()))["timings"])
            shutil.rmtree(work / "runs" / f"cold-{i}")
            os.sync()
            rows["gpu.ops warm"].append(collect(ep.inventory, work / "runs", f"warm-{i}"))
            rows["gpu.ops rerun"].append(collect(ep.inventory, work / "runs", f"warm-{i}"))
            shutil.rmtree(work / "runs")
        r = next(iter(rows["gpu.ops cold"][0]["hosts"].values()))
        return {"files": r["files"], "bytes": r["bytes"], "rate_mbs": rate_mbs or None,
                "rows": {k: [{x: y for x, y in v.items() if x != "hosts"} for v in vals] for k, vals in rows.items()},
                "cold_steps": {k: stats([s.get(k, 0.0) for s in steps]) for k in steps[0]}}
    finally:
        ep.close()


def per_step(h, n: int, work: Path) -> dict:
    nodes = [h.create_runpod(f"bench-col-{n}-{i}") if i % 2 == 0 else h.create_vast(f"bench-col-{n}-{i}")
             for i in range(n)]
    try:
        for node in nodes:
            node.ssh(MAKE_JOB % {"files": 20, "size": 1 << 20}, timeout=300)
        inv = h.inventory(nodes, work / f"inv-{n}.yml")
        out = {}
        for phase in ("first", "rerun"):
            c = collect(inv, work / f"runs-{n}", "steps")
            out[phase] = {"playbook_s": c["playbook_s"], "task_s": c["task_s"],
                          "steps": {k: stats([r["timings"].get(k, 0.0) for r in c["hosts"].values()])
                                    for k in ("manifest", "early_copy", "local_check", "transfer_verify", "total")}}
        return out
    finally:
        for node in nodes:
            h.destroy(node)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    with simulator() as h:
        node = h.create_runpod("bench-collect-1")
        try:
            node.ssh(MAKE_JOB % {"files": 200, "size": 1 << 20}, timeout=300)
            settings = {"loopback": one_setting(node, work, 0.0), f"link {LINK_MBS:g} MB/s": one_setting(node, work,
                                                                                                     LINK_MBS)}
        finally:
            h.destroy(node)
        steps = {n: per_step(h, n, work) for n in (1, 8)}
    shutil.rmtree(work, ignore_errors=True)
    rows, ratios, medians = [], {}, {}
    for name, big in settings.items():
        med = {k: {m: stats([r[m] for r in v])["median"] for m in v[0]} for k, v in big["rows"].items()}
        best = {k: min(r["task_s"] for r in v) for k, v in big["rows"].items()}
        base = med["rsync -a"]["task_s"]
        medians[name] = med
        for k, v in med.items():
            rows.append([name, k, v["task_s"], best[k], v.get("playbook_s", ""), round(v["task_s"] / base, 2)])
        ratios[name] = {"cold_task_vs_rsync": round(med["gpu.ops cold"]["task_s"] / base, 3),
                        "warm_task_vs_rsync": round(med["gpu.ops warm"]["task_s"] / base, 3),
                        "cold_best_vs_rsync_best": round(best["gpu.ops cold"] / best["rsync -a"], 3)}
    big = settings["loopback"]
    print(f"{big['files']} files, {big['bytes'] / 1e6:.0f} MB; medians of {ROUNDS} (and the best run)\n")
    print(table(["setting", "method", "copy_s", "best_s", "playbook_s", "x_rsync"], rows))
    for name, big in settings.items():
        print(f"\n{name}, cold collect steps (median s): "
              + "  ".join(f"{k} {v['median']}" for k, v in big["cold_steps"].items()))
    step_rows = []
    for n, phases in steps.items():
        for phase, s in phases.items():
            step_rows.append([n, phase, s["playbook_s"], s["task_s"]] + [s["steps"][k]["median"] for k in
                                                                          ("manifest", "early_copy", "local_check",
                                                                           "transfer_verify", "total")]
                             + [s["steps"]["total"]["max"]])
    print("\nper step, loopback, 20 files / 20 MB per node (median over hosts; seconds). The first collect into a "
          "destination copies while the node builds the manifest (early_copy, both from the task's start); "
          "transfer_verify is what is fetched after the manifest")
    print(table(["nodes", "collect", "playbook_s", "task_s", "manifest", "early_copy", "local_check",
                 "transfer_verify", "total", "total_max"], step_rows))
    print("\n" + "  ".join(f"{name}: " + ", ".join(f"{k} x{v}" for k, v in r.items()) for name, r in ratios.items()))
    write_result("collect", {"rounds": ROUNDS, "files": big["files"], "bytes": big["bytes"], "link_mbs": LINK_MBS,
                             "medians": medians, "settings": settings, "per_step": steps, "ratios": ratios})
    return 0


if __name__ == "__main__":
    sys.exit(main())
