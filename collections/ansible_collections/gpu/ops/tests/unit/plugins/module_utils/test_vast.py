# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Vast adapter at the HTTP level: v1 pagination, SSH pairs, create body, error mapping."""

from __future__ import annotations

import json

import pytest

from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils.provider import OfferFilters
from ansible_collections.gpu.ops.plugins.module_utils.vast import VastProvider, docker_env, normalize_status
from ansible_collections.gpu.ops.tests.unit.plugins.module_utils.fake_api import FakeApi, Sleeps

KEY = "vast_UNITTESTKEY0000"


def row(i, **kw):
    r = {"id": i, "label": "n-%d;run_id=r1;owner=al" % i, "actual_status": "running", "intended_status": "running",
         "public_ipaddr": "10.0.0.%d\n" % (i % 250), "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "4%04d" % i}]},
         "ssh_host": "ssh4.vast.ai", "ssh_port": 20000 + i, "image_runtype": "ssh ssh_direc ssh_proxy",
         "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.31, "is_bid": False, "start_date": 1764000000.5,
         "geolocation": "Texas, US", "image_uuid": "img", "status_msg": None}
    r.update(kw)
    return r


@pytest.fixture
def api():
    a = FakeApi().start()
    yield a
    a.stop()


def provider(api, **kw):
    return VastProvider(KEY, api.url, ssh_user=kw.pop("ssh_user", "root"), sleep=Sleeps(), **kw)


def test_list_follows_next_token_through_every_page(api):
    rows = [row(i) for i in range(1, 61)]

    def page(req):
        q = req["query"]
        assert q["limit"] == "25" and json.loads(q["order_by"]) == [{"col": "id", "dir": "asc"}]
        start = int(q.get("after_token", "0"))
        chunk = rows[start:start + 25]
        nxt = str(start + 25) if start + 25 < len(rows) else None
        return (200, {"success": True, "instances_found": len(chunk), "total_instances": len(rows), "next_token": nxt,
                      "instances": chunk})
    api.add("GET", "/api/v1/instances/", page)
    insts = provider(api).list()
    assert [i.id for i in insts] == [str(i) for i in range(1, 61)]
    assert len(api.requests) == 3
    assert [r["query"].get("after_token") for r in api.requests] == [None, "25", "50"]


def test_list_stops_on_a_repeated_token(api):
    api.add("GET", "/api/v1/instances/", (200, {"success": True, "next_token": "same", "instances": [row(1)]}))
    assert len(provider(api).list()) == 2  # first page + the page of "same", then the loop guard stops
    assert len(api.requests) == 2


def test_direct_ssh_pair_is_stripped_and_never_mixed(api):
    p = provider(api, ssh_user="me")
    inst = p.to_instance(row(7))
    assert (inst.ssh_host, inst.ssh_port, inst.ssh_user) == ("10.0.0.7", 40007, "me")
    assert inst.name == "n-7" and inst.labels == {"run_id": "r1", "owner": "al"}
    assert inst.created_at == "2025-11-24T16:00:00Z"
    # running with a direct runtype but no 22/tcp mapping yet: no SSH, and never ssh_host with a direct port
    inst = p.to_instance(row(8, ports={}))
    assert inst.ssh_host is None and inst.ssh_port is None
    # a proxy-only instance: the proxy pair, whole
    inst = p.to_instance(row(9, ports=None, image_runtype="ssh ssh_proxy"))
    assert (inst.ssh_host, inst.ssh_port) == ("ssh4.vast.ai", 20009)
    # not running yet: nothing
    inst = p.to_instance(row(10, actual_status="loading", ports=None))
    assert inst.status == "pending" and inst.ssh_host is None


@pytest.mark.parametrize("actual,intended,msg,status", [
    (None, "running", None, "pending"), ("loading", "running", None, "pending"), ("running", "running", None, "running"),
    ("exited", "stopped", None, "stopped"), ("stopped", "running", None, "stopped"), ("exited", "running", None, "error"),
    ("offline", "running", None, "error"), ("unknown", "running", None, "error"),
    ("created", "running", "OCI runtime create failed: x", "error"),
])
def test_status_normalization(actual, intended, msg, status):
    assert normalize_status({"actual_status": actual, "intended_status": intended, "status_msg": msg}) == status


def test_show_returns_none_for_missing(api):
    api.add("GET", "/api/v0/instances/5/", (200, {"instances": None}))
    assert provider(api).get(5) is None


def test_invalid_user_key_on_404_is_an_auth_error(api):
    api.add("GET", "/api/v0/instances/5/", (404, {"error": "auth_error", "msg": "Invalid user key"}))
    with pytest.raises(http.ApiError) as e:
        provider(api).get(5)
    assert e.value.category == http.AUTH and e.value.message.startswith("Vast API key rejected")


def test_create_body_uses_the_spec_string_env_and_ssh_direct(api):
    api.add("GET", "/api/v0/ssh/", (200, []))
    api.add("POST", "/api/v0/ssh/", (200, {"success": True, "key": {"id": 1}}))
    api.add("PUT", "/api/v0/asks/4200001/", (200, {"success": True, "new_contract": 7835610}))
    api.add("POST", "/api/v0/instances/7835610/ssh/", (200, {"success": True}))
    api.add("GET", "/api/v0/instances/7835610/", (200, {"instances": row(7835610, actual_status=None, ports=None,
                                                                         label="train-0;run_id=r1")}))
    inst = provider(api).create({"name": "train-0", "offer_id": 4200001, "image": "img", "disk_gb": 40,
                                 "env": {"HF_TOKEN": "a b"}, "ports": [8888], "onstart": "echo hi",
                                 "public_key": "ssh-ed25519 AAAA k", "labels": {"run_id": "r1"}})
    assert inst.id == "7835610" and inst.offer_id == 4200001 and inst.status == "pending"
    body = api.calls("PUT", "/api/v0/asks/4200001/")[0]["body"]
    assert body == {"image": "img", "label": "train-0;run_id=r1", "disk": 40.0, "runtype": "ssh_direct",
                    "env": "-p 22:22 -p 8888:8888 -e GPUOPS_RUN_ID=r1 -e 'HF_TOKEN=a b'",
                    "onstart": "touch ~/.no_auto_tmux\necho hi", "cancel_unavail": True}
    # the per-instance key endpoint suffices: the account's keys are left alone
    assert not api.calls("GET", "/api/v0/ssh/") and not api.calls("POST", "/api/v0/ssh/")
    assert api.calls("POST", "/api/v0/instances/7835610/ssh/")[0]["body"] == {"ssh_key": "ssh-ed25519 AAAA k"}


def test_account_key_is_not_registered_twice(api):
    api.add("GET", "/api/v0/ssh/", (200, [{"id": 3, "key": "ssh-ed25519 AAAA other-comment"}]))
    assert provider(api).ensure_account_key("ssh-ed25519 AAAA k") == (3, False)
    assert not api.calls("POST", "/api/v0/ssh/")


def test_the_account_key_is_used_only_when_attaching_fails_and_is_marked_with_the_run(api):
    api.add("PUT", "/api/v0/asks/4200001/", (200, {"success": True, "new_contract": 7835610}))
    api.add("POST", "/api/v0/instances/7835610/ssh/", (400, {"success": False, "error": "invalid_args", "msg": "nope"}))
    api.add("GET", "/api/v0/ssh/", (200, []))
    api.add("POST", "/api/v0/ssh/", (200, {"success": True, "key": {"id": 31}}))
    api.add("GET", "/api/v0/instances/7835610/", (200, {"instances": row(7835610)}))
    p = provider(api)
    p.create({"name": "n", "offer_id": 4200001, "image": "img", "public_key": "ssh-ed25519 AAAA k",
              "labels": {"run_id": "r1"}})
    assert api.calls("POST", "/api/v0/ssh/")[0]["body"] == {"ssh_key": "ssh-ed25519 AAAA gpuops-run=r1"}
    rep = p.key_reports["7835610"]
    assert rep["method"] == "account" and rep["added"] and rep["account_key_id"] == 31 and "nope" in rep["why"]


def test_added_account_keys_go_when_the_last_instance_of_their_run_is_gone(api):
    keys = [{"id": 31, "key": "ssh-ed25519 AAAA gpuops-run=r1"}, {"id": 32, "key": "ssh-ed25519 BBBB gpuops-run=r2"},
            {"id": 5, "key": "ssh-ed25519 CCCC mine"}]
    api.add("DELETE", "/api/v0/instances/1/", (200, {"success": True}))
    api.add("GET", "/api/v0/ssh/", (200, keys))
    listing = {"success": True, "next_token": None, "instances": [row(2, label="b;run_id=r2")]}
    api.add("GET", "/api/v1/instances/", (200, listing))
    api.add("DELETE", "/api/v0/ssh/31/", (200, {"success": True}))
    p = provider(api)
    assert p.terminate(1) is True
    assert [c["path"] for c in api.requests if c["method"] == "DELETE"] == ["/api/v0/instances/1/", "/api/v0/ssh/31/"]
    assert p.removed_account_keys == ["31"]
    kept = provider(api)
    kept.keep_account_keys = True  # the opt-out
    n = len(api.requests)
    kept.terminate(1)
    assert len(api.requests) == n + 1


@pytest.mark.parametrize("status,body,category", [
    (410, {"success": False, "error": "no_such_ask", "msg": "error 410/3907: no_such_ask Instance type 1 is no longer available."},
     http.OFFER_GONE),
    (404, {"success": False, "error": "invalid_args", "msg": "error 404/3603: no_such_ask Instance type by id 1 is not available."},
     http.OFFER_GONE),
    (400, {"success": False, "error": "insufficient_credit", "msg": "error 400/3561: insufficient_credit"},
     http.INSUFFICIENT_FUNDS),
    (400, {"success": False, "error": "invalid_price", "msg": "bid below min"}, http.INVALID_REQUEST),
])
def test_rent_errors_are_categorized(api, status, body, category):
    api.add("PUT", "/api/v0/asks/1/", (status, body))
    with pytest.raises(http.ApiError) as e:
        provider(api).create({"name": "x", "offer_id": 1, "image": "i"})
    assert e.value.category == category
    assert len(api.calls("PUT", "/api/v0/asks/1/")) == 1


def test_search_body_follows_the_spec_enum(api):
    api.add("POST", "/api/v0/bundles/", (200, {"offers": [
        {"id": 1, "gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24564, "dph_total": 0.3, "min_bid": 0.15,
         "geolocation": "Texas, US", "cuda_max_good": 12.4, "reliability2": 0.99, "verification": "verified"},
        {"id": 2, "gpu_name": "RTX 3090", "num_gpus": 1, "gpu_ram": 24576, "dph_total": 0.2, "geolocation": "Texas, US",
         "cuda_max_good": 12.4, "reliability2": 0.99}]}))
    offers = provider(api).find_offers(OfferFilters(gpu=["4090"], max_price_per_hour=0.5, regions=["US"],
                                                    min_cuda_version="12.2", interruptible=True))
    assert [(o.offer_id, o.gpu_model, o.vram_gb, o.country, o.interruptible) for o in offers] == \
        [(1, "RTX 4090", 24, "US", True)]
    q = api.requests[0]["body"]
    assert q["type"] == "bid" and q["dph_total"] == {"lte": 0.5} and q["geolocation"] == {"in": ["US"]}
    assert q["cuda_max_good"] == {"gte": 12.2} and q["num_gpus"] == {"eq": 1} and len(q["order"]) == 2
    assert provider(api).search_body(OfferFilters())["type"] == "ondemand"


def test_gpu_models_and_every_filter_are_sent_to_the_server(api):
    # the market lists thousands of offers and a search returns `limit` of them: a model filtered only
    # locally is never seen behind hundreds of cheaper cards
    api.add("POST", "/api/v0/bundles/", (200, {"offers": []}))
    provider(api).find_offers(OfferFilters(gpu=["H100", "RTX 4090"], gpu_count=8, min_reliability=0.98,
                                           max_price_per_hour=30, min_cuda_version="12.4"))
    q = api.requests[0]["body"]
    assert q["gpu_name"] == {"in": ["H100 NVL", "H100 PCIE", "H100 SXM", "H100", "RTX 4090"]}
    assert q["num_gpus"] == {"eq": 8} and q["reliability"] == {"gte": 0.98} and q["dph_total"] == {"lte": 30.0}
    assert q["cuda_max_good"] == {"gte": 12.4}


def test_an_unknown_model_is_still_asked_for_by_its_own_name(api):
    api.add("POST", "/api/v0/bundles/", (200, {"offers": []}))
    provider(api).find_offers(OfferFilters(gpu=["NVIDIA RTX 9999"]))
    assert api.requests[0]["body"]["gpu_name"] == {"in": ["RTX 9999"]}


def test_near_offers_drop_the_count_and_verified_filters(api):
    api.add("POST", "/api/v0/bundles/", (200, {"offers": []}))
    provider(api).near_offers(OfferFilters(gpu=["4090"], gpu_count=1, max_price_per_hour=0.1))
    q = api.requests[0]["body"]
    assert "num_gpus" not in q and "verified" not in q and "dph_total" not in q and q["gpu_name"]["in"][0] == "RTX 4090"


def test_docker_env_quotes_values():
    assert docker_env({"A": "x y", "B": "1"}, ["22"]) == "-p 22:22 -e 'A=x y' -e B=1"


def test_a_vm_offer_gets_the_account_key_and_is_rented_again(api):
    api.add("PUT", "/api/v0/asks/4200001/",
            (400, {"success": False, "error": "no_ssh_key_for_vm", "msg": "error 400/3467: no ssh key for vm",
                   "ask_id": 4200001}),
            (200, {"success": True, "new_contract": 7835611}))
    api.add("GET", "/api/v0/ssh/", (200, []))
    api.add("POST", "/api/v0/ssh/", (200, {"success": True, "key": {"id": 40}}))
    api.add("GET", "/api/v0/instances/7835611/", (200, {"instances": row(7835611)}))
    p = provider(api)
    inst = p.create({"name": "vm", "offer_id": 4200001, "image": "img", "public_key": "ssh-ed25519 AAAA k",
                     "labels": {"run_id": "r9"}})
    assert inst.id == "7835611" and len(api.calls("PUT", "/api/v0/asks/4200001/")) == 2
    assert not api.calls("POST", "/api/v0/instances/7835611/ssh/")
    rep = p.key_reports["7835611"]
    assert rep["method"] == "account" and rep["account_key_id"] == 40 and "no_ssh_key_for_vm" in rep["why"]
