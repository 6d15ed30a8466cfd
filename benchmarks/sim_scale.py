"""Simulator scale: N instances (default 1, 10, 50) created through the RunPod REST v2 API.

For each N, on a fresh simulator:
  - create N pods (POST /v2/pods, one after the other, as a client loop would);
  - time to SSH-ready per instance: from its create call until the API shows ssh.direct AND a real
    `ssh true` succeeds (TCP, banner, key auth), probed in parallel;
  - start a tmux job (`sleep`) on every node, then memory per instance: RSS and PSS of every process of the
    node (its sshd, the tmux server, the job), as the simulator lists them (/_sim/instances/{id});
  - simulator RSS growth per instance (server process, before the creates vs. all nodes up);
  - destroy all (DELETE /v2/pods/{id}) and check that no process of any node is left.

Prints a table and a final JSON line; writes benchmarks/results/sim_scale.json (via _common.write_result).
Usage: python benchmarks/sim_scale.py [--sizes 1,10,50] [--boot-seconds 0.3] [--probe-workers 8]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _common import simulator, table, write_result  # noqa: E402

from gpuops.sim.catalog import DEFAULT_CATALOG  # noqa: E402
from gpuops.testing import wait_ssh  # noqa: E402

GPU = "NVIDIA GeForce RTX 4090"


def bench_catalog(n_max: int) -> str:
    """The bundled catalog with enough RTX 4090 stock for n_max single-GPU pods."""
    cat = yaml.safe_load(DEFAULT_CATALOG.read_text())
    for g in cat["runpod"]["gpu_types"]:
        if g["id"] == GPU:
            g["stock"] = {"secure": n_max + 8, "community": n_max + 8}
    cat["settings"]["runpod_balance"] = 1e9
    fd, path = tempfile.mkstemp(prefix="gpuops-bench-catalog-", suffix=".yaml")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(cat, fh)
    return path


def mem_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB of one process; (0, 0) if it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        rss = pss = int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def pctl(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def run_one(n: int, boot_seconds: float, workers: int, catalog: str) -> dict:
    with simulator(boot_seconds=boot_seconds, catalog=catalog) as h:
        server_pid = int(h.client.info["pid"])
        rss0, _ = mem_kib(server_pid)
        created: dict[str, float] = {}
        t0 = time.monotonic()
        for i in range(n):
            r = h._rp("POST", "/pods", json={"name": f"scale-{i}", "image": "runpod/pytorch:bench",
                                              "gpu": {"id": GPU, "count": 1}, "ports": ["22/tcp"],
                                              "env": {"PUBLIC_KEY": h.pubkey}})
            if r.status_code != 201:
                raise RuntimeError(f"create {i}: {r.status_code} {r.text}")
            created[r.json()["id"]] = time.monotonic()
        t_created = time.monotonic() - t0

        def ready(pid: str) -> tuple[str, float, dict]:
            def direct():
                p = h._rp("GET", f"/pods/{pid}").json()
                return p["ssh"]["direct"] if p.get("status") == "RUNNING" else None

            d = h.client.wait_until(direct, 120, f"pod {pid} running")
            wait_ssh(d["host"], d["port"], d["username"], str(h.key), h.known_hosts, timeout=120)
            return pid, time.monotonic() - created[pid], d

        with cf.ThreadPoolExecutor(max_workers=workers) as ex:
            results = list(ex.map(ready, list(created)))
        t_all = time.monotonic() - t0
        to_ready = [r[1] for r in results]

        # a tmux job on every node, as a training run would have
        def job(item):
            pid, _, d = item
            import subprocess

            subprocess.run(["ssh", "-i", str(h.key), "-p", str(d["port"]), "-o", "BatchMode=yes",
                            "-o", f"UserKnownHostsFile={h.known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
                            "-o", "LogLevel=ERROR", f"{d['username']}@{d['host']}",
                            "tmux new-session -d -s job 'sleep 3600'"], check=True, capture_output=True, timeout=60)

        with cf.ThreadPoolExecutor(max_workers=workers) as ex:
            list(ex.map(job, results))

        per_rss, per_pss, per_nproc = [], [], []
        for pid in created:
            procs = h.client.instance(pid)["processes"]
            mems = [mem_kib(p) for p in procs]
            per_rss.append(sum(m[0] for m in mems))
            per_pss.append(sum(m[1] for m in mems))
            per_nproc.append(len(procs))
        rss1, _ = mem_kib(server_pid)

        t1 = time.monotonic()
        for pid in created:
            r = h._rp("DELETE", f"/pods/{pid}")
            if r.status_code != 204:
                raise RuntimeError(f"delete {pid}: {r.status_code} {r.text}")
        t_destroy = time.monotonic() - t1
        leaks = h.leaks()
        if leaks["live_instances"] or leaks["processes"]:
            raise RuntimeError(f"left behind after destroy: {leaks}")

    return {
        "n": n,
        "create_calls_s": round(t_created, 3),
        "all_ssh_ready_s": round(t_all, 3),
        "ssh_ready_s": {"median": round(statistics.median(to_ready), 3), "p95": round(pctl(to_ready, 0.95), 3),
                        "max": round(max(to_ready), 3)},
        "processes_per_instance": round(statistics.mean(per_nproc), 2),
        "rss_mib_per_instance": round(statistics.mean(per_rss) / 1024, 2),
        "pss_mib_per_instance": round(statistics.mean(per_pss) / 1024, 2),
        "sim_rss_mib": {"before": round(rss0 / 1024, 1), "all_up": round(rss1 / 1024, 1)},
        "sim_rss_growth_mib_per_instance": round((rss1 - rss0) / 1024 / n, 3),
        "destroy_all_s": round(t_destroy, 3),
        "left_behind": 0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,10,50")
    ap.add_argument("--boot-seconds", type=float, default=0.3,
                    help="simulated boot time (the part of time-to-SSH that is not the simulator's overhead)")
    ap.add_argument("--probe-workers", type=int, default=8)
    a = ap.parse_args(argv)
    sizes = [int(x) for x in a.sizes.split(",") if x]
    catalog = bench_catalog(max(sizes))
    try:
        runs = [run_one(n, a.boot_seconds, a.probe_workers, catalog) for n in sizes]
    finally:
        os.unlink(catalog)
    rows = [[r["n"], r["create_calls_s"], r["all_ssh_ready_s"], r["ssh_ready_s"]["median"], r["ssh_ready_s"]["p95"],
             r["processes_per_instance"], r["rss_mib_per_instance"], r["pss_mib_per_instance"],
             r["sim_rss_growth_mib_per_instance"], r["destroy_all_s"]] for r in runs]
    print(table(["N", "create calls s", "all SSH-ready s", "ready median s", "ready p95 s", "procs/inst",
                 "RSS MiB/inst", "PSS MiB/inst", "sim RSS +MiB/inst", "destroy all s"], rows))
    print(f"(boot_seconds={a.boot_seconds}; RSS counts shared pages once per process, PSS splits them; each node "
          "runs its sshd plus a tmux job)")
    write_result("sim_scale", {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "boot_seconds": a.boot_seconds, "runs": runs,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
