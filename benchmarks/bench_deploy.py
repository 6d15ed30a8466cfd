"""Deploy: bytes on the wire and time of gpu.ops.workspace vs `rsync -az` and vs re-sending a full bundle.

A generated repository of realistic size (source-like text in ~320 files over 12 packages, a few binary
assets, ~4 MB work tree, 40 commits) goes to a simulator node three ways:
  gpu.ops     the workspace role (ansible-playbook, tests/roles/playbooks/workspace.yml): bundle of what the
              node lacks, applied by the node helper
  rsync -az   the work tree without .git, into another directory on the node, over the same SSH
  full bundle the seed's way: `git bundle create HEAD`, upload, clone / fetch + reset --hard (over ssh)
Bytes on the wire are counted by a TCP proxy between the SSH client and the node's sshd (benchmarks/_wire.py):
everything SSH carries, encrypted, both directions. Every method reuses one warm ControlMaster connection
(as in a pipeline), so no handshake is counted. "payload" is what the method itself ships: the bundle
bytes for gpu.ops / full bundle, rsync's own "Total bytes sent+received". "git delta" is git's own thin
bundle of the new commit (`git bundle create - HEAD ^<old>`), the minimum any git transport needs.
Times: wall time of the whole command (ansible-playbook includes ~1.5 s of Ansible start-up) and, for
gpu.ops, the deploy task alone. Per-step times of the role on 1 and 8 nodes come from the action's own
timings (controller local work, probe round trip, bundle build, apply round trip).

    python benchmarks/bench_deploy.py [ROUNDS]     # table + benchmarks/results/deploy.json
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import HERE, simulator, stats, table, timer, write_result
from _wire import CountingProxy

from gpuops.testing import run_playbook

PLAYBOOK = HERE.parent / "tests" / "roles" / "playbooks" / "workspace.yml"
DEPLOY_TASK = "Deploy the repository to the workspace (only the commits the node lacks)"
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@example.com"}
WORDS = ("self data model config batch loss optimizer step epoch tensor device grad value result items index "
         "layer weight bias hidden output input shape dtype logits labels metrics scheduler warmup cache path").split()


def git(repo: Path, *args, **kw) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}, **kw).stdout.strip()


def source_text(rng: random.Random, lines: int) -> str:
    out = []
    for i in range(lines):
        if i % 25 == 0:
            out.append(f"\ndef {rng.choice(WORDS)}_{rng.choice(WORDS)}_{i}({rng.choice(WORDS)}, {rng.choice(WORDS)}):")
        ident = "    " * rng.randint(1, 3)
        a, b, c = rng.choice(WORDS), rng.choice(WORDS), rng.choice(WORDS)
        out.append(f"{ident}{a}_{rng.randint(0, 99)} = {b}.{c}({rng.choice(WORDS)}, {rng.random():.6f})")
    return "\n".join(out) + "\n"


def make_repo(path: Path, seed: int = 7) -> Path:
    rng = random.Random(seed)
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / ".gitignore").write_text("outputs/\n__pycache__/\n*.pyc\n.venv/\n")
    files = []
    for p in range(12):
        for m in range(25):
            f = path / "src" / f"pkg{p}" / f"mod{m}.py"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(source_text(rng, rng.randint(60, 240)))
            files.append(f)
    for i in range(12):
        (path / "configs").mkdir(exist_ok=True)
        (path / "configs" / f"exp{i}.json").write_text(json.dumps(
            {"lr": rng.random(), "layers": rng.randint(2, 48), "tags": rng.sample(WORDS, 5)}, indent=2))
    (path / "assets").mkdir()
    for i in range(4):
        (path / "assets" / f"vocab{i}.bin").write_bytes(rng.randbytes(120_000))
    (path / "README.md").write_text("# trainer\n" + source_text(rng, 80))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    for c in range(39):  # history: each commit edits a few files, sometimes adds one
        for f in rng.sample(files, rng.randint(2, 6)):
            lines = f.read_text().splitlines()
            for _ in range(rng.randint(1, 8)):
                lines[rng.randrange(len(lines))] = "    " + source_text(rng, 1).strip()
            f.write_text("\n".join(lines) + "\n")
        if c % 5 == 0:
            f = path / "src" / f"pkg{c % 12}" / f"extra{c}.py"
            f.write_text(source_text(rng, 100))
            files.append(f)
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"change {c}")
    return path


def one_line_commit(repo: Path, n: int) -> str:
    f = repo / "src" / "pkg3" / "mod7.py"
    lines = f.read_text().splitlines()
    lines[10] = f"    learning_rate_{n} = 3e-4  # tuned"
    f.write_text("\n".join(lines) + "\n")
    git(repo, "commit", "-q", "-am", f"tune lr {n}")
    return git(repo, "rev-parse", "HEAD")


class Wire:
    """A node behind a counting proxy, with one warm ControlMaster shared by ansible, rsync and ssh."""

    def __init__(self, node, work: Path):
        self.node = node
        self.proxy = CountingProxy(node.host, node.port)
        self.known = str(work / "known_hosts_proxy")
        self.ssh_args = ["-i", node.key, "-p", str(self.proxy.port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                         "-o", f"UserKnownHostsFile={self.known}", "-o", "StrictHostKeyChecking=accept-new",
                         "-o", "LogLevel=ERROR", "-o", "ControlMaster=auto", "-o", "ControlPersist=300s",
                         "-o", "ControlPath=~/.ansible/cp/%C", "-o", f"User={node.user}"]
        self.target = "127.0.0.1"
        self.inventory = work / "inv-proxy.yml"
        hv = node.hostvars()
        hv.update({"ansible_host": "127.0.0.1", "ansible_port": self.proxy.port,
                   "ansible_ssh_common_args": f"-o UserKnownHostsFile={self.known} -o StrictHostKeyChecking=accept-new "
                                              "-o IdentitiesOnly=yes"})
        import yaml
        self.inventory.write_text(yaml.safe_dump({"all": {"children": {"gpu_nodes": {"hosts": {node.name: hv}}}}}))
        self.ssh("true")  # the master every later command rides on

    def ssh(self, cmd: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", *self.ssh_args, self.target, cmd], input=stdin, capture_output=True, check=True)

    def measure(self, fn):
        self.ssh("true")
        self.proxy.reset()
        t0 = time.perf_counter()
        extra = fn()
        secs = time.perf_counter() - t0
        self.proxy.settle()  # the client's last packets may still be crossing the proxy
        return {"wire_bytes": self.proxy.total, "up": self.proxy.up, "down": self.proxy.down,
                "seconds": round(secs, 4), **(extra or {})}


def deploy(inv: Path, repo: Path, dest: str = "~/.bifrost/workspace") -> dict:
    proc = run_playbook(PLAYBOOK, inv, {"workspace_src": str(repo), "workspace_dest": dest}, json_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"deploy failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    for task in json.loads(proc.stdout)["plays"][0]["tasks"]:
        if task["task"]["name"].endswith(DEPLOY_TASK):
            return {"task_s": task["task"]["duration_s"], "hosts": task["hosts"]}
    raise SystemExit("deploy task not found")


def ours(w: Wire, repo: Path, dest: str) -> dict:
    d = deploy(w.inventory, repo, dest)
    r = next(iter(d["hosts"].values()))
    return {"payload_bytes": r["bundle_bytes"], "task_s": d["task_s"], "changed": r["changed"]}


def rsync(w: Wire, repo: Path, dest: str) -> dict:
    e = " ".join(shlex.quote(a) for a in ["ssh", *w.ssh_args])
    proc = subprocess.run(["rsync", "-az", "--delete", "--exclude=.git", "--stats", "-e", e, f"{repo}/",
                           f"{w.target}:{dest}/"], capture_output=True, text=True, check=True)
    sent = int(re.search(r"Total bytes sent: ([\d,]+)", proc.stdout).group(1).replace(",", ""))
    recv = int(re.search(r"Total bytes received: ([\d,]+)", proc.stdout).group(1).replace(",", ""))
    return {"payload_bytes": sent + recv}


def full_bundle(w: Wire, repo: Path, dest: str, work: Path) -> dict:
    b = work / "full.bundle"
    git(repo, "bundle", "create", "-q", str(b), "HEAD")
    w.ssh(f"mkdir -p {dest}.tmp && cat > {dest}.tmp/b.bundle && if [ -d {dest} ]; then cd {dest} && "
          f"git fetch -q {dest}.tmp/b.bundle HEAD && git reset -q --hard FETCH_HEAD; else git clone -q "
          f"{dest}.tmp/b.bundle {dest}; fi && rm {dest}.tmp/b.bundle", stdin=b.read_bytes())
    return {"payload_bytes": b.stat().st_size}


def git_delta(repo: Path, old: str) -> int:
    return len(subprocess.run(["git", "bundle", "create", "-", "HEAD", f"^{old}"], cwd=repo, capture_output=True,
                              check=True).stdout)


def per_step(h, n: int, repo: Path, work: Path) -> dict:
    nodes = [h.create_runpod(f"bench-dep-{n}-{i}") if i % 2 == 0 else h.create_vast(f"bench-dep-{n}-{i}")
             for i in range(n)]
    try:
        inv = h.inventory(nodes, work / f"inv-{n}.yml")
        out = {}
        for phase in ("first", "incremental", "noop"):
            if phase == "incremental":
                one_line_commit(repo, 1000 + n)
            with timer() as t:
                d = deploy(inv, repo)
            steps = {k: stats([r["timings"].get(k, 0.0) for r in d["hosts"].values()])
                     for k in ("local", "probe", "bundle", "apply", "total")}
            out[phase] = {"playbook_s": round(t["s"], 3), "task_s": d["task_s"], "steps": steps,
                          "bundle_bytes": stats([r["bundle_bytes"] for r in d["hosts"].values()])}
        return out
    finally:
        for node in nodes:
            h.destroy(node)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    repo = make_repo(work / "repo")
    tree_bytes = sum(p.stat().st_size for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts)
    n_files = len([p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts])
    commits = int(git(repo, "rev-list", "--count", "HEAD"))
    git(repo, "gc", "-q")
    with simulator() as h:
        node = h.create_runpod("bench-deploy-wire")
        try:
            w = Wire(node, work)
            first = {"gpu.ops": [], "rsync -az": [], "full bundle": []}
            for i in range(ROUNDS):  # a fresh destination each round: every round is a first deploy
                first["gpu.ops"].append(w.measure(lambda i=i: ours(w, repo, f"~/first/ours{i}")))
                first["rsync -az"].append(w.measure(lambda i=i: rsync(w, repo, f"~/first/rsync{i}")))
                first["full bundle"].append(w.measure(lambda i=i: full_bundle(w, repo, f"~/first/seed{i}", work)))
            incr = {"gpu.ops": [], "rsync -az": [], "full bundle": [], "git delta": []}
            # the destinations that incremental rounds update (round 0's first deploys)
            for i in range(ROUNDS):
                old = git(repo, "rev-parse", "HEAD")
                one_line_commit(repo, i)
                incr["git delta"].append({"payload_bytes": git_delta(repo, old)})
                incr["gpu.ops"].append(w.measure(lambda: ours(w, repo, "~/first/ours0")))
                incr["rsync -az"].append(w.measure(lambda: rsync(w, repo, "~/first/rsync0")))
                incr["full bundle"].append(w.measure(lambda: full_bundle(w, repo, "~/first/seed0", work)))
            noop = [w.measure(lambda: ours(w, repo, "~/first/ours0")) for _ in range(ROUNDS)]
            assert not any(n["changed"] for n in noop)
            w.proxy.close()
        finally:
            h.destroy(node)
        steps = {n: per_step(h, n, repo, work) for n in (1, 8)}

    def med(rows, key):
        vals = [r[key] for r in rows if key in r]
        return stats(vals)["median"] if vals else None

    table_rows = []
    for phase, data in (("first", first), ("one-line commit", incr)):
        for method, rows in data.items():
            table_rows.append([phase, method, med(rows, "payload_bytes"), med(rows, "wire_bytes"), med(rows, "seconds"),
                               med(rows, "task_s") or ""])
    table_rows.append(["nothing new", "gpu.ops", med(noop, "payload_bytes"), med(noop, "wire_bytes"),
                       med(noop, "seconds"), med(noop, "task_s")])
    print(f"repo: {n_files} files, {tree_bytes / 1e6:.2f} MB work tree, {commits} commits; medians of {ROUNDS}\n")
    print(table(["deploy", "method", "payload_B", "wire_B", "wall_s", "task_s"], table_rows))
    step_rows = []
    for n, phases in steps.items():
        for phase, s in phases.items():
            step_rows.append([n, phase, s["playbook_s"], s["task_s"]] + [s["steps"][k]["median"] for k in
                                                                          ("local", "probe", "bundle", "apply")]
                             + [s["steps"]["apply"]["max"], s["bundle_bytes"]["median"]])
    print("\nper step (median over hosts; seconds)")
    print(table(["nodes", "deploy", "playbook_s", "task_s", "local", "probe", "bundle", "apply", "apply_max",
                 "bundle_B"], step_rows))
    goals = {
        "incremental_payload_vs_git_delta": round(med(incr["gpu.ops"], "payload_bytes") / med(incr["git delta"],
                                                                                             "payload_bytes"), 3),
        "first_wire_vs_rsync": round(med(first["gpu.ops"], "wire_bytes") / med(first["rsync -az"], "wire_bytes"), 3),
        "incremental_wire_vs_rsync": round(med(incr["gpu.ops"], "wire_bytes") / med(incr["rsync -az"], "wire_bytes"),
                                           3),
        "incremental_wire_vs_full_bundle": round(med(incr["gpu.ops"], "wire_bytes")
                                                 / med(incr["full bundle"], "wire_bytes"), 3),
    }
    print("\n" + "  ".join(f"{k}: x{v}" for k, v in goals.items()))
    write_result("deploy", {"rounds": ROUNDS, "repo": {"files": n_files, "tree_bytes": tree_bytes, "commits": commits},
                            "first": first, "one_line_commit": incr, "nothing_new": noop, "per_step": steps,
                            "ratios": goals})
    return 0


if __name__ == "__main__":
    sys.exit(main())
