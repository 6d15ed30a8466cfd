"""Vast.ai API as the simulator serves it: offers (bundles), asks, instances (v0 + paginated v1), SSH keys.

Paths are accepted with and without the trailing slash, auth by ``Authorization: Bearer`` or
``?api_key=``. Offer (ask) ids are one-shot; the machine is listed again under a new ask id once the
instance on it is destroyed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from .catalog import VastMachine
from .engine import Engine, Instance
from .errors import ApiError
from .schemas import VastChangeBid, VastCreateInstance, VastManageInstance, VastSshKey, parse_vast_env

OPS = {"eq", "neq", "gt", "gte", "lt", "lte", "in", "notin"}
SEARCH_META = {"order", "type", "limit", "allocated_storage", "disable_bundling", "extra_ids", "show_incompatible"}
# stored columns of an instance that /api/v1/instances/ can filter on
V1_FILTERABLE = {"actual_status", "gpu_name", "verification", "id", "label", "intended_status", "cur_state",
                 "next_state", "machine_id", "host_id", "is_bid", "image_uuid", "template_hash_id"}
V1_COMPUTED = {"dph_total", "num_gpus", "duration", "uptime_mins", "gpu_util", "gpu_temp", "cpu_util"}


def _phase_status(inst: Instance) -> tuple[str | None, str, str]:
    """(actual_status, cur_state, next_state)."""
    if inst.phase == "provisioning":
        return None, "running", "running"
    if inst.phase == "starting":
        # loading is the image pull; an instance that never starts (boot_never) stays created
        return ("created" if inst.boot_never else "loading"), "running", "running"
    if inst.phase == "running":
        return "running", "running", "running"
    if inst.phase == "exited":
        if inst.stop_reason == "preempted":
            return "stopped", "stopped", "running"
        return "exited", "stopped", "stopped"
    if inst.phase == "error":
        if inst.started_at is None:  # the container was never created: "created" + status_msg (§2.9)
            return "created", "running", "running"
        return "exited", "stopped", "stopped"
    return None, "stopped", "stopped"


def offer_json(engine: Engine, ask_id: int, m: VastMachine, bid: bool) -> dict:
    hw = engine.catalog.hardware[m.hardware]
    price = m.min_bid if bid else m.dph_total
    country = m.geolocation[-2:]
    return {
        "id": ask_id, "ask_contract_id": ask_id, "bundle_id": ask_id + 900_000_000, "machine_id": m.machine_id,
        "host_id": 90_000 + m.machine_id % 1000, "hostname": f"host{m.machine_id}", "num_gpus": m.num_gpus,
        "gpu_name": m.gpu_name, "gpu_arch": "nvidia", "gpu_ram": hw.memory_mib, "gpu_total_ram": hw.memory_mib * m.num_gpus,
        "gpu_frac": 1.0, "gpu_max_power": hw.power_limit, "gpu_max_temp": 90.0, "gpu_mem_bw": 1000.0,
        "compute_cap": int(float(hw.compute_cap) * 100), "cuda_max_good": m.cuda_max_good,
        "driver_version": "550.127.05", "cpu_arch": "amd64", "cpu_cores": int(m.cpu_cores_effective) * 2,
        "cpu_cores_effective": m.cpu_cores_effective, "cpu_ghz": 3.2, "cpu_name": "AMD EPYC 7543",
        "cpu_ram": m.cpu_ram, "disk_space": m.disk_space, "disk_bw": 2000.0, "inet_up": m.inet_up,
        "inet_down": m.inet_down, "inet_up_cost": 0.0, "inet_down_cost": 0.0,
        "direct_port_count": m.direct_port_count, "dph_base": round(price * 0.95, 4), "dph_total": price,
        "min_bid": m.min_bid, "is_bid": bid, "storage_cost": m.storage_cost, "reliability": m.reliability,
        "reliability2": m.reliability, "verification": "verified" if m.verified else "unverified",
        "verified": m.verified, "rentable": True, "rented": False, "static_ip": m.datacenter,
        "public_ipaddr": f"203.0.113.{m.machine_id % 250}", "geolocation": m.geolocation, "geolocode": 0,
        "country": country, "score": round(100 * m.reliability / max(price, 0.01), 3),
        "dlperf": round(10.0 * m.num_gpus * hw.memory_mib / 24564, 2),
        "dlperf_per_dphtotal": round(10.0 * m.num_gpus * hw.memory_mib / 24564 / max(price, 0.01), 3),
        "flops_per_dphtotal": round(80.0 * m.num_gpus / max(price, 0.01), 3),
        "total_flops": 80.0 * m.num_gpus, "external": False, "hosting_type": 1 if m.datacenter else 0,
        "datacenter": m.datacenter, "has_avx": 1, "bw_nvlink": 0.0, "gpu_display_active": False,
        "duration": 30 * 86400.0, "start_date": None, "end_date": None, "vms_enabled": False,
        "search": {"gpuCostPerHour": price, "totalHour": price}, **m.extra,
    }


def _num(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def _match(value: Any, op: str, target: Any, field: str) -> bool:
    if field == "geolocation" and isinstance(value, str):
        value = value[-2:]
    if field == "gpu_name":
        norm = (lambda s: str(s).replace("_", " ").lower())
        value = norm(value)
        target = [norm(t) for t in target] if isinstance(target, list) else norm(target)
    if op in ("in", "notin"):
        if not isinstance(target, list):
            raise ApiError(400, f"Error in query parameters: '{op}' for {field} takes a list", code="invalid_args")
        vals = [_num(t) for t in target]
        inside = _num(value) in vals or value in target
        return inside if op == "in" else not inside
    t = _num(target)
    v = _num(value)
    if op == "eq":
        return v == t
    if op == "neq":
        return v != t
    if v is None or t is None:
        return False
    try:
        return {"gt": v > t, "gte": v >= t, "lt": v < t, "lte": v <= t}[op]
    except TypeError:
        raise ApiError(400, f"Error in query parameters: cannot compare {field} with {target!r}",
                       code="invalid_args") from None


def stored_columns(engine: Engine, inst: Instance) -> dict:
    """The columns /api/v1/instances/ filters and sorts on, without rendering the whole row."""
    actual, cur, nxt = _phase_status(inst)
    m = engine.catalog.vast_machines.get(int(inst.machine_id)) if inst.machine_id is not None else None
    return {"id": int(inst.id), "label": inst.name or None, "actual_status": actual, "intended_status": inst.intended,
            "cur_state": cur, "next_state": nxt, "image_uuid": inst.image, "template_hash_id": None,
            "machine_id": int(inst.machine_id) if inst.machine_id is not None else None,
            "host_id": 90_000 + (int(inst.machine_id) % 1000 if inst.machine_id is not None else 0),
            "gpu_name": inst.gpu_type, "is_bid": inst.interruptible,
            "verification": "verified" if (not m or m.verified) else "unverified",
            "start_date": inst.created_at, "dph_total": inst.price_per_hour}


def instance_json(engine: Engine, inst: Instance) -> dict:
    m = engine.catalog.vast_machines.get(int(inst.machine_id)) if inst.machine_id is not None else None
    hw = engine.catalog.hardware[inst.hardware]
    actual, cur, nxt = _phase_status(inst)
    running = inst.phase == "running"
    ports = None
    if running:
        ports = {}
        if inst.direct_ssh:
            ports["22/tcp"] = [{"HostIp": "0.0.0.0", "HostPort": str(inst.ssh_port)}]
        for p in inst.label_extra.get("ports", []):
            hostp, _, cont = p.partition(":")
            if cont.split("/")[0] != "22":
                ports[f"{cont.split('/')[0]}/tcp"] = [{"HostIp": "0.0.0.0", "HostPort": str(30000 + int(hostp) % 30000)}]
    now = engine.clock.now()
    extra_env = [[f"-p {p}", "1"] for p in inst.label_extra.get("ports", [])] + [[k, v] for k, v in inst.env.items()]
    return {
        "id": int(inst.id), "label": inst.name or None, "actual_status": actual, "intended_status": inst.intended,
        "cur_state": cur, "next_state": nxt, "status_msg": inst.status_msg, "image_uuid": inst.image,
        "image_runtype": inst.runtype, "image_args": [], "extra_env": extra_env, "onstart": inst.onstart or "",
        "template_id": None, "template_hash_id": None, "template_name": None,
        "ssh_host": inst.ip if running else f"ssh{int(inst.id) % 9 + 1}.vast.ai", "ssh_idx": str(int(inst.id) % 9 + 1),
        "ssh_port": inst.proxy_port if running else 20000 + int(inst.id) % 10000,
        "machine_dir_ssh_port": 21000 + int(inst.id) % 10000,
        # the vendor's trailing newline, which clients must strip
        "public_ipaddr": inst.ip + "\n", "local_ipaddrs": "10.2.202.31 172.17.0.1 \n",
        "ports": ports, "direct_port_start": 41020, "direct_port_end": 41030,
        "machine_id": int(inst.machine_id) if inst.machine_id is not None else None,
        "host_id": 90_000 + (int(inst.machine_id) % 1000 if inst.machine_id is not None else 0),
        "num_gpus": inst.gpu_count, "gpu_name": inst.gpu_type, "gpu_arch": "nvidia", "gpu_ram": hw.memory_mib,
        "gpu_totalram": hw.memory_mib * inst.gpu_count, "gpu_frac": 1.0, "gpu_util": 0.0 if running else None,
        "gpu_temp": 35.0 if running else None, "cpu_cores": int(m.cpu_cores_effective * 2) if m else 16,
        "cpu_cores_effective": m.cpu_cores_effective if m else 8.0, "cpu_ram": m.cpu_ram if m else 64000,
        "cpu_util": 0.0, "cpu_arch": "amd64", "disk_space": inst.disk_gb, "disk_util": 0.01,
        "dph_total": inst.price_per_hour, "dph_base": round(inst.price_per_hour * 0.95, 4),
        "is_bid": inst.interruptible, "min_bid": m.min_bid if m else None, "bid_price": inst.bid,
        "storage_cost": inst.storage_cost, "geolocation": m.geolocation if m else "Unknown, US",
        "reliability2": m.reliability if m else 0.99, "verification": "verified" if (not m or m.verified) else "unverified",
        "cuda_max_good": m.cuda_max_good if m else 12.4, "driver_version": "550.127.05",
        "inet_up": m.inet_up if m else 500.0, "inet_down": m.inet_down if m else 500.0,
        "start_date": inst.created_at, "end_date": inst.created_at + 30 * 86400.0,
        "uptime_mins": round((now - inst.started_at) / 60.0, 2) if running and inst.started_at else None,
        "duration": now - inst.created_at, "jupyter_token": "", "mem_limit": None, "mem_usage": None,
        "vmem_usage": None,
    }


def _charge_window(raw: str | None) -> tuple[float, float, set[str] | None]:
    """(gte, lte, types) from /api/v0/charges select_filters; 400 in the spec's shape when day is missing."""
    try:
        f = json.loads(raw) if raw else {}
    except ValueError:
        raise ApiError(400, "Error in query parameters: select_filters is not valid JSON",
                       code="invalid_request") from None
    day = f.get("day") if isinstance(f, dict) else None
    if not isinstance(day, dict) or "gte" not in day or "lte" not in day:
        raise ApiError(400, "Must provide both 'day' gte and lte filters for instance charges")
    types = None
    if isinstance(f.get("type"), dict) and "in" in f["type"]:
        types = {str(t) for t in f["type"]["in"]}
    try:
        return float(day["gte"]), float(day["lte"]), types
    except (TypeError, ValueError):
        raise ApiError(400, "Error in query parameters: day bounds must be unix seconds",
                       code="invalid_request") from None


def charge_entry(engine: Engine, inst: Instance, gte: float, lte: float) -> dict | None:
    """One instance contract's charges in [gte, lte] (hours that begin in it), per the spec's table format."""
    hours = engine.usage_amounts(inst, gte, lte + 1)
    if not hours:
        return None
    gpu = sum(g for g, _ in hours.values())
    disk = sum(d for _, d in hours.values())
    first, last = min(hours), max(hours) + 3600
    end = int(inst.terminated_at or engine.clock.now())
    gpu_hours = inst.gpu_seconds / 3600.0
    items = [{"start": int(first), "end": int(last), "type": "gpu", "source": None,
              "description": f"{gpu_hours:.3f} hours at ${inst.price_per_hour:.3f}/hour", "amount": round(gpu, 3),
              "metadata": {}, "items": []},
             {"start": int(first), "end": int(last), "type": "disk", "source": None,
              "description": f"{inst.disk_gb:g} GB storage", "amount": round(disk, 3), "metadata": {}, "items": []}]
    days = max(1, round((end - inst.created_at) / 86400))
    entry = {"start": int(inst.created_at), "end": end, "type": "instance", "source": f"instance-{inst.id}",
             "description": f"Instance {inst.id} Charges - {days} day{'s' if days != 1 else ''}",
             "amount": round(gpu + disk, 3), "metadata": {}, "items": items}
    if inst.name:
        entry["metadata"]["label"] = inst.name
    return entry


async def _body_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "error 400/3467: Invalid args: body is not valid JSON", code="invalid_args") from None


def _ssh_key_body(data: Any) -> VastSshKey:
    try:
        return VastSshKey.model_validate(data)
    except ValidationError:
        raise ApiError(400, "No ssh key provided", code="no_ssh_key") from None


def _lookup(engine: Engine, iid: str) -> Instance:
    if not str(iid).isdigit():
        raise ApiError(400, "invalid instance_id", code="invalid_args")
    inst = engine.get(str(iid), "vast")
    if inst is None:
        raise ApiError(404, "Instance not found", code="not_found")
    return inst


def _search(engine: Engine, q: dict) -> list[dict]:
    if not isinstance(q, dict):
        raise ApiError(400, "Error in query parameters: query must be a JSON object", code="invalid_args")
    otype = q.get("type", "on-demand")
    if otype not in ("on-demand", "ondemand", "bid", "interruptible", "reserved"):
        raise ApiError(400, f"Error in query parameters: invalid type {otype!r}", code="invalid_args")
    bid = otype in ("bid", "interruptible")
    offers = [offer_json(engine, aid, m, bid) for aid, m in engine.vast_asks.items()]
    known = set(offers[0]) if offers else set()
    filters = {k: v for k, v in q.items() if k not in SEARCH_META}
    for field, cond in filters.items():
        if known and field not in known:
            raise ApiError(400, f"Error in query parameters: {field} is not a valid search key",
                           code="invalid_args")
        if not isinstance(cond, dict) or not cond or set(cond) - OPS:
            raise ApiError(400, f"Error in query parameters: {field} needs an operator object "
                                f"({', '.join(sorted(OPS))})", code="invalid_args")
        offers = [o for o in offers if all(_match(o.get(field), op, t, field) for op, t in cond.items())]
    order = q.get("order") or [["score", "desc"]]
    for key, *rest in reversed(order):
        desc = bool(rest) and str(rest[0]).lower() == "desc"
        offers.sort(key=lambda o: (o.get(key) is None, o.get(key) or 0), reverse=desc)
    limit = q.get("limit")
    if limit is not None:
        offers = offers[: int(limit)]
    return offers


@dataclass(frozen=True)
class _VastRoutes:
    """What every Vast route group shares: the engine, the auth check, the route decorator and the body helpers."""
    engine: Engine
    auth: Callable[[Request], Any]
    route: Callable[[str, list[str]], Callable]
    body_json: Callable[[Request], Awaitable[Any]]
    ssh_key_body: Callable[[Any], VastSshKey]
    lookup: Callable[[str], Instance]
    search: Callable[[dict], list[dict]]


def build_router(engine: Engine, auth) -> APIRouter:
    """The Vast v0/v1 instance, offer, key and charge routes, registered group by group in matching order."""
    r = APIRouter()

    def route(path: str, methods: list[str]):
        """Register a Vast path with and without the trailing slash."""
        def deco(fn):
            r.add_api_route(path, fn, methods=methods)
            r.add_api_route(path + "/", fn, methods=methods, include_in_schema=False)
            return fn
        return deco

    ctx = _VastRoutes(engine=engine, auth=auth, route=route, body_json=_body_json, ssh_key_body=_ssh_key_body,
                      lookup=lambda iid: _lookup(engine, iid), search=lambda q: _search(engine, q))
    # FastAPI answers with the first route that matches: the groups keep the order the routes always had
    _add_offer_routes(ctx)
    _add_create_routes(ctx)
    _add_listing_routes(ctx)
    _add_manage_routes(ctx)
    _add_ssh_routes(ctx)
    _add_billing_routes(ctx)
    return r


def _add_offer_routes(ctx: _VastRoutes) -> None:
    """Offer search: /api/v0/bundles by POST body or GET ?q=."""
    auth, route, body_json, search = ctx.auth, ctx.route, ctx.body_json, ctx.search

    @route("/api/v0/bundles", ["POST"])
    async def bundles_post(request: Request):
        auth(request)
        return JSONResponse({"offers": search(await body_json(request))})

    @route("/api/v0/bundles", ["GET"])
    async def bundles_get(request: Request):
        auth(request)
        raw = request.query_params.get("q", "{}")
        try:
            q = json.loads(raw)
        except ValueError:
            raise ApiError(400, "Error in query parameters: q is not valid JSON", code="invalid_args") from None
        return JSONResponse({"offers": search(q)})


def _add_create_routes(ctx: _VastRoutes) -> None:
    """Renting an offer: PUT /api/v0/asks/{ask_id}."""
    engine, auth, route, body_json = ctx.engine, ctx.auth, ctx.route, ctx.body_json

    @route("/api/v0/asks/{ask_id}", ["PUT"])
    async def create_instance(ask_id: str, request: Request):
        auth(request)
        if not ask_id.isdigit():
            raise ApiError(400, "error 400/3467: Invalid args: 'id' is required and must be a valid offer ID",
                           code="invalid_args")
        aid = int(ask_id)
        data = await body_json(request)
        try:
            req = VastCreateInstance.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            raise ApiError(400, f"error 400/3467: Invalid args: {'.'.join(map(str, first['loc']))}: {first['msg']}",
                           code="invalid_price" if first["loc"][:1] == ("price",) else "invalid_args",
                           extra={"ask_id": aid}) from None
        if not req.image and not req.template_hash_id:
            raise ApiError(400, "error 400/3467: Invalid args: image is required", code="invalid_args",
                           extra={"ask_id": aid})
        m = engine.vast_asks.get(aid)
        if m is None:
            if aid in engine.vast_spent_asks:
                raise ApiError(410, f"error 410/3907: no_such_ask Instance type {aid} is no longer available.",
                               code="no_such_ask", extra={"ask_id": aid})
            raise ApiError(404, f"error 404/3603: no_such_ask Instance type by id {aid} is not available.",
                           code="invalid_args", extra={"ask_id": aid})
        label = req.label or ""
        fault = engine.check_create_faults("vast", label, m.gpu_name, aid)
        if fault and fault.type == "insufficient_balance":
            raise ApiError(400, "error 400/3561: insufficient_credit: your account balance is too low",
                           code="insufficient_credit", extra={"ask_id": aid})
        if fault:
            del engine.vast_asks[aid]
            engine.vast_asks[next(engine._ask_ids)] = m  # relisted under a new id, as on Vast
            engine.vast_spent_asks.add(aid)
            raise ApiError(410, f"error 410/3907: no_such_ask Instance type {aid} is no longer available.",
                           code="no_such_ask", extra={"ask_id": aid})
        if req.price is not None and req.price < m.min_bid:
            raise ApiError(400, f"error 400/3513: invalid_price: bid {req.price} is below the minimum bid of "
                                f"{m.min_bid} for this offer", code="invalid_price", extra={"ask_id": aid})
        if req.disk is not None and req.disk > m.disk_space:
            raise ApiError(400, f"error 400/3467: Invalid args: disk {req.disk} GB exceeds the {m.disk_space} GB "
                                "this machine offers", code="invalid_args", extra={"ask_id": aid})
        env, ports = parse_vast_env(req.env)
        runtype = req.runtype or ("args" if (req.args or req.args_str) else "ssh")
        direct = any("direc" in p for p in runtype.split()) or any(p.split(":")[-1].split("/")[0] == "22"
                                                                   for p in ports)
        if runtype == "args":
            direct = False
        inst = Instance(
            id=engine.new_vast_id(), provider="vast", name=label, hardware=m.hardware, gpu_type=m.gpu_name,
            gpu_count=m.num_gpus, price_per_hour=req.price if req.price is not None else m.dph_total,
            image=req.image or "", created_at=engine.clock.now(), interruptible=req.price is not None,
            bid=req.price, disk_gb=req.disk or 10.0, env=env, machine_id=m.machine_id, offer_id=aid,
            onstart=req.onstart, runtype=runtype, direct_ssh=direct,
            keys=[k["key"] for k in engine.vast_account_keys], boot_seconds=engine.catalog.boot_seconds,
            storage_cost=m.storage_cost, cuda_version=str(m.cuda_max_good), label_extra={"ports": ports},
        )
        del engine.vast_asks[aid]
        engine.vast_spent_asks.add(aid)
        engine.vast_rented[m.machine_id] = int(inst.id)
        engine.add_instance(inst, offer=aid)
        if req.target_state == "stopped":  # created but not started: the boot timer finds it exited
            engine._set_phase(inst, "exited")
            inst.intended = "stopped"
            inst.stop_reason = "user"
        return JSONResponse({"success": True, "new_contract": int(inst.id),
                             "instance_api_key": inst.api_key})


def _add_listing_routes(ctx: _VastRoutes) -> None:
    """Instance listings: the paginated /api/v1/instances and the retired /api/v0/instances."""
    engine, auth, route = ctx.engine, ctx.auth, ctx.route

    @route("/api/v1/instances", ["GET"])
    async def list_v1(request: Request):
        auth(request)
        q = request.query_params
        try:
            limit = int(q.get("limit", "25"))
        except ValueError:
            raise ApiError(400, "Error in query parameters: limit must be an integer", code="invalid_request") from None
        limit = 5 if limit <= 0 else min(limit, 25)
        try:
            order_by = json.loads(q.get("order_by", '[{"col":"id","dir":"asc"}]'))
            select_cols = json.loads(q.get("select_cols", '["*"]'))
            filters = json.loads(q.get("select_filters", "{}"))
        except ValueError:
            raise ApiError(400, "Error in query parameters: not valid JSON", code="invalid_request") from None
        # filter and sort on the stored columns; render full rows only for the page (as an indexed DB would)
        insts = {int(i.id): i for i in engine.list("vast")}
        rows = [stored_columns(engine, i) for i in insts.values()]
        for col, cond in (filters or {}).items():
            if col in V1_COMPUTED or col not in V1_FILTERABLE:
                raise ApiError(400, f"Error in query parameters: {col} is not a valid search key",
                               code="invalid_request")
            if not isinstance(cond, dict) or set(cond) - OPS:
                raise ApiError(400, f"Error in query parameters: bad operator for {col}", code="invalid_request")
            rows = [x for x in rows if all(_match(x.get(col), op, t, col) for op, t in cond.items())]
        keys = []
        for ob in order_by or []:
            col = ob.get("col")
            if col not in V1_FILTERABLE and col not in ("start_date", "dph_total"):
                raise ApiError(400, f"Error in query parameters: invalid order column {col}", code="invalid_request")
            keys.append((col, ob.get("dir") == "desc"))
        keys.append(("id", False))
        for col, desc in reversed(keys):
            rows.sort(key=lambda x: (x.get(col) is None, x.get(col) if x.get(col) is not None else 0), reverse=desc)
        total = len(rows)
        label_counts: dict[str, int] = {}
        for x in rows:
            label_counts[x["label"] or ""] = label_counts.get(x["label"] or "", 0) + 1
        start = 0
        tok = q.get("after_token")
        if tok:
            try:
                after = json.loads(base64.urlsafe_b64decode(tok.encode()).decode())["values"]["pos"]
                start = int(after)
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "invalid pagination token", code="invalid_token") from None
        page = [instance_json(engine, insts[x["id"]]) for x in rows[start:start + limit]]
        nxt = None
        if start + limit < total:
            nxt = base64.urlsafe_b64encode(json.dumps({"values": {"pos": start + limit,
                                                                  "id": page[-1]["id"]}}).encode()).decode()
        if select_cols and select_cols != ["*"]:
            page = [{c: x.get(c) for c in select_cols} for x in page]
        return JSONResponse({"success": True, "instances_found": len(page), "total_instances": total,
                             "label_counts": label_counts, "next_token": nxt, "instances": page})

    @route("/api/v0/instances", ["GET"])
    async def list_v0(request: Request):
        auth(request)
        if engine.catalog.settings.get("vast_v0_list", "gone") == "gone":
            return JSONResponse({"success": False, "error": "deprecated_endpoint",
                                 "msg": "/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead."},
                                status_code=410)
        rows = [instance_json(engine, i) for i in engine.list("vast")]
        return JSONResponse({"instances_found": len(rows), "instances": rows})


def _add_manage_routes(ctx: _VastRoutes) -> None:
    """One instance: show, stop/start/label, destroy and change its bid."""
    engine, auth, route, body_json, lookup = ctx.engine, ctx.auth, ctx.route, ctx.body_json, ctx.lookup

    @route("/api/v0/instances/{iid}", ["GET"])
    async def show(iid: str, request: Request):
        auth(request)
        if not iid.isdigit():
            raise ApiError(400, "invalid instance_id", code="invalid_args")
        inst = engine.get(iid, "vast")
        return JSONResponse({"instances": instance_json(engine, inst) if inst else None})

    @route("/api/v0/instances/{iid}", ["PUT"])
    async def manage(iid: str, request: Request):
        auth(request)
        inst = lookup(iid)
        data = await body_json(request)
        try:
            req = VastManageInstance.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            raise ApiError(400, f"Invalid args: {'.'.join(map(str, first['loc']))}: {first['msg']}",
                           code="invalid_args") from None
        if req.state is None and req.label is None:
            raise ApiError(400, "Invalid args: one of state or label is required", code="invalid_args")
        if req.label is not None:
            inst.name = req.label
            engine._dirty = True
        if req.state == "stopped":
            await engine.stop(inst)
        elif req.state == "running":
            await engine.start(inst)
        return JSONResponse({"success": True})

    @route("/api/v0/instances/{iid}", ["DELETE"])
    async def destroy(iid: str, request: Request):
        auth(request)
        inst = lookup(iid)
        await engine.terminate(inst)
        return JSONResponse({"success": True, "msg": "Instance destroyed successfully"})

    @route("/api/v0/instances/bid_price/{iid}", ["PUT"])
    async def change_bid(iid: str, request: Request):
        auth(request)
        if not iid.isdigit():
            raise ApiError(400, "invalid instance_id", code="invalid_args")
        inst = engine.get(iid, "vast")
        if inst is None:  # this endpoint's own 404 shape (spec)
            raise ApiError(404, "Instance with that ID does not exist.", code="no_such_instance")
        try:
            req = VastChangeBid.model_validate(await body_json(request))
        except ValidationError as e:
            first = e.errors()[0]
            if first["loc"][:1] == ("price",):
                msg = "Please set a bid price >= 0.001." if first["type"] != "less_than_equal" else \
                    "Please set a bid price <= 32."
            else:
                msg = f"Invalid args: {'.'.join(map(str, first['loc']))}: {first['msg']}"
            raise ApiError(400, msg, code="invalid_args") from None
        if not inst.interruptible:
            raise ApiError(400, "Invalid args: instance is not interruptible", code="invalid_args")
        inst.bid = req.price
        inst.price_per_hour = req.price
        return JSONResponse({"success": True})


def _add_ssh_routes(ctx: _VastRoutes) -> None:
    """SSH keys: attached to one instance, and the account's own keys."""
    engine, auth, route, body_json = ctx.engine, ctx.auth, ctx.route, ctx.body_json
    ssh_key_body, lookup = ctx.ssh_key_body, ctx.lookup

    @route("/api/v0/instances/{iid}/ssh", ["POST"])
    async def attach_ssh(iid: str, request: Request):
        auth(request)
        inst = lookup(iid)
        req = ssh_key_body(await body_json(request))
        key = (req.ssh_key or "").strip()
        if not key:
            raise ApiError(400, "No ssh key provided", code="no_ssh_key")
        if key not in inst.keys:
            inst.keys.append(key)
        if not inst.api_only and engine.nodes.node_dir(inst.id).exists():
            engine.nodes.add_authorized_key(inst.id, key)
        return JSONResponse({"success": True, "msg": "SSH key attached successfully"})

    @route("/api/v0/instances/{iid}/ssh", ["GET"])
    async def list_instance_ssh(iid: str, request: Request):
        auth(request)
        inst = lookup(iid)
        # as the spec has it: the list is a JSON *string* under ssh_keys
        keys = [{"id": n + 1, "name": f"key-{n + 1}", "public_key": k} for n, k in enumerate(inst.keys)]
        return JSONResponse({"success": True, "ssh_keys": json.dumps(keys)})

    @route("/api/v0/ssh", ["GET"])
    async def list_keys(request: Request):
        auth(request)
        return JSONResponse([dict(k) for k in engine.vast_account_keys])

    @route("/api/v0/ssh", ["POST"])
    async def add_key(request: Request):
        auth(request)
        req = ssh_key_body(await body_json(request))
        key = (req.ssh_key or "").strip()
        if not key:
            raise ApiError(400, "No ssh key provided", code="no_ssh_key")
        for k in engine.vast_account_keys:
            if k["key"] == key:
                return JSONResponse({"success": True, "key": {"id": k["id"], "user_id": 4242, "public_key": key,
                                                              "created_at": k["created_at"], "deleted_at": None}})
        entry = {"id": next(engine._vast_key_ids), "user_id": 4242, "key": key,
                 "created_at": "2026-11-23T00:00:00Z", "deleted_at": None}
        engine.vast_account_keys.append(entry)
        # the OpenAPI: "The key will be automatically added to all your current instances" (new ones get
        # account keys at create); deleting it later removes it from the account only
        for inst in engine.list("vast"):
            if key not in inst.keys:
                inst.keys.append(key)
                if not inst.api_only and engine.nodes.node_dir(inst.id).exists():
                    engine.nodes.add_authorized_key(inst.id, key)
        return JSONResponse({"success": True, "key": {"id": entry["id"], "user_id": 4242, "public_key": key,
                                                      "created_at": entry["created_at"], "deleted_at": None}})

    @route("/api/v0/ssh/{key_id}", ["DELETE"])
    async def del_key(key_id: str, request: Request):
        auth(request)
        before = len(engine.vast_account_keys)
        engine.vast_account_keys = [k for k in engine.vast_account_keys if str(k["id"]) != key_id]
        if len(engine.vast_account_keys) == before:  # the spec answers an unknown key id with 400 no_ssh_key
            raise ApiError(400, "No ssh key provided", code="no_ssh_key")
        return JSONResponse({"success": True})


def _add_billing_routes(ctx: _VastRoutes) -> None:
    """Billing: /api/v0/charges."""
    engine, auth, route = ctx.engine, ctx.auth, ctx.route

    @route("/api/v0/charges", ["GET"])
    async def charges(request: Request):
        auth(request)
        q = request.query_params
        gte, lte, types = _charge_window(q.get("select_filters"))
        try:
            limit = min(500, max(1, int(q.get("limit", "100"))))
        except ValueError:
            raise ApiError(400, "Error in query parameters: limit must be an integer", code="invalid_request") from None
        rows = []
        if types is None or "instance" in types:  # the simulator has no volumes or serverless contracts
            for inst in engine.all_instances():
                entry = charge_entry(engine, inst, gte, lte) if inst.provider == "vast" else None
                if entry:
                    rows.append(entry)
        latest = q.get("latest_first", "true").lower() not in ("false", "0")
        rows.sort(key=lambda e: (e["start"], e["source"]), reverse=latest)
        start = 0
        if q.get("after_token"):
            try:
                start = int(json.loads(base64.urlsafe_b64decode(q["after_token"].encode()).decode())["values"]["pos"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "Invalid pagination token", code="invalid_token") from None
        page = rows[start:start + limit]
        nxt = None
        if start + limit < len(rows):
            nxt = base64.urlsafe_b64encode(json.dumps({"values": {"pos": start + limit}}).encode()).decode()
        return JSONResponse({"success": True, "count": len(page), "total": len(rows), "next_token": nxt,
                             "results": page})


def build_account_router(engine: Engine, auth) -> APIRouter:
    """The account and catalog reads the ``vastai`` CLI makes besides instances and offers."""
    r = APIRouter()

    def route(path: str, methods: list[str]):
        def deco(fn):
            r.add_api_route(path, fn, methods=methods)
            r.add_api_route(path + "/", fn, methods=methods, include_in_schema=False)
            return fn
        return deco

    @route("/api/v0/users/current", ["GET"])
    async def current_user(request: Request):
        auth(request)
        # the spec's fields (showUser), plus the ones the CLI reads: host_agreement_accepted decides whether
        # it shows host commands, credit is in its table; the API key itself is never returned
        balance = round(engine.balance_limit - engine.spent(), 4)
        keys = [k["key"] for k in engine.vast_account_keys]
        return JSONResponse({"id": 4242, "key_id": 1, "email": "sim@gpuops.invalid", "username": "gpuops-sim",
                             "fullname": "gpuops simulator", "balance": balance, "credit": balance,
                             "ssh_key": keys[-1] if keys else "", "sid": "sim", "host_agreement_accepted": False,
                             "has_billing": True, "can_pay": True, "email_verified": True})

    @route("/api/v0/gpu_names/unique", ["GET"])
    async def gpu_names(request: Request):
        # the CLI fetches this at every start, with no key (and no timeout) to build its --gpu-name choices
        names = sorted({m.gpu_name for m in engine.catalog.vast_machines.values()})
        return JSONResponse({"gpu_names": names})

    return r


# Vast's own one-word routes under /instances/ that the simulator does not serve: without these they would
# reach /instances/{id}/ and answer its 400 "invalid instance_id" instead of the 404 of an unknown route
UNSERVED_INSTANCE_ROUTES = ("filters", "pending-price-increases", "accept-price-increase", "reject-price-increase",
                            "bid_price", "reboot", "recycle", "command", "prepay", "balance", "request_logs",
                            "take_snapshot", "update_template")


def build_unserved_router() -> APIRouter:
    """Include before build_router, so these paths win over the {id} routes."""
    r = APIRouter()

    async def unserved(request: Request):
        raise ApiError(404, "not found", code="not_found")

    for word in UNSERVED_INSTANCE_ROUTES:
        for path in (f"/api/v0/instances/{word}", f"/api/v0/instances/{word}/"):
            r.add_api_route(path, unserved, methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
                            include_in_schema=False)
    return r
