# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu.ops.cloud inventory plugin at the HTTP level: grouping, connection vars, pagination, filters,
pending instances, per-provider errors, caching. The far side is a scripted loopback HTTP server."""

from __future__ import annotations

import json

import pytest

from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from ansible.template import Templar

from ansible_collections.gpu.ops.tests.unit.plugins.module_utils.fake_api import FakeApi

RP_KEY = "rp_UNITTESTKEY_0001"
VAST_KEY = "vast_UNITTESTKEY_0002"


def pod(i, name=None, status="RUNNING", ssh=True, env=None, gpu="NVIDIA GeForce RTX 4090", count=1):
    return {"id": "pod%011d" % i, "name": name or "rp-%d" % i, "status": status, "image": "img",
            "gpu": {"id": gpu, "count": count}, "cost": 0.69 * count, "dataCenterId": "US-TX-3",
            "createdAt": "2026-11-23T10:00:00Z", "env": env or {},
            "ssh": {"proxy": None, "direct": {"host": "10.1.0.%d" % i, "port": 30000 + i, "username": "root",
                                              "command": "ssh"} if ssh else None}}


def vrow(i, label=None, status="running", ports=True):
    return {"id": 7000 + i, "label": label if label is not None else "v-%d" % i, "actual_status": status,
            "intended_status": "running", "public_ipaddr": "10.2.0.%d\n" % (i % 250),
            "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(40000 + i)}]} if ports else None,
            "ssh_host": "ssh4.vast.ai", "ssh_port": 20000 + i, "image_runtype": "ssh_direct", "gpu_name": "RTX 4090",
            "num_gpus": 2, "dph_total": 0.62, "is_bid": True, "start_date": 1764000000.0,
            "geolocation": "Oregon, US", "image_uuid": "img", "status_msg": None}


def vast_pages(rows, per_page=25):
    """A callable answer that pages like GET /api/v1/instances/ (next_token until null)."""

    def answer(req):
        start = int(req["query"].get("after_token") or 0)
        page = rows[start:start + per_page]
        nxt = str(start + per_page) if start + per_page < len(rows) else None
        return (200, {"success": True, "instances_found": len(page), "total_instances": len(rows),
                      "next_token": nxt, "instances": page})

    return answer


@pytest.fixture
def api():
    a = FakeApi().start()
    yield a
    a.stop()


def parse(tmp_path, api, refresh=False, **config):
    cfg = {"plugin": "gpu.ops.cloud", "runpod_api_key": RP_KEY, "vast_api_key": VAST_KEY,
           "runpod_api_url": api.url + "/v2", "vast_api_url": api.url, "api_timeout": 3}
    cfg.update(config)
    path = tmp_path / "test.cloud.yml"
    path.write_text(json.dumps(cfg))
    inv = InventoryData()
    loader = DataLoader()
    plugin = inventory_loader.get("gpu.ops.cloud")  # through the loader, so its option definitions register
    plugin.templar = Templar(loader=loader)
    plugin.parse(inv, loader, str(path), cache=not refresh)
    if config.get("cache"):
        plugin.update_cache_if_changed()  # what InventoryManager does after each source
    return inv


def group_hosts(inv, group):
    return sorted(h.name for h in inv.groups[group].get_hosts()) if group in inv.groups else None


def hv(inv, host):
    return inv.get_host(host).get_vars()


def test_both_providers_grouped_with_connection_vars(tmp_path, api):
    api.add("GET", "/v2/pods", (200, {"pods": [pod(1), pod(2, env={"GPUOPS_RUN_ID": "exp1", "GPUOPS_OWNER": "al"})]}))
    api.add("GET", "/api/v1/instances/", vast_pages([vrow(1, label="v-1;run_id=exp1")]))
    inv = parse(tmp_path, api, keyed_groups=[{"key": "gpuops_run_id", "prefix": "run"}])
    assert group_hosts(inv, "gpu_nodes") == ["rp-1", "rp-2", "v-1"]
    assert group_hosts(inv, "runpod") == ["rp-1", "rp-2"]
    assert group_hosts(inv, "vast") == ["v-1"]
    assert group_hosts(inv, "run_exp1") == ["rp-2", "v-1"]
    v = hv(inv, "v-1")
    # Vast's trailing newline stripped, HostPort string made an int, the configured SSH user
    assert (v["ansible_host"], v["ansible_port"], v["ansible_user"]) == ("10.2.0.1", 40001, "root")
    assert v["gpuops_provider"] == "vast" and v["gpuops_id"] == "7001" and v["gpuops_gpu_count"] == 2
    assert v["gpuops_interruptible"] is True and v["gpuops_run_id"] == "exp1"
    r = hv(inv, "rp-2")
    assert (r["ansible_host"], r["ansible_port"]) == ("10.1.0.2", 30002)
    assert r["gpuops_gpu_model"] == "RTX 4090" and r["gpuops_owner"] == "al"
    # the keys went out as Bearer auth and never into a host var
    assert api.calls("GET", "/v2/pods")[0]["headers"]["authorization"] == "Bearer " + RP_KEY
    assert RP_KEY not in json.dumps([hv(inv, h) for h in ("rp-1", "rp-2", "v-1")])


def test_vast_pagination_follows_next_token(tmp_path, api):
    rows = [vrow(i) for i in range(60)]
    api.add("GET", "/api/v1/instances/", vast_pages(rows))
    inv = parse(tmp_path, api, providers=["vast"])
    assert len(group_hosts(inv, "vast")) == 60
    calls = api.calls("GET", "/api/v1/instances/")
    assert len(calls) == 3
    assert [c["query"].get("after_token") for c in calls] == [None, "25", "50"]


def test_pending_instances_skipped_or_grouped_never_broken(tmp_path, api):
    api.add("GET", "/v2/pods", (200, {"pods": [pod(1), pod(2, status="STARTING", ssh=False),
                                               pod(3, status="RUNNING", ssh=False)]}))
    api.add("GET", "/api/v1/instances/", vast_pages([vrow(1, status="loading", ports=False)]))
    inv = parse(tmp_path, api, statuses=["running", "pending"])
    assert group_hosts(inv, "gpu_nodes") == ["rp-1"]
    assert "rp-2" not in inv.hosts and "rp-3" not in inv.hosts

    inv = parse(tmp_path, api, statuses=["running", "pending"], pending="group")
    assert group_hosts(inv, "gpu_nodes") == ["rp-1"]
    assert group_hosts(inv, "pending") == ["rp-2", "rp-3", "v-1"]
    for h in ("rp-2", "rp-3", "v-1"):
        assert "ansible_host" not in hv(inv, h) and hv(inv, h)["gpuops_pending"] is True
    assert group_hosts(inv, "runpod") == ["rp-1"]


def test_filters_and_duplicate_names(tmp_path, api):
    api.add("GET", "/v2/pods", (200, {"pods": [pod(1, name="train"), pod(2, name="train"), pod(3, name="other"),
                                               pod(4, status="EXITED", ssh=False)]}))
    inv = parse(tmp_path, api, providers=["runpod"])
    # names are not unique on RunPod: both get the id appended, the stopped pod is not listed
    assert group_hosts(inv, "gpu_nodes") == ["other", "train-pod00000000001", "train-pod00000000002"]
    inv = parse(tmp_path, api, providers=["runpod"], name_prefix="oth")
    assert group_hosts(inv, "gpu_nodes") == ["other"]


def test_run_id_filter(tmp_path, api):
    api.add("GET", "/api/v1/instances/", vast_pages([vrow(1, label="a;run_id=r1"), vrow(2, label="b;run_id=r2"),
                                                     vrow(3, label="plain")]))
    inv = parse(tmp_path, api, providers=["vast"], run_id="r2")
    assert group_hosts(inv, "gpu_nodes") == ["b"]


def test_bad_key_is_one_clear_error_naming_file_and_provider(tmp_path, api):
    api.add("GET", "/v2/pods", (401, {"title": "Unauthorized", "status": 401, "detail": "invalid api key"}))
    api.add("GET", "/api/v1/instances/", vast_pages([vrow(1)]))
    with pytest.raises(AnsibleParserError) as e:
        parse(tmp_path, api, strict=True)
    msg = str(e.value)
    assert "test.cloud.yml" in msg and "runpod" in msg and "RunPod API key rejected" in msg
    assert RP_KEY not in msg
    assert len(api.calls("GET", "/v2/pods")) == 1  # a 401 is not retried


def test_one_provider_down_strict_false_keeps_the_other(tmp_path, api):
    api.add("GET", "/v2/pods", (200, {"pods": [pod(1)]}))
    api.add("GET", "/api/v1/instances/", (503, {"success": False, "error": "server_error", "msg": "down"}))
    inv = parse(tmp_path, api, strict=False, api_timeout=1)
    assert group_hosts(inv, "gpu_nodes") == ["rp-1"]
    with pytest.raises(AnsibleParserError, match="vast"):
        parse(tmp_path, api, strict=True, api_timeout=1)


def test_every_provider_down_fails_even_when_not_strict(tmp_path, api):
    api.add("GET", "/v2/pods", (401, {"title": "Unauthorized", "status": 401, "detail": "x"}))
    api.add("GET", "/api/v1/instances/", (401, {"success": False, "error": "auth_error", "msg": "Invalid user key"}))
    with pytest.raises(AnsibleParserError) as e:
        parse(tmp_path, api, strict=False)
    assert "RunPod API key rejected" in str(e.value) and "Vast API key rejected" in str(e.value)


def test_missing_key_is_a_config_error_before_any_call(tmp_path, api):
    with pytest.raises(AnsibleParserError, match="no RunPod API key"):
        parse(tmp_path, api, providers=["runpod"], runpod_api_key="", strict=True)
    assert api.requests == []


def test_templated_key(tmp_path, api):
    api.add("GET", "/v2/pods", (200, {"pods": [pod(1)]}))
    parse(tmp_path, api, providers=["runpod"], runpod_api_key="{{ 'rp_' ~ 'TEMPLATED_KEY' }}")
    assert api.calls("GET", "/v2/pods")[0]["headers"]["authorization"] == "Bearer rp_TEMPLATED_KEY"


def test_warm_cache_makes_no_api_calls(tmp_path, api):
    api.add("GET", "/v2/pods", (200, {"pods": [pod(1), pod(2)]}))
    api.add("GET", "/api/v1/instances/", vast_pages([vrow(i) for i in range(30)]))
    opts = {"cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(tmp_path / "c"),
            "cache_timeout": 300}
    cold = parse(tmp_path, api, **opts)
    n = len(api.requests)
    assert n == 3  # one RunPod listing, two Vast pages
    warm = parse(tmp_path, api, **opts)
    assert len(api.requests) == n
    assert group_hosts(warm, "gpu_nodes") == group_hosts(cold, "gpu_nodes")
    assert hv(warm, "v-3")["ansible_port"] == 40003
    # cache=False from the caller (ansible-inventory --flush-cache, meta: refresh_inventory) refreshes
    parse(tmp_path, api, refresh=True, **opts)
    assert len(api.requests) == n + 3
