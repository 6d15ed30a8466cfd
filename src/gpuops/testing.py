"""Test helpers shared by the pytest suites, the demo and the benchmarks.

``SimHarness`` starts a simulator in a state dir, creates real SSH nodes through the vendors' HTTP
APIs (never through simulator internals), waits for SSH with a deadline, writes Ansible inventories
and runs playbooks. Nothing here patches product code.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from .sim.client import SimClient
from .sim.nodes import pids_using_dirs, pids_with_marker

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Node:
    """A running simulator instance reachable over SSH."""

    id: str
    provider: str
    name: str
    host: str
    port: int
    user: str
    key: str  # private key path
    known_hosts: str
    gpu_count: int = 1
    gpu_type: str = ""
    raw: dict = field(default_factory=dict)

    @property
    def ssh_args(self) -> list[str]:
        return ["-i", self.key, "-p", str(self.port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
                "-o", "LogLevel=ERROR"]

    def ssh(self, command: str, *, check: bool = True, timeout: float = 60, input: str | None = None
            ) -> subprocess.CompletedProcess:
        res = subprocess.run(["ssh", *self.ssh_args, f"{self.user}@{self.host}", command], capture_output=True,
                             text=True, timeout=timeout, input=input)
        if check and res.returncode != 0:
            raise AssertionError(f"ssh {self.name}: {command!r} -> rc {res.returncode}: {res.stderr.strip()}")
        return res

    def hostvars(self) -> dict:
        return {"ansible_host": self.host, "ansible_port": self.port, "ansible_user": self.user,
                "ansible_ssh_private_key_file": self.key,
                "ansible_ssh_common_args": f"-o UserKnownHostsFile={self.known_hosts} "
                                           "-o StrictHostKeyChecking=accept-new -o IdentitiesOnly=yes",
                "ansible_python_interpreter": "/usr/bin/python3" if os.path.exists("/usr/bin/python3")
                else "python3",
                "gpuops_provider": self.provider, "gpuops_id": self.id, "gpuops_gpu_count": self.gpu_count,
                "gpuops_gpu_type": self.gpu_type}


def make_keypair(directory: Path, name: str = "id_ed25519") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / name
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gpuops-test", "-f", str(key)],
                       check=True, stdin=subprocess.DEVNULL)
    os.chmod(key, 0o600)
    return key


def wait_for(predicate, timeout: float, what: str):
    """Poll ``predicate`` with backoff until it returns something truthy (returned), or fail after ``timeout``."""
    end = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_ssh(host: str, port: int, user: str, key: str, known_hosts: str, timeout: float = 30.0) -> None:
    """TCP, then banner, then a real `ssh true`, with backoff until the deadline."""
    end = time.monotonic() + timeout
    delay = 0.02
    last = "not tried"
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.settimeout(1)
                if s.recv(4).startswith(b"SSH-"):
                    r = subprocess.run(["ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes",
                                        "-o", "ConnectTimeout=5", "-o", f"UserKnownHostsFile={known_hosts}",
                                        "-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR",
                                        f"{user}@{host}", "true"], capture_output=True, text=True, timeout=15)
                    if r.returncode == 0:
                        return
                    last = r.stderr.strip()
                else:
                    last = "no SSH banner"
        except OSError as e:
            last = str(e)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise TimeoutError(f"SSH on {host}:{port} not ready after {timeout}s: {last}")


class SimHarness:
    def __init__(self, state_dir: Path, work_dir: Path, boot_seconds: float = 0.3, catalog: str | None = None):
        self.state_dir = Path(state_dir)
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.boot_seconds = boot_seconds
        self.catalog = catalog
        self.client: SimClient | None = None
        self.key = make_keypair(self.work_dir / "keys")
        self.pubkey = Path(str(self.key) + ".pub").read_text().strip()
        self.known_hosts = str(self.work_dir / "known_hosts")
        self.nodes: list[Node] = []

    # ------------------------------------------------------------------ simulator process
    def start(self) -> SimHarness:
        cmd = [sys.executable, "-m", "gpuops.sim.cli", "start", "--state-dir", str(self.state_dir),
               "--boot-seconds", str(self.boot_seconds)]
        if self.catalog:
            cmd += ["--catalog", self.catalog]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"gpuops-sim start failed: {res.stderr.strip()}")
        self.client = SimClient(self.state_dir)
        return self

    def stop(self) -> str:
        res = subprocess.run([sys.executable, "-m", "gpuops.sim.cli", "stop", "--state-dir", str(self.state_dir)],
                             capture_output=True, text=True, timeout=120)
        return res.stdout + res.stderr

    @property
    def env(self) -> dict[str, str]:
        # the simulator has no per-user quotas: tests run without the shared request budgets and poll floors
        # (tests of those turn them on); nothing is written to the user's ~/.cache/gpuops either
        return {**self.client.env(), "GPUOPS_API_QUOTAS": "off"}

    def leaks(self) -> dict:
        """Instances still alive, and processes still carrying this simulator's marker or holding a file of
        one of its nodes (sshd connections carry no marker)."""
        led = self.client.ledger()
        token = self.client.info["token"]
        pids = set(pids_with_marker(f"{token}:"))
        for node_pids in pids_using_dirs(self.state_dir / "nodes").values():
            pids |= node_pids
        return {"live_instances": led["live_instances"], "processes": sorted(pids)}

    # ------------------------------------------------------------------ vendor API calls (HTTP, as a client would)
    def _rp(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, self.env["RUNPOD_API_URL"] + path,
                                headers={"Authorization": f"Bearer {self.env['RUNPOD_API_KEY']}"}, timeout=30, **kw)

    def _vast(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, self.env["VAST_API_URL"] + path,
                                headers={"Authorization": f"Bearer {self.env['VAST_API_KEY']}"}, timeout=30, **kw)

    def create_runpod(self, name: str, gpu: str = "NVIDIA GeForce RTX 4090", count: int = 1,
                      pubkey: str | None = None, wait: bool = True, **extra) -> Node | dict:
        body = {"name": name, "image": "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
                "gpu": {"id": gpu, "count": count}, "ports": ["22/tcp"],
                "env": {"PUBLIC_KEY": pubkey or self.pubkey}, **extra}
        r = self._rp("POST", "/pods", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"create pod: {r.status_code} {r.text}")
        pod = r.json()
        if not wait:
            return pod
        return self.wait_runpod(pod["id"])

    def wait_runpod(self, pod_id: str, timeout: float = 30.0) -> Node:
        def ready():
            p = self._rp("GET", f"/pods/{pod_id}").json()
            return p if p.get("status") == "RUNNING" and (p.get("ssh") or {}).get("direct") else None

        pod = self.client.wait_until(ready, timeout, f"pod {pod_id} running")
        d = pod["ssh"]["direct"]
        wait_ssh(d["host"], d["port"], d["username"], str(self.key), self.known_hosts, timeout)
        node = Node(id=pod["id"], provider="runpod", name=pod["name"], host=d["host"], port=d["port"],
                    user=d["username"], key=str(self.key), known_hosts=self.known_hosts,
                    gpu_count=pod["gpu"]["count"], gpu_type=pod["gpu"]["id"], raw=pod)
        self.nodes.append(node)
        return node

    def create_vast(self, label: str, gpu_name: str = "RTX 4090", num_gpus: int | None = None, wait: bool = True,
                    **extra) -> Node | int:
        self._vast("POST", "/api/v0/ssh/", json={"ssh_key": self.pubkey})
        # the image is built for CUDA 12.4: a host whose driver supports less would fail the container
        q: dict[str, Any] = {"gpu_name": {"eq": gpu_name}, "rentable": {"eq": True}, "order": [["dph_total", "asc"]],
                             "type": "ondemand", "cuda_max_good": {"gte": 12.4}}
        if num_gpus:
            q["num_gpus"] = {"eq": num_gpus}
        offers = self._vast("POST", "/api/v0/bundles/", json=q).json()["offers"]
        if not offers:
            raise RuntimeError(f"no Vast offer for {gpu_name} x{num_gpus}")
        body = {"image": "vastai/base-image:cuda-12.4", "label": label, "disk": 20, "runtype": "ssh_direct",
                "env": "-p 22:22", "onstart": "touch ~/.no_auto_tmux", **extra}
        r = self._vast("PUT", f"/api/v0/asks/{offers[0]['id']}/", json=body)
        if r.status_code != 200:
            raise RuntimeError(f"create vast: {r.status_code} {r.text}")
        iid = r.json()["new_contract"]
        if not wait:
            return iid
        return self.wait_vast(iid)

    def wait_vast(self, iid: int, timeout: float = 30.0) -> Node:
        def ready():
            i = self._vast("GET", f"/api/v0/instances/{iid}/").json()["instances"]
            return i if i and i.get("actual_status") == "running" and (i.get("ports") or {}).get("22/tcp") else None

        inst = self.client.wait_until(ready, timeout, f"vast {iid} running")
        host = inst["public_ipaddr"].strip()
        port = int(inst["ports"]["22/tcp"][0]["HostPort"])
        user = self.env["VAST_SSH_USER"]
        wait_ssh(host, port, user, str(self.key), self.known_hosts, timeout)
        node = Node(id=str(iid), provider="vast", name=inst["label"] or "", host=host, port=port, user=user,
                    key=str(self.key), known_hosts=self.known_hosts, gpu_count=inst["num_gpus"],
                    gpu_type=inst["gpu_name"], raw=inst)
        self.nodes.append(node)
        return node

    def destroy(self, node: Node | str, provider: str | None = None) -> None:
        iid = node.id if isinstance(node, Node) else str(node)
        prov = node.provider if isinstance(node, Node) else provider
        if prov == "runpod":
            r = self._rp("DELETE", f"/pods/{iid}")
            ok = r.status_code in (204, 404)
        else:
            r = self._vast("DELETE", f"/api/v0/instances/{iid}/")
            ok = r.status_code in (200, 404)
        if not ok:
            raise RuntimeError(f"destroy {iid}: {r.status_code} {r.text}")
        self.nodes = [n for n in self.nodes if n.id != iid]

    def destroy_all(self) -> None:
        for n in list(self.nodes):
            try:
                self.destroy(n)
            except Exception:  # best effort in teardown; leak check reports what is left
                pass

    # ------------------------------------------------------------------ Ansible
    def inventory(self, nodes: list[Node], path: Path, group: str = "gpu_nodes", extra_vars: dict | None = None
                  ) -> Path:
        hosts = {n.name or n.id: n.hostvars() for n in nodes}
        inv = {"all": {"children": {group: {"hosts": hosts, "vars": extra_vars or {}}}}}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(inv, sort_keys=False))
        return path


@contextlib.contextmanager
def leak_checked_simulator(base: Path, boot_seconds: float | None = None, catalog: str | None = None):
    """A started simulator; on exit every node is destroyed and nothing may be left alive or running."""
    boot = boot_seconds if boot_seconds is not None else float(os.environ.get("GPUOPS_TEST_BOOT", "0.3"))
    h = SimHarness(Path(base) / "state", Path(base) / "work", boot_seconds=boot, catalog=catalog)
    h.start()
    try:
        yield h
        h.destroy_all()
        leaks = h.leaks()
        assert not leaks["live_instances"], f"tests leaked instances: {leaks['live_instances']}"
        assert not leaks["processes"], f"node processes left behind: {leaks['processes']}"
    finally:
        out = h.stop()
        assert "error" not in out, out


def task_results(proc: subprocess.CompletedProcess, task_name: str, prefix: bool = False) -> dict:
    """{host: result} of one task in the output of run_playbook(json_output=True).

    Role tasks are named "<role> : <name>". With ``prefix``, a task whose name starts with ``task_name``
    matches too (for templated names such as "Start job train-20260101-...").
    """
    doc = json.loads(proc.stdout)
    out: dict = {}
    for play in doc["plays"]:
        for task in play["tasks"]:
            name = task["task"]["name"]
            if name == task_name or name.endswith(" : " + task_name) or (
                    prefix and (name.startswith(task_name) or f" : {task_name}" in name)):
                out.update(task["hosts"])
    assert out, f"task {task_name!r} not in output:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    return out


def ansible_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    env.setdefault("ANSIBLE_LOCAL_TEMP", str(Path(os.environ.get("TMPDIR", "/tmp")) / f"ansible-local-{os.getpid()}"))
    if extra:
        env.update(extra)
    return env


def run_playbook(playbook: str | Path, inventory: str | Path | None = None, extra_vars: dict | None = None,
                 env: dict | None = None, args: list[str] | None = None, timeout: float = 600,
                 json_output: bool = False, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run ansible-playbook as a user would. With json_output, stdout is the json callback's document."""
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook)]
    if inventory:
        cmd += ["-i", str(inventory)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    cmd += args or []
    e = ansible_env(env)
    if json_output:
        # ansible-core has no json stdout callback (ansible.posix.json is a separate collection): ship one
        e["ANSIBLE_STDOUT_CALLBACK"] = "gpuops_json"
        e["ANSIBLE_CALLBACK_PLUGINS"] = os.pathsep.join(
            p for p in (str(Path(__file__).parent / "ansible_plugins" / "callback"),
                        e.get("ANSIBLE_CALLBACK_PLUGINS", "")) if p)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e, cwd=str(cwd or REPO))


def which_or_skip(binary: str) -> str:
    path = shutil.which(binary)
    if not path:
        import pytest

        pytest.skip(f"{binary} not installed")
    return path
