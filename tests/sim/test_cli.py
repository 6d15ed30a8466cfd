"""The gpuops-sim CLI as a user runs it: start/status/ledger/faults/stop, several simulators side by side,
one-line errors for bad input to the simulator itself, and a run as a non-root user."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import requests
import yaml
from simapi import REPO, parse_exports, pod_body, run_cli

from gpuops.sim.catalog import DEFAULT_CATALOG
from gpuops.sim.client import SimClient
from gpuops.sim.nodes import pids_with_marker
from gpuops.testing import make_keypair, wait_ssh

REQUIRED_EXPORTS = {"RUNPOD_API_URL", "RUNPOD_GRAPHQL_URL", "VAST_API_URL", "RUNPOD_API_KEY", "VAST_API_KEY",
                    "RUNPOD_API_BASE_URL", "VAST_URL"}  # the last two: what the vendors' own tools read


def assert_one_line_error(r: subprocess.CompletedProcess, part: str) -> None:
    assert r.returncode != 0, r
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("gpuops-sim: error: ") and part in lines[0], lines[0]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def sd(path: Path) -> list[str]:
    return ["--state-dir", str(path)]


# ------------------------------------------------------------------------------------------ lifecycle
def test_start_status_ledger_faults_stop(tmp_path):
    state = tmp_path / "state"
    faults = tmp_path / "faults.yml"
    faults.write_text("faults:\n  - type: no_capacity\n    match: {name: 'blocked-*'}\n")
    r = run_cli("start", *sd(state), "--boot-seconds", "0.2", "--faults", str(faults))
    assert r.returncode == 0, r.stderr
    env = parse_exports(r.stdout)
    assert REQUIRED_EXPORTS <= set(env)
    assert env["RUNPOD_API_URL"].endswith("/v2") and env["RUNPOD_GRAPHQL_URL"].endswith("/graphql")
    assert env["RUNPOD_API_BASE_URL"] + "/graphql" == env["RUNPOD_GRAPHQL_URL"] and env["VAST_URL"] == env["VAST_API_URL"]
    info = json.loads((state / "server.json").read_text())
    try:
        # the exports are shell: eval them in bash, as the README does
        sh = subprocess.run(["bash", "-c", f'eval "$({sys.executable} -m gpuops.sim.cli start --state-dir {state})"'
                                           '; echo "$RUNPOD_API_URL $VAST_API_KEY"'],
                            capture_output=True, text=True, timeout=60)
        assert sh.stdout.split() == [env["RUNPOD_API_URL"], env["VAST_API_KEY"]]
        # a second start on the same state dir reports the running one
        again = run_cli("start", *sd(state))
        assert again.returncode == 0 and "already running" in again.stderr
        assert parse_exports(again.stdout) == env
        assert json.loads((state / "server.json").read_text())["pid"] == info["pid"]

        rp = requests.Session()
        rp.headers["Authorization"] = f"Bearer {env['RUNPOD_API_KEY']}"
        # the --faults file is active from the start
        assert rp.post(env["RUNPOD_API_URL"] + "/pods", json=pod_body("blocked-1"), timeout=10).status_code == 400
        key = make_keypair(tmp_path / "keys")
        pubkey = Path(str(key) + ".pub").read_text().strip()
        pod = rp.post(env["RUNPOD_API_URL"] + "/pods", json=pod_body("cli-pod", pubkey), timeout=10).json()

        st = run_cli("status", *sd(state), "--json")
        assert st.returncode == 0, st.stderr
        rows = json.loads(st.stdout)["instances"]
        assert [(x["id"], x["provider"], x["name"]) for x in rows] == [(pod["id"], "runpod", "cli-pod")]
        assert rows[0]["status"] in ("provisioning", "starting", "running")
        text = run_cli("status", *sd(state)).stdout
        assert pod["id"] in text and "1 instance(s)" in text

        faults2 = tmp_path / "more.yml"
        faults2.write_text("faults: [{type: rate_limit, api: runpod, count: 1, retry_after: 2}]\n")
        r = run_cli("faults", *sd(state), str(faults2))
        assert r.returncode == 0 and "loaded 1 fault(s); 2 active" in r.stdout
        listed = json.loads(run_cli("faults", *sd(state)).stdout)["faults"]
        assert {f["type"] for f in listed} == {"no_capacity", "rate_limit"}
        assert rp.get(env["RUNPOD_API_URL"] + "/pods", timeout=10).status_code == 429
        assert run_cli("faults", *sd(state), "--clear").returncode == 0
        assert json.loads(run_cli("faults", *sd(state)).stdout)["faults"] == []

        assert run_cli("clock", *sd(state), "--advance", "3600").returncode == 0
        led = run_cli("ledger", *sd(state), "--json")
        assert led.returncode == 0
        lrow = json.loads(led.stdout)["instances"][0]
        assert lrow["id"] == pod["id"] and lrow["billed_seconds"] >= 3600 and lrow["cost"] >= 0.69
        assert "total: $" in run_cli("ledger", *sd(state)).stdout

        # a node with a tmux job and a nohup'd process, to check that stop leaves nothing
        client = SimClient(state)
        p = client.wait_until(lambda: (lambda x: x if x["ssh"]["direct"] else None)(
            rp.get(env["RUNPOD_API_URL"] + f"/pods/{pod['id']}", timeout=10).json()), 20, "pod up")
        d = p["ssh"]["direct"]
        wait_ssh(d["host"], d["port"], d["username"], str(key), str(tmp_path / "kh"), 20)
        subprocess.run(["ssh", "-i", str(key), "-p", str(d["port"]), "-o", "BatchMode=yes",
                        "-o", f"UserKnownHostsFile={tmp_path / 'kh'}", "-o", "StrictHostKeyChecking=accept-new",
                        f"{d['username']}@{d['host']}",
                        "tmux new-session -d -s job 'sleep 900'; "
                        "nohup sleep 901 >/dev/null 2>&1 </dev/null &"],
                       check=True, capture_output=True, timeout=30)
        procs = client.instance(pod["id"])["processes"]
        cmds = [Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode() for p in procs if alive(p)]
        assert len(procs) >= 4, cmds  # sshd, tmux server, the job, the nohup'd sleep
    finally:
        stop = run_cli("stop", *sd(state))
    assert stop.returncode == 0, stop.stderr
    assert "1 instance(s) destroyed" in stop.stdout
    assert not alive(info["pid"])
    assert [p for p in procs if alive(p)] == []
    assert pids_with_marker(f"{info['token']}:") == []
    assert not (state / "server.json").exists()
    assert not any((state / "nodes").iterdir())
    # afterwards: nothing running, said in one line
    assert_one_line_error(run_cli("status", *sd(state)), "no simulator is running")
    r = run_cli("stop", *sd(state))
    assert r.returncode == 0 and ("0 instance(s)" in r.stdout or "nothing running" in r.stdout), r


def test_simulators_side_by_side_and_default_state_dir(tmp_path):
    xdg = tmp_path / "xdg"
    env = {"XDG_STATE_HOME": str(xdg)}
    a = run_cli("start", env=env)  # no --state-dir: the per-user default
    assert a.returncode == 0, a.stderr
    b_state = tmp_path / "b"
    # b sells its own catalog: one extra GPU type, and the v0 list still answering (as on some accounts)
    cat = yaml.safe_load(DEFAULT_CATALOG.read_text())
    extra = dict(cat["runpod"]["gpu_types"][0], id="NVIDIA Sim Test 9000", name="Sim 9000")
    cat["runpod"]["gpu_types"].append(extra)
    cat["settings"]["vast_v0_list"] = "ok"
    (tmp_path / "cat.yml").write_text(yaml.safe_dump(cat))
    b = run_cli("start", *sd(b_state), "--catalog", str(tmp_path / "cat.yml"))
    try:
        assert b.returncode == 0, b.stderr
        ea, eb = parse_exports(a.stdout), parse_exports(b.stdout)
        assert ea["RUNPOD_API_URL"] != eb["RUNPOD_API_URL"] and ea["RUNPOD_API_KEY"] != eb["RUNPOD_API_KEY"]
        assert Path(ea["GPUOPS_SIM_STATE_DIR"]) == xdg / "gpuops-sim"
        # each answers only its own key
        r = requests.get(eb["RUNPOD_API_URL"] + "/pods", headers={"Authorization": f"Bearer {ea['RUNPOD_API_KEY']}"},
                         timeout=10)
        assert r.status_code == 401
        assert json.loads(run_cli("status", "--json", env=env).stdout)["url"] == ea["RUNPOD_API_URL"][:-3]
        hb = {"Authorization": f"Bearer {eb['RUNPOD_API_KEY']}"}
        ids_b = [g["id"] for g in requests.get(eb["RUNPOD_API_URL"] + "/catalog/gpus", headers=hb, timeout=10
                                               ).json()["gpus"]]
        ha = {"Authorization": f"Bearer {ea['RUNPOD_API_KEY']}"}
        ids_a = [g["id"] for g in requests.get(ea["RUNPOD_API_URL"] + "/catalog/gpus", headers=ha, timeout=10
                                               ).json()["gpus"]]
        assert "NVIDIA Sim Test 9000" in ids_b and "NVIDIA Sim Test 9000" not in ids_a
        v0 = [requests.get(e["VAST_API_URL"] + "/api/v0/instances/", timeout=10,
                           headers={"Authorization": f"Bearer {e['VAST_API_KEY']}"}) for e in (ea, eb)]
        assert v0[0].status_code == 410 and v0[1].status_code == 200
        assert v0[1].json() == {"instances_found": 0, "instances": []}
        assert run_cli("stop", env=env).returncode == 0
        # b is unaffected
        assert json.loads(run_cli("status", *sd(b_state), "--json").stdout)["instances"] == []
    finally:
        run_cli("stop", env=env)
        run_cli("stop", *sd(b_state))


# ------------------------------------------------------------------------------------------ bad input
def test_bad_faults_yaml_is_one_line_error(tmp_path, sim):
    bad = tmp_path / "bad.yml"
    for text, part in [("faults: [{type: rate_limit\n", "invalid YAML"), ("faults: [{type: meteor}]", "unknown type"),
                       ("faults: [{type: slow_boot, seconds: soon}]", "could not convert"),
                       ("- 1\n- 2\n", "expected a mapping")]:
        bad.write_text(text)
        r = run_cli("start", *sd(tmp_path / "never"), "--faults", str(bad))
        assert_one_line_error(r, part)
        assert not (tmp_path / "never" / "server.json").exists()
        # the same file against a running simulator
        r = run_cli("faults", "--state-dir", str(sim.state_dir), str(bad))
        assert_one_line_error(r, part)
    assert_one_line_error(run_cli("start", *sd(tmp_path / "never"), "--faults", str(tmp_path / "missing.yml")),
                          "cannot read")


def test_port_in_use_is_one_line_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = run_cli("start", *sd(tmp_path / "st"), "--port", str(port))
    assert_one_line_error(r, "already in use")
    assert not (tmp_path / "st" / "server.json").exists()


def test_state_dir_not_writable_is_one_line_error(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    assert_one_line_error(run_cli("start", *sd(afile / "state")), "not writable")
    if os.geteuid() != 0:  # root writes anywhere; the non-root test below covers a read-only dir
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        assert_one_line_error(run_cli("start", *sd(ro / "state")), "not writable")


def test_other_bad_input(tmp_path):
    assert_one_line_error(run_cli("start", *sd(tmp_path / "s"), "--host", "0.0.0.0"), "loopback")
    assert_one_line_error(run_cli("start", *sd(tmp_path / "s"), "--host", "example.com"), "loopback")
    bad_catalog = tmp_path / "cat.yml"
    bad_catalog.write_text("hardware: {x: {memory_mib: 1}}\n")
    assert_one_line_error(run_cli("start", *sd(tmp_path / "s"), "--catalog", str(bad_catalog)), "smi_name")
    assert_one_line_error(run_cli("ledger", *sd(tmp_path / "nothing")), "no simulator is running")
    assert_one_line_error(run_cli("faults", *sd(tmp_path / "nothing"), str(bad_catalog)), "no simulator is running")


# ------------------------------------------------------------------------------------------ non-root
NONROOT_USER = "gpuops-simtest"
DRIVER = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from gpuops.testing import SimHarness
    from gpuops.sim.nodes import pids_with_marker
    base = Path(sys.argv[1])
    h = SimHarness(base / "state", base / "work", boot_seconds=0.2).start()
    token = h.client.info["token"]
    try:
        node = h.create_runpod("nonroot")
        # what the processes really run as (a new file's owner); `id` answers as the image's user (root)
        out = node.ssh("touch f; stat -c %u f; echo $HOME; tmux new-session -d -s j 'sleep 600'; echo ok").stdout.split()
        vnode = h.create_vast("nonroot-v")
        vout = vnode.ssh("id -un; touch g; stat -c %U g").stdout.split()
    finally:
        stop = h.stop()
    ro = base / "ro"
    ro.mkdir(mode=0o500)
    import subprocess
    bad = subprocess.run([sys.executable, "-m", "gpuops.sim.cli", "start", "--state-dir", str(ro / "s")],
                         capture_output=True, text=True)
    print(json.dumps({"uid": os.getuid(), "out": out, "vout": vout, "stop": stop,
                      "left": pids_with_marker(token + ":"), "bad_rc": bad.returncode, "bad_err": bad.stderr}))
""")


def _as_user_cmd(user: str) -> list[str] | None:
    """How to run the venv's Python as ``user``: plainly, or (when the interpreter lives in a directory only
    root may enter, e.g. /root/.pyenv) with CAP_DAC_READ_SEARCH as the only capability, so the user can read
    the interpreter. The simulator still runs with a non-root uid, which is what this test is about."""
    plain = ["runuser", "-u", user, "--"]
    probe = [sys.executable, "-c", "import gpuops.sim.server"]
    if subprocess.run(plain + probe, capture_output=True, timeout=60).returncode == 0:
        return plain
    capped = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--inh-caps=+dac_read_search",
              "--ambient-caps=+dac_read_search"]
    if shutil.which("setpriv") and subprocess.run(capped + probe, capture_output=True, timeout=60).returncode == 0:
        return capped
    return None


def test_runs_as_a_non_root_user():
    if os.geteuid() != 0:
        pytest.skip("not root: every other test here already runs the simulator as a non-root user")
    if not shutil.which("useradd") or not shutil.which("runuser"):
        pytest.skip("useradd/runuser not available: cannot create a throwaway non-root user")
    created = False
    try:
        pwd.getpwnam(NONROOT_USER)
    except KeyError:
        r = subprocess.run(["useradd", "-M", "-s", "/bin/sh", NONROOT_USER], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot create user {NONROOT_USER}: {r.stderr.strip()}")
        created = True
    pw = pwd.getpwnam(NONROOT_USER)
    base = Path(tempfile.mkdtemp(prefix="gpuops-nonroot-"))
    try:
        os.chown(base, pw.pw_uid, pw.pw_gid)
        os.chmod(base, 0o755)
        prefix = _as_user_cmd(NONROOT_USER)
        if prefix is None:
            pytest.skip(f"{NONROOT_USER} cannot run {sys.executable} (not readable by other users, no setpriv)")
        env = {"HOME": str(base), "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8", "PYTHONPATH": str(REPO / "src")}
        r = subprocess.run([*prefix, "env", "-i", *[f"{k}={v}" for k, v in env.items()], sys.executable, "-c",
                            DRIVER, str(base)], capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stderr[-3000:]
        res = json.loads(r.stdout.strip().splitlines()[-1])
        assert res["uid"] == pw.pw_uid != 0
        assert res["out"][0] == str(pw.pw_uid) and res["out"][1].startswith(str(base)) and res["out"][2] == "ok"
        assert res["vout"] == ["root", NONROOT_USER]  # root inside the container, the invoking user outside
        assert "error" not in res["stop"] and "2 instance(s) destroyed" in res["stop"]
        assert res["left"] == []
        assert res["bad_rc"] != 0 and "not writable" in res["bad_err"] and "Traceback" not in res["bad_err"]
        left = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-u", NONROOT_USER], capture_output=True, text=True)
        assert [x for x in left.stdout.splitlines() if " Z" not in x] == [], left.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if created:
            subprocess.run(["userdel", NONROOT_USER], capture_output=True)
