"""gpu.ops.reap over 1,000 labelled instances (500 RunPod + 500 Vast, API-only in the simulator).

Measures the whole `ansible-playbook gpu.ops.reap` process (what cron and AWX pay) and the API calls the
simulator counted, for:
  - 1,000 labelled instances, none due (the usual scheduled run: list and decide);
  - the same 1,000 all expired, --check (list, decide, print the table);
  - the same 1,000 expired, reaped for real (list once, 1,000 destroy calls, `parallel` at a time).
The floor is ansible-playbook running one debug task, for comparison.
Goal (issue 11): <= 5 s over 1,000 instances, one listing per provider (Vast's listing is paginated: 25 a page).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import simulator, stats, table, write_result

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PER_PROVIDER = int(os.environ.get("BENCH_REAP_N", "500"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
OWNER = "bench-reaper"


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def env_for(sim) -> dict:
    env = dict(os.environ, **sim.env)
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PATH=f"{BIN}:{env['PATH']}", GPUOPS_OWNER=OWNER)
    return env


def run(args, env) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return dt, res.stdout


def fill(sim, expires_at: str) -> None:
    env = {"GPUOPS_RUN_ID": "bench-run", "GPUOPS_OWNER": OWNER, "GPUOPS_EXPIRES_AT": expires_at}
    sim.client.bulk("runpod", PER_PROVIDER, name_prefix="reap-rp-", env=env)
    sim.client.bulk("vast", PER_PROVIDER, name_prefix="reap-v-",
                    label_suffix=";run_id=bench-run;owner=%s;expires_at=%s" % (OWNER, expires_at))


def calls(sim) -> dict:
    per = sim.client.stats()["per_endpoint"]
    return {"runpod_list": per.get("runpod GET /v2/pods", 0),
            "vast_list_pages": sum(n for k, n in per.items() if k.startswith("vast GET /api/v1/instances")),
            "destroy": sum(n for k, n in per.items() if " DELETE " in f" {k.split(' ', 1)[1]}")}


def in_process(sim, destroy: bool) -> tuple[float, float]:
    """The reaper's own time (module_utils, no Ansible start-up): (list + decide, destroy) seconds."""
    sys.path.insert(0, str(REPO / "collections"))
    from ansible_collections.gpu.ops.plugins.module_utils import reaper
    from ansible_collections.gpu.ops.plugins.module_utils.runpod import RunPodProvider
    from ansible_collections.gpu.ops.plugins.module_utils.vast import VastProvider

    e = sim.env
    provs = {"runpod": RunPodProvider(e["RUNPOD_API_KEY"], e["RUNPOD_API_URL"], e["RUNPOD_GRAPHQL_URL"]),
             "vast": VastProvider(e["VAST_API_KEY"], e["VAST_API_URL"])}
    r = reaper.Reaper(provs, owner=OWNER)
    t0 = time.perf_counter()
    r.plan()
    t1 = time.perf_counter()
    if destroy:
        r.reap()
    return t1 - t0, time.perf_counter() - t1


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="gpuops-bench-reap-"))
    floor_pb = work / "floor.yml"
    floor_pb.write_text("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: hi}\n")
    # -i localhost, as cron/AWX run it: the repository's default inventory (the cloud plugin) is not needed
    reap = [str(BIN / "ansible-playbook"), "-i", "localhost,", "gpu.ops.reap", "-e", f"runs_dir={work}/runs"]
    n = 2 * PER_PROVIDER
    result = {"instances": n, "runs": RUNS}
    rows = []
    with simulator() as sim:
        env = env_for(sim)
        floor = [run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(floor_pb)], env)[0] for _ in range(RUNS)]
        rows.append(["ansible-playbook, one debug task (floor)", stats(floor)["median"], "-", "-", "-"])

        fill(sim, iso(time.time() + 86400))
        idle, idle_calls = [], None
        for _ in range(RUNS):
            sim.client.reset_stats()
            dt, out = run(reap, env)
            assert "nothing to reap" in out, out[-2000:]
            idle.append(dt)
            idle_calls = calls(sim)
        rows.append([f"reap, {n} labelled, none due", stats(idle)["median"], idle_calls["runpod_list"],
                     idle_calls["vast_list_pages"], idle_calls["destroy"]])
        sim.client.request("POST", "/_sim/clock", {"advance": 0})
        for i in sim.client.status():  # start again with expired ones
            sim.destroy(i["id"], i["provider"])
        fill(sim, iso(time.time() - 60))

        check = []
        for _ in range(RUNS):
            sim.client.reset_stats()
            dt, out = run(reap + ["--check"], env)
            assert f"{n} instance(s)" in out, out[-2000:]
            check.append(dt)
        check_calls = calls(sim)
        pages = -(-PER_PROVIDER // 25)  # Vast's list: 25 a page
        assert (check_calls["runpod_list"], check_calls["vast_list_pages"]) == (1, pages), check_calls
        rows.append([f"reap --check, {n} expired", stats(check)["median"], check_calls["runpod_list"],
                     check_calls["vast_list_pages"], check_calls["destroy"]])

        plan_in = [in_process(sim, destroy=False)[0] for _ in range(RUNS)]
        rows.append([f"  in-process: list + decide, {n} expired", stats(plan_in)["median"], 1, pages, 0])

        sim.client.reset_stats()
        real, out = run(reap, env)
        real_calls = calls(sim)
        left = [i for i in sim.client.status() if i["name"].startswith("reap-")]
        assert not left and f"{n} instance(s)" in out, (len(left), out[-2000:])
        rows.append([f"reap, {n} expired, destroyed", real, real_calls["runpod_list"],
                     real_calls["vast_list_pages"], real_calls["destroy"]])
        fill(sim, iso(time.time() - 60))
        _plan, destroy_in = in_process(sim, destroy=True)
        rows.append([f"  in-process: destroy {n} (8 at a time)", destroy_in, "-", "-", n])
    result.update({"floor_s": stats(floor), "none_due_s": stats(idle), "check_all_expired_s": stats(check),
                   "destroy_all_s": round(real, 3), "calls_none_due": idle_calls, "calls_check": check_calls,
                   "calls_destroy": real_calls, "in_process_plan_s": stats(plan_in),
                   "in_process_destroy_s": round(destroy_in, 3), "goal_s": 5.0})
    print(f"\ngpu.ops.reap over {n} labelled instances (median of {RUNS}; the destroying run once)")
    print(table(["measurement", "seconds", "RunPod lists", "Vast list pages", "destroy calls"], rows))
    write_result("reap", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
