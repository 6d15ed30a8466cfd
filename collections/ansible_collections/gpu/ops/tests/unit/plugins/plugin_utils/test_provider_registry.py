# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A third provider, defined in this file only, works everywhere once registered: offer search
(gpu.ops.gpu_offer_info), create with failover (gpu.ops.gpu_instance), the inventory plugin and the reaper
(gpu.ops.reap), plus the controller's spec check and managed-run lookups.

The modules run their real main(); the provider's far side is an in-memory market. Nothing names the fake
provider but this file: a module, plugin or helper that still chose providers from a list of its own (option
choices, auth options, "is this offer single-use", the inventory's construction) fails these tests.
"""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils import registry
from ansible_collections.gpu.ops.plugins.module_utils.provider import (
    ConfigError,
    Instance,
    Offer,
    Provider,
    ProviderOption,
    utc_iso,
)
from ansible_collections.gpu.ops.plugins.modules import gpu_instance, gpu_offer_info, reap

PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH3ryOjE0l8Qq9cJzQ8vQnYkJ8a6xg1oT1M8C4sOk2xE test@host"
KEY = "fk_UNITTESTKEY_0003"
MARKETS = {}  # api_url -> Market: each test has its own "API"


class Market:
    """The far side: offers for rent, instances, and every call made."""

    def __init__(self):
        self.offers = []
        self.gone = set()  # offer ids whose rent answers "offer gone"
        self.rows = {}
        self.calls = []


class FakeCloud(Provider):
    name = "fakecloud"
    options = (
        ProviderOption("fakecloud_api_key", "FAKECLOUD_API_KEY", "api_key", secret=True),
        ProviderOption("fakecloud_api_url", "FAKECLOUD_API_URL", "api_url", default="mem://public"),
    )
    single_use_offers = True
    api_poll = (3.0, 7.0)

    def __init__(self, api_key, api_url=None, timeout=30.0, deadline=120.0):
        if not api_key:
            raise ConfigError("no FakeCloud API key")
        if api_key != KEY:
            raise http.ApiError("FakeCloud: bad key", category=http.AUTH, provider=self.name)
        self.market = MARKETS[api_url]
        self.clients = ()
        self.reported = []

    # hooks of gpu.ops.gpu_instance
    def create_ports(self, ports):
        return ["udp:%d" % p for p in ports]

    def task_results(self):
        return {"fakecloud_created": self.reported}

    # the provider interface
    def find_offers(self, filters):
        self.market.calls.append(("find_offers", filters.gpu))
        return [o for o in self.market.offers if filters.matches(o)]

    def create_from_offer(self, offer, spec):
        self.market.calls.append(("create", offer.offer_id, spec["name"]))
        if offer.offer_id in self.market.gone:
            raise http.ApiError("FakeCloud: offer %s is gone" % offer.offer_id, category=http.OFFER_GONE,
                                provider=self.name)
        iid = "fc-%d" % (len(self.market.rows) + 1)
        row = dict(self.encode_labels(spec["name"], spec["labels"]), id=iid, state="up", offer=offer.offer_id,
                   gpu=offer.gpu_type, n=offer.gpu_count, price=offer.price_per_hour, ports=spec["ports"])
        self.market.rows[iid] = row
        self.reported.append(iid)
        return self.to_instance(row)

    def to_instance(self, row):
        name, labels = self.decode_labels(row)
        return Instance(id=row["id"], name=name, provider=self.name, status="running", ssh_host="192.0.2.7",
                        ssh_port=2222, ssh_user="root", gpu_type=row["gpu"], gpu_count=row["n"],
                        price_per_hour=row["price"], labels=labels, offer_id=row["offer"])

    def list(self, filters=None):
        self.market.calls.append(("list",))
        return [self.to_instance(r) for r in self.market.rows.values()]

    def get(self, instance_id):
        row = self.market.rows.get(instance_id)
        return self.to_instance(row) if row else None

    def terminate(self, instance_id):
        self.market.calls.append(("terminate", instance_id))
        return self.market.rows.pop(instance_id, None) is not None


@pytest.fixture
def market(request, monkeypatch):
    url = "mem://%s" % request.node.name
    MARKETS[url] = m = Market()
    registry.register(FakeCloud)
    for opt in registry.options():  # only the fake provider is configured
        monkeypatch.delenv(opt.env, raising=False)
    monkeypatch.setenv("FAKECLOUD_API_KEY", KEY)
    monkeypatch.setenv("FAKECLOUD_API_URL", url)
    yield m
    registry.unregister(FakeCloud.name)
    MARKETS.pop(url, None)


def offer(oid, price, gpu="RTX 4090", count=1):
    return Offer(provider="fakecloud", offer_id=oid, gpu_type=gpu, gpu_count=count, vram_gb=24, price_per_hour=price,
                 interruptible=False, reliability=0.99, verified=True)


def run(capsys, module, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            module.main()
    res = json.loads(capsys.readouterr().out)
    res["_rc"] = exc.value.code
    return res


def test_registry_knows_the_builtins_and_refuses_unknown_names():
    assert registry.names()[:2] == [c.name for c in registry.BUILTIN]
    with pytest.raises(ConfigError, match="unknown provider 'nope'; known: "):
        registry.get("nope")
    with pytest.raises(ValueError):
        registry.register(type("Nameless", (Provider,), {}))
    # the gpuops CLI masks *_API_KEY variables: a key under another name would reach its output
    badly_named = type("OddKey", (Provider,), {"name": "oddkey", "options": (
        ProviderOption("oddkey_token", "ODDKEY_TOKEN", "api_key", secret=True),)})
    with pytest.raises(ValueError, match="must end in _API_KEY"):
        registry.register(badly_named)
    assert registry.find("oddkey") is None


def test_offer_search_through_gpu_offer_info(capsys, market):
    market.offers = [offer(1, 0.50), offer(2, 0.30), offer(3, 0.40, gpu="A100")]
    res = run(capsys, gpu_offer_info, {"providers": ["fakecloud"], "gpu": ["4090"]})
    assert res["_rc"] == 0, res
    assert [(o["provider"], o["offer_id"]) for o in res["offers"]] == [("fakecloud", 2), ("fakecloud", 1)]
    assert market.calls == [("find_offers", ["4090"])]
    # without providers: every provider whose key is set, here only the fake one (its key from the environment)
    res = run(capsys, gpu_offer_info, {"gpu": ["A100"]})
    assert res["_rc"] == 0 and [o["offer_id"] for o in res["offers"]] == [3]


def test_create_with_failover_through_gpu_instance(capsys, market, tmp_path):
    # the cheapest offer is gone; the next is taken by the first node; being single-use, the second node moves on
    market.offers = [offer(10, 0.20), offer(11, 0.30), offer(12, 0.45)]
    market.gone = {10}
    args = {"name_prefix": "fk", "count": 2, "gpu": ["RTX 4090"], "image": "img", "ssh_public_key": PUB,
            "wait": False, "run_id": "reg-1", "owner": "alice", "ports": [8888],
            "known_hosts_file": str(tmp_path / "known_hosts"), "fakecloud_api_key": KEY}
    res = run(capsys, gpu_instance, args)
    assert res["_rc"] == 0, res
    outcomes = [(a["name"], a["offer_id"], a["outcome"]) for a in res["attempts"]]
    assert outcomes == [("fk-0", 10, "offer_gone"), ("fk-0", 11, "created"), ("fk-1", 12, "created")]
    assert sorted(i["name"] for i in res["instances"]) == ["fk-0", "fk-1"]
    assert {i["labels"]["run_id"] for i in res["instances"]} == {"reg-1"}
    assert [r["ports"] for r in market.rows.values()] == [["udp:8888"], ["udp:8888"]]  # the provider's port form
    assert res["fakecloud_created"] == [i["id"] for i in res["instances"]]  # the provider's result hook
    # check mode plans with the same single-use rule
    market.offers.append(offer(13, 0.60))
    res = run(capsys, gpu_instance, dict(args, name_prefix="plan", _ansible_check_mode=True))
    assert [(p["name"], p["offer_id"]) for p in res["planned"]] == [("plan-0", 10), ("plan-1", 11)]


def test_inventory_plugin_lists_the_provider(market, tmp_path):
    from ansible.inventory.data import InventoryData  # pylint: disable=import-outside-toplevel
    from ansible.parsing.dataloader import DataLoader  # pylint: disable=import-outside-toplevel
    from ansible.plugins.loader import inventory_loader  # pylint: disable=import-outside-toplevel
    from ansible.template import Templar  # pylint: disable=import-outside-toplevel

    market.rows["fc-1"] = dict(FakeCloud.encode_labels("train-0", {"run_id": "r1", "owner": "bob"}), id="fc-1",
                               offer=5, gpu="RTX 4090", n=2, price=0.9)
    path = tmp_path / "fake.cloud.yml"
    path.write_text(json.dumps({"plugin": "gpu.ops.cloud", "providers": ["fakecloud"], "api_timeout": 3}))
    inv = InventoryData()
    loader = DataLoader()
    plugin = inventory_loader.get("gpu.ops.cloud")
    plugin.templar = Templar(loader=loader)
    plugin.parse(inv, loader, str(path), cache=False)
    assert sorted(h.name for h in inv.groups["fakecloud"].get_hosts()) == ["train-0"]
    hv = inv.get_host("train-0").vars
    assert hv["ansible_host"] == "192.0.2.7" and hv["ansible_port"] == 2222
    assert hv["gpuops_provider"] == "fakecloud" and hv["gpuops_run_id"] == "r1" and hv["gpuops_gpu_count"] == 2
    path.write_text(json.dumps({"plugin": "gpu.ops.cloud", "providers": ["nope"]}))
    with pytest.raises(Exception, match="unknown provider.*nope"):
        inventory_loader.get("gpu.ops.cloud").parse(InventoryData(), loader, str(path), cache=False)


def test_reaper_lists_and_destroys_on_the_provider(capsys, market):
    past = utc_iso(1700000000)
    market.rows["fc-1"] = dict(FakeCloud.encode_labels("old-0", {"run_id": "r0", "owner": "alice", "expires_at": past}),
                               id="fc-1", offer=5, gpu="RTX 4090", n=1, price=0.3)
    market.rows["fc-2"] = dict(FakeCloud.encode_labels("new-0", {"run_id": "r2", "owner": "alice"}), id="fc-2",
                               offer=6, gpu="RTX 4090", n=1, price=0.3)
    res = run(capsys, reap, {"owner": "alice"})  # no providers given: the configured ones, from the registry
    assert res["_rc"] == 0, res
    assert [(r["provider"], r["id"], r["reasons"]) for r in res["reaped"]] == [("fakecloud", "fc-1", ["expired"])]
    assert ("terminate", "fc-1") in market.calls and list(market.rows) == ["fc-2"]


def test_controller_helpers_use_the_registry(market, monkeypatch):
    from ansible_collections.gpu.ops.plugins.plugin_utils import _managed, _run  # pylint: disable=import-outside-toplevel
    from ansible_collections.gpu.ops.plugins.module_utils import ssh as sshu  # pylint: disable=import-outside-toplevel

    assert _run.provider_key_env()["fakecloud"] == "FAKECLOUD_API_KEY"
    env = {"FAKECLOUD_API_KEY": KEY, "FAKECLOUD_API_URL": "mem://%s" % "test_controller_helpers_use_the_registry"}
    assert isinstance(_managed._provider("fakecloud", env), FakeCloud)
    assert _managed._provider("fakecloud", {}) is None  # no key: no provider
    assert sshu.api_poll_schedule("fakecloud", 1.5) == (3.0, 7.0)
    assert sshu.api_poll_schedule("fakecloud", 1.5, quotas=False) == (0.1, 1.5)
