"""gpu.ops.watchdog on simulator nodes: the dead-man switch destroys its own instance, with its own key.

The tests drive the role through ansible-playbook as the pipeline does, advance the simulator's virtual clock
(the node sees it through GPUOPS_CLOCK_OFFSET_FILE) and wait on real conditions: the daemon's own state file
says it checked after the clock moved, or the instance is gone from the provider's API. A SIGKILLed controller is
simulated by the only thing a dead controller does: nothing (no heartbeat).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from gpuops.sim.nodes import pids_using_dirs, pids_with_marker
from gpuops.testing import REPO, ansible_env, run_playbook, task_results

PLAYBOOKS = Path(__file__).parent / "playbooks"
ARM = "Arm the dead-man switch on the node"
INTERVAL = 0.2  # seconds between the daemon's checks (real time) in these tests


def arm(sim, nodes, tmp_path, **vars_):
    inv = sim.inventory(nodes, tmp_path / "inv.yml")
    proc = run_playbook(PLAYBOOKS / "arm.yml", inv, {"watchdog_interval": INTERVAL, **vars_}, json_output=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return task_results(proc, ARM)


def heartbeat(sim, nodes, tmp_path, **vars_):
    proc = run_playbook(PLAYBOOKS / "heartbeat.yml", sim.inventory(nodes, tmp_path / "inv.yml"), vars_ or None,
                        json_output=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return task_results(proc, "Touch the controller heartbeat on the node")


def virtual_now(sim) -> float:
    return sim.client.advance(0)["now"]


def wd_state(node) -> dict:
    res = node.ssh("cat ~/.bifrost/watchdog/state.json 2>/dev/null || true")
    return json.loads(res.stdout) if res.stdout.strip() else {}


def wait_checked(sim, node, after: float) -> dict:
    """The daemon's state once it has checked at a (virtual) time >= ``after``: it saw the clock move."""
    return sim.client.wait_until(lambda: (lambda s: s if s.get("checked_at", 0) >= after else None)(wd_state(node)),
                                 20, f"watchdog on {node.name} checking after {after}")


def live_ids(sim) -> set[str]:
    return {i["id"] for i in sim.client.status()}


def wait_gone(sim, node, timeout: float = 30) -> dict:
    """The ledger row of the instance once the provider no longer lists it."""
    sim.client.wait_until(lambda: node.id not in live_ids(sim), timeout, f"{node.name} destroyed")
    sim.nodes[:] = [n for n in sim.nodes if n.id != node.id]
    return next(r for r in sim.client.ledger()["instances"] if r["id"] == node.id)


def alive(pid: int) -> bool:
    """A live process (a zombie waiting for a reaper that is not ours to run counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def assert_no_process_left(sim, node):
    token = sim.client.info["token"]
    left = set(pids_with_marker(f"{token}:{node.id}")) | pids_using_dirs(sim.state_dir / "nodes").get(node.id, set())
    assert not left, f"processes of {node.name} left behind: {sorted(left)}"


def destroy_requests(sim, node, since: int) -> list[dict]:
    return [r for r in sim.client.requests(since)["requests"] if r["method"] == "DELETE" and node.id in r["path"]]


@pytest.mark.parametrize("provider", ["runpod", "vast"])
def test_expires_at_destroys_own_instance(sim, make_nodes, tmp_path, provider):
    node = make_nodes(1, provider, prefix=f"wd-exp-{provider}")[0]
    expires = virtual_now(sim) + 600
    res = arm(sim, [node], tmp_path, watchdog_expires_at=expires, watchdog_idle_timeout=0)[node.name]
    assert res["changed"] and res["credential"] and res["credential_source"] == "environment", res
    # idempotent: a second arm changes nothing and leaves exactly one daemon
    again = arm(sim, [node], tmp_path, watchdog_expires_at=expires, watchdog_idle_timeout=0)[node.name]
    assert not again["changed"] and again["pid"] == res["pid"], again
    cmdlines = [Path(f"/proc/{p}/cmdline").read_bytes() for p in sim.client.instance(node.id)["processes"]
                if alive(p)]
    assert sum(b"gpuops-watchdog-" in c and c.endswith(b"run\0") for c in cmdlines) == 1, cmdlines

    wait_checked(sim, node, expires - 600)
    sim.client.advance(300)  # not yet
    assert wait_checked(sim, node, expires - 300)["decision"] is None
    assert node.id in live_ids(sim)

    seq = sim.client.requests()["seq"]
    sim.client.advance(301)
    row = wait_gone(sim, node)
    assert row["terminated_at"] - expires <= 60, row  # on the simulator's clock
    deletes = destroy_requests(sim, node, seq)
    assert deletes and deletes[0]["auth"] == "bearer" and deletes[0]["status"] in (200, 204), deletes
    assert_no_process_left(sim, node)


def test_silent_heartbeat_destroys_when_no_job_runs(sim, make_nodes, tmp_path):
    """The controller was SIGKILLed: no heartbeat comes any more. The node goes idle_timeout after the last one."""
    node = make_nodes(1, "vast", prefix="wd-idle")[0]
    start = virtual_now(sim)
    arm(sim, [node], tmp_path, watchdog_idle_timeout="10m")
    sim.client.advance(400)
    assert wait_checked(sim, node, start + 400)["decision"] is None
    hb = heartbeat(sim, [node], tmp_path)[node.name]  # the controller is alive: the silence starts again
    assert not hb["changed"] and hb["armed"], hb
    last_beat = virtual_now(sim)
    sim.client.advance(400)  # 800 s after arming, 400 s after the heartbeat
    assert wait_checked(sim, node, last_beat + 400)["decision"] is None
    assert node.id in live_ids(sim)
    # controller gone: nothing touches the heartbeat any more
    sim.client.advance(201)
    row = wait_gone(sim, node)
    assert row["terminated_at"] - (last_beat + 600) <= 60, row
    assert_no_process_left(sim, node)


def test_sigkilled_controller_mid_train(sim, make_nodes, tmp_path):
    """The controller is SIGKILLed while the job trains: the node stays while the job runs, then destroys itself
    idle_timeout after the job ended, with nobody left to tell it."""
    node = make_nodes(1, "vast", prefix="wd-kill")[0]
    inv = sim.inventory([node], tmp_path / "inv.yml")
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), str(PLAYBOOKS / "controller.yml"), "-i", str(inv),
           "-e", json.dumps({"job_id": "train-1", "job_command": "while [ ! -e ~/finish ]; do sleep 0.2; done",
                             "watchdog_interval": INTERVAL, "watchdog_idle_timeout": 600})]
    controller = subprocess.Popen(cmd, env=ansible_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        sim.client.wait_until(lambda: node.ssh("cat ~/.bifrost/jobs/train-1/status 2>/dev/null || true").stdout
                              .strip() == "running", 120, "the job running")
        assert controller.poll() is None, "the controller ended before it could be killed"
    finally:
        os.killpg(controller.pid, signal.SIGKILL)
        controller.wait(30)
    start = virtual_now(sim)
    sim.client.advance(3600)  # an hour without a controller, but the job trains
    state = wait_checked(sim, node, start + 3600)
    assert state["decision"] is None and state["jobs_active"] == ["train-1"], state
    node.ssh("touch ~/finish")  # training ends
    sim.client.wait_until(lambda: node.ssh("cat ~/.bifrost/jobs/train-1/status").stdout.strip() == "succeeded", 30,
                          "the job finished")
    ended = wait_checked(sim, node, virtual_now(sim))
    assert ended["jobs_active"] == [] and node.id in live_ids(sim)
    sim.client.advance(601)
    row = wait_gone(sim, node)
    assert row["terminated_at"] - (ended["checked_at"] + 600) <= 60, row
    assert_no_process_left(sim, node)


def test_running_job_keeps_the_node(sim, make_nodes, tmp_path):
    node = make_nodes(1, "runpod", prefix="wd-job")[0]
    inv = sim.inventory([node], tmp_path / "inv.yml")
    proc = run_playbook(PLAYBOOKS / "job.yml", inv, {"job_id": "long-1", "job_command": "sleep 600"})
    assert proc.returncode == 0, proc.stdout[-3000:]
    start = virtual_now(sim)
    arm(sim, [node], tmp_path, watchdog_idle_timeout=600)
    sim.client.advance(3600)  # an hour of silence, but the job runs
    state = wait_checked(sim, node, start + 3600)
    assert state["decision"] is None and state["jobs_active"] == ["long-1"], state
    assert node.id in live_ids(sim)
    # the controller tears the node down itself: the watchdog goes with it, nothing is left running
    assert alive(state["pid"])
    sim.destroy(node)
    assert_no_process_left(sim, node)
    assert not alive(state["pid"])


def test_budget_stops_the_job_then_destroys(sim, make_nodes, tmp_path):
    node = make_nodes(1, "runpod", prefix="wd-budget")[0]
    marker = tmp_path / "job-got-sigterm"
    # the job notes that it was asked to stop (outside the node, which is destroyed afterwards)
    command = f"trap 'date +%s.%N > {marker}; exit 143' TERM; sleep 600 & wait"
    proc = run_playbook(PLAYBOOKS / "job.yml", sim.inventory([node], tmp_path / "inv.yml"),
                        {"job_id": "budget-1", "job_command": command})
    assert proc.returncode == 0, proc.stdout[-3000:]
    start = virtual_now(sim)
    arm(sim, [node], tmp_path, watchdog_max_cost=1.0, watchdog_price_per_hour=2.0, watchdog_started_at=start,
        watchdog_idle_timeout=0, watchdog_stop_grace=10)
    sim.client.advance(900)  # $0.50 of $1.00
    state = wait_checked(sim, node, start + 900)
    assert state["decision"] is None and state["details"]["spent_usd"] == pytest.approx(0.5, abs=0.01), state
    seq = sim.client.requests()["seq"]
    sim.client.advance(901)
    wait_gone(sim, node)
    assert marker.exists(), "the job was not stopped before the instance was destroyed"
    deletes = destroy_requests(sim, node, seq)
    assert deletes and float(marker.read_text()) <= deletes[0]["t"], (marker.read_text(), deletes)
    assert_no_process_left(sim, node)


def _key(node, var: str) -> str:
    value = node.ssh(f'printf %s "${var}"').stdout
    assert len(value) >= 32, f"{var} missing on {node.name}"
    return value


def test_instance_key_acts_only_on_its_own_instance(sim, make_nodes):
    rp_a, rp_b = make_nodes(2, "runpod", prefix="wd-key-rp")
    va_a, va_b = make_nodes(2, "vast", prefix="wd-key-vast")
    env = sim.env
    assert rp_a.ssh('printf %s "$RUNPOD_POD_ID"').stdout == rp_a.id
    assert va_a.ssh('printf %s "$CONTAINER_ID"').stdout == va_a.id

    def rp(method, path, key, **kw):
        return requests.request(method, env["RUNPOD_API_URL"] + path, headers={"Authorization": f"Bearer {key}"},
                                timeout=10, **kw)

    def vast(method, path, key, **kw):
        return requests.request(method, env["VAST_API_URL"] + path, headers={"Authorization": f"Bearer {key}"},
                                timeout=10, **kw)

    k = _key(rp_a, "RUNPOD_API_KEY")
    assert k != env["RUNPOD_API_KEY"] and k != _key(rp_b, "RUNPOD_API_KEY")
    assert rp("GET", f"/pods/{rp_a.id}", k).status_code == 200
    for method, path in (("GET", f"/pods/{rp_b.id}"), ("DELETE", f"/pods/{rp_b.id}"), ("GET", "/pods"),
                         ("POST", f"/pods/{rp_b.id}/action")):
        r = rp(method, path, k, json={"action": "terminate"} if method == "POST" else None)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert r.json()["title"] == "Forbidden" and rp_a.id in r.json()["detail"]
    gql = requests.post(env["RUNPOD_GRAPHQL_URL"], headers={"Authorization": f"Bearer {k}"}, timeout=10,
                        json={"query": 'mutation { podTerminate(input: {podId: "%s"}) }' % rp_b.id})
    assert gql.status_code == 403 and gql.json()["errors"], gql.text
    assert rp("GET", f"/pods/{rp_a.id}", _key(va_a, "CONTAINER_API_KEY")).status_code == 401  # not a RunPod key

    kv = _key(va_a, "CONTAINER_API_KEY")
    assert vast("GET", f"/api/v0/instances/{va_a.id}/", kv).json()["instances"]["id"] == int(va_a.id)
    for method, path in (("GET", f"/api/v0/instances/{va_b.id}/"), ("DELETE", f"/api/v0/instances/{va_b.id}/"),
                         ("GET", "/api/v1/instances/"), ("POST", "/api/v0/bundles/"), ("GET", "/api/v0/ssh/")):
        r = vast(method, path, kv, json={} if method != "GET" else None)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert r.json()["success"] is False and r.json()["error"] == "forbidden", r.text
    assert live_ids(sim) >= {rp_a.id, rp_b.id, va_a.id, va_b.id}  # nothing was destroyed by the refused calls

    # a destroyed instance's key is unknown, like any revoked key
    sim.destroy(va_a)
    assert vast("GET", f"/api/v0/instances/{va_a.id}/", kv).status_code == 401


def test_vast_create_returns_the_key_the_container_gets(sim):
    env = sim.env
    hdr = {"Authorization": f"Bearer {env['VAST_API_KEY']}"}
    requests.post(env["VAST_API_URL"] + "/api/v0/ssh/", json={"ssh_key": sim.pubkey}, headers=hdr, timeout=10)
    offer = requests.post(env["VAST_API_URL"] + "/api/v0/bundles/", headers=hdr, timeout=10,
                          json={"rentable": {"eq": True}, "order": [["dph_total", "asc"]]}).json()["offers"][0]
    r = requests.put(env["VAST_API_URL"] + f"/api/v0/asks/{offer['id']}/", headers=hdr, timeout=10,
                     json={"image": "vastai/base-image", "label": "wd-key-create", "runtype": "ssh_direct",
                           "env": "-p 22:22"})
    assert r.status_code == 200, r.text
    node = sim.wait_vast(r.json()["new_contract"])
    try:
        assert _key(node, "CONTAINER_API_KEY") == r.json()["instance_api_key"]
    finally:
        sim.destroy(node)


def test_heartbeat_rearms_after_a_restart_and_disarm_stops_it(sim, make_nodes, tmp_path):
    """A restarted container loses its processes; the next heartbeat starts the watchdog again."""
    node = make_nodes(1, "runpod", prefix="wd-restart")[0]
    first = arm(sim, [node], tmp_path, watchdog_idle_timeout="1h")[node.name]
    hdr = {"Authorization": f"Bearer {sim.env['RUNPOD_API_KEY']}"}
    url = sim.env["RUNPOD_API_URL"] + f"/pods/{node.id}"
    for action in ("stop", "start"):
        r = requests.post(url + "/action", json={"action": action}, headers=hdr, timeout=30)
        assert r.status_code == 200, r.text
    sim.nodes[:] = [n for n in sim.nodes if n.id != node.id]
    node = sim.wait_runpod(node.id)
    assert not alive(first["pid"])
    hb = heartbeat(sim, [node], tmp_path)[node.name]
    assert hb["changed"] and hb["restarted"] and hb["pid"] != first["pid"], hb
    assert wait_checked(sim, node, virtual_now(sim))["pid"] == hb["pid"]
    inv = sim.inventory([node], tmp_path / "inv.yml")
    proc = run_playbook(PLAYBOOKS / "arm.yml", inv, {"watchdog_state": "absent"}, json_output=True)
    assert proc.returncode == 0 and task_results(proc, ARM)[node.name]["changed"], proc.stdout[-2000:]
    sim.client.wait_until(lambda: not alive(hb["pid"]), 15, "watchdog stopped")
    log = node.ssh("cat ~/.bifrost/watchdog/watchdog.log").stdout
    events = [json.loads(line)["event"] for line in log.splitlines()]
    assert events[0] == "armed" and "rearmed" in events and events[-1] == "disarmed", events


def test_heartbeat_rearms_a_node_that_lost_its_settings_unless_disarmed(sim, make_nodes, tmp_path):
    """RunPod wipes the container disk on a restart: settings, helper and daemon are gone. The next heartbeat
    brings the settings along and arms the node again; a node disarmed on purpose stays disarmed."""
    node = make_nodes(1, "runpod", prefix="wd-wiped")[0]
    first = arm(sim, [node], tmp_path, watchdog_idle_timeout="1h")[node.name]
    node.ssh(f"kill {first['pid']}; rm -rf ~/.bifrost")
    sim.client.wait_until(lambda: not alive(first["pid"]), 15, "daemon gone")
    hb = heartbeat(sim, [node], tmp_path, watchdog_idle_timeout="1h")[node.name]  # the pipeline's same vars
    assert hb["changed"] and hb["restarted"] and hb["armed"] and hb["pid"] != first["pid"], hb
    assert hb["config"]["instance_id"] == node.id and hb["config"]["idle_timeout"] == 3600, hb
    proc = run_playbook(PLAYBOOKS / "arm.yml", sim.inventory([node], tmp_path / "inv.yml"),
                        {"watchdog_state": "absent"}, json_output=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
    sim.client.wait_until(lambda: not alive(hb["pid"]), 15, "daemon stopped")
    again = heartbeat(sim, [node], tmp_path)[node.name]
    assert not again["changed"] and not again["armed"], again
    assert not wd_state(node) or not alive(wd_state(node).get("pid") or 0)


def test_vast_onstart_hook_rearms_without_a_controller(sim, tmp_path):
    """Vast runs onstart at every container start: the resume hook brings the watchdog back with no heartbeat."""
    onstart = "touch ~/.no_auto_tmux; [ -x ~/.bifrost/bin/gpuops-watchdog-resume ] && ~/.bifrost/bin/gpuops-watchdog-resume"
    node = sim.create_vast("wd-onstart", onstart=onstart)
    try:
        first = arm(sim, [node], tmp_path, watchdog_idle_timeout="1h")[node.name]
        hdr = {"Authorization": f"Bearer {sim.env['VAST_API_KEY']}"}
        url = sim.env["VAST_API_URL"] + f"/api/v0/instances/{node.id}/"
        for state in ("stopped", "running"):
            assert requests.put(url, json={"state": state}, headers=hdr, timeout=30).status_code == 200
        sim.nodes[:] = [n for n in sim.nodes if n.id != node.id]
        node = sim.wait_vast(int(node.id))
        state = sim.client.wait_until(lambda: (lambda s: s if s.get("pid") not in (None, first["pid"]) else None)(
            wd_state(node)), 20, "watchdog restarted by onstart")
        assert alive(state["pid"])
    finally:
        sim.destroy(node)


def test_arm_refuses_a_foreign_instance_id(sim, make_nodes, tmp_path):
    node = make_nodes(1, "vast", prefix="wd-foreign")[0]
    inv = sim.inventory([node], tmp_path / "inv.yml")
    proc = run_playbook(PLAYBOOKS / "arm.yml", inv, {"watchdog_instance_id": "123"}, json_output=True)
    res = task_results(proc, ARM)[node.name]
    assert proc.returncode == 2 and res["failed"] and "not 123" in res["msg"], res
    assert not wd_state(node)


def test_check_mode_starts_nothing(sim, make_nodes, tmp_path):
    node = make_nodes(1, "runpod", prefix="wd-check")[0]
    inv = sim.inventory([node], tmp_path / "inv.yml")
    proc = run_playbook(PLAYBOOKS / "arm.yml", inv, {}, json_output=True, args=["--check"])
    res = task_results(proc, ARM)[node.name]
    assert proc.returncode == 0 and res["changed"] and not res.get("pid"), res
    assert node.ssh("test -e ~/.bifrost/watchdog/config.json", check=False).returncode != 0

