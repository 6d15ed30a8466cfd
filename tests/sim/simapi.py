"""Vendor API clients and small helpers for the simulator's suites (imported by tests/sim/*)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]


class Api:
    """A thin vendor API client: base URL + Bearer key; returns the raw ``requests.Response``."""

    def __init__(self, base: str, key: str):
        self.base = base.rstrip("/")
        self.key = key
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {key}"

    def __call__(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.s.request(method, self.base + path, **kw)

    def get(self, path, **kw):
        return self("GET", path, **kw)

    def post(self, path, **kw):
        return self("POST", path, **kw)

    def put(self, path, **kw):
        return self("PUT", path, **kw)

    def patch(self, path, **kw):
        return self("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self("DELETE", path, **kw)


class GraphQL(Api):
    def q(self, query: str, **kw) -> requests.Response:
        return self.post("", json={"query": query}, **kw)


def pod_body(name: str, pubkey: str | None = None, **extra) -> dict:
    body = {"name": name, "image": "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
            "gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 1}, "ports": ["22/tcp"]}
    if pubkey:
        body["env"] = {"PUBLIC_KEY": pubkey}
    body.update(extra)
    return body


def pod_is_up(pod: dict) -> bool:
    """RUNNING comes while the image still pulls; the container is up once runtime is reported (provider-apis 1.9)."""
    return pod.get("status") == "RUNNING" and pod.get("runtime") is not None


def cheapest_vast_offer(vast: Api, gpu_name: str = "RTX 4090", **filters) -> dict:
    # the tests' images are built for CUDA 12.4: a host whose driver supports less fails the container
    filters.setdefault("cuda_max_good", {"gte": 12.4})
    q = {"gpu_name": {"eq": gpu_name}, "rentable": {"eq": True}, "order": [["dph_total", "asc"]],
         "type": "on-demand", **filters}
    r = vast.post("/api/v0/bundles/", json=q)
    assert r.status_code == 200, r.text
    offers = r.json()["offers"]
    assert offers, f"no offer for {gpu_name} {filters}"
    return offers[0]


# ---------------------------------------------------------------------------------------------- CLI
def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.pop("GPUOPS_SIM_STATE_DIR", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "gpuops.sim.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=e)


def parse_exports(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("export "):
            k, _, v = line[len("export "):].partition("=")
            out[k] = shlex.split(v)[0] if v else ""
    return out


def jdump(x) -> str:
    return json.dumps(x, indent=1, sort_keys=True)[:2000]


def own_simulator(base: Path, boot_seconds: float | None = None):
    """A simulator of a test module's own, with the session fixture's leak check at the end.

    For modules that change what every test on a simulator sees, e.g. advancing the virtual clock: under
    xdist a worker interleaves modules, so another module's live instances would be billed for hours that
    never passed for them.
    """
    from gpuops.testing import leak_checked_simulator

    return leak_checked_simulator(base, boot_seconds)
