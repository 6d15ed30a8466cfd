"""Baseline for bench_pipeline: one training run done the seeds' way (broker + bifrost), without Ansible.

Plain HTTP calls to RunPod's REST API create the pods, then ssh/scp with one ControlMaster connection per node
do the rest, one node after the other, as bifrost did:
  provision  POST /pods for every node, then per node: poll GET /pods/<id> until RUNNING with an SSH address,
             then poll until `ssh true` works (it opens the node's ControlMaster); backoff, no fixed sleeps
  deploy     `git bundle` of the repository (made once), scp'd to the node, `git clone` of it into ~/bare/ws
  bootstrap  the bootstrap command in the workspace
  health     `nvidia-smi --query-gpu=...` (and the GPU count checked)
  start      the job in a detached tmux session; a wrapper writes started_at, exit_code, ended_at
  wait       per node: poll until the node's exit_code exists (backoff); the job ran since `start`
  collect    `rsync -a` of the job directory (log, timestamps, outputs) into <run_dir>/<node>/
  teardown   DELETE /pods/<id> right after that node's collect
Nodes are prepared and started one after the other; then each is waited for, collected and destroyed in
turn. The jobs of a multi-node run have to run together, so the per-node loop starts them rather than
waiting for each before starting the next (that would only make the baseline slower).

Importable (``run_baseline``); alone it starts a simulator and runs once:
    python benchmarks/baseline_bare_ssh.py [NODES]
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

GPU = "NVIDIA GeForce RTX 4090"
IMAGE = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
SMI_QUERY = "nvidia-smi --query-gpu=index,name,memory.total,temperature.gpu,utilization.gpu --format=csv,noheader"
# the job wrapper: bifrost's layout (a job dir with started_at / exit_code / ended_at next to the log)
WRAPPER = ('mkdir -p {jd}/outputs && date -u +%Y-%m-%dT%H:%M:%S.%NZ > {jd}/started_at && '
           'cd ~/bare/ws && GPUOPS_OUTPUTS={jd}/outputs {cmd} > {jd}/job.log 2>&1; '
           'echo $? > {jd}/exit_code.tmp; date -u +%Y-%m-%dT%H:%M:%S.%NZ > {jd}/ended_at; '
           'mv {jd}/exit_code.tmp {jd}/exit_code')


def poll(predicate, timeout: float, what: str, first: float = 0.05, cap: float = 1.0):
    """``predicate()`` until truthy, with backoff, or TimeoutError after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    delay = first
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, cap)


@dataclass
class BareNode:
    name: str
    id: str
    host: str = ""
    port: int = 0
    user: str = "root"
    control: str = ""
    marks: dict = field(default_factory=dict)


class Bare:
    """The seeds' client: RunPod REST for the pods, ssh/scp/rsync (ControlMaster) for the rest."""

    def __init__(self, env: dict, key: Path, work: Path):
        self.url = env["RUNPOD_API_URL"].rstrip("/")
        self.auth = {"Authorization": f"Bearer {env['RUNPOD_API_KEY']}"}
        self.key = str(key)
        self.pubkey = Path(str(key) + ".pub").read_text().strip()
        self.work = work
        self.known_hosts = str(work / "known_hosts")
        self.http = requests.Session()

    # ---------------------------------------------------------------- HTTP
    def api(self, method: str, path: str, **kw) -> requests.Response:
        return self.http.request(method, self.url + path, headers=self.auth, timeout=30, **kw)

    def create(self, name: str) -> BareNode:
        body = {"name": name, "image": IMAGE, "gpu": {"id": GPU, "count": 1}, "cloud": "COMMUNITY",
                "ports": ["22/tcp"], "env": {"PUBLIC_KEY": self.pubkey}, "startSsh": True}
        r = self.api("POST", "/pods", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"create pod {name}: {r.status_code} {r.text}")
        return BareNode(name=name, id=r.json()["id"])

    def wait_running(self, node: BareNode, timeout: float) -> None:
        def ready():
            pod = self.api("GET", f"/pods/{node.id}").json()
            return pod if pod.get("status") == "RUNNING" and (pod.get("ssh") or {}).get("direct") else None

        direct = poll(ready, timeout, f"pod {node.id} running")["ssh"]["direct"]
        node.host, node.port, node.user = direct["host"], int(direct["port"]), direct["username"]
        node.control = str(self.work / f"cm-{node.id}")

    def destroy(self, node: BareNode) -> None:
        r = self.api("DELETE", f"/pods/{node.id}")
        if r.status_code not in (204, 404):
            raise RuntimeError(f"destroy {node.id}: {r.status_code} {r.text}")

    # ---------------------------------------------------------------- SSH
    def opts(self, node: BareNode) -> list[str]:
        return ["-i", self.key, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
                "-o", "ConnectTimeout=5", "-o", "ControlMaster=auto", "-o", f"ControlPath={node.control}",
                "-o", "ControlPersist=120"]

    def ssh(self, node: BareNode, command: str, check: bool = True, timeout: float = 120
            ) -> subprocess.CompletedProcess:
        res = subprocess.run(["ssh", *self.opts(node), "-p", str(node.port), f"{node.user}@{node.host}", command],
                             capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"ssh {node.name}: {command!r}: rc {res.returncode}: {res.stderr.strip()}")
        return res

    def wait_ssh(self, node: BareNode, timeout: float) -> None:
        poll(lambda: self.ssh(node, "true", check=False, timeout=15).returncode == 0, timeout,
             f"ssh on {node.name}", first=0.02, cap=0.5)

    def scp_to(self, node: BareNode, src: Path, dest: str) -> None:
        subprocess.run(["scp", "-q", *self.opts(node), "-P", str(node.port), str(src),
                        f"{node.user}@{node.host}:{dest}"], check=True, capture_output=True, timeout=120)

    def rsync_from(self, node: BareNode, src: str, dest: Path) -> None:
        rsh = " ".join(shlex.quote(a) for a in ["ssh", *self.opts(node), "-p", str(node.port)])
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(["rsync", "-a", "-e", rsh, f"{node.user}@{node.host}:{src}/", str(dest) + "/"],
                       check=True, capture_output=True, timeout=300)

    def close(self, node: BareNode) -> None:
        if node.control:
            subprocess.run(["ssh", *self.opts(node), "-p", str(node.port), "-O", "exit", f"{node.user}@{node.host}"],
                           capture_output=True, timeout=15)


def git_bundle(repo: Path, dest: Path) -> Path:
    subprocess.run(["git", "-C", str(repo), "bundle", "create", str(dest), "--all"], check=True, capture_output=True)
    return dest


def prepare_and_start(b: Bare, node: BareNode, bundle: Path, bootstrap: str, command: str, job: str) -> None:
    """deploy, bootstrap, health, start on one node; each step's end time goes into node.marks."""
    b.scp_to(node, bundle, "bare-repo.bundle")
    b.ssh(node, "rm -rf ~/bare/ws && mkdir -p ~/bare && git clone -q ~/bare-repo.bundle ~/bare/ws")
    node.marks["deploy"] = time.monotonic()
    b.ssh(node, f"cd ~/bare/ws && {bootstrap}")
    node.marks["bootstrap"] = time.monotonic()
    rows = [ln for ln in b.ssh(node, SMI_QUERY).stdout.splitlines() if ln.strip()]
    if len(rows) != 1:
        raise RuntimeError(f"{node.name}: expected 1 GPU, nvidia-smi shows {len(rows)}")
    node.marks["health"] = time.monotonic()
    jd = f"~/bare/jobs/{job}"
    b.ssh(node, f"mkdir -p {jd} && tmux new-session -d -s {job} {shlex.quote(WRAPPER.format(jd=jd, cmd=command))}")
    node.marks["start"] = time.monotonic()


def finish(b: Bare, node: BareNode, job: str, run_dir: Path, timeout: float) -> None:
    """wait for the job's exit code, bring its directory home, destroy the pod."""
    jd = f"~/bare/jobs/{job}"
    poll(lambda: b.ssh(node, f"test -f {jd}/exit_code", check=False).returncode == 0, timeout,
         f"job on {node.name}", first=0.05, cap=1.0)
    node.marks["wait"] = time.monotonic()
    b.rsync_from(node, jd, run_dir / node.name)
    node.marks["collect"] = time.monotonic()
    b.close(node)
    b.destroy(node)
    node.marks["teardown"] = time.monotonic()


def run_baseline(env: dict, key: Path, repo: Path, nodes: int, command: str, bootstrap: str, run_dir: Path,
                 run_id: str, timeout: float = 300) -> dict:
    """One run on ``nodes`` pods. Returns wall seconds, per-step seconds (summed over the nodes: they run one
    after the other, except the pods' boot and the jobs themselves) and the node names/ids. Every pod created is
    destroyed, also on failure."""
    run_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bare-"))
    b = Bare(env, key, work)
    job = f"job-{run_id}"
    created: list[BareNode] = []
    t0 = time.monotonic()
    try:
        bundle = git_bundle(repo, work / "repo.bundle")
        created += [b.create(f"{run_id}-{i}") for i in range(nodes)]
        for node in created:
            b.wait_running(node, timeout)
            b.wait_ssh(node, timeout)
        t_prov = prev = time.monotonic()
        for node in created:
            prepare_and_start(b, node, bundle, bootstrap, command, job)
        for node in created:
            finish(b, node, job, run_dir, timeout)
        wall = time.monotonic() - t0
    finally:
        for node in created:
            if "teardown" not in node.marks:
                b.close(node)
                b.destroy(node)
    steps = {"provision": t_prov - t0}
    # in the order they happened: every node's preparation, then every node's wait, collect, teardown
    for phase in (("deploy", "bootstrap", "health", "start"), ("wait", "collect", "teardown")):
        for node in created:
            for step in phase:
                steps[step] = steps.get(step, 0.0) + node.marks[step] - prev
                prev = node.marks[step]
    return {"wall_s": wall, "steps": {k: round(v, 3) for k, v in steps.items()},
            "nodes": [{"name": n.name, "id": n.id} for n in created], "run_dir": str(run_dir)}


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import simulator  # noqa: PLC0415 (only when run alone)

    from gpuops.demo import example_repo  # noqa: PLC0415

    nodes = int(argv[0]) if argv else 1
    work = Path(tempfile.mkdtemp(prefix="bare-main-"))
    with simulator(boot_seconds=2.0) as h:
        res = run_baseline(h.env, h.key, example_repo(work), nodes, "python3 train.py --steps 300",
                           "true", work / "runs" / "bare", "bare")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
