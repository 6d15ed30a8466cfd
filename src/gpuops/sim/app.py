"""The simulator's ASGI app: RunPod REST v2 + GraphQL, Vast, and the admin API under ``/_sim``."""

from __future__ import annotations

import collections
import hmac
import json
import os
import time
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import api_graphql, api_runpod, api_vast, instance_keys
from .api_runpod import problem
from .engine import Engine, Instance
from .errors import ApiError, SimConfigError
from .faults import parse_faults


RATE_LIMIT_HEADERS = [(b"ratelimit", b'"minute";r=59;t=60'),
                      (b"ratelimit-policy", b'"minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400')]


def api_of(path: str) -> str | None:
    if path.startswith("/v2") or path.startswith("/v1"):
        return "runpod"
    if path.startswith("/graphql"):
        return "graphql"
    if path.startswith("/api/"):
        return "vast"
    return None


def render_error(api: str | None, err: ApiError) -> Response:
    if api == "graphql":
        return JSONResponse({"errors": [{"message": err.message, "extensions": {"code": err.code or "ERROR"}}]},
                            status_code=err.status, headers=err.headers)
    if api == "vast":
        if err.status == 429:
            if err.extra.get("json"):  # the other shape Vast uses for 429 (and its spec shows)
                return JSONResponse({"detail": err.message}, status_code=429, headers=err.headers)
            return PlainTextResponse(err.message, status_code=429, headers=err.headers)
        body = {"success": False, "error": err.code or ("server_error" if err.status >= 500 else "invalid_args"),
                "msg": err.message, **err.extra}
        return JSONResponse(body, status_code=err.status, headers=err.headers)
    return problem(err.status, err.message, errors=err.errors, title=err.title, headers=err.headers)


class Recorder:
    """Counts and keeps the recent API requests (for tests: zero-call cache checks, spec contracts)."""

    def __init__(self, maxlen: int = 20000):
        self.seq = 0
        self.requests: collections.deque = collections.deque(maxlen=maxlen)
        self.counts: collections.Counter = collections.Counter()

    def reset(self) -> None:
        self.requests.clear()
        self.counts.clear()

    def stats(self) -> dict:
        per_api: collections.Counter = collections.Counter()
        for (api, _), n in self.counts.items():
            per_api[api] += n
        return {"total": sum(per_api.values()), "per_api": dict(per_api),
                "per_endpoint": {f"{api} {ep}": n for (api, ep), n in sorted(self.counts.items())}}


async def _swallow(msg) -> None:
    """An ASGI send that drops the response (the answer a client never gets)."""


def fault_error(api: str, fault) -> ApiError:
    """The vendor-shaped error of a 5xx or endpoint_gone request fault."""
    if fault.type == "endpoint_gone":
        if api == "vast":
            return ApiError(410, "this endpoint is deprecated and no longer available", code="deprecated_endpoint")
        return ApiError(410, "This endpoint has been retired.", title="Gone")
    return ApiError(fault.status, "upstream service temporarily unavailable", code="server_error")


class SimMiddleware:
    """Pure ASGI: count, inject request-level faults, record request and response status."""

    def __init__(self, app, engine: Engine, recorder: Recorder):
        self.app = app
        self.engine = engine
        self.rec = recorder

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        api = api_of(path)
        if api is None:
            return await self.app(scope, receive, send)
        method = scope["method"]
        self.rec.counts[(api, f"{method} {path}")] += 1
        chunks: list[bytes] = []

        async def recv():
            msg = await receive()
            if msg["type"] == "http.request":
                chunks.append(msg.get("body", b""))
            return msg

        status_box = [0]

        async def snd(msg):
            if msg["type"] == "http.response.start":
                status_box[0] = msg["status"]
                if api == "runpod" and path.startswith("/v2"):
                    # v2 sends its quota headers on every authenticated answer, not only on 429s (spec)
                    names = {k.lower() for k, _ in msg.get("headers", [])}
                    extra = [(k, v) for k, v in RATE_LIMIT_HEADERS if k.lower() not in names]
                    if extra:
                        msg = dict(msg, headers=list(msg.get("headers", [])) + extra)
            await send(msg)

        fault = self.engine.faults.take_request_fault(api, method, path)
        if fault is not None and fault.applied:
            # the backend acts on the request, then the answer is lost to a 5xx on the way back
            await self.app(scope, recv, _swallow)
            await render_error(api, fault_error(api, fault))(scope, recv, snd)
        elif fault is not None:
            # drain the body so the recorder sees it, then answer with the fault
            while True:
                m = await recv()
                if m["type"] != "http.request" or not m.get("more_body"):
                    break
            if fault.type == "endpoint_gone":
                err = fault_error(api, fault)
            elif fault.type == "rate_limit":
                headers = {}
                if api in ("runpod", "graphql") and fault.retry_after is not None:
                    headers["Retry-After"] = str(int(fault.retry_after) if float(fault.retry_after).is_integer()
                                                 else fault.retry_after)
                if api == "vast":
                    err = ApiError(429, "API requests too frequent endpoint threshold=1.0",
                                   extra={"json": True} if fault.body == "json" else None)
                else:
                    err = ApiError(429, "rate limit exceeded for the minute window", headers=headers)
            else:
                err = fault_error(api, fault)
            resp = render_error(api, err)
            await resp(scope, recv, snd)
        else:
            await self.app(scope, recv, snd)
        body: Any = b"".join(chunks)
        try:
            body = json.loads(body) if body else None
        except ValueError:
            body = body.decode("utf-8", "replace")
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        query = scope.get("query_string", b"").decode()
        # how the caller authenticated (never the key itself): for spec checks of the security scheme
        if headers.get("authorization", "").lower().startswith("bearer "):
            auth = "bearer"
        elif "api_key=" in query:
            auth = "query"
        else:
            auth = None
        self.rec.seq += 1
        self.rec.requests.append({
            "seq": self.rec.seq, "api": api, "method": method, "path": path,
            "query": query, "content_type": headers.get("content-type"), "auth": auth,
            "body": body, "status": status_box[0], "fault": fault.type if fault else None, "t": time.time(),
        })


def create_app(engine: Engine, keys: dict[str, str], admin_token: str, on_shutdown=None) -> FastAPI:  # noqa: C901
    app = FastAPI(title="gpuops-sim", docs_url=None, redoc_url=None, openapi_url=None)
    recorder = Recorder()
    app.state.engine = engine
    app.state.recorder = recorder

    def _key_from(request: Request, allow_query: bool) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        if allow_query:
            return request.query_params.get("api_key")
        return None

    def _ok(given: str | None, want: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), want.encode())

    def _instance_key_ok(request: Request, api: str, provider: str, given: str | None) -> bool:
        """True for an instance's own key used on its own instance; 403 for one used anywhere else."""
        inst = engine.instance_by_key(given) if given else None
        if inst is None or inst.provider != provider:
            return False
        path = request.url.path
        if instance_keys.target_instance(api, request.method, path) != inst.id:
            raise ApiError(403, instance_keys.refusal(api, inst.id, request.method, path),
                           code="forbidden" if api == "vast" else "FORBIDDEN")
        return True

    def auth_runpod(request: Request) -> None:
        given = _key_from(request, allow_query=False)
        if not given:
            raise ApiError(401, "missing bearer token")
        if not _ok(given, keys["runpod"]) and not _instance_key_ok(request, "runpod", "runpod", given):
            raise ApiError(401, "invalid api key")

    def auth_graphql(request: Request) -> None:
        given = _key_from(request, allow_query=True)
        if not _ok(given, keys["runpod"]) and not _instance_key_ok(request, "graphql", "runpod", given):
            raise ApiError(401, "Unauthorized request, please check your API key.", code="UNAUTHENTICATED")

    def auth_vast(request: Request) -> None:
        given = _key_from(request, allow_query=True)
        if not _ok(given, keys["vast"]) and not _instance_key_ok(request, "vast", "vast", given):
            raise ApiError(401, "Invalid user key", code="auth_error")

    def auth_admin(request: Request) -> None:
        if not _ok(_key_from(request, allow_query=False), admin_token):
            raise ApiError(401, "admin token required")

    app.include_router(api_runpod.build_router(engine, auth_runpod))
    app.include_router(api_graphql.build_router(engine, auth_graphql))
    app.include_router(api_vast.build_unserved_router())
    app.include_router(api_vast.build_router(engine, auth_vast))
    app.include_router(api_vast.build_account_router(engine, auth_vast))

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError):
        return render_error(api_of(request.url.path), err)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError):
        return render_error(api_of(request.url.path), ApiError(422, "Request validation failed.",
                                                               errors=[str(e.get("msg")) for e in err.errors()]))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException):
        # a path no route serves: 404 in the shape of the API its prefix names (problem+json elsewhere)
        if err.status_code == 404:
            return render_error(api_of(request.url.path), ApiError(404, "not found", code="not_found"))
        return render_error(api_of(request.url.path),
                            ApiError(err.status_code, str(err.detail), code=str(err.detail).lower().replace(" ", "_"),
                                     headers=getattr(err, "headers", None)))

    # ------------------------------------------------------------------ admin API
    @app.get("/_sim/health")
    async def health():
        return {"ok": True, "pid": os.getpid(), "instances": len(engine.instances)}

    @app.get("/_sim/status")
    async def status(request: Request):
        auth_admin(request)
        return {"instances": engine.status()}

    @app.get("/_sim/ledger")
    async def ledger(request: Request):
        auth_admin(request)
        return engine.ledger()

    @app.get("/_sim/faults")
    async def get_faults(request: Request):
        auth_admin(request)
        return {"faults": engine.faults.to_list()}

    @app.post("/_sim/faults")
    async def add_faults(request: Request):
        auth_admin(request)
        raw = (await request.body()).decode()
        try:
            doc = yaml.safe_load(raw) if raw.strip() else None
            faults = parse_faults(doc, "faults")
        except yaml.YAMLError as e:
            raise ApiError(400, f"faults: invalid YAML: {getattr(e, 'problem', e)}") from None
        except SimConfigError as e:
            raise ApiError(400, str(e)) from None
        if request.query_params.get("replace") in ("1", "true"):
            engine.faults.clear()
        engine.faults.add(faults)
        engine.apply_gpu_faults_to_running(faults)
        return {"added": [f.to_dict() for f in faults], "faults": engine.faults.to_list()}

    @app.delete("/_sim/faults")
    async def clear_faults(request: Request):
        auth_admin(request)
        engine.faults.clear()
        return {"faults": []}

    @app.post("/_sim/clock")
    async def clock(request: Request):
        auth_admin(request)
        data = await request.json()
        engine.advance_clock(float(data.get("advance", 0)))
        return {"offset": engine.clock.offset, "now": engine.clock.now()}

    @app.get("/_sim/stats")
    async def stats(request: Request):
        auth_admin(request)
        return recorder.stats()

    @app.post("/_sim/stats/reset")
    async def stats_reset(request: Request):
        auth_admin(request)
        recorder.reset()
        return recorder.stats()

    @app.get("/_sim/requests")
    async def requests_(request: Request):
        auth_admin(request)
        since = int(request.query_params.get("since", "0"))
        return {"requests": [r for r in recorder.requests if r["seq"] > since], "seq": recorder.seq}

    @app.get("/_sim/instances/{iid}")
    async def instance_detail(iid: str, request: Request):
        auth_admin(request)
        # destroyed ones too (the ledger keeps them): tests ask where a run's instances were
        inst = engine.instances.get(iid) or next((t for t in reversed(engine.tombstones) if t.id == iid), None)
        if inst is None:
            raise ApiError(404, f"no instance {iid}")
        d = inst.public()
        d["node_dir"] = str(engine.nodes.node_dir(iid))
        d["home"] = str(engine.nodes.home(iid))
        d["processes"] = [] if inst.api_only else engine.nodes.processes(iid)
        d["cost"] = engine.cost_of(inst)
        return d

    @app.post("/_sim/bulk")
    async def bulk(request: Request):
        """Create many API-only instances (no sshd behind them), for inventory scale tests."""
        auth_admin(request)
        data = await request.json()
        provider = data.get("provider")
        if provider not in ("runpod", "vast"):
            raise ApiError(400, "provider must be runpod or vast")
        count = int(data.get("count", 1))
        prefix = data.get("name_prefix", "bulk-")
        # what a client would have set at create time: pod env (both providers), Vast label text after the name
        env = {str(k): str(v) for k, v in (data.get("env") or {}).items()}
        suffix = str(data.get("label_suffix") or "")
        made = []
        rp_types = list(engine.catalog.runpod_gpu_types.values())
        machines = list(engine.catalog.vast_machines.values())
        for n in range(count):
            if provider == "runpod":
                t = rp_types[n % len(rp_types)]
                inst = Instance(id=engine.new_runpod_id(), provider="runpod", name=f"{prefix}{n}", hardware=t.hardware,
                                gpu_type=t.id, gpu_count=1, price_per_hour=t.price["secure"], image="bulk",
                                created_at=engine.clock.now(), ports=["22/tcp"], api_only=True,
                                data_center=t.data_centers[0], cuda_version=t.cuda_versions[-1], env=dict(env))
            else:
                m = machines[n % len(machines)]
                inst = Instance(id=engine.new_vast_id(), provider="vast", name=f"{prefix}{n}{suffix}", hardware=m.hardware,
                                gpu_type=m.gpu_name, gpu_count=m.num_gpus, price_per_hour=m.dph_total, image="bulk",
                                created_at=engine.clock.now(), machine_id=m.machine_id, api_only=True,
                                runtype="ssh_direct", storage_cost=m.storage_cost, env=dict(env))
            if data.get("status") in ("exited", "provisioning", "starting"):
                engine.add_instance(inst)
                inst.phase = data["status"]
                inst.ssh_port = inst.proxy_port = None
            else:
                engine.add_instance(inst)
            made.append(inst.id)
        return {"created": made}

    @app.post("/_sim/shutdown")
    async def shutdown(request: Request):
        auth_admin(request)
        result = await engine.shutdown()
        if on_shutdown:
            on_shutdown()
        return result

    app.add_middleware(SimMiddleware, engine=engine, recorder=recorder)
    return app
