"""gpu.ops.cloud at scale: 1,000 instances (500 RunPod + 500 Vast, API-only in the simulator).

Measures, cold (cache flushed) and warm (jsonfile cache):
  - the whole `ansible-inventory --list` process (what AWX and every playbook start pay), with the
    process floor of ansible-inventory on a one-host static file for comparison;
  - the plugin's own parse() time in-process (the part the plugin controls);
  - API calls made, counted by the simulator.
Goal (issue): cold <= 2 s, warm <= 0.3 s, 0 API calls warm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import simulator, stats, table, write_result

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
PER_PROVIDER = int(os.environ.get("BENCH_INVENTORY_N", "500"))


def env_for(sim) -> dict:
    env = dict(os.environ, **sim.env)
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["PATH"] = f"{BIN}:{env['PATH']}"
    return env


def run_proc(args, env) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {res.stderr[-2000:]}")
    return dt


def in_process_parse(cfg: Path, env: dict, refresh: bool) -> tuple[float, int]:
    """parse() of the plugin in a fresh interpreter (import cost excluded), timed inside."""
    code = r"""
import json, sys, time
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, inventory_loader
from ansible.inventory.data import InventoryData
from ansible.template import Templar
init_plugin_loader()  # collection loading as the CLI sets it up
loader = DataLoader()
plugin = inventory_loader.get("gpu.ops.cloud")
plugin.templar = Templar(loader=loader)
inv = InventoryData()
t0 = time.perf_counter()
plugin.parse(inv, loader, sys.argv[1], cache=sys.argv[2] == "cache")
if plugin.get_option("cache"):
    plugin.update_cache_if_changed()
dt = time.perf_counter() - t0
print(json.dumps({"s": dt, "hosts": len(inv.hosts)}))
"""
    res = subprocess.run([sys.executable, "-c", code, str(cfg), "refresh" if refresh else "cache"],
                         capture_output=True, text=True, env=env, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"in-process parse failed: {res.stderr[-2000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return out["s"], out["hosts"]


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="gpuops-bench-inv-"))
    cfg = work / "bench.cloud.yml"
    cfg.write_text(json.dumps({
        "plugin": "gpu.ops.cloud", "cache": True, "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(work / "cache"), "cache_timeout": 3600,
        "keyed_groups": [{"key": "gpuops_gpu_model | lower | regex_replace('[^a-z0-9]+', '_')", "prefix": "gpu"},
                         {"key": "gpuops_provider", "prefix": "prov"}]}))
    floor_inv = work / "one.yml"
    floor_inv.write_text("all:\n  hosts:\n    h1: {ansible_host: 10.0.0.1}\n")
    with simulator() as sim:
        sim.client.bulk("runpod", PER_PROVIDER, name_prefix="scale-rp-")
        sim.client.bulk("vast", PER_PROVIDER, name_prefix="scale-vast-")
        env = env_for(sim)
        inv_cmd = [str(BIN / "ansible-inventory"), "-i", str(cfg), "--list"]
        rows, result = [], {"instances": 2 * PER_PROVIDER, "runs": RUNS}

        floor = [run_proc([str(BIN / "ansible-inventory"), "-i", str(floor_inv), "--list"], env) for _ in range(RUNS)]
        cold, cold_calls = [], []
        for _ in range(RUNS):
            sim.client.reset_stats()
            cold.append(run_proc(inv_cmd + ["--flush-cache"], env))
            cold_calls.append(sim.client.stats()["total"])
        warm, warm_calls = [], []
        for _ in range(RUNS):
            sim.client.reset_stats()
            warm.append(run_proc(inv_cmd, env))
            warm_calls.append(sim.client.stats()["total"])
        p_cold, p_warm, hosts = [], [], 0
        for _ in range(RUNS):
            s, hosts = in_process_parse(cfg, env, refresh=True)
            p_cold.append(s)
            s, _ = in_process_parse(cfg, env, refresh=False)
            p_warm.append(s)
        sim.client.reset_stats()
        in_process_parse(cfg, env, refresh=False)
        assert sim.client.stats()["total"] == 0, "warm parse made API calls"

        result.update({
            "hosts": hosts,
            "process_floor_s": stats(floor), "process_cold_s": stats(cold), "process_warm_s": stats(warm),
            "parse_cold_s": stats(p_cold), "parse_warm_s": stats(p_warm),
            "api_calls_cold": max(cold_calls), "api_calls_warm": max(warm_calls),
        })
        rows = [
            ["ansible-inventory, 1 static host (floor)", stats(floor)["median"], "-"],
            ["ansible-inventory --list, cold", stats(cold)["median"], max(cold_calls)],
            ["ansible-inventory --list, warm cache", stats(warm)["median"], max(warm_calls)],
            ["plugin parse(), cold", stats(p_cold)["median"], max(cold_calls)],
            ["plugin parse(), warm cache", stats(p_warm)["median"], 0],
        ]
    print(f"\ngpu.ops.cloud over {2 * PER_PROVIDER} instances ({hosts} hosts), median of {RUNS} runs")
    print(table(["measurement", "seconds", "API calls"], rows))
    print(f"plugin cost over the process floor: cold {stats(cold)['median'] - stats(floor)['median']:.3f} s, "
          f"warm {stats(warm)['median'] - stats(floor)['median']:.3f} s")
    write_result("inventory", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
