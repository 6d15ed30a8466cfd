# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failover across offers and providers, and why-nothing-matched messages, with in-memory providers."""

from __future__ import annotations

import pytest

from ansible_collections.gpu.ops.plugins.module_utils import fleet
from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils.provider import (
    ConfigError,
    Instance,
    Offer,
    OfferFilters,
    Provider,
    gpu_matches,
)


class MemProvider(Provider):
    """Answers create() from a per-offer script of error categories; records every call."""

    def __init__(self, name, offers, fail=None):
        self.name = name
        self.offers = offers
        self.fail = fail or {}
        self.created = []
        self.terminated = []

    def find_offers(self, filters):
        return [o for o in self.offers if filters.matches(o)]

    def create_from_offer(self, offer, spec):
        cat = self.fail.get(offer.offer_id)
        if cat:
            raise http.ApiError("%s says %s" % (self.name, cat), category=cat, provider=self.name)
        inst = Instance(id="%s-%d" % (self.name, len(self.created)), name=spec["name"], provider=self.name,
                        status="running")
        self.created.append(inst)
        return inst

    def get(self, instance_id):
        return next((i for i in self.created if i.id == instance_id), None)

    def terminate(self, instance_id):
        self.terminated.append(instance_id)
        return True


class MemRunPod(MemProvider):
    """RunPod has a catalog of every GPU type, rentable now or not."""

    def gpu_catalog(self):
        return [{"id": o.gpu_type, "name": o.gpu_model} for o in self.offers]


def offer(provider, oid, price, gpu="RTX 4090"):
    return Offer(provider=provider, offer_id=oid, gpu_type=gpu, gpu_count=1, price_per_hour=price, interruptible=False,
                 country="US", cuda_version="12.4")


def provision(providers, names, **kw):
    offers, errors = fleet.search(providers, OfferFilters())
    created = []
    p = fleet.Provisioner(providers, offers, lambda n, o: {"name": n}, on_created=lambda pr, i: created.append(i),
                          destroy=lambda pr, i: pr.terminate(i.id), **kw)
    p.run(names)
    return p, created


def test_failover_records_each_category_and_moves_on():
    vast = MemProvider("vast", [offer("vast", 1, 0.2), offer("vast", 2, 0.25), offer("vast", 3, 0.4)],
                       fail={1: http.OFFER_GONE, 2: http.NO_CAPACITY})
    runpod = MemProvider("runpod", [offer("runpod", "rp-sec", 0.3)])
    p, created = provision({"vast": vast, "runpod": runpod}, ["n-0", "n-1", "n-2"])
    assert [(a["offer_id"], a["outcome"]) for a in p.attempts] == [
        (1, "offer_gone"), (2, "no_capacity"), ("rp-sec", "created"), ("rp-sec", "created"), ("rp-sec", "created")]
    assert sorted(p.ready) == ["n-0", "n-1", "n-2"] and p.missing == []
    assert len(created) == 3


def test_vast_asks_are_one_shot_and_runpod_offers_repeat():
    vast = MemProvider("vast", [offer("vast", 1, 0.2), offer("vast", 2, 0.21)])
    p, _created = provision({"vast": vast}, ["a", "b", "c"])
    assert [a["offer_id"] for a in p.attempts] == [1, 2] and p.missing == ["c"]


def test_insufficient_funds_skips_the_whole_provider():
    vast = MemProvider("vast", [offer("vast", i, 0.1 + i / 100.0) for i in range(1, 5)], fail={1: http.INSUFFICIENT_FUNDS})
    runpod = MemProvider("runpod", [offer("runpod", "rp", 0.9)])
    p, _created = provision({"vast": vast, "runpod": runpod}, ["a"])
    assert [a["outcome"] for a in p.attempts] == ["insufficient_funds", "created"]
    assert p.attempts[1]["provider"] == "runpod" and "vast" in p.dead_providers


def test_auth_errors_stop_everything():
    vast = MemProvider("vast", [offer("vast", 1, 0.2)], fail={1: http.AUTH})
    with pytest.raises(http.ApiError):
        provision({"vast": vast}, ["a"])


def test_max_attempts_is_a_hard_bound():
    vast = MemProvider("vast", [offer("vast", i, 0.1 + i / 100.0) for i in range(10)],
                       fail={i: http.OFFER_GONE for i in range(10)})
    p, _created = provision({"vast": vast}, ["a"], max_attempts=4)
    assert len(p.attempts) == 4 and p.missing == ["a"]


def test_plan_for_check_mode():
    offers = [offer("vast", 1, 0.2), offer("runpod", "rp", 0.3)]
    assert [(x["name"], x["offer_id"]) for x in fleet.plan(offers, ["a", "b", "c"])] == [
        ("a", 1), ("b", "rp"), ("c", "rp")]


def test_unknown_gpu_names_close_matches():
    prov = MemRunPod("runpod", [offer("runpod", "rp", 0.3, gpu="NVIDIA GeForce RTX 4090")])
    with pytest.raises(ConfigError) as e:
        fleet.explain_empty({"runpod": prov}, OfferFilters(gpu=["RTX 4909"]))
    assert "unknown GPU model 'RTX 4909'" in e.value.message and "RTX 4090" in e.value.message


def test_vast_only_knows_what_is_on_offer_now():
    # Vast has no catalog: a GPU missing from its offers may just be rented out, so no "unknown" verdict
    prov = MemProvider("vast", [offer("vast", 1, 0.3, gpu="RTX 4080")])
    msg = fleet.explain_empty({"vast": prov}, OfferFilters(gpu=["RTX 4090"]))
    assert msg == "no vast offer has a GPU matching 'RTX 4090' right now; close matches on offer: 'RTX 4080'"


def test_price_ceiling_below_every_offer_names_the_cheapest():
    prov = MemProvider("vast", [offer("vast", 7, 0.31), offer("vast", 8, 0.5)])
    msg = fleet.explain_empty({"vast": prov}, OfferFilters(gpu=["4090"], max_price_per_hour=0.1))
    assert "cheapest match costs 0.310 USD/h" in msg and "offer 7" in msg and "max_price_per_hour 0.100" in msg


def test_search_collects_provider_errors_but_raises_auth():
    class Broken(MemProvider):
        def find_offers(self, filters):
            raise http.ApiError("down", category=self.fail["cat"], provider=self.name)
    ok = MemProvider("vast", [offer("vast", 1, 0.2)])
    offers, errors = fleet.search({"vast": ok, "runpod": Broken("runpod", [], fail={"cat": http.UNAVAILABLE})},
                                  OfferFilters())
    assert len(offers) == 1 and errors["runpod"]["category"] == http.UNAVAILABLE
    with pytest.raises(http.ApiError):
        fleet.search({"runpod": Broken("runpod", [], fail={"cat": http.AUTH})}, OfferFilters())


def test_offers_of_the_gpu_excluded_by_other_filters_are_counted_per_filter():
    def o(oid, count=1, verified=True, price=0.3):
        x = offer("vast", oid, price)
        x.gpu_count, x.verified = count, verified
        return x
    # 4090s exist, but unverified or with another GPU count (the A6000 is not a "close match" answer)

    class MemVast(MemProvider):
        def near_offers(self, filters):  # as Vast's search without num_gpus and verified
            return [x for x in self.offers if any(gpu_matches(g, x.gpu_type) for g in filters.gpu)]
    prov = MemVast("vast", [o(1, count=2), o(2, count=4), o(3, verified=False), offer("vast", 9, 0.4, "RTX A6000")])
    msg = fleet.explain_empty({"vast": prov}, OfferFilters(gpu=["RTX 4090"], gpu_count=1))
    assert "3 vast offers of RTX 4090 exist but they were excluded by" in msg, msg
    assert "gpu_count=1 (2 offers: they have 2, 4 GPUs)" in msg and "verified_only (1 offer: unverified machines)" in msg
    assert "A6000" not in msg


class MappingWaiter:
    """Stands in for ssh.Waiter: nodes named in ``unmapped`` run without a public SSH mapping the first time."""

    ssh = None
    timeout = 30

    def __init__(self, unmapped):
        self.unmapped = set(unmapped)

    def wait(self, targets):
        for t in targets:
            if t.instance.name in self.unmapped:
                self.unmapped.discard(t.instance.name)
                t.category, t.fatal = "no_public_ssh", "running without a public SSH port mapping"
            else:
                t.mapped_at, t.ready = 1.0, True
            t.done = True


def test_after_a_node_without_a_public_mapping_offers_that_mapped_come_first():
    prov = MemProvider("runpod", [offer("runpod", "cheap", 0.2), offer("runpod", "untried", 0.25)])
    offers, _e = fleet.search({"runpod": prov}, OfferFilters())
    p = fleet.Provisioner({"runpod": prov}, offers, lambda n, o: {"name": n}, on_created=lambda pr, i: None,
                          destroy=lambda pr, i: pr.terminate(i.id), waiter=MappingWaiter(["n-1"]))
    p.run(["n-0", "n-1"])
    assert [(a["name"], a["offer_id"], a["outcome"]) for a in p.attempts] == [
        ("n-0", "cheap", "created"), ("n-1", "cheap", "no_public_ssh"), ("n-1", "cheap", "created")]
    assert sorted(p.ready) == ["n-0", "n-1"] and prov.terminated == ["runpod-1"]
