"""Request schemas of the simulator, written from the vendors' OpenAPI specs (RunPod REST v2, Vast).

The simulator validates every request body with these models so that a wrong field or type gets
the vendor's error shape. tests/sim/test_contract_specs.py keeps them honest against the vendored
specs whenever ../shared/reference/specs is present.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

CudaVersion = Annotated[str, StringConstraints(pattern=r"^\d+\.\d+$")]
PortSpec = Annotated[str, StringConstraints(pattern=r"^\d{1,5}/(http|tcp|udp)$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ---------------------------------------------------------------- RunPod REST v2
class RpCreateGpuConfig(_Strict):
    id: str
    count: int = Field(default=1, ge=1)
    allowedCudaVersions: list[CudaVersion] | None = None
    minCudaVersion: CudaVersion | None = None


class RpCreateCpuConfig(_Strict):
    id: str = Field(min_length=1)  # CPU flavor, e.g. "cpu5c"
    vcpuCount: int = Field(ge=2)


class RpPersistentMount(_Strict):
    size: int = Field(ge=10)  # upstream enforces a 10 GB floor
    path: str


class RpNetworkMount(_Strict):
    volumeId: str
    path: str


class RpMounts(_Strict):
    persistent: RpPersistentMount | None = None
    network: list[RpNetworkMount] | None = Field(default=None, max_length=1)


class RpContainerConfig(_Strict):
    args: str | None = None
    disk: int | None = Field(default=None, ge=1)
    env: dict[str, str] | None = None
    image: str | None = None
    ports: list[PortSpec] | None = None
    registry: str | None = None


class RpCreatePodRequest(RpContainerConfig):
    name: str = Field(min_length=1)
    cloud: Literal["SECURE", "COMMUNITY"] = "SECURE"
    cpu: RpCreateCpuConfig | None = None
    dataCenterIds: list[str] | None = None
    globalNetworking: bool = False
    gpu: RpCreateGpuConfig | None = None
    mounts: RpMounts | None = None
    startJupyter: bool = False
    startSsh: bool = False
    templateId: str | None = Field(default=None, min_length=1)


class RpUpdatePodRequest(RpContainerConfig):
    globalNetworking: bool | None = None
    locked: bool | None = None
    mounts: RpMounts | None = None
    name: str | None = Field(default=None, min_length=1)
    templateId: str | None = None


class RpPodActionRequest(_Strict):
    action: Literal["start", "stop", "restart", "terminate"]


class RpUpdateSshKeysRequest(_Strict):
    keys: list[Annotated[str, StringConstraints(pattern=r"^(ssh|ecdsa|sk)-[^\s]+ [^\s]+([ \t][^\n\r]*)?$")]]


# ---------------------------------------------------------------- Vast
VAST_RUNTYPES = {"ssh", "jupyter", "args", "ssh_proxy", "ssh_direct", "ssh_direc", "jupyter_proxy", "jupyter_direct",
                 "jupyter_direc"}


class VastCreateInstance(BaseModel):
    """PUT /api/v0/asks/{id}/. Unknown keys are accepted (the SDK sends client_id and more), known ones typed
    strictly as the spec types them ("20" is not a number, "yes" not a boolean)."""

    model_config = ConfigDict(extra="allow", strict=True)
    image: str | None = None
    template_hash_id: str | None = None
    label: str | None = None
    disk: float | None = Field(default=None, gt=0)
    runtype: str | None = None
    target_state: Literal["running", "stopped"] | None = None
    price: float | None = Field(default=None, ge=0.001, le=128.0)
    env: str | dict[str, Any] | None = None
    cancel_unavail: bool | None = None
    onstart: str | None = None
    args: list[str] | None = None
    args_str: str | None = None
    vm: bool | None = None
    use_jupyter_lab: bool | None = None
    python_utf8: bool | None = None
    lang_utf8: bool | None = None
    force: bool | None = None

    @field_validator("runtype")
    @classmethod
    def _runtype(cls, v):
        if v is None:
            return v
        parts = v.split()
        bad = [p for p in parts if p not in VAST_RUNTYPES]
        if not parts or bad:
            raise ValueError(f"invalid runtype {v!r}")
        return v


class VastManageInstance(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    state: Literal["stopped", "running"] | None = None
    label: str | None = Field(default=None, max_length=1024)


class VastSshKey(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    ssh_key: str | None = None


class VastChangeBid(BaseModel):
    """PUT /api/v0/instances/bid_price/{id}/: the spec requires client_id ("me") and caps the bid at 32."""

    model_config = ConfigDict(extra="allow", strict=True)
    client_id: str
    price: float = Field(ge=0.001, le=32.0)


def parse_vast_env(env: str | dict | None) -> tuple[dict[str, str], list[str]]:
    """Vast env: a Docker-flag string ("-e K=V -p 22:22") or the SDK's object form. Returns (env, ports)."""
    out: dict[str, str] = {}
    ports: list[str] = []
    if env is None:
        return out, ports
    if isinstance(env, dict):
        for k, v in env.items():
            if k.startswith("-p "):
                ports.append(k[3:].strip())
            else:
                out[str(k)] = str(v)
        return out, ports
    import shlex

    toks = shlex.split(env)
    i = 0
    while i < len(toks):
        t = toks[i]
        if t == "-p" and i + 1 < len(toks):
            ports.append(toks[i + 1])
            i += 2
            continue
        if t == "-e" and i + 1 < len(toks):
            k, _, v = toks[i + 1].partition("=")
            out[k] = v
            i += 2
            continue
        if t.startswith("-e") and "=" in t[2:]:
            k, _, v = t[2:].partition("=")
            out[k] = v
        i += 1
    return out, ports


def pydantic_errors(e: ValidationError) -> list[str]:
    """Render pydantic errors the way RunPod's v2 validator words them: "$.path: message"."""
    out = []
    for err in e.errors():
        loc = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parent = loc.rsplit(".", 1)[0] if "." in loc else "$"
            out.append(f"{parent}: additional properties '{err['loc'][-1]}' not allowed")
        elif err["type"] == "missing":
            parent = loc.rsplit(".", 1)[0] if "." in loc[1:] else "$"
            out.append(f"{parent}: missing property '{err['loc'][-1]}'")
        else:
            msg = re.sub(r"^Input should be ", "should be ", err["msg"])
            out.append(f"{loc}: {msg}")
    return out
