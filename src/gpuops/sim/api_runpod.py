"""RunPod REST v2 (``/v2``) as the simulator serves it: pods, actions, GPU catalog, account SSH keys.

REST v1 (``/v1``, rest.runpod.io) was retired on 2026-11-15; the simulator answers it with 410 as the
vendor now does, so nothing can quietly keep depending on it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from .engine import Engine, Instance
from .errors import ApiError
from .schemas import RpCreatePodRequest, RpPodActionRequest, RpUpdatePodRequest, RpUpdateSshKeysRequest, pydantic_errors

STATUS = {"provisioning": "PROVISIONING", "starting": "STARTING", "running": "RUNNING", "exited": "EXITED",
          "error": "ERROR", "terminated": "TERMINATED"}
ACTIONS = {"RUNNING": ["stop", "restart", "terminate"], "EXITED": ["start", "terminate"],
           "ERROR": ["start", "terminate"], "PROVISIONING": ["stop", "terminate"], "STARTING": ["stop", "terminate"],
           "TERMINATED": []}
TITLES = {400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
          409: "Conflict", 410: "Gone", 422: "Unprocessable Entity", 429: "Too Many Requests",
          500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
NO_CAPACITY = ("There are no longer any instances available with the requested specifications. "
               "Please refresh and try again.")


def problem(status: int, detail: str, *, errors: list[str] | None = None, title: str | None = None,
            headers: dict | None = None) -> JSONResponse:
    body: dict[str, Any] = {"title": title or TITLES.get(status, "Error"), "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    h = {"RateLimit": '"minute";r=59;t=60',
         "RateLimit-Policy": '"minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400'}
    h.update(headers or {})
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=h)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_json(engine: Engine, inst: Instance) -> dict:
    status = STATUS[inst.phase]
    direct = None
    runtime = None
    running = inst.phase == "running" and not inst.pulling  # RUNNING while pulling: no runtime, no ssh yet
    has22 = "22/tcp" in inst.ports
    if running:
        ports = []
        for p in inst.ports:
            num, _, proto = p.partition("/")
            if num == "22" and proto == "tcp":
                ports.append({"private": 22, "public": inst.ssh_port, "type": "tcp", "ip": inst.ip})
            elif proto == "tcp":
                ports.append({"private": int(num), "public": None, "type": "tcp", "ip": inst.ip})
            else:
                ports.append({"private": int(num), "public": None, "type": proto, "ip": None})
        runtime = {"uptime": int(max(0, engine.clock.now() - (inst.started_at or engine.clock.now()))),
                   "gpus": [{"util": 0, "memoryUtil": 0} for _ in range(inst.gpu_count)],
                   "cpu": {"util": 1}, "memory": {"util": 3}, "ports": ports}
        if has22 and inst.ssh_port and inst.support_public_ip:
            user = engine.nodes.user
            direct = {"host": inst.ip, "port": inst.ssh_port, "username": user,
                      "command": f"ssh {user}@{inst.ip} -p {inst.ssh_port}"}
    proxy_user = f"{inst.id}-{inst.host_id}"
    body = {
        "id": inst.id, "name": inst.name, "image": inst.image, "args": inst.args, "disk": int(inst.disk_gb),
        "ports": list(inst.ports), "env": dict(inst.env), "registry": None, "status": status,
        "actions": ACTIONS[status], "mounts": inst.mounts,
        "gpu": {"id": inst.gpu_type, "count": inst.gpu_count}, "cloud": inst.cloud,
        "dataCenterId": inst.data_center, "cudaVersion": inst.cuda_version,
        "ssh": {"proxy": {"host": "ssh.runpod.io", "port": 22, "username": proxy_user,
                          "command": f"ssh {proxy_user}@ssh.runpod.io"},
                "direct": direct},
        "template": inst.template_id, "cost": inst.price_per_hour if inst.phase in ("provisioning", "starting",
                                                                                     "running") else 0.0,
        "locked": inst.locked, "globalNetworking": {"enabled": False}, "runtime": runtime,
        "createdAt": iso(inst.created_at), "startedAt": iso(inst.started_at),
    }
    return body


def _cuda_ok(t_versions: list[str], allowed: list[str] | None, minimum: str | None) -> str | None:
    def key(v: str) -> tuple[int, int]:
        a, _, b = v.partition(".")
        return int(a), int(b or 0)

    cands = sorted(t_versions, key=key, reverse=True)
    if allowed:
        cands = [v for v in cands if v in allowed]
    if minimum:
        cands = [v for v in cands if key(v) >= key(minimum)]
    return cands[0] if cands else None


def _manufacturer(name: str) -> str:
    """The v2 catalog's GpuManufacturer enum (the catalog YAML may say "Nvidia" as GraphQL does)."""
    up = (name or "").upper()
    return up if up in ("NVIDIA", "AMD") else "UNKNOWN"


BUCKETS = ("hour", "day", "week", "month", "year")


def parse_rfc3339(value: str, what: str) -> float:
    try:
        d = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{what} must be an RFC 3339 date-time, got {value!r}") from None
    if d.tzinfo is None:
        raise ApiError(400, f"{what} must carry a time zone (RFC 3339), got {value!r}")
    return d.timestamp()


def bucket_floor(ts: float, size: str) -> float:
    """Start of the UTC bucket holding ``ts`` (weeks start on Monday)."""
    d = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    if size == "hour":
        d = d.replace(minute=0, second=0, microsecond=0)
    else:
        d = d.replace(hour=0, minute=0, second=0, microsecond=0)
        if size == "week":
            d -= dt.timedelta(days=d.weekday())
        elif size == "month":
            d = d.replace(day=1)
        elif size == "year":
            d = d.replace(month=1, day=1)
    return d.timestamp()


def bucket_next(start: float, size: str) -> float:
    d = dt.datetime.fromtimestamp(start, dt.timezone.utc)
    if size in ("hour", "day", "week"):
        return start + {"hour": 3600, "day": 86400, "week": 7 * 86400}[size]
    if size == "month":
        return (d.replace(year=d.year + 1, month=1) if d.month == 12 else d.replace(month=d.month + 1)).timestamp()
    return d.replace(year=d.year + 1).timestamp()


def billing_window(q, now: float) -> tuple[float, float, str]:
    """(start, end, bucketSize) of a /v2/billing query: snapped to bucket boundaries as the spec says."""
    size = q.get("bucketSize", "day")
    if size not in BUCKETS:
        raise ApiError(400, f"bucketSize must be one of {', '.join(BUCKETS)}")
    if q.get("lastN") is not None:
        if q.get("startTime") or q.get("endTime"):
            raise ApiError(400, "lastN is mutually exclusive with startTime/endTime")
        try:
            n = int(q["lastN"])
        except ValueError:
            raise ApiError(400, "lastN must be an integer") from None
        if n < 1:
            raise ApiError(400, "lastN must be at least 1")
        end = bucket_next(bucket_floor(now, size), size)
        start = end
        for _ in range(n):
            start = bucket_floor(start - 1, size)
        return start, end, size
    start = parse_rfc3339(q["startTime"], "startTime") if q.get("startTime") else now - 30 * 86400
    end = parse_rfc3339(q["endTime"], "endTime") if q.get("endTime") else now
    if end <= start:
        raise ApiError(400, "endTime must be after startTime")
    start = bucket_floor(start, size)
    snapped = bucket_floor(end, size)
    return start, (end if snapped == end else bucket_next(snapped, size)), size


def pod_billing(engine: Engine, q) -> dict:
    """GET /v2/billing/pods: one record per pod per bucket with pod spend, from the simulator's ledger."""
    start, end, size = billing_window(q, engine.clock.now())
    pod_id = q.get("podId")
    records = []
    for inst in engine.all_instances():
        if inst.provider != "runpod" or (pod_id and inst.id != pod_id):
            continue
        buckets: dict[float, float] = {}
        for hour, (gpu, disk) in engine.usage_amounts(inst, start, end).items():
            b = bucket_floor(hour, size)
            buckets[b] = buckets.get(b, 0.0) + gpu + disk
        for b in sorted(buckets):
            amount = round(buckets[b], 6)
            records.append({"startTime": iso(b), "endTime": iso(bucket_next(b, size)), "podId": inst.id,
                            "totalAmount": amount, "gpuAmount": amount, "cpuAmount": 0.0, "diskAmount": 0.0})
    records.sort(key=lambda r: (r["startTime"], r["podId"]))
    total = round(sum(r["totalAmount"] for r in records), 6)
    return {"records": records, "metadata": {
        "query": {"startTime": iso(start), "endTime": iso(end), "bucketSize": size, "podId": pod_id},
        "recordCount": len(records), "uniquePodCount": len({r["podId"] for r in records}),
        "totals": {"totalAmount": total, "gpuAmount": total, "cpuAmount": 0.0, "diskAmount": 0.0}}}


async def _body_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise ApiError(422, "Request validation failed.", errors=["$: request body is required"])
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "request body is not valid JSON") from None


def _lookup(engine: Engine, pod_id: str) -> Instance:
    inst = engine.get(pod_id, "runpod")
    if inst is None:
        raise ApiError(404, "pod not found")
    return inst


@dataclass(frozen=True)
class _RunpodRoutes:
    """What every RunPod route group shares: the router, the engine, the auth check and the body helpers."""
    r: APIRouter
    engine: Engine
    auth: Callable[[Request], Any]
    body_json: Callable[[Request], Awaitable[Any]]
    lookup: Callable[[str], Instance]


def build_router(engine: Engine, auth) -> APIRouter:
    """The RunPod REST v2 routes, registered group by group in matching order."""
    r = APIRouter()
    ctx = _RunpodRoutes(r=r, engine=engine, auth=auth, body_json=_body_json,
                        lookup=lambda pod_id: _lookup(engine, pod_id))
    # FastAPI answers with the first route that matches: the groups keep the order the routes always had
    _add_pods_routes(ctx)
    _add_pod_routes(ctx)
    _add_pod_action_routes(ctx)
    _add_catalog_routes(ctx)
    _add_ssh_key_routes(ctx)
    _add_billing_routes(ctx)
    _add_retired_routes(ctx)
    return r


def _add_pods_routes(ctx: _RunpodRoutes) -> None:
    """The pod collection: list and create."""
    r, engine, auth, body_json = ctx.r, ctx.engine, ctx.auth, ctx.body_json

    @r.get("/v2/pods")
    async def list_pods(request: Request):
        auth(request)
        return JSONResponse({"pods": [pod_json(engine, i) for i in engine.list("runpod")]})

    @r.post("/v2/pods")
    async def create_pod(request: Request):
        auth(request)
        data = await body_json(request)
        try:
            req = RpCreatePodRequest.model_validate(data)
        except ValidationError as e:
            raise ApiError(422, "Request validation failed.", errors=pydantic_errors(e)) from None
        if not req.image and not req.templateId:  # the spec's if/then: a schema violation, so 422
            raise ApiError(422, "Request validation failed.", errors=["$: missing property 'image'"])
        if (req.gpu is None) == (req.cpu is None):
            raise ApiError(400, "exactly one of gpu or cpu must be set")
        if req.cpu is not None:
            raise ApiError(400, "CPU pods are not available in this region")
        if req.templateId:
            raise ApiError(404, f"template {req.templateId} not found")
        gpu = req.gpu
        if gpu.allowedCudaVersions and gpu.minCudaVersion:
            raise ApiError(400, "allowedCudaVersions and minCudaVersion are mutually exclusive")
        gtype = engine.runpod_gpu_type(gpu.id)
        if gtype is None:
            raise ApiError(400, f"gpu type '{gpu.id}' not found")
        if req.mounts and req.mounts.persistent and req.mounts.network:
            raise ApiError(400, "mounts.persistent and mounts.network are mutually exclusive")
        cloud = req.cloud.lower()
        if gpu.count > gtype.max_count.get(cloud, 0):
            raise ApiError(400, f"gpu count {gpu.count} exceeds the maximum of {gtype.max_count.get(cloud, 0)} for "
                                f"{gpu.id} on {req.cloud} cloud")
        unknown_dc = [d for d in (req.dataCenterIds or []) if d not in engine.catalog.runpod_data_centers]
        if unknown_dc:
            raise ApiError(422, "Request validation failed.",
                           errors=[f"$.dataCenterIds: unknown data center '{d}'" for d in unknown_dc])
        dcs = [d for d in gtype.data_centers if not req.dataCenterIds or d in req.dataCenterIds]
        cuda = _cuda_ok(gtype.cuda_versions, gpu.allowedCudaVersions, gpu.minCudaVersion)
        fault = engine.check_create_faults("runpod", req.name, gpu.id, gpu.id)
        if fault and fault.type == "insufficient_balance":
            raise ApiError(402, "insufficient balance: add funds to your account to create this pod")
        if engine.spent() >= engine.balance_limit:
            raise ApiError(402, "insufficient balance: add funds to your account to create this pod")
        if fault or not dcs or cuda is None:
            raise ApiError(400, NO_CAPACITY)
        env = dict(req.env or {})
        if req.startSsh and "PUBLIC_KEY" not in env and engine.runpod_account_keys:
            env["PUBLIC_KEY"] = "\n".join(engine.runpod_account_keys)
        keys = [k for k in env.get("PUBLIC_KEY", "").splitlines() if k.strip()]
        inst = Instance(
            id=engine.new_runpod_id(), provider="runpod", name=req.name, hardware=gtype.hardware,
            gpu_type=gtype.id, gpu_count=gpu.count, price_per_hour=round(gtype.price[cloud] * gpu.count, 4),
            image=req.image or "", created_at=engine.clock.now(), disk_gb=req.disk or 50,
            ports=list(req.ports or []), env=env, cloud=req.cloud, data_center=dcs[0], cuda_version=cuda,
            keys=keys, args=req.args or "", mounts=req.mounts.model_dump(exclude_none=True) if req.mounts else {},
            boot_seconds=engine.catalog.boot_seconds, machine_id=None,
            support_public_ip=cloud not in gtype.no_public_ip,  # the catalog's hosts without a public IP
        )
        engine._take_runpod_stock(inst)
        engine.add_instance(inst, offer=gpu.id)
        return JSONResponse(pod_json(engine, inst), status_code=201)


def _add_pod_routes(ctx: _RunpodRoutes) -> None:
    """One pod: read, update and delete."""
    r, engine, auth, body_json, lookup = ctx.r, ctx.engine, ctx.auth, ctx.body_json, ctx.lookup

    @r.get("/v2/pods/{pod_id}")
    async def get_pod(pod_id: str, request: Request):
        auth(request)
        return JSONResponse(pod_json(engine, lookup(pod_id)))

    @r.patch("/v2/pods/{pod_id}")
    async def update_pod(pod_id: str, request: Request):
        auth(request)
        inst = lookup(pod_id)
        data = await body_json(request)
        try:
            req = RpUpdatePodRequest.model_validate(data)
        except ValidationError as e:
            raise ApiError(422, "Request validation failed.", errors=pydantic_errors(e)) from None
        if req.name is not None:
            inst.name = req.name
        if req.image is not None:
            inst.image = req.image
        if req.args is not None:
            inst.args = req.args
        if req.disk is not None:
            inst.disk_gb = req.disk
        if req.ports is not None:
            inst.ports = list(req.ports)
        if req.env is not None:
            inst.env = dict(req.env)
        if req.locked is not None:
            inst.locked = req.locked
        engine._dirty = True
        return JSONResponse(pod_json(engine, inst))

    @r.delete("/v2/pods/{pod_id}")
    async def delete_pod(pod_id: str, request: Request):
        auth(request)
        await engine.terminate(lookup(pod_id))
        return Response(status_code=204)


def _add_pod_action_routes(ctx: _RunpodRoutes) -> None:
    """A pod's lifecycle actions: start, stop, restart, terminate."""
    r, engine, auth, body_json, lookup = ctx.r, ctx.engine, ctx.auth, ctx.body_json, ctx.lookup

    @r.post("/v2/pods/{pod_id}/action")
    async def pod_action(pod_id: str, request: Request):
        auth(request)
        inst = lookup(pod_id)
        data = await body_json(request)
        try:
            req = RpPodActionRequest.model_validate(data)
        except ValidationError as e:
            raise ApiError(422, "Request validation failed.", errors=pydantic_errors(e)) from None
        status = STATUS[inst.phase]
        if req.action not in ACTIONS[status]:
            raise ApiError(409, f"action '{req.action}' is not valid for a pod in status {status}")
        if req.action == "terminate":
            await engine.terminate(inst)
            return Response(status_code=204)
        if req.action == "stop":
            if inst.locked:
                raise ApiError(409, "pod is locked")
            await engine.stop(inst)
        elif req.action == "start":
            await engine.start(inst)
        elif req.action == "restart":
            await engine.restart(inst)
        return JSONResponse(pod_json(engine, inst))


def _add_catalog_routes(ctx: _RunpodRoutes) -> None:
    """The GPU catalog, with availability when asked for."""
    r, engine, auth = ctx.r, ctx.engine, ctx.auth

    @r.get("/v2/catalog/gpus")
    async def catalog_gpus(request: Request):
        auth(request)
        q = request.query_params
        include = [x for x in q.get("include", "").split(",") if x]
        product = [x for x in q.get("product", "").split(",") if x]
        if include and include != ["AVAILABILITY"]:
            raise ApiError(400, f"unsupported include value: {','.join(include)}")
        if ("AVAILABILITY" in include) != bool(product):
            raise ApiError(400, "product is required with include=AVAILABILITY, and valid only with it")
        try:
            count = int(q.get("count", "1"))
        except ValueError:
            raise ApiError(400, "count must be an integer") from None
        cloud_f = q.get("cloud")
        gpus = []
        for t in engine.catalog.runpod_gpu_types.values():
            g = {"id": t.id, "name": t.name, "pool": None, "manufacturer": _manufacturer(t.manufacturer),
                 "memory": t.memory_gb,
                 "secure": t.max_count.get("secure", 0) > 0, "community": t.max_count.get("community", 0) > 0,
                 "price": {"secure": t.price.get("secure", 0.0), "community": t.price.get("community", 0.0)},
                 "maxCount": {"secure": t.max_count.get("secure", 0), "community": t.max_count.get("community", 0)}}
            if "AVAILABILITY" in include:
                stock = engine.runpod_stock.get(t.id, {})
                clouds = [cloud_f.lower()] if cloud_f else ["secure", "community"]
                free = max((stock.get(c, 0) for c in clouds), default=0)
                level = "NONE" if free < count else ("LOW" if free < 2 * count else ("MEDIUM" if free < 6 * count
                                                                                     else "HIGH"))
                g["availability"] = level
                if level != "NONE":
                    g["dataCenters"] = [{"id": d, "name": d, "availability": level} for d in t.data_centers]
                g["cudaVersions"] = [{"version": v, "available": level != "NONE"} for v in t.cuda_versions]
            gpus.append(g)
        return JSONResponse({"gpus": gpus})


def _add_ssh_key_routes(ctx: _RunpodRoutes) -> None:
    """The account's SSH keys."""
    r, engine, auth, body_json = ctx.r, ctx.engine, ctx.auth, ctx.body_json

    @r.get("/v2/account/ssh-keys")
    async def get_keys(request: Request):
        auth(request)
        return JSONResponse({"keys": list(engine.runpod_account_keys)})

    @r.put("/v2/account/ssh-keys")
    async def put_keys(request: Request):
        auth(request)
        data = await body_json(request)
        try:
            req = RpUpdateSshKeysRequest.model_validate(data)
        except ValidationError as e:
            raise ApiError(422, "Request validation failed.", errors=pydantic_errors(e)) from None
        engine.runpod_account_keys = list(req.keys)
        return JSONResponse({"keys": list(engine.runpod_account_keys)})


def _add_billing_routes(ctx: _RunpodRoutes) -> None:
    """Per-pod billing records."""
    r, engine, auth = ctx.r, ctx.engine, ctx.auth

    @r.get("/v2/billing/pods")
    async def billing_pods(request: Request):
        auth(request)
        return JSONResponse(pod_billing(engine, request.query_params))


def _add_retired_routes(ctx: _RunpodRoutes) -> None:
    """REST v1, retired: every path answers 410."""
    r = ctx.r

    @r.api_route("/v1/{rest:path}", methods=["GET", "POST", "PATCH", "DELETE", "PUT"])
    async def v1_gone(rest: str, request: Request):
        raise ApiError(410, "REST API v1 was retired on 2026-11-15; use https://api.runpod.io/v2")
