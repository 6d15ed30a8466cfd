"""The edit-run loop (issue 18, section 3): `gpuops exec` of a 1-second job after a one-line commit, on a kept run.

For 1 and 8 nodes: `gpuops up` once, one warm-up exec, then rounds that each commit a one-line change and time,
from the command's start to its exit (output printed, outputs home):
  gpuops     `gpuops exec RUN -- <1 s job>` (the CLI as a user runs it; its --json gives the split: start-up,
             push, bootstrap check, job, collect, and the bytes of the git bundles it pushed)
  bare       a bare-ssh script doing the same on the same nodes, in parallel per node over its own warm
             ControlMaster: `git bundle` of the delta, one ssh that fetches it and resets the work tree, one ssh
             that runs the job and streams its output, one `tar` of the job's outputs back
The two alternate within each round (same machine, same moment); medians are reported. Goals: gpuops <= 2.0 s at
1 node and <= 3.0 s at 8, and <= 1.5x bare at both. A benchmark, not a test: nothing here asserts.

    python benchmarks/bench_exec.py [ROUNDS]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from _common import simulator, stats, table, write_result

GOALS = {1: 2.0, 8: 3.0}
RATIO_GOAL = 1.5
JOB = "sleep 1; echo done; echo ok > $GPUOPS_OUTPUTS/out.txt"
BARE_JOB = "sleep 1; echo done; mkdir -p ~/bare/out && echo ok > ~/bare/out/out.txt"
GIT = ["git", "-c", "user.name=b", "-c", "user.email=b@gpuops.invalid"]
GPUOPS = str(Path(sys.executable).parent / "gpuops")


def make_repo(work: Path) -> Path:
    repo = work / "proj"
    repo.mkdir(parents=True)
    (repo / "train.py").write_text("print('step 0')\n")
    (repo / "VERSION").write_text("0\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "v0"]):
        subprocess.run(GIT + ["-C", str(repo)] + args, check=True, capture_output=True)
    return repo


def commit(repo: Path, n: int) -> None:
    (repo / "VERSION").write_text(f"{n}\n")
    subprocess.run(GIT + ["-C", str(repo), "commit", "-qam", f"v{n}"], check=True, capture_output=True)


class Bare:
    """The baseline: plain ssh with a ControlMaster per node, git bundles of the delta, tar back."""

    def __init__(self, record: dict, repo: Path, work: Path):
        self.repo, self.work = repo, work
        self.cp = Path(tempfile.mkdtemp(prefix="cm-", dir="/tmp"))
        known = Path(record["run_dir"]) / "known_hosts"
        self.nodes = []
        for inst in record["instances"]:
            argv = ["ssh", "-p", str(inst["ssh_port"]), "-i", inst["ssh_private_key_file"], "-o", "BatchMode=yes",
                    "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={known}",
                    "-o", "StrictHostKeyChecking=accept-new", "-o", "ControlMaster=auto",
                    "-o", f"ControlPath={self.cp}/%C", "-o", "ControlPersist=600", "-o", "LogLevel=ERROR",
                    f"{inst['ssh_user']}@{inst['ssh_host']}"]
            self.nodes.append(argv)
        self.last = None

    def setup(self) -> None:
        full = self.work / "full.bundle"
        subprocess.run(["git", "-C", str(self.repo), "bundle", "create", str(full), "HEAD"], check=True,
                       capture_output=True)
        data = full.read_bytes()
        for ssh in self.nodes:
            subprocess.run(ssh + ["rm -rf ~/bare && mkdir -p ~/bare && cat > ~/bare/b.bundle && "
                                  "git clone -q ~/bare/b.bundle ~/bare/ws"], input=data, check=True,
                           capture_output=True)
        self.last = subprocess.run(["git", "-C", str(self.repo), "rev-parse", "HEAD"], capture_output=True,
                                   text=True, check=True).stdout.strip()

    def round(self) -> dict:
        t0 = time.perf_counter()
        delta = self.work / "delta.bundle"
        subprocess.run(["git", "-C", str(self.repo), "bundle", "create", str(delta), "HEAD", f"^{self.last}"],
                       check=True, capture_output=True)
        data = delta.read_bytes()

        def one(ssh):
            subprocess.run(ssh + ["cat > ~/bare/d.bundle && cd ~/bare/ws && git fetch -q ~/bare/d.bundle HEAD && "
                                  "git reset -q --hard FETCH_HEAD"], input=data, check=True, capture_output=True)
            out = subprocess.run(ssh + [f"cd ~/bare/ws && {BARE_JOB}"], capture_output=True, text=True, check=True)
            dest = self.work / "back" / ssh[-1].replace("@", "_").replace(":", "_")
            dest.mkdir(parents=True, exist_ok=True)
            tar = subprocess.Popen(ssh + ["tar -C ~/bare -cf - out"], stdout=subprocess.PIPE)
            subprocess.run(["tar", "-C", str(dest), "-xf", "-"], stdin=tar.stdout, check=True)
            tar.wait()
            return out.stdout
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            outs = list(pool.map(one, self.nodes))
        for text in outs:
            sys.stdout.write(text)
        self.last = subprocess.run(["git", "-C", str(self.repo), "rev-parse", "HEAD"], capture_output=True,
                                   text=True, check=True).stdout.strip()
        return {"wall": time.perf_counter() - t0, "bytes": len(data)}

    def close(self) -> None:
        for ssh in self.nodes:
            subprocess.run(ssh[:-1] + ["-O", "exit", ssh[-1]], capture_output=True)
        shutil.rmtree(self.cp, ignore_errors=True)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def gpuops_exec(env: dict, runs: Path, run_id: str) -> dict:
    """One exec; ``ctl_cpu`` is the controller's CPU for it (gpuops and the ssh/git/rsync processes it ran), the
    rest of the machine's time being the simulated nodes' own work."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run([GPUOPS, "--runs-dir", str(runs), "exec", run_id, "--json", "--", JOB],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    ctl = _children_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"gpuops exec failed ({proc.returncode}): {proc.stderr[-2000:]}")
    res = json.loads(proc.stdout)
    return {"wall": wall, "bytes": res["pushed_bytes"], "ctl_cpu": ctl, **res["timings"]}


def bench_nodes(sim, n: int, rounds: int, work: Path) -> dict:
    env = dict(os.environ, **sim.env)
    repo = make_repo(work / f"n{n}")
    runs = work / f"runs{n}"
    spec = work / f"run{n}.yml"
    run_id = f"bx{n}-{os.urandom(2).hex()}"
    spec.write_text(yaml.safe_dump({"run_id": run_id, "repo": str(repo), "gpu": ["RTX 4090"], "nodes": n,
                                    "max_price_per_hour": 5.0, "command": JOB, "bootstrap": "true",
                                    "ssh_private_key_file": str(sim.key), "ttl": "1h", "runs_dir": str(runs),
                                    "wait_timeout": 120}))
    up = subprocess.run([GPUOPS, "up", str(spec)], capture_output=True, text=True, env=env)
    if up.returncode != 0:
        raise RuntimeError(f"gpuops up failed: {up.stderr[-3000:]}")
    record = json.loads((runs / run_id / "run.json").read_text())
    bare = Bare(record, repo, work / f"bare{n}")
    (work / f"bare{n}").mkdir()
    try:
        bare.setup()
        gpuops_exec(env, runs, run_id)  # warm-up: helpers installed, masters open
        commit(repo, 10 ** 6)
        bare.round()
        ours, theirs = [], []
        for i in range(rounds):
            commit(repo, 2 * i + 1)
            ours.append(gpuops_exec(env, runs, run_id))
            commit(repo, 2 * i + 2)
            theirs.append(bare.round())
    finally:
        bare.close()
        subprocess.run([GPUOPS, "--runs-dir", str(runs), "down", run_id], capture_output=True, env=env)
    med = lambda rows, k: stats([r[k] for r in rows if k in r])["median"]  # noqa: E731
    return {"nodes": n, "gpuops": stats([r["wall"] for r in ours]), "bare": stats([r["wall"] for r in theirs]),
            "ratio": round(med(ours, "wall") / med(theirs, "wall"), 3),
            "split": {k: med(ours, k) for k in ("startup", "push", "bootstrap_check", "job", "collect", "total")},
            "controller_cpu_s": med(ours, "ctl_cpu"),
            "push_bytes": med(ours, "bytes"), "bare_bundle_bytes": med(theirs, "bytes"),
            "goal_s": GOALS[n], "goal_met": med(ours, "wall") <= GOALS[n],
            "ratio_goal_met": med(ours, "wall") / med(theirs, "wall") <= RATIO_GOAL}


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 5
    work = Path(tempfile.mkdtemp(prefix="gpuops-bench-exec-"))
    results = []
    with simulator(boot_seconds=0.3) as sim:
        for n in (1, 8):
            results.append(bench_nodes(sim, n, rounds, work))
    rows = [[r["nodes"], r["gpuops"]["median"], r["bare"]["median"], r["ratio"], r["controller_cpu_s"],
             r["split"]["startup"],
             r["split"]["push"], r["split"]["bootstrap_check"], r["split"]["job"], r["split"]["collect"],
             int(r["push_bytes"]), int(r["bare_bundle_bytes"]), "yes" if r["goal_met"] and r["ratio_goal_met"] else "NO"]
            for r in results]
    print(table(["nodes", "gpuops s", "bare s", "ratio", "ctl cpu", "startup", "push", "boot chk", "job", "collect",
                 "push B", "bare B", "goals"], rows))
    write_result("exec", {"rounds": rounds, "job": JOB, "results": results,
                          "goals": {"seconds": GOALS, "ratio": RATIO_GOAL}})
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
