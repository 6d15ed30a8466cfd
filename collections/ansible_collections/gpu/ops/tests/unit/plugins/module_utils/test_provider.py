# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Normalized types, GPU names across providers, labels, offer filters and ranking."""

from __future__ import annotations

import pytest

from ansible_collections.gpu.ops.plugins.module_utils import provider as pv


@pytest.mark.parametrize("name,canon", [
    ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ("RTX 4090", "RTX 4090"),
    ("RTX_4090", "RTX 4090"),
    ("rtx4090", "RTX 4090"),
    ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe"),
    ("A100 PCIE", "A100 PCIe"),
    ("NVIDIA H100 80GB HBM3", "H100 80GB HBM3"),
    ("NVIDIA RTX A6000", "RTX A6000"),
])
def test_canonical_gpu_model(name, canon):
    assert pv.canonical_gpu_model(name) == canon


@pytest.mark.parametrize("query,name,hit", [
    ("RTX 4090", "NVIDIA GeForce RTX 4090", True),
    ("4090", "RTX 4090", True),
    ("4090", "NVIDIA GeForce RTX 4090", True),
    ("A100", "NVIDIA A100 80GB PCIe", True),
    ("A100", "A100 PCIE", True),
    ("H100", "H100 SXM", True),
    ("A6000", "NVIDIA RTX A6000", True),
    ("4090", "RTX 4080", False),
    ("A100", "H100 SXM", False),
    ("RTX 4090", "RTX 3090", False),
    ("", "RTX 4090", False),
])
def test_gpu_matches(query, name, hit):
    assert pv.gpu_matches(query, name) is hit


def test_close_matches_for_a_typo():
    names = ["NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000", "NVIDIA H100 80GB HBM3", "RTX 4090", "A100 PCIE"]
    close = pv.gpu_close_matches("RTX 4909", names)
    assert close and "4090" in close[0]
    assert pv.gpu_close_matches("zzz", names) == []


def test_vast_label_roundtrip_and_foreign_labels():
    labels = {"run_id": "r-1", "owner": "alice", "expires_at": "2026-11-24T10:00:00Z"}
    label = pv.encode_name_label("train-0", labels)
    assert label == "train-0;run_id=r-1;owner=alice;expires_at=2026-11-24T10:00:00Z"
    assert pv.decode_name_label(label) == ("train-0", labels)
    assert pv.decode_name_label("train-0") == ("train-0", {})
    assert pv.decode_name_label("my;weird label") == ("my;weird label", {})
    assert pv.decode_name_label(None) == ("", {})


def test_labels_as_env():
    labels = {"run_id": "r-1", "owner": "bob"}
    env = pv.labels_to_env(labels)
    assert env == {"GPUOPS_RUN_ID": "r-1", "GPUOPS_OWNER": "bob"}
    assert pv.labels_from_env(dict(env, OTHER="x")) == labels


def test_label_values_are_checked():
    with pytest.raises(pv.ConfigError):
        pv.make_labels("r 1", "bob", None)
    assert pv.make_labels("r1", "bob", None) == {"run_id": "r1", "owner": "bob"}


@pytest.mark.parametrize("ttl,secs", [("90m", 5400), ("12h", 43200), ("2d", 172800), ("3600", 3600), ("1.5h", 5400)])
def test_parse_ttl(ttl, secs):
    assert pv.parse_ttl(ttl) == secs


@pytest.mark.parametrize("ttl", ["", "soon", "-1h", "0", "5w"])
def test_parse_ttl_rejects(ttl):
    with pytest.raises(ValueError):
        pv.parse_ttl(ttl)


def test_iso_roundtrip():
    assert pv.parse_iso(pv.utc_iso(1764000000)) == 1764000000


def test_validate_name():
    pv.validate_name("train-0.a_b")
    for bad in ("", "-x", "a b", "x" * 64, "semi;colon"):
        with pytest.raises(pv.ConfigError):
            pv.validate_name(bad)


def offer(**kw):
    base = dict(provider="vast", offer_id=1, gpu_type="RTX 4090", gpu_count=1, vram_gb=24, price_per_hour=0.3,
                interruptible=False, country="US", cuda_version="12.4", reliability=0.99)
    base.update(kw)
    return pv.Offer(**base)


def test_filters_are_anded_and_list_values_ored():
    f = pv.OfferFilters(gpu=["4090", "A6000"], max_price_per_hour=0.5, regions=["us", "CA"], min_cuda_version="12.4",
                        min_reliability=0.98)
    assert f.matches(offer())
    assert f.matches(offer(gpu_type="RTX A6000"))
    assert not f.matches(offer(gpu_type="RTX 3090"))
    assert not f.matches(offer(price_per_hour=0.51))
    assert f.matches(offer(price_per_hour=0.51), ignore_price=True)
    assert not f.matches(offer(country="DE"))
    assert not f.matches(offer(cuda_version="12.2"))
    assert not f.matches(offer(reliability=0.9))
    assert not f.matches(offer(gpu_count=2))
    assert not f.matches(offer(interruptible=True))
    # RunPod offers have no reliability figure and pass a reliability filter; regions match data centers
    rp = offer(provider="runpod", reliability=None, country=None, data_centers=["EU-RO-1"], gpu_type="NVIDIA GeForce RTX 4090")
    assert pv.OfferFilters(min_reliability=0.99, regions=["RO"]).matches(rp)
    assert pv.OfferFilters(regions=["EU-RO-1"]).matches(rp)
    assert not pv.OfferFilters(regions=["US"]).matches(rp)


def test_rank_offers():
    offers = [offer(offer_id=1, price_per_hour=0.5, reliability=0.9), offer(offer_id=2, price_per_hour=0.3),
              offer(offer_id=3, price_per_hour=0.56, gpu_count=2, reliability=0.999),
              offer(provider="runpod", offer_id="rp", price_per_hour=0.3, reliability=None)]
    assert [o.offer_id for o in pv.rank_offers(offers)] == [2, "rp", 1, 3]
    assert [o.offer_id for o in pv.rank_offers(offers, "price_per_gpu")][0] == 3
    assert [o.offer_id for o in pv.rank_offers(offers, "reliability")][0] == 3
    assert offers[2].price_per_gpu_hour == 0.28


def test_dc_country():
    assert pv.dc_country("US-TX-3") == "US"
    assert pv.dc_country("EU-RO-1") == "RO"
    assert pv.dc_country("CA-MTL-1") == "CA"


def test_instance_rejects_unknown_status():
    with pytest.raises(ValueError):
        pv.Instance(id="x", status="booting")
    inst = pv.Instance(id="x", name="n", provider="runpod", status="running", gpu_type="NVIDIA GeForce RTX 4090",
                       ssh_host="1.2.3.4", ssh_port="22")
    assert inst.gpu_model == "RTX 4090" and inst.ssh_ready_address == ("1.2.3.4", 22)
    assert inst.to_dict()["labels"] == {}


def test_filter_instances():
    insts = [pv.Instance(id=str(i), name="n-%d" % i, provider="vast", status="running" if i % 2 else "stopped",
                         labels={"run_id": "r%d" % (i % 2)}) for i in range(4)]
    assert [i.id for i in pv.filter_instances(insts, name_prefix="n-", statuses=["running"])] == ["1", "3"]
    assert [i.id for i in pv.filter_instances(insts, run_id="r0")] == ["0", "2"]
    assert [i.id for i in pv.filter_instances(insts, ids=[2, "3"])] == ["2", "3"]
    assert [i.id for i in pv.filter_instances(insts, name="n-1")] == ["1"]
