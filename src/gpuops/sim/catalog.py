"""The simulator's catalog: hardware models, RunPod GPU types with stock, Vast machines/asks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import SimConfigError

DEFAULT_CATALOG = Path(__file__).parent / "data" / "catalog.yaml"


@dataclass
class Hardware:
    key: str
    smi_name: str
    memory_mib: int
    compute_cap: str = "8.9"
    power_limit: float = 450.0
    ecc: bool = False


@dataclass
class RunpodGpuType:
    id: str
    name: str
    hardware: str
    manufacturer: str
    memory_gb: int
    price: dict[str, float]
    spot_price: dict[str, float]
    stock: dict[str, int]
    max_count: dict[str, int]
    cuda_versions: list[str]
    data_centers: list[str]
    # clouds ("secure", "community") whose hosts of this GPU have no public IP: pods there run but never get
    # a direct SSH mapping (REST v2 has no supportPublicIp to ask for one)
    no_public_ip: list[str] = field(default_factory=list)


@dataclass
class VastMachine:
    machine_id: int
    hardware: str
    gpu_name: str
    num_gpus: int
    dph_total: float
    min_bid: float
    geolocation: str
    cuda_max_good: float
    reliability: float
    cpu_cores_effective: float = 16
    cpu_ram: int = 64000
    disk_space: float = 200
    inet_down: float = 500
    inet_up: float = 500
    verified: bool = True
    datacenter: bool = False
    storage_cost: float = 0.15  # $/GB/month
    direct_port_count: int = 20
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Catalog:
    settings: dict[str, Any]
    hardware: dict[str, Hardware]
    runpod_data_centers: list[str]
    runpod_gpu_types: dict[str, RunpodGpuType]
    vast_machines: dict[int, VastMachine]
    images: list[dict] = field(default_factory=list)  # a catalog's own image entries (sim/images.py), first

    @property
    def boot_seconds(self) -> float:
        return float(self.settings.get("boot_seconds", 1.0))


def _req(d: dict, key: str, where: str):
    if key not in d:
        raise SimConfigError(f"{where}: missing '{key}'")
    return d[key]


GENERATED_MACHINE_IDS = 500_000
GEO = ("Texas, US", "Oregon, US", "Virginia, US", "Quebec, CA", "Bavaria, DE", "Stockholm, SE", "Warsaw, PL",
       "Sao Paulo, BR", "Tokyo, JP", "Victoria, AU")


def _spread(spec: Any, rng: random.Random, digits: int = 3) -> float:
    """A number, or [low, high]: a uniform draw."""
    if isinstance(spec, (list, tuple)):
        return round(rng.uniform(float(spec[0]), float(spec[1])), digits)
    return float(spec)


def generate_machines(entries: list, first_id: int = GENERATED_MACHINE_IDS) -> list[dict]:
    """A realistic market: ``vast.generate`` entries, each ``count`` machines of one GPU with prices and
    reliability drawn from ranges (seeded, so a catalog always yields the same market)."""
    out: list[dict] = []
    mid = first_id
    for i, g in enumerate(entries or []):
        where = f"vast.generate[{i}]"
        rng = random.Random(g.get("seed", i))
        for _ in range(int(_req(g, "count", where))):
            dph = _spread(_req(g, "dph_total", where), rng)
            m = {k: v for k, v in g.items() if k not in ("count", "seed", "dph_total", "reliability", "geolocation")}
            _req(g, "hardware", where)
            _req(g, "gpu_name", where)
            m.update(machine_id=mid, dph_total=dph, min_bid=round(dph * 0.5, 3),
                     reliability=_spread(g.get("reliability", [0.95, 0.999]), rng, 4),
                     geolocation=g.get("geolocation") or GEO[rng.randrange(len(GEO))])
            m.setdefault("num_gpus", 1)
            m.setdefault("cuda_max_good", 12.4)
            out.append(m)
            mid += 1
    return out


def load_catalog(path: str | Path | None = None) -> Catalog:
    p = Path(path) if path else DEFAULT_CATALOG
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as e:
        raise SimConfigError(f"catalog {p}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise SimConfigError(f"catalog {p}: invalid YAML{at}: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise SimConfigError(f"catalog {p}: expected a mapping at the top level")
    try:
        hw = {}
        for key, h in (raw.get("hardware") or {}).items():
            hw[key] = Hardware(key=key, smi_name=_req(h, "smi_name", f"hardware.{key}"),
                               memory_mib=int(_req(h, "memory_mib", f"hardware.{key}")),
                               compute_cap=str(h.get("compute_cap", "8.9")),
                               power_limit=float(h.get("power_limit", 450)), ecc=bool(h.get("ecc", False)))
        rp = raw.get("runpod") or {}
        gtypes = {}
        for i, g in enumerate(rp.get("gpu_types") or []):
            where = f"runpod.gpu_types[{i}]"
            t = RunpodGpuType(
                id=_req(g, "id", where), name=g.get("name", g["id"]), hardware=_req(g, "hardware", where),
                manufacturer=g.get("manufacturer", "Nvidia"), memory_gb=int(_req(g, "memory_gb", where)),
                price={k: float(v) for k, v in _req(g, "price", where).items()},
                spot_price={k: float(v) for k, v in (g.get("spot_price") or {}).items()},
                stock={k: int(v) for k, v in (g.get("stock") or {"secure": 8, "community": 8}).items()},
                max_count={k: int(v) for k, v in (g.get("max_count") or {"secure": 8, "community": 8}).items()},
                cuda_versions=[str(v) for v in g.get("cuda_versions") or ["12.4"]],
                data_centers=list(g.get("data_centers") or rp.get("data_centers") or ["US-TX-3"]),
                no_public_ip=[str(c).lower() for c in g.get("no_public_ip") or []],
            )
            if t.hardware not in hw:
                raise SimConfigError(f"{where}: unknown hardware '{t.hardware}'")
            gtypes[t.id] = t
        machines = {}
        known = {f for f in VastMachine.__dataclass_fields__ if f != "extra"}
        vast = raw.get("vast") or {}
        for i, m in enumerate(list(vast.get("machines") or []) + generate_machines(vast.get("generate"))):
            where = f"vast.machines[{i}]"
            kw = {k: v for k, v in m.items() if k in known}
            extra = {k: v for k, v in m.items() if k not in known}
            for k in ("machine_id", "hardware", "gpu_name", "num_gpus", "dph_total", "min_bid", "geolocation",
                      "cuda_max_good", "reliability"):
                _req(m, k, where)
            vm = VastMachine(**kw, extra=extra)
            if vm.hardware not in hw:
                raise SimConfigError(f"{where}: unknown hardware '{vm.hardware}'")
            if vm.machine_id in machines:
                raise SimConfigError(f"{where}: duplicate machine_id {vm.machine_id}")
            machines[vm.machine_id] = vm
    except (TypeError, ValueError, AttributeError) as e:
        raise SimConfigError(f"catalog {p}: {e}") from None
    return Catalog(settings=dict(raw.get("settings") or {}), hardware=hw,
                   runpod_data_centers=list(rp.get("data_centers") or []), runpod_gpu_types=gtypes,
                   vast_machines=machines, images=list(raw.get("images") or []))
