"""Fault injection for the simulator, from a YAML file or at run time (``gpuops-sim faults FILE``).

File format::

    faults:
      - type: rate_limit          # 429 burst on the next `count` matching requests
        api: runpod               # runpod (REST v2) | graphql | vast | any (default)
        endpoint: "POST /v2/pods" # optional "METHOD /path-glob"
        count: 3
        retry_after: 1            # seconds; RunPod sends Retry-After, Vast does not (as the vendors).
                                  # Sent as given: use whole seconds for vendor-exact headers
        body: text                # Vast only: text (plain "API requests too frequent ...", default) or
                                  # json ({"detail": "API requests too frequent ..."}); both happen on Vast
      - type: server_error        # 5xx on the next `count` matching requests
        status: 503
        applied: true             # the server acts on the request first and then answers the 5xx (a
                                  # gateway 500/504 after the backend committed): the create happened
      - type: endpoint_gone       # 410 on the next `count` matching requests, as a retired endpoint
                                  # answers (RunPod problem+json "Gone"; Vast deprecated_endpoint)
      - type: no_capacity         # creates refused as "no capacity" / Vast no_such_ask
        match: {provider: vast, offer: [11021, 11022]}
        count: 5                  # omit for "until removed"
      - type: insufficient_balance  # RunPod 402 / Vast insufficient_credit on create
      - type: slow_boot           # boot takes `seconds` instead of the catalog's boot_seconds
        seconds: 8
      - type: boot_never          # stays PROVISIONING/STARTING (Vast: created) forever: never scheduled
      - type: pull_never          # the image pull stalls: RunPod RUNNING without a runtime, Vast loading
                                  # with its progress frozen (bounded by the client's pull_timeout)
      - type: boot_error          # the container fails to start: RunPod ERROR, Vast "created" with
                                  # status_msg "... OCI runtime create failed ..." (clients fail fast)
      - type: ssh_never           # API reports RUNNING with a port mapping, but SSH never answers
      - type: preempt             # interruptible instances are stopped after `after_seconds` running
        after_seconds: 30
      - type: terminate_fails     # the next `count` terminate calls for matching instances fail with 500
        count: 2
      - type: gpu                 # hot or failing GPU on matching nodes (also applied to running ones)
        gpus: [0]                 # GPU indices, default all
        temperature: 91
        ecc_uncorrected: 3
        memory_used_mib: 24000
        driver_missing: true

Every fault can carry ``match`` with any of: provider (runpod|vast), name (glob on name/label),
gpu (substring of the GPU type), offer (Vast ask id or RunPod GPU type id, or a list), instance (id).
"""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import SimConfigError

REQUEST_TYPES = {"rate_limit", "server_error", "endpoint_gone"}
CREATE_TYPES = {"no_capacity", "insufficient_balance"}
INSTANCE_TYPES = {"slow_boot", "boot_never", "pull_never", "boot_error", "ssh_never", "preempt", "terminate_fails",
                  "gpu"}
ALL_TYPES = REQUEST_TYPES | CREATE_TYPES | INSTANCE_TYPES
APIS = {"runpod", "graphql", "vast", "any"}
MATCH_KEYS = {"provider", "name", "gpu", "offer", "instance"}
GPU_KEYS = {"gpus", "temperature", "ecc_uncorrected", "ecc_corrected", "memory_used_mib", "utilization",
            "driver_missing"}
_ids = itertools.count(1)


@dataclass
class Fault:
    type: str
    count: int | None = None  # remaining uses; None = unlimited
    api: str = "any"
    endpoint: str | None = None
    status: int = 503
    retry_after: float | None = 1.0
    body: str = "text"
    applied: bool = False
    seconds: float = 0.0
    after_seconds: float = 30.0
    match: dict[str, Any] = field(default_factory=dict)
    gpu: dict[str, Any] = field(default_factory=dict)
    id: int = field(default_factory=lambda: next(_ids))
    hits: int = 0

    def to_dict(self) -> dict:
        d = {"id": self.id, "type": self.type, "count": self.count, "hits": self.hits}
        if self.type in REQUEST_TYPES:
            d.update(api=self.api, endpoint=self.endpoint)
        if self.type == "server_error":
            d["status"] = self.status
            d["applied"] = self.applied
        if self.type == "rate_limit":
            d["retry_after"] = self.retry_after
            d["body"] = self.body
        if self.type == "slow_boot":
            d["seconds"] = self.seconds
        if self.type == "preempt":
            d["after_seconds"] = self.after_seconds
        if self.match:
            d["match"] = self.match
        if self.gpu:
            d["gpu"] = self.gpu
        return d

    # ------------------------------------------------------------------ matching
    def matches_request(self, api: str, method: str, path: str) -> bool:
        if self.api not in ("any", api):
            return False
        if self.endpoint:
            parts = self.endpoint.split(None, 1)
            if len(parts) == 2:
                m, glob = parts
                if m.upper() != method.upper():
                    return False
            else:
                glob = parts[0]
            if not fnmatch.fnmatch(path.rstrip("/") or "/", glob.rstrip("/") or "/"):
                return False
        return True

    def matches(self, provider: str, name: str | None = None, gpu: str | None = None, offer: Any = None,
                instance: str | None = None) -> bool:
        m = self.match
        if "provider" in m and m["provider"] != provider:
            return False
        if "name" in m and not fnmatch.fnmatch(name or "", str(m["name"])):
            return False
        if "gpu" in m and str(m["gpu"]).lower() not in (gpu or "").lower():
            return False
        if "offer" in m:
            offers = m["offer"] if isinstance(m["offer"], list) else [m["offer"]]
            if str(offer) not in {str(o) for o in offers}:
                return False
        if "instance" in m and str(m["instance"]) != str(instance):
            return False
        return True

    def consume(self) -> bool:
        """Use one hit; False when the fault is spent."""
        if self.count is not None:
            if self.count <= 0:
                return False
            self.count -= 1
        self.hits += 1
        return True

    @property
    def spent(self) -> bool:
        return self.count is not None and self.count <= 0


def parse_fault(raw: Any, where: str) -> Fault:  # noqa: C901 - one check per fault field
    if not isinstance(raw, dict):
        raise SimConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    t = raw.get("type")
    if t not in ALL_TYPES:
        raise SimConfigError(f"{where}: unknown type {t!r} (expected one of: {', '.join(sorted(ALL_TYPES))})")
    allowed = {"type", "count", "match"}
    if t in REQUEST_TYPES:
        allowed |= {"api", "endpoint", "status", "retry_after"}
    if t == "rate_limit":
        allowed |= {"body"}
    if t == "server_error":
        allowed |= {"applied"}
    if t == "slow_boot":
        allowed |= {"seconds"}
    if t == "preempt":
        allowed |= {"after_seconds"}
    if t == "gpu":
        allowed |= GPU_KEYS
    unknown = set(raw) - allowed
    if unknown:
        raise SimConfigError(f"{where}: unknown key(s) for type {t}: {', '.join(sorted(unknown))}")
    f = Fault(type=t)
    try:
        if "count" in raw and raw["count"] is not None:
            f.count = int(raw["count"])
            if f.count < 1:
                raise SimConfigError(f"{where}: count must be >= 1")
        elif t in REQUEST_TYPES | {"terminate_fails"}:
            f.count = 1
        f.api = str(raw.get("api", "any"))
        if f.api not in APIS:
            raise SimConfigError(f"{where}: api must be one of {', '.join(sorted(APIS))}")
        f.endpoint = raw.get("endpoint")
        f.status = int(raw.get("status", 503))
        if t == "server_error" and not 500 <= f.status <= 599:
            raise SimConfigError(f"{where}: status must be a 5xx code")
        ra = raw.get("retry_after", 1.0)
        f.retry_after = None if ra is None else float(ra)
        f.applied = bool(raw.get("applied", False))
        f.body = str(raw.get("body", "text"))
        if f.body not in ("text", "json"):
            raise SimConfigError(f"{where}: body must be text or json")
        if t == "slow_boot":
            if "seconds" not in raw:
                raise SimConfigError(f"{where}: slow_boot needs 'seconds'")
            f.seconds = float(raw["seconds"])
        if t == "preempt":
            f.after_seconds = float(raw.get("after_seconds", 30))
        match = raw.get("match") or {}
        if not isinstance(match, dict):
            raise SimConfigError(f"{where}: match must be a mapping")
        bad = set(match) - MATCH_KEYS
        if bad:
            raise SimConfigError(f"{where}: unknown match key(s): {', '.join(sorted(bad))}")
        f.match = dict(match)
        if t == "gpu":
            f.gpu = {k: raw[k] for k in GPU_KEYS if k in raw}
            if not set(f.gpu) - {"gpus"}:
                raise SimConfigError(f"{where}: gpu fault needs one of temperature, ecc_uncorrected, ecc_corrected, "
                                     "memory_used_mib, utilization, driver_missing")
    except (TypeError, ValueError) as e:
        raise SimConfigError(f"{where}: {e}") from None
    return f


def parse_faults(doc: Any, source: str = "faults") -> list[Fault]:
    if doc is None:
        return []
    if isinstance(doc, dict):
        if set(doc) - {"faults"}:
            raise SimConfigError(f"{source}: top-level key must be 'faults'")
        doc = doc.get("faults") or []
    if not isinstance(doc, list):
        raise SimConfigError(f"{source}: 'faults' must be a list")
    return [parse_fault(r, f"{source}: fault #{i + 1}") for i, r in enumerate(doc)]


def load_faults_file(path: str | Path) -> list[Fault]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise SimConfigError(f"faults file {p}: cannot read: {e.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise SimConfigError(f"faults file {p}: invalid YAML{at}: {getattr(e, 'problem', e)}") from None
    return parse_faults(doc, f"faults file {p}")


class FaultSet:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(self, faults: list[Fault]) -> None:
        self.faults.extend(faults)

    def clear(self) -> None:
        self.faults.clear()

    def _prune(self) -> None:
        self.faults = [f for f in self.faults if not f.spent]

    def take_request_fault(self, api: str, method: str, path: str) -> Fault | None:
        for f in self.faults:
            if f.type in REQUEST_TYPES and f.matches_request(api, method, path) and f.consume():
                self._prune()
                return f
        return None

    def take(self, ftype: str, **ctx) -> Fault | None:
        for f in self.faults:
            if f.type == ftype and f.matches(**ctx) and f.consume():
                self._prune()
                return f
        return None

    def peek_all(self, ftype: str, **ctx) -> list[Fault]:
        return [f for f in self.faults if f.type == ftype and f.matches(**ctx) and not f.spent]

    def to_list(self) -> list[dict]:
        return [f.to_dict() for f in self.faults]
