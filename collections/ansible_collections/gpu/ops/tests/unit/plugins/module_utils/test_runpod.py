# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RunPod adapter at the HTTP level: REST v2 shapes, GraphQL for spot pods, error mapping."""

from __future__ import annotations

import pytest

from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError, OfferFilters
from ansible_collections.gpu.ops.plugins.module_utils.container_start import sshd_start_command
from ansible_collections.gpu.ops.plugins.module_utils.runpod import RunPodProvider, start_args
from ansible_collections.gpu.ops.tests.unit.plugins.module_utils.fake_api import FakeApi, Sleeps

KEY = "rpa_UNITTESTKEY0000"
CATALOG = {"gpus": [
    {"id": "NVIDIA GeForce RTX 4090", "name": "RTX 4090", "memory": 24, "price": {"secure": 0.69, "community": 0.34},
     "maxCount": {"secure": 8, "community": 4}},
    {"id": "NVIDIA A100 80GB PCIe", "name": "A100 PCIe", "memory": 80, "price": {"secure": 1.64, "community": 1.19},
     "maxCount": {"secure": 8, "community": 8}},
    {"id": "NVIDIA A100-SXM4-80GB", "name": "A100 SXM", "memory": 80, "price": {"secure": 1.89, "community": 1.39},
     "maxCount": {"secure": 8, "community": 8}},
]}


def pod(status="RUNNING", direct=True, env=None, **kw):
    p = {"id": "abc123def456gh", "name": "train-0", "status": status, "image": "img", "gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 1},
         "cost": 0.69, "env": env or {}, "dataCenterId": "EU-RO-1", "createdAt": "2026-11-23T10:00:00Z",
         "ssh": {"proxy": {"host": "ssh.runpod.io", "port": 22, "username": "abc-1"},
                 "direct": {"host": "1.2.3.4", "port": 40022, "username": "root", "command": "ssh"} if direct else None}}
    p.update(kw)
    return p


@pytest.fixture
def api():
    a = FakeApi().start()
    yield a
    a.stop()


def provider(api):
    return RunPodProvider(KEY, api.url + "/v2", api.url + "/graphql", sleep=Sleeps())


def test_no_key_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        RunPodProvider(None)
    assert "RUNPOD_API_KEY" in str(e.value)


def test_list_normalizes_pods_and_labels(api):
    env = {"GPUOPS_RUN_ID": "r1", "GPUOPS_OWNER": "alice", "GPUOPS_EXPIRES_AT": "2026-11-24T00:00:00Z",
           "GPUOPS_INTERRUPTIBLE": "1", "PUBLIC_KEY": "ssh-ed25519 AAAA"}
    api.add("GET", "/v2/pods", (200, {"pods": [pod(env=env), pod(id="p2", status="PROVISIONING", direct=False),
                                               pod(id="p3", status="EXITED", direct=False, cost=0.0)]}))
    a, b, c = provider(api).list()
    assert (a.status, a.ssh_host, a.ssh_port, a.ssh_user, a.gpu_model, a.interruptible) == \
        ("running", "1.2.3.4", 40022, "root", "RTX 4090", True)
    assert a.labels == {"run_id": "r1", "owner": "alice", "expires_at": "2026-11-24T00:00:00Z"}
    assert (b.status, b.ssh_host, b.ssh_ready_address) == ("pending", None, None)
    assert c.status == "stopped" and c.price_per_hour == 0.0
    assert len(api.requests) == 1  # one listing, no per-pod calls


def test_get_missing_pod_is_none(api):
    api.add("GET", "/v2/pods/gone", (404, {"title": "Not Found", "status": 404, "detail": "pod not found"}))
    assert provider(api).get("gone") is None


def test_401_says_the_key_was_rejected(api):
    api.add("GET", "/v2/pods", (401, {"title": "Unauthorized", "status": 401, "detail": "invalid api key"}))
    with pytest.raises(http.ApiError) as e:
        provider(api).list()
    assert e.value.category == http.AUTH and e.value.message.startswith("RunPod API key rejected")
    assert KEY not in e.value.message


def test_create_body_follows_create_pod_request(api):
    api.add("POST", "/v2/pods", (201, pod(status="PROVISIONING", direct=False)))
    spec = {"name": "train-0", "image": "img", "gpu_type": "NVIDIA GeForce RTX 4090", "gpu_count": 2, "disk_gb": 30,
            "ports": ["8888/http"], "env": {"A": "1"}, "public_key": "ssh-ed25519 AAAA k", "cloud_type": "COMMUNITY",
            "data_centers": ["EU-RO-1"], "min_cuda_version": "12.4",
            "labels": {"run_id": "r1", "owner": "bob", "expires_at": "2026-11-24T00:00:00Z"}}
    inst = provider(api).create(spec)
    assert inst.status == "pending"
    body = api.calls("POST", "/v2/pods")[0]["body"]
    gpu = {"id": "NVIDIA GeForce RTX 4090", "count": 2, "minCudaVersion": "12.4"}
    assert body == {"name": "train-0", "image": "img", "gpu": gpu,
                    "cloud": "COMMUNITY", "ports": ["8888/http", "22/tcp"], "startSsh": True, "disk": 30,
                    "dataCenterIds": ["EU-RO-1"], "args": sshd_start_command(),
                    "env": {"A": "1", "PUBLIC_KEY": "ssh-ed25519 AAAA k", "GPUOPS_RUN_ID": "r1", "GPUOPS_OWNER": "bob",
                            "GPUOPS_EXPIRES_AT": "2026-11-24T00:00:00Z"}}


@pytest.mark.parametrize("spec,args", [
    ({"image": "pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime"}, "ours"),  # no sshd in the image: ours starts it
    ({"image": "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"}, None),  # a template starts its own
    ({"image": "img", "args": "bash -c 'my start'"}, "bash -c 'my start'"),  # the user's own start command wins
])
def test_the_start_command_brings_sshd_to_images_that_lack_it(spec, args):
    got = start_args(spec)
    assert got == (sshd_start_command() if args == "ours" else args)
    if args == "ours":
        assert "openssh-server" in got and "${PUBLIC_KEY:-}" in got and "authorized_keys" in got


def test_no_capacity_and_insufficient_balance_are_categorized(api):
    api.add("POST", "/v2/pods", (400, {"title": "Bad Request", "status": 400, "detail": "There are no longer any "
                                       "instances available with the requested specifications. Please refresh and try again."}),
            (402, {"title": "Payment Required", "status": 402, "detail": "insufficient balance"}))
    p = provider(api)
    spec = {"name": "a", "image": "i", "gpu_type": "g"}
    with pytest.raises(http.ApiError) as e:
        p.create(spec)
    assert e.value.category == http.NO_CAPACITY
    with pytest.raises(http.ApiError) as e:
        p.create(spec)
    assert e.value.category == http.INSUFFICIENT_FUNDS


def test_lost_create_answer_is_reconciled_by_name(api):
    api.add("POST", "/v2/pods", (504, "gateway timeout"))
    api.add("GET", "/v2/pods", (200, {"pods": [pod(name="train-0", status="PROVISIONING", direct=False)]}))
    inst = provider(api).create({"name": "train-0", "image": "i", "gpu_type": "g"})
    assert inst.id == "abc123def456gh"
    assert len(api.calls("POST", "/v2/pods")) == 1  # adopted, not created twice


def test_ambiguous_500_is_looked_up_and_retried_then_a_failed_lookup_stops_everything(api):
    api.add("POST", "/v2/pods", (500, {"title": "Internal Server Error", "status": 500,
                                       "detail": "Something went wrong"}), (201, pod(id="p9")))
    api.add("GET", "/v2/pods", (200, {"pods": []}))
    inst = provider(api).create({"name": "train-0", "image": "i", "gpu_type": "g"})
    assert inst.id == "p9" and len(api.calls("POST", "/v2/pods")) == 2  # looked, found nothing, created once

    api.requests.clear()
    api.add("POST", "/v2/pods", (500, {"title": "x", "status": 500, "detail": "Something went wrong"}))
    api.add("GET", "/v2/pods", (500, {"title": "x", "status": 500, "detail": "down"}))
    with pytest.raises(http.AmbiguousError) as e:
        provider(api).create({"name": "train-1", "image": "i", "gpu_type": "g"})
    assert e.value.details["lookup_failed"] is True and "looking for 'train-1' afterwards failed" in e.value.message
    assert len(api.calls("POST", "/v2/pods")) == 1


def test_resolve_gpu_type(api):
    api.add("GET", "/v2/catalog/gpus", (200, CATALOG))
    p = provider(api)
    assert p.resolve_gpu_type("4090") == "NVIDIA GeForce RTX 4090"
    assert p.resolve_gpu_type("nvidia geforce rtx 4090") == "NVIDIA GeForce RTX 4090"
    assert p.resolve_gpu_type("A100 SXM") == "NVIDIA A100-SXM4-80GB"
    with pytest.raises(ConfigError) as e:
        p.resolve_gpu_type("A100")
    assert "ambiguous" in e.value.message and "A100 80GB PCIe" in e.value.message
    with pytest.raises(ConfigError) as e:
        p.resolve_gpu_type("RTX 4909")
    assert "unknown RunPod GPU type 'RTX 4909'" in e.value.message and "RTX 4090" in e.value.message
    assert len(api.calls("GET", "/v2/catalog/gpus")) == 1  # cached


def test_find_offers_from_the_catalog(api):
    def avail(req):
        cloud = req["query"]["cloud"]
        gpus = []
        for g in CATALOG["gpus"]:
            g = dict(g, availability="HIGH" if cloud == "SECURE" or "4090" in g["id"] else "NONE",
                     dataCenters=[{"id": "US-TX-3", "availability": "HIGH"}, {"id": "EU-RO-1", "availability": "LOW"}],
                     cudaVersions=[{"version": "12.4", "available": True}, {"version": "12.8", "available": True}])
            gpus.append(g)
        return (200, {"gpus": gpus})
    api.add("GET", "/v2/catalog/gpus", avail)
    offers = provider(api).find_offers(OfferFilters(gpu=["4090"], gpu_count=2, regions=["RO"]))
    assert sorted((o.cloud_type, o.price_per_hour, tuple(o.data_centers)) for o in offers) == [
        ("COMMUNITY", 0.68, ("EU-RO-1",)), ("SECURE", 1.38, ("EU-RO-1",))]
    q = api.requests[0]["query"]
    assert q["include"] == "AVAILABILITY" and q["product"] == "POD" and q["count"] == "2"


def test_spot_pod_goes_through_graphql(api):
    def gql(req):
        assert "podRentInterruptable" in req["body"]["query"]
        inp = req["body"]["variables"]["input"]
        assert inp["bidPerGpu"] == 0.2 and inp["gpuTypeId"] == "NVIDIA GeForce RTX 4090" and inp["ports"] == "22/tcp"
        env = {e["key"]: e["value"] for e in inp["env"]}
        assert env["GPUOPS_INTERRUPTIBLE"] == "1" and env["PUBLIC_KEY"] == "ssh-ed25519 AAAA"
        return (200, {"data": {"podRentInterruptable": {"id": "spot1", "desiredStatus": "RUNNING"}}})
    api.add("POST", "/graphql", gql)
    api.add("GET", "/v2/pods/spot1", (200, pod(id="spot1", status="STARTING", direct=False,
                                               env={"GPUOPS_INTERRUPTIBLE": "1"})))
    inst = provider(api).create({"name": "s", "image": "i", "gpu_type": "NVIDIA GeForce RTX 4090", "interruptible": True,
                                 "bid_per_gpu": 0.2, "public_key": "ssh-ed25519 AAAA"})
    assert inst.id == "spot1" and inst.interruptible and inst.status == "pending"


def test_graphql_business_errors_at_http_200(api):
    api.add("POST", "/graphql", (200, {"data": {"podRentInterruptable": None}, "errors": [{
        "message": "There are no longer any instances available with the requested specifications. Please refresh "
                   "and try again.", "path": ["podRentInterruptable"]}]}))
    with pytest.raises(http.ApiError) as e:
        provider(api).create({"name": "s", "image": "i", "gpu_type": "g", "interruptible": True, "bid_per_gpu": 0.2})
    assert e.value.category == http.NO_CAPACITY and "podRentInterruptable" in e.value.message


def test_terminate_is_idempotent(api):
    api.add("DELETE", "/v2/pods/p1", (204, None))
    api.add("DELETE", "/v2/pods/p2", (404, {"title": "Not Found", "status": 404, "detail": "pod not found"}))
    p = provider(api)
    assert p.terminate("p1") is True
    assert p.terminate("p2") is False


def test_stop_and_start_use_the_action_endpoint(api):
    api.add("POST", "/v2/pods/abc123def456gh/action", (200, pod(status="EXITED", direct=False)))
    p = provider(api)
    inst = p.to_instance(pod())
    assert p.stop(inst).status == "stopped"
    assert api.requests[-1]["body"] == {"action": "stop"}
