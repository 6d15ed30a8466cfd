"""The vendors' own tools against the simulator, unchanged: the ``vastai`` CLI (1.9.x) and the ``runpod``
Python SDK (1.12.x), from the package registry.

They pin incompatible ``cryptography`` versions, so each gets its own venv, built once with the Python
that runs these tests and cached under ``.cache/vendor-tools/<tool>-<pin>-py<X.Y>/`` (git-ignored). When
the registry cannot be reached and nothing is cached, the tests skip and say so.

Each tool runs as a subprocess in its venv with only the exports of ``gpuops-sim env`` (what
``eval "$(gpuops-sim start)"`` sets) and a private HOME: no code change, no monkeypatching. Where the tool
gives an SSH address, the test logs in there with a real ssh.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from simapi import REPO, Api, parse_exports, run_cli

from gpuops.sim.nodes import find_nss_wrapper
from gpuops.testing import make_keypair, wait_ssh

PINS = {"vastai": "vastai==1.9.*", "runpod": "runpod==1.12.*"}
CACHE = REPO / ".cache" / "vendor-tools"
SDK_CALLS = Path(__file__).with_name("runpod_sdk_calls.py")
RTX4090 = "NVIDIA GeForce RTX 4090"


# ------------------------------------------------------------------------------------------ venvs
def _registry_reachable(python: Path, name: str, env: dict | None) -> tuple[bool, str]:
    r = subprocess.run([str(python), "-m", "pip", "index", "versions", name, "--timeout", "20", "--retries", "1"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)
    return r.returncode == 0, (r.stderr.strip().splitlines() or ["no output"])[-1]


def vendor_venv(name: str, cache: Path = CACHE, env: dict | None = None) -> Path:
    """The tool's venv, built on first use (under a lock: xdist workers share the cache). ``env``: pip's
    environment (default: ours, so pip's own configuration applies)."""
    pin = PINS[name]
    py = f"py{sys.version_info.major}.{sys.version_info.minor}"
    venv = cache / f"{name}-{pin.split('==')[1].rstrip('.*')}-{py}"
    marker = venv / ".gpuops-pin"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == pin and (venv / "bin" / "python").exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        python = venv / "bin" / "python"
        r = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
                            "--timeout", "30", "--retries", "2", pin],
                           capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, env=env)
        if r.returncode != 0:
            reachable, why = _registry_reachable(python, name, env)
            shutil.rmtree(venv, ignore_errors=True)
            if not reachable:
                pytest.skip(f"{pin}: the package registry is unreachable and no venv is cached in {cache} ({why})")
            pytest.fail(f"pip install {pin} failed:\n{r.stderr[-2000:]}")
        marker.write_text(pin)
    return venv


@pytest.fixture(scope="session")
def vastai_bin() -> Path:
    return vendor_venv("vastai") / "bin" / "vastai"


@pytest.fixture(scope="session")
def runpod_python() -> Path:
    return vendor_venv("runpod") / "bin" / "python"


def test_an_unreachable_registry_skips_with_the_reason(tmp_path):
    # pip pointed at a closed port, its own configuration (local wheel dirs, extra indexes) switched off
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull,
           "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_CACHE_DIR": "1"}
    with pytest.raises(pytest.skip.Exception, match="registry is unreachable"):
        vendor_venv("vastai", cache=tmp_path / "cache", env=env)
    assert not (tmp_path / "cache" / f"vastai-1.9-py{sys.version_info.major}.{sys.version_info.minor}").exists()


# ------------------------------------------------------------------------------------------ environment
@pytest.fixture
def tool_env(sim, tmp_path) -> dict[str, str]:
    """What a user's shell has after ``eval "$(gpuops-sim start)"``, with a HOME of its own (the tools keep
    caches and config there)."""
    r = run_cli("env", "--state-dir", str(sim.state_dir))
    assert r.returncode == 0, r.stderr
    exports = parse_exports(r.stdout)
    assert {"RUNPOD_API_BASE_URL", "VAST_URL", "RUNPOD_API_KEY", "VAST_API_KEY"} <= set(exports), exports
    home = tmp_path / "home"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    for var, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"), ("XDG_STATE_HOME", ".local/state"),
                     ("XDG_DATA_HOME", ".local/share")):
        env[var] = str(home / sub)
        (home / sub).mkdir(parents=True, exist_ok=True)
    env.update(exports)
    return env


def login_name(tool_user: str, env: dict) -> str:
    """The tools always say root. Nodes accept root when the simulator runs as root or has nss_wrapper
    (design notes); otherwise the documented fallback is the simulator's user, VAST_SSH_USER."""
    if os.geteuid() == 0 or find_nss_wrapper():
        return tool_user
    return env["VAST_SSH_USER"]


def ssh_run(host: str, port: int, user: str, key: Path, known_hosts: Path, command: str) -> str:
    wait_ssh(host, port, user, str(key), str(known_hosts), timeout=30)
    r = subprocess.run(["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
                        "-o", "LogLevel=ERROR", f"{user}@{host}", command],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"ssh {user}@{host}:{port} {command!r}: {r.stderr}"
    return r.stdout


def recorded(sim, since: int, api: str) -> list[str]:
    return [f"{x['method']} {x['path']}" for x in sim.client.requests(since)["requests"] if x["api"] == api]


# ------------------------------------------------------------------------------------------ vastai CLI
class VastCli:
    def __init__(self, binary: Path, env: dict):
        self.binary, self.env = binary, env

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run([str(self.binary), *args], capture_output=True, text=True, env=self.env,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        assert r.returncode == 0 and not r.stdout.lstrip().lower().startswith("error"), \
            f"vastai {' '.join(args)} -> rc {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        return r

    def raw(self, *args: str):
        return json.loads(self.run(*args, "--raw").stdout)

    def show(self, iid: int) -> dict:
        return self.raw("show", "instance", str(iid))

    def wait_status(self, iid: int, status: str, timeout: float = 30) -> dict:
        import time

        end, delay, last = time.monotonic() + timeout, 0.1, None
        while time.monotonic() < end:
            last = self.show(iid)
            if last.get("actual_status") == status:
                return last
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        raise AssertionError(f"instance {iid} not {status} after {timeout}s: {last}")


def test_vastai_cli_runs_unchanged_against_the_simulator(sim, vastai_bin, tool_env, tmp_path, uid):
    cli = VastCli(vastai_bin, tool_env)
    key = make_keypair(tmp_path / "keys")
    pub = Path(f"{key}.pub").read_text().strip()
    since = sim.client.requests()["seq"]

    # offers, account, keys
    offers = cli.raw("search", "offers", "gpu_name=RTX_4090 num_gpus=1")
    assert offers and all(o["gpu_name"] == "RTX 4090" and o["num_gpus"] == 1 for o in offers), offers[:2]
    user = cli.raw("show", "user")
    assert isinstance(user["balance"], (int, float)) and "api_key" not in user, user
    cli.run("create", "ssh-key", pub)
    keys = cli.raw("show", "ssh-keys")
    mine = [k for k in keys if k.get("public_key", k.get("key")) == pub]
    assert len(mine) == 1, keys

    iid = None
    try:
        made = cli.raw("create", "instance", str(offers[0]["id"]), "--image", "vastai/base-image:@vastai-automatic-tag",
                       "--disk", "10", "--ssh", "--direct", "--label", f"vt-{uid}")
        assert made["success"] is True, made
        iid = int(made["new_contract"])
        row = cli.wait_status(iid, "running")
        assert row["label"] == f"vt-{uid}" and row["gpu_name"] == "RTX 4090", row
        assert iid in [x["id"] for x in cli.raw("show", "instances")]

        # the CLI's own address, and a real login there (it always says root@)
        url = cli.run("ssh-url", str(iid)).stdout.strip()
        m = re.fullmatch(r"ssh://(\w+)@([\d.]+):(\d+)", url)
        assert m and m.group(1) == "root", url
        out = ssh_run(m.group(2), int(m.group(3)), login_name(m.group(1), tool_env), key, tmp_path / "kh",
                      "nvidia-smi --query-gpu=name --format=csv,noheader")
        assert "RTX 4090" in out, out
        # a key attached to the running instance lets its holder in too
        key2 = make_keypair(tmp_path / "keys", "second")
        cli.run("attach", "ssh", str(iid), Path(f"{key2}.pub").read_text().strip())
        assert ssh_run(m.group(2), int(m.group(3)), login_name(m.group(1), tool_env), key2, tmp_path / "kh",
                       "echo in").strip() == "in"

        cli.run("label", "instance", str(iid), f"vt-{uid}-relabelled")
        assert cli.show(iid)["label"] == f"vt-{uid}-relabelled"
        cli.run("stop", "instance", str(iid))
        stopped = cli.wait_status(iid, "exited")
        assert stopped["intended_status"] == "stopped", stopped
        cli.run("start", "instance", str(iid))
        cli.wait_status(iid, "running")
        cli.run("destroy", "instance", str(iid), "-y")
        assert iid not in [x["id"] for x in cli.raw("show", "instances")]
        iid = None
    finally:
        if iid is not None:
            sim.destroy(str(iid), "vast")
        for k in mine:
            cli.run("delete", "ssh-key", str(k["id"]))
    assert pub not in json.dumps(cli.raw("show", "ssh-keys"))
    calls = recorded(sim, since, "vast")
    # the calls went to the simulator, and each found a route there
    assert "GET /api/v0/users/current" in calls and f"PUT /api/v0/asks/{offers[0]['id']}/" in calls, calls
    missed = [x for x in sim.client.requests(since)["requests"] if x["status"] in (404, 405)]
    assert not missed, missed


def test_vastai_cli_gets_its_gpu_names_and_no_routes_miss(sim, vastai_bin, tool_env):
    since = sim.client.requests()["seq"]
    # a command whose --gpu-name choices come from /api/v0/gpu_names/unique/, fetched at every start
    r = subprocess.run([str(vastai_bin), "launch", "instance", "--help"], capture_output=True, text=True,
                       env=tool_env, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert "RTX_4090" in r.stdout, r.stdout[-1500:]
    assert "GET /api/v0/gpu_names/unique/" in recorded(sim, since, "vast")
    missed = [x for x in sim.client.requests(since)["requests"] if x["status"] == 404]
    assert not missed, missed


# ------------------------------------------------------------------------------------------ runpod SDK
class RunpodSdk:
    def __init__(self, python: Path, env: dict):
        self.python, self.env = python, env

    def run(self, *calls: tuple[str, ...], expect_ok: bool = True) -> list:
        """The calls in one process, as one script makes them (the SDK takes ~1 s to import)."""
        r = subprocess.run([str(self.python), str(SDK_CALLS), json.dumps(calls)], capture_output=True, text=True,
                           env=self.env, timeout=180, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"runpod {calls}: rc {r.returncode}\n{r.stderr[-2000:]}"
        out = json.loads(r.stdout)
        if expect_ok:
            bad = [(c, o) for c, o in zip(calls, out, strict=False) if isinstance(o, dict) and "exception" in o]
            assert not bad and len(out) == len(calls), f"runpod SDK: {bad or out}"
        return out

    def __call__(self, call: str, *args: str):
        return self.run((call, *args))[0]


def test_runpod_sdk_runs_unchanged_against_the_simulator(sim, rp, runpod_python, tool_env, tmp_path, uid):
    sdk = RunpodSdk(runpod_python, tool_env)
    key = make_keypair(tmp_path / "keys")
    pub = Path(f"{key}.pub").read_text().strip()
    since = sim.client.requests()["seq"]

    before = sdk("user")["pubKey"] or ""
    try:
        gpus, gpu, keys, user, made, addr = sdk.run(
            ("gpus",), ("gpu", RTX4090), ("set_keys", f"{before}\n{pub}".strip()), ("user",),
            ("create", f"sdk-{uid}", RTX4090), ("ssh_address", "@created"))
        assert RTX4090 in [g["id"] for g in gpus], gpus
        assert gpu["id"] == RTX4090 and gpu["cudaCores"] > 0 and gpu["securePrice"] > 0, gpu
        assert gpu["lowestPrice"]["uninterruptablePrice"] <= gpu["securePrice"], gpu
        assert keys["pubKey"].endswith(pub) and pub in user["pubKey"], (keys, user)
        pod_id = made["id"]
        assert re.fullmatch(r"[a-z0-9]{14}", pod_id) and made["machine"]["podHostId"].startswith(pod_id), made
        # startSsh: the account's keys reach the pod as PUBLIC_KEY
        assert any(e.startswith("PUBLIC_KEY=") and pub in e for e in made["env"]), made

        # the SDK's own SSH lookup, and a real login there (the SDK's ssh helpers log in as root)
        out = ssh_run(addr["ip"], addr["port"], login_name("root", tool_env), key, tmp_path / "kh",
                      "nvidia-smi --query-gpu=name --format=csv,noheader")
        assert RTX4090 in out, out
        # the same pod on REST v2, with the same SSH address
        v2 = rp.get(f"/pods/{pod_id}").json()
        assert v2["status"] == "RUNNING" and (v2["ssh"]["direct"]["host"], v2["ssh"]["direct"]["port"]) == (
            addr["ip"], addr["port"]), v2

        pods, got, stopped = sdk.run(("pods",), ("pod", pod_id), ("stop", pod_id))
        listed = {p["id"]: p for p in pods}
        assert listed[pod_id]["desiredStatus"] == "RUNNING" and listed[pod_id]["dockerId"], listed[pod_id]
        assert got["name"] == f"sdk-{uid}" and got["podType"] == "RESERVED" and got["ports"] == "22/tcp", got
        assert re.fullmatch(r"Rented by User: \w{3} \w{3} \d\d \d{4} [\d:]{8} GMT.*", got["lastStatusChange"]), got
        assert stopped["desiredStatus"] == "EXITED", stopped
        assert rp.get(f"/pods/{pod_id}").json()["status"] == "EXITED"

        resumed, gone, got_after, pods_after = sdk.run(("resume", pod_id, "1"), ("terminate", pod_id),
                                                       ("pod", pod_id), ("pods",))
        assert resumed["desiredStatus"] == "RUNNING" and gone is None, resumed
        assert got_after is None and pod_id not in [p["id"] for p in pods_after]
        assert rp.get(f"/pods/{pod_id}").status_code == 404
    finally:  # by name: a failed run may have created the pod before the test learnt its id
        for pod in rp.get("/pods").json()["pods"]:
            if pod["name"] == f"sdk-{uid}":
                sim.destroy(pod["id"], "runpod")
        sdk("set_keys", before)
    assert "podFindAndDeployOnDemand" in json.dumps(sim.client.requests(since)["requests"])
    assert set(recorded(sim, since, "graphql")) == {"POST /graphql"}


def test_runpod_sdk_sees_and_ends_pods_made_on_rest_v2(sim, runpod_python, tool_env, uid):
    sdk = RunpodSdk(runpod_python, tool_env)
    node = sim.create_runpod(f"v2-{uid}")
    try:
        got, pods, gone = sdk.run(("pod", node.id), ("pods",), ("terminate", node.id))
        assert got["name"] == f"v2-{uid}" and got["desiredStatus"] == "RUNNING", got
        ssh22 = [p for p in got["runtime"]["ports"] if p["privatePort"] == 22]
        assert [(p["ip"], p["publicPort"]) for p in ssh22] == [(node.host, node.port)], got
        assert node.id in [p["id"] for p in pods] and gone is None
        assert sim._rp("GET", f"/pods/{node.id}").status_code == 404
    finally:
        sim.destroy(node)


def test_runpod_sdk_unknown_gpu_is_the_sdks_own_error(runpod_python, tool_env):
    out = RunpodSdk(runpod_python, tool_env).run(("gpu", "NVIDIA Nonexistent"), expect_ok=False)
    # the SDK's own ValueError: gpuTypes(input: {id}) answered an empty list, not an error
    assert out[0].get("exception") == "ValueError" and "No GPU found" in out[0]["message"], out


# the example queries of RunPod's GraphQL reference (graphql-spec.runpod.io), scalar fields only: what the vendor
# serves, beyond what the SDK happens to select
SPEC_GPU_TYPES = """query { gpuTypes { lowestPrice { minimumBidPrice uninterruptablePrice } maxGpuCount
  maxGpuCountCommunityCloud maxGpuCountSecureCloud minPodGpuCount id displayName manufacturer memoryInGb cudaCores
  secureCloud communityCloud securePrice communityPrice oneMonthPrice threeMonthPrice sixMonthPrice oneYearPrice
  oneWeekPrice communitySpotPrice secureSpotPrice } }"""
SPEC_MYSELF = """query { myself { id authId email currentSpendPerHr machineQuota referralEarned signedTermsOfService
  spendLimit templateEarned multiFactorEnabled clientBalance hostBalance pubKey } }"""


def test_graphql_serves_the_fields_of_runpods_reference(gql):
    for query in (SPEC_GPU_TYPES, SPEC_MYSELF):
        r = gql.q(query)
        assert r.status_code == 200 and "errors" not in r.json(), r.text
    gpus = gql.q(SPEC_GPU_TYPES).json()["data"]["gpuTypes"]
    t = next(g for g in gpus if g["id"] == RTX4090)
    # savings plans cost less the longer the term, and never more than on-demand secure cloud
    terms = [t[k] for k in ("oneWeekPrice", "oneMonthPrice", "threeMonthPrice", "sixMonthPrice", "oneYearPrice")]
    assert terms == sorted(terms, reverse=True) and terms[0] <= t["securePrice"], t
    assert t["maxGpuCount"] == max(t["maxGpuCountSecureCloud"], t["maxGpuCountCommunityCloud"]), t


# ------------------------------------------------------------------------------------------ login name root
NODE_AS_OTHER_USER = """
import asyncio, json, sys, time
from pathlib import Path
from gpuops.sim.nodes import NodeManager, NodeSpec

state, pub, stop = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
nm = NodeManager(state, "vt-alias")
spec = NodeSpec(instance_id="n1", ip="127.0.9.9", authorized_keys=[pub], gpus=[])
nm.prepare(spec)
ports = asyncio.run(nm.start(spec))
print(json.dumps({"port": ports[0], "user": nm.user, "root_alias": nm.root_alias}), flush=True)
end, delay = time.monotonic() + 120, 0.05
while not stop.exists() and time.monotonic() < end:
    time.sleep(delay)
    delay = min(delay * 1.5, 0.5)
asyncio.run(nm.destroy("n1"))
"""


def test_nodes_take_root_as_a_second_name_without_root(tmp_path):
    """As on the real clouds, ``ssh root@node`` works: here as an unprivileged user, the case the alias exists for.
    CI runs as root, so the test switches to a uid that only nss_wrapper knows (as an LDAP user is known only to
    NSS), with /bin/sh as its shell."""
    import tempfile

    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or not shutil.which("setpriv") or not find_nss_wrapper() or not python:
        pytest.skip("needs root (to switch to an unprivileged uid), setpriv, libnss-wrapper and /usr/bin/python3")
    uid = 64999
    work = Path(tempfile.mkdtemp(prefix="gpuops-alias-", dir="/tmp"))
    try:
        key = make_keypair(tmp_path / "keys")
        (work / "passwd").write_text(Path("/etc/passwd").read_text() + f"simuser:x:{uid}:{uid}::{work}:/bin/sh\n")
        (work / "group").write_text(Path("/etc/group").read_text() + f"simuser:x:{uid}:\n")
        os.chown(work, uid, uid)
        as_user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "env", "-i",
                   "PATH=/usr/bin:/bin", f"PYTHONPATH={REPO / 'src'}", f"HOME={work}", "USER=simuser",
                   f"LD_PRELOAD={find_nss_wrapper()}", f"NSS_WRAPPER_PASSWD={work / 'passwd'}",
                   f"NSS_WRAPPER_GROUP={work / 'group'}", python]
        probe = subprocess.run([*as_user, "-c", "import gpuops.sim.nodes"], capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:
            pytest.skip(f"the checkout is not readable by an unprivileged uid: {probe.stderr.strip()[-200:]}")
        proc = subprocess.Popen([*as_user, "-c", NODE_AS_OTHER_USER, str(work / "state"),
                                 Path(f"{key}.pub").read_text(), str(work / "stop")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            info = json.loads(proc.stdout.readline() or "{}")
            assert info.get("root_alias") is True and info["user"] == "simuser", (info, proc.stderr.read())
            out = ssh_run("127.0.9.9", info["port"], "root", key, tmp_path / "kh",
                          'echo "$USER $(id -u) $HOME $(echo ~root) $(pwd)"; ls -ldn / | cut -d" " -f3; '
                          "ls -ld / | cut -d' ' -f3")
            login, got_uid, home, tilde_root, cwd, owner_uid, owner = out.split()
            assert (login, got_uid, owner_uid, owner) == ("root", str(uid), "0", "root"), out
            assert home == tilde_root == cwd and home.startswith(str(work)), out
            refused = subprocess.run(["ssh", "-i", str(key), "-p", str(info["port"]), "-o", "BatchMode=yes",
                                      "-o", f"UserKnownHostsFile={tmp_path / 'kh'}", "-o", "LogLevel=ERROR",
                                      "someoneelse@127.0.9.9", "true"], capture_output=True, timeout=30)
            assert refused.returncode == 255
        finally:
            (work / "stop").touch()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------ unknown routes
@pytest.mark.parametrize("method,path,api", [
    ("GET", "/api/v0/instances/filters/", "vast"),              # vastai's own routes the simulator lacks: 404,
    ("GET", "/api/v0/instances/pending-price-increases/", "vast"),  # not /instances/{id}/'s 400
    ("PUT", "/api/v0/instances/reboot/", "vast"),
    ("PUT", "/api/v0/instances/reboot/7/", "vast"),
    ("GET", "/api/v0/users/me/invoices", "vast"),
    ("GET", "/api/v1/nothing/", "vast"),
    ("GET", "/v2/nothing", "runpod"),
    ("POST", "/v2/pods/abcdefghijklmn/nothing", "runpod"),
    ("POST", "/graphql/nothing", "graphql"),
])
def test_unknown_routes_are_404_in_the_vendors_shape(sim, method, path, api):
    key = sim.env["VAST_API_KEY"] if api == "vast" else sim.env["RUNPOD_API_KEY"]
    r = Api(sim.env["VAST_URL"], key)(method, path, json={})
    assert r.status_code == 404, (r.status_code, r.text)
    body = r.json()
    if api == "vast":
        assert body == {"success": False, "error": "not_found", "msg": "not found"}, body
    elif api == "runpod":
        assert r.headers["content-type"].startswith("application/problem+json")
        assert body["status"] == 404 and body["title"] == "Not Found", body
    else:
        assert body["errors"][0]["message"] == "not found", body


def test_a_bad_instance_id_keeps_its_400(vast):
    # the spec's answer for a word where an instance id belongs; only the vendor's route names above are 404
    r = vast.delete("/api/v0/instances/abc/")
    assert r.status_code == 400 and r.json()["msg"] == "invalid instance_id", r.text


@pytest.mark.spec
def test_vast_current_user_matches_the_vendored_spec(vast, specs_dir):
    from test_contract_specs import VAST_HOST, _load, recording, validate_response

    spec = _load(str(specs_dir / "vast-openapi.yaml"))
    log = recording(vast)
    user = vast.get("/api/v0/users/current/").json()
    assert {"id", "email", "balance", "ssh_key"} <= set(user) and "api_key" not in user, user
    for x in log:
        validate_response(spec, VAST_HOST, x, vast=True)
