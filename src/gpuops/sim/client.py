"""A small client for a running simulator's admin API (used by the CLI, the tests and the demo)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .errors import SimConfigError


class SimNotRunning(SimConfigError):
    pass


def read_server_info(state_dir: Path) -> dict | None:
    p = Path(state_dir) / "server.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class SimClient:
    def __init__(self, state_dir: Path, info: dict | None = None):
        self.state_dir = Path(state_dir)
        self.info = info or read_server_info(self.state_dir)
        if not self.info:
            raise SimNotRunning(f"no simulator is running for state dir {self.state_dir}")

    @property
    def url(self) -> str:
        return self.info["url"]

    def env(self) -> dict[str, str]:
        return {
            "RUNPOD_API_URL": f"{self.url}/v2",
            "RUNPOD_GRAPHQL_URL": f"{self.url}/graphql",
            "VAST_API_URL": self.url,
            # what the vendors' own tools read: the runpod SDK appends /graphql, the vastai CLI /api/v0
            "RUNPOD_API_BASE_URL": self.url,
            "VAST_URL": self.url,
            "RUNPOD_API_KEY": self.info["runpod_api_key"],
            "VAST_API_KEY": self.info["vast_api_key"],
            # Vast reports no SSH user (it is root on Vast); the simulator's nodes log in as the invoking user
            "VAST_SSH_USER": self.info.get("ssh_user", "root"),
            "GPUOPS_SIM_STATE_DIR": str(self.state_dir),
        }

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                timeout: float = 60.0) -> Any:
        data = raw
        headers = {"Authorization": f"Bearer {self.info['admin_token']}"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")
            try:
                detail = json.loads(detail).get("detail", detail)
            except (ValueError, AttributeError):
                pass
            raise SimConfigError(f"simulator answered {e.code}: {detail}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            raise SimNotRunning(f"simulator at {self.url} does not answer: {getattr(e, 'reason', e)}") from None
        return json.loads(payload) if payload else None

    def healthy(self, timeout: float = 1.0) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/_sim/health", timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    # convenience
    def status(self) -> list[dict]:
        return self.request("GET", "/_sim/status")["instances"]

    def ledger(self) -> dict:
        return self.request("GET", "/_sim/ledger")

    def add_faults(self, yaml_text: str, replace: bool = False) -> dict:
        return self.request("POST", "/_sim/faults" + ("?replace=1" if replace else ""), raw=yaml_text.encode())

    def clear_faults(self) -> None:
        self.request("DELETE", "/_sim/faults")

    def advance(self, seconds: float) -> dict:
        return self.request("POST", "/_sim/clock", {"advance": seconds})

    def stats(self) -> dict:
        return self.request("GET", "/_sim/stats")

    def reset_stats(self) -> dict:
        return self.request("POST", "/_sim/stats/reset")

    def requests(self, since: int = 0) -> dict:
        return self.request("GET", f"/_sim/requests?since={since}")

    def instance(self, iid: str) -> dict:
        return self.request("GET", f"/_sim/instances/{iid}")

    def bulk(self, provider: str, count: int, name_prefix: str = "bulk-", **kw) -> list[str]:
        return self.request("POST", "/_sim/bulk", {"provider": provider, "count": count,
                                                   "name_prefix": name_prefix, **kw})["created"]

    def wait_until(self, predicate, timeout: float = 30.0, what: str = "condition") -> Any:
        """Poll ``predicate()`` with backoff until truthy or the deadline passes."""
        end = time.monotonic() + timeout
        delay = 0.02
        last = None
        while True:
            last = predicate()
            if last:
                return last
            if time.monotonic() >= end:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
