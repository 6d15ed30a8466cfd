"""Node work: bytes on the wire per gpu.ops node step and per `job_wait` round (issue 10, "One channel for node work").

One simulator node (real sshd) sits behind a counting TCP proxy (benchmarks/_wire.py): SSH is encrypted, so
the proxy counts real wire bytes, both directions (up = controller -> node, down = node -> controller).
Ansible reaches the node through the proxy with the product's ansible.cfg (pipelining, ControlMaster=auto,
ControlPersist=120s, ControlPath ~/.ansible/cp/%C).

Each measured call is one `ansible-playbook` run of a generated one-task play (gather_facts: false) on that
node. The proxy's counters are reset right before the run and read once no byte has crossed for 30 ms after
it (the ssh client's last packets can still be in flight when ansible-playbook exits).

Fixed cost, subtracted: the first play opens the ControlMaster (key exchange, auth) and is reported on its
own ("ssh connection setup"); every later play rides that warm master, as pipeline steps do. What a
play costs besides its task is measured as a baseline: a play whose only task is `ansible.builtin.debug`
(no node contact; median of 3, normally 0 B, which shows no setup is counted). Every figure below is
minus that baseline. For scale, `raw: true` is one bare SSH exec over the warm master: the floor for any
step that makes one round trip.

Rows: the first call of a step on the node ("cold": for helper-channel steps this includes installing the
content-hashed helper; for `job` the runner install) and a second call ("warm"):
  workspace_deploy  a 5-file git repo: cold ships the bundle, warm finds nothing new (helper channel)
  job_bootstrap     `command: "true"`, one new job id per call (warm: dependencies unchanged, so "skipped")
  job               start `sleep 300` (a new job id per call); job (kill) stops them at the end
  job_info          the running job, 20 log lines
  job_wait round    one round on the running job: `timeout: 0` makes the action do exactly one node round
                    (chunk 0, then the deadline has passed; the task reports "still running", ignored here)
  node_health_check min_score 0 (never fails on a loaded machine); the simulator's nvidia-smi answers
  stage_artifacts   one 4 kB controller file: cold plans, uploads and applies; warm finds it cached
  collect_results   a finished job dir of 6 small files: cold copies it (helper channel), warm finds it home
Per round, cross-check: `job_wait` with progress_interval 1 and timeout 8 on the running job, divided by its
rounds. Each round but the last prints one progress line (each round waits >= 1 s on the node, so the next
print is always due), so rounds = progress lines + 1.
Goal (issue 10): <= 10 kB per `job_wait` round. Also printed: what one job wait costs per node and day at the
default progress_interval (30 s) and with stop_on_peer_failure (a round every 5 s).

    python benchmarks/bench_node_bytes.py [--label before|after] [--compare before]
        # table + benchmarks/results/node_bytes[-LABEL].json; --compare adds the columns of that labelled run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import RESULTS, simulator, table, write_result
from _wire import CountingProxy

from gpuops.testing import run_playbook

GOAL_ROUND_BYTES = 10_000
SLEEP = "sleep 300"
MAKE_JOB = r"""python3 - <<'EOF'
import json, os
d = os.path.expanduser("~/.bifrost/jobs/done-1")
os.makedirs(d + "/outputs", exist_ok=True)
for name, text in (("job.log", "step 1\n" * 50), ("status", "succeeded\n"), ("exit_code", "0\n")):
    open(os.path.join(d, name), "w").write(text)
json.dump({"job_id": "done-1"}, open(os.path.join(d, "metadata.json"), "w"))
for i in range(2):
    open(os.path.join(d, "outputs", "metrics-%d.json" % i), "w").write(json.dumps({"loss": 1.0 / (i + 1)}))
EOF"""


class WireNode:
    """One node behind the counting proxy, with an inventory that reaches it through the proxy."""

    def __init__(self, node, work: Path):
        self.node = node
        self.work = work
        self.proxy = CountingProxy(node.host, node.port)
        known = work / "known_hosts_proxy"
        hv = dict(node.hostvars(), ansible_host="127.0.0.1", ansible_port=self.proxy.port,
                  ansible_ssh_common_args=f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=accept-new "
                                          "-o IdentitiesOnly=yes")
        self.inventory = work / "inv-proxy.yml"
        self.inventory.write_text(yaml.safe_dump({"all": {"children": {"gpu_nodes": {"hosts": {node.name: hv}}}}}))
        self.n = 0

    def play(self, task: dict, expect_failed: bool = False) -> dict:
        """Run a one-task play through the proxy; return the wire bytes, the task's result and its stderr."""
        self.n += 1
        pb = self.work / f"play-{self.n:02d}.yml"
        pb.write_text(yaml.safe_dump([{"name": "measured", "hosts": "gpu_nodes", "gather_facts": False,
                                       "tasks": [{"name": "measured", **task, "ignore_errors": expect_failed}]}], sort_keys=False))
        self.proxy.settle()
        self.proxy.reset()
        t0 = time.perf_counter()
        proc = run_playbook(pb, self.inventory, json_output=True, timeout=120)
        secs = time.perf_counter() - t0
        self.proxy.settle()
        up, down = self.proxy.up, self.proxy.down
        res = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][self.node.name] if proc.stdout else {}
        if proc.returncode != 0 or bool(res.get("failed")) != expect_failed or res.get("unreachable"):
            raise SystemExit(f"play {pb} failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
        return {"up": up, "down": down, "total": up + down, "play_s": round(secs, 3), "result": res,
                "stderr": proc.stderr}


def make_repo(path: Path) -> Path:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    (path / "src").mkdir(parents=True)
    (path / "train.py").write_text("import time\nprint('step 1')\n")
    (path / "requirements.txt").write_text("\n")
    (path / "README.md").write_text("# bench\n")
    (path / "src" / "model.py").write_text("LAYERS = 4\n" * 20)
    (path / ".gitignore").write_text("outputs/\n.venv/\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "initial"]):
        subprocess.run(["git", *args], cwd=path, check=True, env=env, capture_output=True)
    return path


def steps(work: Path) -> list[tuple[str, str, dict, dict]]:
    """(step, call, task, options) in the order they run: later steps use what earlier ones made."""
    repo = make_repo(work / "repo")
    blob = work / "tokenizer.json"
    blob.write_text(json.dumps({"vocab": {f"tok{i}": i for i in range(300)}})[:4000].ljust(4000))
    sha = hashlib.sha256(blob.read_bytes()).hexdigest()
    manifest = [{"name": "tokenizer", "src": str(blob), "sha256": sha, "dest": "models/tokenizer.json"}]
    wait = {"job_id": "sleep-1", "timeout": 0, "progress": False}
    collect = {"dest": str(work / "home" / "done-1"), "job_id": "done-1"}
    out = []
    for call in ("cold", "warm"):
        out.append(("workspace_deploy", call, {"gpu.ops.workspace_deploy": {"src": str(repo)}}, {}))
    for i, call in enumerate(("cold", "warm"), 1):
        out.append(("job_bootstrap", call, {"gpu.ops.job_bootstrap": {"job_id": f"boot-{i}", "command": "true"}}, {}))
    for i, call in enumerate(("cold", "warm"), 1):
        out.append(("job (start)", call, {"gpu.ops.job": {"job_id": f"sleep-{i}", "command": SLEEP}}, {}))
    for call in ("cold", "warm"):
        out.append(("job_info", call, {"gpu.ops.job_info": {"job_id": "sleep-1", "log_lines": 20}}, {}))
    for call in ("cold", "warm"):
        out.append(("job_wait round", call, {"gpu.ops.job_wait": wait}, {"expect_failed": True}))
    for call in ("cold", "warm"):
        out.append(("node_health_check", call, {"gpu.ops.node_health_check": {"min_score": 0}}, {}))
    for call in ("cold", "warm"):
        out.append(("stage_artifacts", call, {"gpu.ops.stage_artifacts": {"manifest": manifest}}, {}))
    for call in ("cold", "warm"):
        out.append(("collect_results", call, {"gpu.ops.collect_results": collect}, {}))
    for i, call in enumerate(("cold", "warm"), 1):
        out.append(("job (kill)", call, {"gpu.ops.job": {"job_id": f"sleep-{i}", "state": "killed"}}, {}))
    return out


def check(step: str, call: str, res: dict) -> None:
    """The call did what the row claims (a row that measured something else would be worthless)."""
    if step == "job_wait round":
        assert res["job"]["status"] == "running" and not res["done"], res.get("msg")
    elif step == "workspace_deploy":
        assert res["changed"] == (call == "cold"), res
    elif step == "stage_artifacts":
        assert res["changed"] == (call == "cold"), res
    elif step == "collect_results":
        assert res["files"] >= 6, res
    elif step == "job (start)":
        assert res["changed"] and res["job"]["status"] in ("starting", "running"), res


def rounds_crosscheck(w: WireNode, node_name: str) -> dict:
    r = w.play({"gpu.ops.job_wait": {"job_id": "sleep-1", "timeout": 8, "progress_interval": 1}}, expect_failed=True)
    lines = len(re.findall(rf"\[{re.escape(node_name)}\] sleep-1: ", r["stderr"]))
    rounds = lines + 1
    assert rounds >= 3, r["stderr"][-2000:]
    return {"rounds": rounds, "up": r["up"], "down": r["down"], "total": r["total"], "play_s": r["play_s"]}


def measure(h, work: Path) -> dict:
    node = h.create_runpod("bench-node-bytes")
    try:
        node.ssh(MAKE_JOB)  # straight to sshd, not through the proxy: not counted
        w = WireNode(node, work)
        setup = w.play({"ansible.builtin.raw": "true"})
        base = [w.play({"ansible.builtin.debug": {"msg": "no node contact"}}) for _ in range(3)]
        baseline = {k: statistics.median(b[k] for b in base) for k in ("up", "down", "total")}
        rows = [("ssh connection setup", "new master", setup), ("raw: true", "warm", w.play({"ansible.builtin.raw": "true"}))]
        cross = None
        for step, call, task, opts in steps(work):
            r = w.play(task, **opts)
            check(step, call, r["result"])
            rows.append((step, call, r))
            if step == "job_wait round" and call == "warm":
                cross = rounds_crosscheck(w, node.name)
        w.proxy.close()
    finally:
        h.destroy(node)
    out = []
    for step, call, r in rows:
        net = {k: r[k] - baseline[k] for k in ("up", "down", "total")}
        note = {k: r["result"][k] for k in ("outcome", "changed") if k in r["result"]}
        out.append({"step": step, "call": call, **net, "play_s": r["play_s"], **note})
    out[0]["note"] = "key exchange + auth + one raw exec: the fixed cost a warm ControlMaster saves every later play"
    for k in ("up", "down", "total"):
        cross[k] -= baseline[k]
    cross["per_round"] = round(cross["total"] / cross["rounds"])
    return {"baseline": baseline, "rows": out, "job_wait_rounds": cross}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", help="goes into the result file name: results/node_bytes-LABEL.json")
    ap.add_argument("--compare", metavar="LABEL", help="add the figures of results/node_bytes-LABEL.json")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-node-bytes-"))
    with simulator() as h:
        data = measure(h, work)
    rows = data["rows"]
    cross = data["job_wait_rounds"]
    one_round = next(r["total"] for r in rows if r["step"] == "job_wait round" and r["call"] == "warm")
    goal = {"job_wait_round_bytes": one_round, "per_round_crosscheck": cross["per_round"],
            "goal_bytes": GOAL_ROUND_BYTES, "met": max(one_round, cross["per_round"]) <= GOAL_ROUND_BYTES,
            "per_node_day_bytes": {"every_30s": one_round * 86400 // 30, "every_5s": one_round * 86400 // 5}}
    headers = ["step", "call", "up_B", "down_B", "total_B", "kB", "play_s"]
    other = {}
    if args.compare:
        prev = json.loads((RESULTS / f"node_bytes-{args.compare}.json").read_text())
        other = {(r["step"], r["call"]): r["total"] for r in prev["rows"]}
        headers += [f"{args.compare}_B", f"x vs {args.compare}"]
    table_rows = []
    for r in rows:
        row = [r["step"], r["call"], r["up"], r["down"], r["total"], f"{r['total'] / 1000:.1f}", r["play_s"]]
        if args.compare:
            was = other.get((r["step"], r["call"]))
            row += [was if was is not None else "-", f"{r['total'] / was:.3f}" if was else "-"]
        table_rows.append(row)
    print(f"bytes on the wire per call, minus the baseline play ({data['baseline']['total']} B); one node, "
          "warm ControlMaster\n")
    print(table(headers, table_rows))
    print(f"\njob_wait: one round {one_round} B; {cross['rounds']} rounds (timeout 8, progress_interval 1) "
          f"{cross['total']} B = {cross['per_round']} B/round; goal <= {GOAL_ROUND_BYTES} B: "
          f"{'met' if goal['met'] else 'NOT met'}; a wait costs {goal['per_node_day_bytes']['every_30s'] / 1e6:.0f} MB "
          f"per node and day at a round every 30 s, {goal['per_node_day_bytes']['every_5s'] / 1e6:.0f} MB every 5 s")
    name = f"node_bytes-{args.label}" if args.label else "node_bytes"
    write_result(name, {"label": args.label, "git_commit": git_head(), **data, "goal": goal})
    return 0


def git_head() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent)
    return proc.stdout.strip()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
