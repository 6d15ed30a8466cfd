"""Spec contract: the simulator's requests and answers against the vendors' own OpenAPI files.

The simulator's schemas (src/gpuops/sim/schemas.py) are written from the specs but do not read them (the
product must not need ../shared at run time). This suite keeps them from drifting, in three ways:

1. every request the simulator *accepted* (recorded by it, GET /_sim/requests) is valid for the spec;
2. every answer it gave (status, headers, body) is one the spec allows for that operation;
3. tables of request bodies: what the spec rejects, the simulator rejects with the vendor's validation
   error, and what the spec accepts, the simulator does not reject as invalid.

The specs are vendored in ../shared/reference/specs (always present in CI). Without them every test here
is skipped with a message saying so (fixture ``specs_dir``).

Where a vendor spec disagrees with the documented real behaviour (../shared/reference/provider-apis.md),
the simulator follows the real behaviour and the exception is listed in ``EXCEPTIONS`` with its reason;
each exception is applied by name below, so an unused or undocumented one cannot hide anything else.
"""

from __future__ import annotations

import copy
import json
import urllib.parse
from functools import lru_cache
from pathlib import Path

import pytest
import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from simapi import Api, cheapest_vast_offer, pod_body

pytestmark = pytest.mark.spec

RUNPOD_HOST = "https://api.runpod.io"
VAST_HOST = "https://console.vast.ai"

# Deviations from the vendored specs that are deliberate, each with its reason (provider-apis.md section).
EXCEPTIONS = {
    "vast-trailing-slash":
        "Vast paths end with '/' on the real API and in the SDK/CLI (§2.1); the spec lists them without it.",
    "vast-env-object":
        "PUT /asks: the SDK sends env as an object {'-p 22:22': '1', 'K': 'V'}; the spec types it as a Docker-flag "
        "string. The simulator accepts both (§2.4).",
    "vast-runtype-combos":
        "PUT /asks: the SDK sends space-separated runtypes with the historical spelling ('ssh_direc ssh_proxy'); "
        "the spec enum has single values only (§2.4).",
    "vast-sdk-nulls":
        "PUT /asks: the SDK sends every key, unset ones as null (price, template_hash_id, ...); the spec types "
        "them without null (§2.4).",
    "vast-on-demand":
        "POST /bundles: the CLI, SDK and the spec's own example send type 'on-demand'; the spec enum spells it "
        "'ondemand' (§2.3).",
    "vast-order-pairs":
        "POST /bundles: the spec puts minItems/maxItems 2 on the outer 'order' array instead of on each "
        "[field, dir] pair; the CLI sends one pair (§2.3).",
    "vast-v0-show-types":
        "GET /instances/{id}: the v0 spec types 'ports' as an int array and 'extra_env' as a string array; the "
        "real answer (and the v1 list spec) has ports {'22/tcp': [{HostIp, HostPort}]} and [[K, V]] pairs (§2.5).",
    "vast-show-null":
        "GET /instances/{id}: an unknown or destroyed id answers {'instances': null}, which the SDK reads as not "
        "found (§2.5); the spec does not allow null.",
    "vast-429-text":
        "Vast 429 bodies are plain text 'API requests too frequent ...' on the real API (§2.2); the spec shows a "
        "JSON {'detail'} body for some endpoints.",
    "vast-401-status":
        "A bad Vast key answers 401 {'success': false, 'error': 'auth_error', 'msg': 'Invalid user key'} "
        "(§2.1); the bundles spec documents 404 for it, others 401.",
    "vast-5xx":
        "Injected 5xx faults are not in the Vast spec (it lists no 5xx); they are the far side failing (§2.2).",
    "vast-insufficient-credit":
        "PUT /asks: 'insufficient_credit' is observed (§2.4) but missing from the spec's 400 error enum.",
    "vast-api-key-query":
        "Vast also takes the key as ?api_key= (§2.1); the spec lists Bearer only.",
    "runpod-port-format":
        "POST/PATCH /pods: the simulator rejects ports that are not 'port/protocol' (the spec's description of "
        "the field) with 422; the spec itself has no pattern for them.",
}

# Vast endpoints the simulator serves that are not in the vendored spec at all (validated elsewhere).
VAST_NOT_IN_SPEC = {("GET", "/api/v0/bundles"): "GET with ?q= is documented at vast.ai/developers, not in the spec",
                    ("GET", "/api/v0/instances"): "the deprecated v0 list (410) is gone from the spec"}


# ---------------------------------------------------------------------------------------------- loading
@lru_cache(maxsize=None)
def _load(path: str) -> OpenAPI:
    text = Path(path).read_text()
    # RFC 9457 bodies are JSON under their own media type
    config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
    return OpenAPI.from_dict(json.loads(text) if path.endswith(".json") else yaml.safe_load(text), config=config)


@pytest.fixture
def runpod_spec(specs_dir) -> OpenAPI:
    return _load(str(specs_dir / "runpod-v2-openapi.json"))


@pytest.fixture
def vast_spec(specs_dir) -> OpenAPI:
    return _load(str(specs_dir / "vast-openapi.yaml"))


def _errors(exc: Exception) -> str:
    """The schema errors under an openapi-core exception, one line each (the values themselves are long)."""
    msgs: list[str] = []
    cause: BaseException | None = exc
    while cause is not None:
        for err in getattr(cause, "schema_errors", None) or ():
            path = "/".join(str(p) for p in getattr(err, "absolute_path", []))
            msgs.append(f"{path or '$'}: {err.message[:300]}")
        cause = cause.__cause__
    return "; ".join(dict.fromkeys(msgs)) or f"{type(exc).__name__}: {str(exc)[:500]}"


# ---------------------------------------------------------------------------------------------- exchanges
class Exchange:
    """One request as the client sent it and the simulator's answer."""

    def __init__(self, resp: requests.Response):
        self.resp = resp
        p = resp.request
        u = urllib.parse.urlsplit(p.url)
        self.method = p.method.lower()
        self.path = u.path
        self.query = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        body = p.body
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = dict(p.headers)

    def __repr__(self) -> str:
        return f"{self.method.upper()} {self.path} -> {self.resp.status_code}"


def recording(api: Api) -> list[Exchange]:
    log: list[Exchange] = []
    api.s.hooks["response"].append(lambda r, *a, **k: log.append(Exchange(r)))
    return log


def _mock_request(host: str, method: str, path: str, query: dict, body: bytes | None, content_type: str | None,
                  auth: str | None) -> MockRequest:
    headers = {}
    if auth == "bearer":
        headers["Authorization"] = "Bearer sim-key-redacted"  # the recorder keeps the scheme, not the key
    return MockRequest(host, method, path, args=query, headers=headers, data=body or None,
                       content_type=content_type or "application/json")


def _vast_path(path: str) -> str:
    # EXCEPTIONS["vast-trailing-slash"]
    return path.rstrip("/") or "/"


def _vast_body_for_spec(method: str, path: str, body):
    """Apply the documented Vast exceptions to a request body before validating it against the spec."""
    if not isinstance(body, dict):
        return body
    b = copy.deepcopy(body)
    if method == "put" and path.startswith("/api/v0/asks/"):
        for k in [k for k, v in b.items() if v is None]:  # EXCEPTIONS["vast-sdk-nulls"]
            del b[k]
        if isinstance(b.get("env"), dict):  # EXCEPTIONS["vast-env-object"]
            b["env"] = " ".join(f"{k}" if k.startswith("-p ") else f"-e {k}={v}" for k, v in b["env"].items())
        if isinstance(b.get("runtype"), str) and " " in b["runtype"] or b.get("runtype") in (
                "ssh_direc", "jupyter_direc"):  # EXCEPTIONS["vast-runtype-combos"]
            b["runtype"] = b["runtype"].split()[0].replace("_direc", "_direct").replace("_directt", "_direct")
    if method == "post" and path.startswith("/api/v0/bundles"):
        if b.get("type") == "on-demand":  # EXCEPTIONS["vast-on-demand"]
            b["type"] = "ondemand"
        if isinstance(b.get("order"), list) and len(b["order"]) != 2:  # EXCEPTIONS["vast-order-pairs"]
            del b["order"]
    return b


def _vast_response_for_spec(method: str, path: str, status: int, data: bytes) -> bytes:
    if method == "get" and status == 200 and path.startswith("/api/v0/instances/") and path.count("/") == 4:
        body = json.loads(data)
        if isinstance(body.get("instances"), dict):  # EXCEPTIONS["vast-v0-show-types"]
            body["instances"].pop("ports", None)
            body["instances"].pop("extra_env", None)
        return json.dumps(body).encode()
    return data


def _vast_skip_response(x: Exchange) -> str | None:
    st = x.resp.status_code
    if st == 429 and x.resp.headers.get("content-type", "").startswith("text/plain"):
        return "vast-429-text"
    if st == 401:
        return "vast-401-status"
    if st >= 500:
        return "vast-5xx"
    if st == 200 and x.method == "get" and x.path.startswith("/api/v0/instances/") and x.path.count("/") == 5 \
            and x.resp.json() == {"instances": None}:
        return "vast-show-null"
    if st == 400 and x.resp.json().get("error") == "insufficient_credit":
        return "vast-insufficient-credit"
    return None


def validate_response(spec: OpenAPI, host: str, x: Exchange, *, vast: bool = False) -> None:
    path = _vast_path(x.path) if vast else x.path
    body = x.body
    if vast and body:
        try:
            body = json.dumps(_vast_body_for_spec(x.method, path, json.loads(body))).encode()
        except ValueError:
            pass
    auth = "bearer" if x.headers.get("Authorization", "").startswith("Bearer ") else None
    req = _mock_request(host, x.method, path, x.query, body, x.headers.get("Content-Type"), auth)
    data = x.resp.content
    if vast:
        data = _vast_response_for_spec(x.method, path, x.resp.status_code, data)
    ctype = x.resp.headers.get("content-type", "").split(";")[0] or None
    resp = MockResponse(data, status_code=x.resp.status_code, headers=dict(x.resp.headers),
                        content_type=ctype if data else None)
    try:
        spec.validate_response(req, resp)
    except Exception as e:  # noqa: BLE001 - report any validation failure with its cause
        pytest.fail(f"{x}: answer not allowed by the vendor spec: {_errors(e)}\nbody: {x.resp.text[:1500]}")


def validate_recorded_request(spec: OpenAPI, host: str, rec: dict, *, vast: bool = False) -> None:
    path = _vast_path(rec["path"]) if vast else rec["path"]
    body = rec["body"]
    if vast:
        body = _vast_body_for_spec(rec["method"].lower(), path, body)
    data = json.dumps(body).encode() if body is not None and not isinstance(body, str) else (
        body.encode() if isinstance(body, str) else None)
    query = dict(urllib.parse.parse_qsl(rec["query"], keep_blank_values=True))
    auth = rec.get("auth")
    if vast and auth == "query":  # EXCEPTIONS["vast-api-key-query"]
        auth = "bearer"
        query.pop("api_key", None)
    req = _mock_request(host, rec["method"].lower(), path, query, data, rec["content_type"], auth)
    try:
        spec.validate_request(req)
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"the simulator accepted a request the vendor spec rejects: {rec['method']} {rec['path']}"
                    f"?{rec['query']} body={json.dumps(rec['body'])[:800]}: {_errors(e)}")


def spec_accepts_request(spec: OpenAPI, host: str, method: str, path: str, body) -> tuple[bool, str]:
    req = _mock_request(host, method, path, {}, json.dumps(body).encode(), "application/json", "bearer")
    try:
        spec.validate_request(req)
        return True, ""
    except Exception as e:  # noqa: BLE001
        return False, _errors(e)


def recorded_since(sim, seq: int, api: str) -> list[dict]:
    return [r for r in sim.client.requests(seq)["requests"] if r["api"] == api]


def test_exceptions_are_all_documented():
    # every exception names its reason; an empty reason would make the list meaningless
    assert all(len(reason) > 40 for reason in EXCEPTIONS.values())


# ---------------------------------------------------------------------------------------------- RunPod v2
def test_runpod_v2_requests_and_answers_match_spec(sim, sim_faults, rp, runpod_spec, uid):
    log = recording(rp)
    seq = sim.client.requests()["seq"]
    noauth = Api(rp.base, "")
    noauth.s.headers.pop("Authorization")
    log_noauth = recording(noauth)

    rp.get("/pods")
    full = pod_body(f"ct-{uid}", sim.pubkey, env={"PUBLIC_KEY": sim.pubkey, "A": "b"}, disk=20, args="",
                    cloud="SECURE", dataCenterIds=["US-TX-3", "EU-RO-1"], startSsh=True, startJupyter=False,
                    globalNetworking=False, mounts={"persistent": {"size": 20, "path": "/workspace"}})
    full["gpu"]["allowedCudaVersions"] = ["12.4", "12.8"]
    r = rp.post("/pods", json=full)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    sim.client.wait_until(lambda: rp.get(f"/pods/{pid}").json()["status"] == "RUNNING", 20, "running")
    rp.get(f"/pods/{pid}")
    rp.patch(f"/pods/{pid}", json={"name": f"ct2-{uid}", "env": {"A": "c"}, "locked": False})
    rp.post(f"/pods/{pid}/action", json={"action": "stop"})
    rp.get(f"/pods/{pid}")
    rp.post(f"/pods/{pid}/action", json={"action": "stop"})  # 409
    rp.post(f"/pods/{pid}/action", json={"action": "start"})
    rp.get("/pods")
    rp.get("/catalog/gpus")
    rp.get("/catalog/gpus", params={"include": "AVAILABILITY", "product": "POD", "count": 2, "cloud": "SECURE"})
    rp.get("/catalog/gpus", params={"include": "AVAILABILITY"})  # 400
    keys = rp.get("/account/ssh-keys").json()["keys"]
    rp.put("/account/ssh-keys", json={"keys": keys})
    rp.get("/billing/pods", params={"podId": pid, "bucketSize": "day"})
    rp.get("/billing/pods", params={"lastN": 3, "bucketSize": "hour"})
    rp.get("/billing/pods", params={"bucketSize": "fortnight"})  # 400
    # errors
    rp.get("/pods/nosuchpod00000")  # 404
    rp.post("/pods", json={**pod_body("x"), "bogus": True})  # 422
    rp.post("/pods", json={**pod_body("x"), "gpu": {"id": "NVIDIA L40S"}, "cloud": "COMMUNITY"})  # 400 capacity
    noauth.get("/pods")  # 401
    sim_faults.add_faults("faults: [{type: rate_limit, api: runpod, endpoint: 'GET /v2/pods', count: 1, "
                          "retry_after: 2}, {type: server_error, api: runpod, endpoint: 'GET /v2/catalog/*', "
                          "status: 503}]")
    rp.get("/pods")  # 429
    rp.get("/catalog/gpus")  # 503 (spec: default)
    sim_faults.clear_faults()
    rp.post(f"/pods/{pid}/action", json={"action": "terminate"})  # 204
    r2 = rp.post("/pods", json=pod_body(f"ct-{uid}-b", sim.pubkey))
    rp.delete(f"/pods/{r2.json()['id']}")  # 204
    rp.delete(f"/pods/{r2.json()['id']}")  # 404

    statuses = {x.resp.status_code for x in log + log_noauth}
    assert {200, 201, 204, 400, 401, 404, 409, 422, 429, 503} <= statuses, statuses
    for x in log + log_noauth:
        validate_response(runpod_spec, RUNPOD_HOST, x)

    recs = recorded_since(sim, seq, "runpod")
    accepted = [r for r in recs if 200 <= r["status"] < 300]
    assert len(accepted) >= 15
    for rec in accepted:
        validate_recorded_request(runpod_spec, RUNPOD_HOST, rec)


# Request bodies for POST /v2/pods: (body, spec_valid). The capacity-free L40S community pool makes every
# spec-valid body end in 400 "no capacity" (or 404 template) instead of a pod, so the table is cheap.
_BASE = {"name": "t", "image": "img", "gpu": {"id": "NVIDIA L40S", "count": 1}, "cloud": "COMMUNITY"}
CREATE_TABLE = [
    (_BASE, True),
    ({**_BASE, "ports": ["22/tcp", "8888/http"], "env": {"K": "V"}, "disk": 1, "args": "--x", "registry": None,
      "dataCenterIds": [], "startSsh": True, "startJupyter": True, "globalNetworking": False}, True),
    ({**_BASE, "mounts": {"persistent": {"size": 10, "path": "/workspace"}}}, True),
    ({**_BASE, "mounts": {"network": [{"volumeId": "vol_x", "path": "/v"}]}}, True),
    ({**_BASE, "gpu": {"id": "NVIDIA L40S", "allowedCudaVersions": ["12.4"]}}, True),
    ({**_BASE, "gpu": {"id": "NVIDIA L40S", "minCudaVersion": "12.1"}}, True),
    ({**_BASE, "gpu": {"id": "NVIDIA L40S", "allowedCudaVersions": [], "minCudaVersion": "12.1"}}, True),
    ({"name": "t", "image": "img", "cpu": {"id": "cpu5c", "vcpuCount": 4}}, True),
    ({"name": "t", "templateId": "tpl123", "gpu": {"id": "NVIDIA L40S"}}, True),
    ({k: v for k, v in _BASE.items() if k != "name"}, False),
    ({**_BASE, "name": ""}, False),
    ({k: v for k, v in _BASE.items() if k != "image"}, False),  # image required unless templateId
    ({**_BASE, "bogus": 1}, False),
    ({**_BASE, "gpu": {"id": "NVIDIA L40S", "bogus": 1}}, False),
    ({**_BASE, "gpu": {"count": 1}}, False),
    ({**_BASE, "gpu": {"id": "NVIDIA L40S", "count": 0}}, False),
    ({**_BASE, "gpu": {"id": "NVIDIA L40S", "count": "1"}}, False),
    ({**_BASE, "gpu": {"id": "NVIDIA L40S", "allowedCudaVersions": ["12"]}}, False),
    ({**_BASE, "gpu": {"id": "NVIDIA L40S", "minCudaVersion": "twelve"}}, False),
    ({**_BASE, "cloud": "ALL"}, False),
    ({**_BASE, "env": {"K": 1}}, False),
    ({**_BASE, "env": ["K=V"]}, False),
    ({**_BASE, "ports": "22/tcp"}, False),
    ({**_BASE, "disk": 0}, False),
    ({**_BASE, "startSsh": "yes"}, False),
    ({**_BASE, "dataCenterIds": "US-TX-3"}, False),
    ({**_BASE, "mounts": {"persistent": {"size": 5, "path": "/w"}}}, False),  # upstream floor: 10 GB
    ({**_BASE, "mounts": {"persistent": {"size": 20}}}, False),
    ({**_BASE, "mounts": {"network": [{"volumeId": "a", "path": "/a"}, {"volumeId": "b", "path": "/b"}]}}, False),
    ({**_BASE, "mounts": {"other": {}}}, False),
    ({"name": "t", "image": "img", "cpu": {"vcpuCount": 4}}, False),
    ({"name": "t", "image": "img", "cpu": {"id": "cpu5c", "vcpuCount": 1}}, False),
    ({"name": "t", "image": "img", "cpu": {"id": "cpu5c"}}, False),
    ({"name": "t", "templateId": "", "gpu": {"id": "NVIDIA L40S"}}, False),
]


@pytest.mark.parametrize("body,spec_valid", CREATE_TABLE, ids=[f"{'ok' if v else 'bad'}{i}"
                                                              for i, (_, v) in enumerate(CREATE_TABLE)])
def test_runpod_create_body_validation_agrees_with_spec(rp, runpod_spec, body, spec_valid):
    ok, why = spec_accepts_request(runpod_spec, RUNPOD_HOST, "post", "/v2/pods", body)
    assert ok == spec_valid, f"table is wrong about the spec: {why}"
    r = rp.post("/pods", json=body)
    assert r.status_code != 201, "table bodies must not create pods"
    if spec_valid:
        assert r.status_code != 422, f"simulator rejects a spec-valid body: {r.text}"
    else:
        assert r.status_code == 422, f"simulator accepts a body the spec rejects ({why}): {r.status_code} {r.text}"
        assert r.json()["errors"], r.text


PATCH_TABLE = [
    ({"name": "n"}, True), ({"locked": True, "env": {"A": "b"}, "image": "i2", "disk": 5, "args": "x"}, True),
    ({"ports": ["22/tcp"]}, True), ({"globalNetworking": False}, True), ({}, True),
    ({"name": ""}, False), ({"locked": "no"}, False), ({"bogus": 1}, False), ({"disk": 0}, False),
    ({"env": {"A": 2}}, False), ({"ports": "22/tcp"}, False),
]


def test_runpod_patch_and_action_bodies_agree_with_spec(sim, rp, runpod_spec, uid, cleanup):
    r = rp.post("/pods", json=pod_body(f"ct-{uid}", sim.pubkey))
    pid = r.json()["id"]
    cleanup("runpod", pid)
    for body, spec_valid in PATCH_TABLE:
        ok, why = spec_accepts_request(runpod_spec, RUNPOD_HOST, "patch", f"/v2/pods/{pid}", body)
        assert ok == spec_valid, (body, why)
        r = rp.patch(f"/pods/{pid}", json=body)
        assert (r.status_code == 200) == spec_valid, (body, r.status_code, r.text)
        if not spec_valid:
            assert r.status_code == 422, r.text
    rp.patch(f"/pods/{pid}", json={"locked": False})
    for body, spec_valid in [({"action": "explode"}, False), ({}, False), ({"action": "stop", "x": 1}, False),
                             ({"action": 1}, False)]:
        ok, _ = spec_accepts_request(runpod_spec, RUNPOD_HOST, "post", f"/v2/pods/{pid}/action", body)
        assert ok == spec_valid
        assert rp.post(f"/pods/{pid}/action", json=body).status_code == 422
    for body, spec_valid in [({"keys": []}, True), ({"keys": ["ssh-ed25519 AAAA c"]}, True), ({}, False),
                             ({"keys": ["nope"]}, False), ({"keys": "ssh-ed25519 AAAA"}, False)]:
        ok, _ = spec_accepts_request(runpod_spec, RUNPOD_HOST, "put", "/v2/account/ssh-keys", body)
        assert ok == spec_valid, body
        if not spec_valid:
            assert rp.put("/account/ssh-keys", json=body).status_code == 422


def test_runpod_port_format_is_stricter_than_spec(rp, runpod_spec):
    """EXCEPTIONS['runpod-port-format']: the one place the simulator is deliberately stricter."""
    body = {**_BASE, "ports": ["22"]}
    assert spec_accepts_request(runpod_spec, RUNPOD_HOST, "post", "/v2/pods", body)[0]
    assert rp.post("/pods", json=body).status_code == 422


# ---------------------------------------------------------------------------------------------- Vast
def test_vast_requests_and_answers_match_spec(sim, sim_faults, vast, vast_spec, uid, tmp_path):
    log = recording(vast)
    seq = sim.client.requests()["seq"]
    bad = Api(vast.base, "wrong-key")
    log_bad = recording(bad)

    r = vast.post("/api/v0/ssh/", json={"ssh_key": sim.pubkey})
    assert r.status_code == 200
    vast.get("/api/v0/ssh/")
    vast.post("/api/v0/ssh/", json={"ssh_key": ""})  # 400 no_ssh_key
    spare = vast.post("/api/v0/ssh/", json={"ssh_key": f"ssh-ed25519 AAAAspare{uid} spare"}).json()["key"]["id"]
    vast.delete(f"/api/v0/ssh/{spare}/")
    vast.delete(f"/api/v0/ssh/{spare}/")  # 400 no_ssh_key
    offer = cheapest_vast_offer(vast)
    vast.post("/api/v0/bundles/", json={"gpu_name": {"in": ["RTX 4090", "RTX A6000"]}, "num_gpus": {"gte": 1},
                                        "verified": {"eq": True}, "rentable": {"eq": True}, "rented": {"eq": False},
                                        "order": [["dph_total", "asc"]], "type": "bid", "limit": 5,
                                        "allocated_storage": 20})
    vast.post("/api/v0/bundles/", json={"nope": {"eq": 1}})  # 400
    body = {"image": "vastai/base-image:cuda-12.4", "label": f"ct-{uid}", "disk": 20, "runtype": "ssh_direct",
            "env": "-p 22:22 -e TZ=UTC", "onstart": "touch ~/.no_auto_tmux", "target_state": "running",
            "cancel_unavail": True}
    r = vast.put(f"/api/v0/asks/{offer['id']}/", json=body)
    assert r.status_code == 200, r.text
    now = int(sim.client.advance(0)["now"])
    vast.get("/api/v0/charges/", params={"select_filters": json.dumps({"day": {"gte": now - 86400, "lte": now + 60},
                                                                       "type": {"in": ["instance"]}}),
                                         "limit": 5, "latest_first": "true"})
    vast.get("/api/v0/charges/", params={"select_filters": json.dumps({"type": {"in": ["instance"]}})})  # 400
    iid = r.json()["new_contract"]
    try:
        vast.put(f"/api/v0/asks/{offer['id']}/", json=body)  # 410
        vast.put("/api/v0/asks/999999/", json=body)  # 404
        vast.put("/api/v0/asks/999999/", json={**body, "runtype": "teleport"})  # 400
        vast.get(f"/api/v0/instances/{iid}/")
        sim.client.wait_until(lambda: vast.get(f"/api/v0/instances/{iid}/").json()["instances"]["actual_status"]
                              == "running", 20, "running")
        vast.get("/api/v1/instances/", params={"limit": 25, "order_by": json.dumps([{"col": "id", "dir": "asc"}]),
                                               "select_filters": json.dumps({"label": {"eq": f"ct-{uid}"}})})
        vast.get("/api/v1/instances/", params={"select_cols": json.dumps(["id", "label"]), "limit": 2})
        vast.get("/api/v1/instances/", params={"select_filters": json.dumps({"dph_total": {"lte": 1}})})  # 400
        vast.get("/api/v1/instances/", params={"after_token": "bogus"})  # 400 invalid_token
        vast.put(f"/api/v0/instances/{iid}/", json={"label": f"ct-{uid}-x"})
        vast.put(f"/api/v0/instances/{iid}/", json={})  # 400
        vast.put("/api/v0/instances/1/", json={"label": "x"})  # 404
        vast.post(f"/api/v0/instances/{iid}/ssh/", json={"ssh_key": sim.pubkey})
        vast.get(f"/api/v0/instances/{iid}/ssh/")
        vast.post(f"/api/v0/instances/{iid}/ssh/", json={"ssh_key": ""})  # 400
        vast.post("/api/v0/instances/1/ssh/", json={"ssh_key": sim.pubkey})  # 404
        vast.put(f"/api/v0/instances/{iid}/", json={"state": "stopped"})
        vast.get(f"/api/v0/instances/{iid}/")
        vast.get("/api/v0/instances/abc/")  # 400
        bad.get("/api/v1/instances/")  # 401
        bad.post("/api/v0/bundles/", json={})  # 401 (spec: 404)
        sim_faults.add_faults("faults: [{type: rate_limit, api: vast, endpoint: 'GET /api/v1/instances', "
                              "count: 1}, {type: server_error, api: vast, endpoint: 'GET /api/v0/ssh', count: 1}]")
        vast.get("/api/v1/instances/")  # 429 text
        sim_faults.add_faults("faults: [{type: rate_limit, api: vast, body: json, endpoint: 'GET /api/v0/instances/*',"
                              " count: 1}]")
        vast.get(f"/api/v0/instances/{iid}/")  # 429 JSON, as the spec shows it
        vast.get("/api/v0/ssh/")  # 503
    finally:
        vast.delete(f"/api/v0/instances/{iid}/", json={})
    vast.delete(f"/api/v0/instances/{iid}/")  # 404
    vast.delete("/api/v0/instances/abc/")  # 400
    vast.get(f"/api/v0/instances/{iid}/")  # instances: null

    statuses = {x.resp.status_code for x in log + log_bad}
    assert {200, 400, 401, 404, 410, 429, 503} <= statuses, statuses
    skipped = set()
    for x in log + log_bad:
        if (x.method.upper(), _vast_path(x.path)) in VAST_NOT_IN_SPEC:
            continue
        why = _vast_skip_response(x)
        if why:
            assert why in EXCEPTIONS
            skipped.add(why)
            continue
        validate_response(vast_spec, VAST_HOST, x, vast=True)
    # each exception used here was really needed, so the list cannot grow stale silently
    assert skipped == {"vast-429-text", "vast-401-status", "vast-5xx", "vast-show-null"}, skipped

    recs = recorded_since(sim, seq, "vast")
    accepted = [r for r in recs if 200 <= r["status"] < 300
                and (r["method"], _vast_path(r["path"])) not in VAST_NOT_IN_SPEC]
    assert len(accepted) >= 12
    for rec in accepted:
        validate_recorded_request(vast_spec, VAST_HOST, rec, vast=True)


def test_vast_sdk_shaped_create_is_valid_after_documented_exceptions(sim, vast, vast_spec, uid, cleanup):
    """The SDK's create body (env object, runtype combo, nulls) against the spec, with the exceptions applied."""
    offer = cheapest_vast_offer(vast)
    body = {"client_id": "me", "image": "vastai/base-image:@vastai-automatic-tag",
            "env": {"-p 22:22": "1", "TZ": "UTC"}, "price": None, "disk": 10, "label": f"ct-{uid}", "extra": None,
            "onstart": "touch ~/.no_auto_tmux", "image_login": None, "python_utf8": False, "lang_utf8": False,
            "use_jupyter_lab": False, "jupyter_dir": None, "force": False, "cancel_unavail": False,
            "template_hash_id": None, "user": None, "runtype": "ssh_direc ssh_proxy"}
    ok, why = spec_accepts_request(vast_spec, VAST_HOST, "put", f"/api/v0/asks/{offer['id']}", body)
    assert not ok, "the raw SDK body is expected to violate the spec (else drop the exceptions)"
    fixed = _vast_body_for_spec("put", f"/api/v0/asks/{offer['id']}", body)
    ok, why = spec_accepts_request(vast_spec, VAST_HOST, "put", f"/api/v0/asks/{offer['id']}", fixed)
    assert ok, why
    r = vast.put(f"/api/v0/asks/{offer['id']}/", json=body)
    assert r.status_code == 200, r.text
    cleanup("vast", r.json()["new_contract"])


ASK_TABLE = [
    ({"image": "img"}, True),
    ({"image": "img", "label": "l", "disk": 20.5, "runtype": "ssh_proxy", "target_state": "stopped",
      "price": 0.2, "env": "-p 22:22", "cancel_unavail": True, "onstart": "x", "args": ["a"], "args_str": "a",
      "vm": False, "use_jupyter_lab": False, "python_utf8": True, "lang_utf8": True, "force": False}, True),
    ({"label": "l"}, False),  # image required
    ({"image": "img", "runtype": "teleport"}, False),
    ({"image": "img", "target_state": "paused"}, False),
    ({"image": "img", "price": 0.0001}, False),
    ({"image": "img", "price": 500}, False),
    ({"image": "img", "price": "0.2"}, False),
    ({"image": "img", "disk": "20"}, False),
    ({"image": "img", "label": 5}, False),
    ({"image": "img", "onstart": ["x"]}, False),
    ({"image": "img", "cancel_unavail": "yes"}, False),
    ({"image": "img", "args": "a b"}, False),
]


@pytest.mark.parametrize("body,spec_valid", ASK_TABLE, ids=[f"{'ok' if v else 'bad'}{i}"
                                                           for i, (_, v) in enumerate(ASK_TABLE)])
def test_vast_create_body_validation_agrees_with_spec(vast, vast_spec, body, spec_valid):
    # ask 999999 does not exist: a body that passes validation ends in 404 no_such_ask, never in a rental
    ok, why = spec_accepts_request(vast_spec, VAST_HOST, "put", "/api/v0/asks/999999", body)
    assert ok == spec_valid, f"table is wrong about the spec: {why}"
    r = vast.put("/api/v0/asks/999999/", json=body)
    if spec_valid:
        assert r.status_code == 404 and "no_such_ask" in r.json()["msg"], r.text
    else:
        assert r.status_code == 400 and r.json()["error"] in ("invalid_args", "invalid_price"), \
            f"simulator accepts a body the spec rejects ({why}): {r.status_code} {r.text}"


def test_vast_manage_and_key_bodies_agree_with_spec(sim, vast, vast_spec):
    iid = sim.client.bulk("vast", 1, name_prefix="ctm-")[0]
    try:
        for body, spec_valid in [({"label": "x"}, True), ({"state": "running"}, True),
                                 ({"state": "paused"}, False), ({"label": "x" * 1025}, False), ({"label": 3}, False),
                                 ({"state": 1}, False)]:
            ok, why = spec_accepts_request(vast_spec, VAST_HOST, "put", f"/api/v0/instances/{iid}", body)
            assert ok == spec_valid, (body, why)
            r = vast.put(f"/api/v0/instances/{iid}/", json=body)
            assert (r.status_code == 200) == spec_valid, (body, r.text)
        for body, spec_valid in [({"client_id": "me", "price": 0.2}, True), ({"price": 0.2}, False),
                                 ({"client_id": "me", "price": 40}, False), ({"client_id": "me"}, False)]:
            ok, why = spec_accepts_request(vast_spec, VAST_HOST, "put", f"/api/v0/instances/bid_price/{iid}", body)
            assert ok == spec_valid, (body, why)
            if not spec_valid:
                r = vast.put(f"/api/v0/instances/bid_price/{iid}/", json=body)
                assert r.status_code == 400 and r.json()["error"] == "invalid_args", (body, r.text)
        for body, spec_valid in [({"ssh_key": "ssh-ed25519 AAAA x"}, True), ({}, False), ({"ssh_key": 5}, False)]:
            ok, why = spec_accepts_request(vast_spec, VAST_HOST, "post", "/api/v0/ssh", body)
            assert ok == spec_valid, (body, why)
            if not spec_valid:
                assert vast.post("/api/v0/ssh/", json=body).status_code == 400
    finally:
        vast.delete(f"/api/v0/instances/{iid}/")
