"""The node watchdog (role gpu.ops.watchdog): how fast a node destroys itself, and how much memory it takes.

Latency: time on the simulator's clock from the moment the instance had to go (``expires_at``, or the last
heartbeat + ``idle_timeout``) to the provider's terminate call (the ledger's ``terminated_at``). The watchdog
runs with its default check interval (15 s of real time); the script advances the virtual clock to exactly
the deadline, so the figure is what a node adds: up to one interval plus the API call. Goal <= 60 s.

Memory: resident set (VmRSS) of each watchdog daemon while it waits, and the high-water mark (VmHWM) of one
that has been through a destroy attempt (a ``terminate_fails`` fault makes the first one fail, so the process
lives on; it succeeds on the retry). Goal <= 15 MiB. The API call itself runs in a forked child that lives for
the call (http.client, plus TLS on the clouds, ~7-12 MiB on top of the shared pages); its peak is reported too, not counted as the
daemon's.

    python benchmarks/bench_watchdog.py        # table + benchmarks/results/watchdog.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import yaml
from _common import HERE, simulator, stats, table, write_result

from gpuops.testing import run_playbook

PLAYBOOK = HERE.parent / "tests" / "watchdog" / "playbooks" / "arm.yml"
N = 3  # nodes per trigger, measured in parallel
INTERVAL = 15.0  # the role's default


def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def node_json(node, path: str) -> dict:
    out = node.ssh(f"cat {path} 2>/dev/null || true").stdout
    return json.loads(out) if out.strip() else {}


def arm(h, nodes, work: Path, host_vars: dict) -> dict:
    inv = h.inventory(nodes, work / "inv.yml")
    doc = yaml.safe_load(inv.read_text())
    for name, v in host_vars.items():
        doc["all"]["children"]["gpu_nodes"]["hosts"][name].update(v)
    inv.write_text(yaml.safe_dump(doc))
    proc = run_playbook(PLAYBOOK, inv, {"watchdog_interval": INTERVAL}, json_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"arm failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    res = {}
    for task in json.loads(proc.stdout)["plays"][0]["tasks"]:
        if task["task"]["name"].endswith("Arm the dead-man switch on the node"):
            res = task["hosts"]
    return res


def wait_gone(h, nodes, timeout: float) -> dict:
    ids = {n.id for n in nodes}
    h.client.wait_until(lambda: not ids & {i["id"] for i in h.client.status()}, timeout, "watchdogs destroyed")
    h.nodes = [n for n in h.nodes if n.id not in ids]
    return {r["id"]: r for r in h.client.ledger()["instances"] if r["id"] in ids}


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-watchdog-"))
    with simulator() as h:
        h.client.add_faults('faults:\n  - {type: terminate_fails, match: {name: "bench-wd-peak*"}, count: 1}\n')
        exp = [h.create_runpod(f"bench-wd-exp-{i}") if i % 2 == 0 else h.create_vast(f"bench-wd-exp-{i}")
               for i in range(N)]
        idle = [h.create_vast(f"bench-wd-idle-{i}") if i % 2 == 0 else h.create_runpod(f"bench-wd-idle-{i}")
                for i in range(N)]
        peak = h.create_runpod("bench-wd-peak")
        t0 = h.client.advance(0)["now"]
        expires = t0 + 3600
        hv = {n.name: {"watchdog_expires_at": expires, "watchdog_idle_timeout": 0} for n in exp + [peak]}
        hv.update({n.name: {"watchdog_idle_timeout": 7200} for n in idle})
        armed = arm(h, exp + idle + [peak], work, hv)
        pids = {name: r["pid"] for name, r in armed.items()}
        rss = [proc_kib(pids[n.name], "VmRSS") for n in exp + idle]

        # expires_at: advance the clock exactly to it
        h.client.advance(expires - h.client.advance(0)["now"])
        # the peak node's first destroy fails (fault): it lives on, HTTP code loaded, until its retry
        h.client.wait_until(lambda: node_json(peak, "~/.bifrost/watchdog/state.json").get("failures"), 60,
                            "first destroy attempt of the peak node")
        hwm = proc_kib(pids[peak.name], "VmHWM")
        peak_rss = proc_kib(pids[peak.name], "VmRSS")
        log = peak.ssh("cat ~/.bifrost/watchdog/watchdog.log").stdout.splitlines()
        child = next(json.loads(x)["peak_rss_kib"] for x in log if '"destroy_failed"' in x)
        rows = wait_gone(h, exp, INTERVAL * 3 + 30)
        lat_exp = [rows[n.id]["terminated_at"] - expires for n in exp]

        # heartbeat silence: arming touched each heartbeat; nothing touches it since (a dead controller)
        beats = {n.id: float(n.ssh("cat ~/.bifrost/heartbeat").stdout) for n in idle}
        deadline = max(beats.values()) + 7200
        h.client.advance(deadline - h.client.advance(0)["now"])
        rows = wait_gone(h, idle, INTERVAL * 3 + 30)
        lat_idle = [rows[n.id]["terminated_at"] - (beats[n.id] + 7200) for n in idle]
        wait_gone(h, [peak], 120)  # retried after its backoff
        leaks = h.leaks()
        assert not leaks["processes"], f"watchdog processes left: {leaks['processes']}"

    result = {
        "interval_s": INTERVAL,
        "expires_to_terminate_s": stats(lat_exp),
        "idle_to_terminate_s": stats(lat_idle),
        "rss_waiting_kib": stats([float(x) for x in rss]),
        "rss_after_destroy_attempt_kib": peak_rss,
        "hwm_after_destroy_attempt_kib": hwm,
        "destroy_child_peak_kib": child,
        "goal_latency_s": 60, "goal_rss_mib": 15,
    }
    print(table(["measure", "min", "median", "max", "goal"], [
        ["expires_at -> terminate (sim clock, s)", *(result["expires_to_terminate_s"][k] for k in ("min", "median", "max")),
         "<= 60"],
        ["heartbeat silence -> terminate (s)", *(result["idle_to_terminate_s"][k] for k in ("min", "median", "max")),
         "<= 60"],
        ["RSS while waiting (MiB)", *(round(result["rss_waiting_kib"][k] / 1024, 2) for k in ("min", "median", "max")),
         "<= 15"],
        ["daemon RSS / peak after a destroy attempt (MiB)", round(peak_rss / 1024, 2), "", round(hwm / 1024, 2),
         "<= 15"],
        ["forked destroy call, peak while it lives (MiB)", "", "", round(child / 1024, 2), "(transient)"],
    ]))
    ok = (max(lat_exp + lat_idle) <= 60 and max(rss + [hwm]) <= 15 * 1024)
    print("\ngoals met" if ok else "\nGOAL MISSED")
    write_result("watchdog", result)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
