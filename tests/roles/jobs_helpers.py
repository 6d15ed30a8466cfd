"""Helpers for the gpu.ops.bootstrap / gpu.ops.tmux_job tests (playbooks in tests/roles/playbooks/jobs_*.yml)."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

from gpuops.testing import run_playbook

PLAYBOOKS = Path(__file__).parent / "playbooks"


class Play:
    """One ansible-playbook run with the json callback: the document plus per-task lookups."""

    def __init__(self, proc):
        self.proc = proc
        self.rc = proc.returncode
        try:
            self.doc = json.loads(proc.stdout)
        except ValueError as exc:
            raise AssertionError(f"no JSON from ansible-playbook (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                                 f"{proc.stderr[-3000:]}") from exc

    def tasks(self, name_part: str) -> list[dict]:
        """[{host: result}] of every task whose name contains ``name_part``, in play order."""
        out = [task["hosts"] for play in self.doc["plays"] for task in play["tasks"]
               if name_part in task["task"]["name"]]
        assert out, f"no task named like {name_part!r}; tasks: {self.names()}\n{self.proc.stderr[-2000:]}"
        return out

    def task(self, name_part: str, host: str) -> dict:
        hits = [t[host] for t in self.tasks(name_part) if host in t]
        assert hits, f"task {name_part!r} did not run on {host}"
        return hits[-1]

    def names(self) -> list[str]:
        return [task["task"]["name"] for play in self.doc["plays"] for task in play["tasks"]]

    def failures(self) -> list[tuple[str, str, str]]:
        return [(task["task"]["name"], host, res.get("msg", ""))
                for play in self.doc["plays"] for task in play["tasks"]
                for host, res in task["hosts"].items() if res.get("failed") and not res.get("ignore_errors")]

    def ok(self) -> Play:
        assert self.rc == 0, f"playbook failed (rc {self.rc}): {self.failures()}\n{self.proc.stderr[-3000:]}"
        return self


def play(sim, nodes, tmp_path: Path, playbook: str, extra_vars: dict | None = None, args: list[str] | None = None,
         env: dict | None = None) -> Play:
    inv = sim.inventory(nodes, tmp_path / "inventory.yml")
    proc = run_playbook(PLAYBOOKS / playbook, inv, extra_vars, env=env, args=args, json_output=True)
    return Play(proc)


def workspace(node, files: dict[str, str] | None = None) -> None:
    """A plain workspace dir on the node (the workspace role is tested elsewhere)."""
    cmd = ["mkdir -p ~/.bifrost/workspace"]
    for name, text in (files or {}).items():
        cmd.append(f"printf %s {shlex.quote(text)} > ~/.bifrost/workspace/{shlex.quote(name)}")
    node.ssh(" && ".join(cmd))


def job_file(node, job_id: str, name: str) -> str | None:
    res = node.ssh(f"cat ~/.bifrost/jobs/{job_id}/{name}", check=False)
    return res.stdout if res.returncode == 0 else None


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll with backoff until ``predicate()`` is truthy; returns its value."""
    end = time.monotonic() + timeout
    delay = 0.05
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def pid_alive(node, pid: int | str | None) -> bool:
    if not pid:
        return False
    res = node.ssh(f"test -d /proc/{int(pid)} && ! grep -q '^State:.*Z' /proc/{int(pid)}/status", check=False)
    return res.returncode == 0



def durations(p: Play) -> list[tuple[str, float]]:
    """(task name, seconds) from the json callback, for looking at slow steps."""
    return [(task["task"]["name"], task["task"].get("duration_s", 0.0))
            for pl in p.doc["plays"] for task in pl["tasks"]]


def free_port() -> int:
    """A free TCP port below the ephemeral range, so outgoing connections (ssh, http) cannot take it meanwhile."""
    import random
    import socket

    low, _high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(200):
        port = random.randint(20000, max(20001, min(low, 32768) - 1))
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port found below the ephemeral range")
