# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The providers' bills: the adapters at the HTTP level (RunPod /v2/billing/pods, Vast /api/v0/charges with its
pages), per-instance answers for cost.json, the report's split per run/owner/day, and time windows."""

from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.gpu.ops.plugins.module_utils import billing
from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError, Instance, Provider, bill_record
from ansible_collections.gpu.ops.plugins.module_utils.runpod import RunPodProvider
from ansible_collections.gpu.ops.plugins.module_utils.vast import VastProvider
from ansible_collections.gpu.ops.tests.unit.plugins.module_utils.fake_api import FakeApi, Sleeps

NOW = 1796126400.0  # 2026-12-01T12:00:00Z


@pytest.fixture
def api():
    a = FakeApi().start()
    yield a
    a.stop()


def test_parse_when():
    assert billing.parse_when("now", NOW) == NOW
    assert billing.parse_when("7d", NOW) == NOW - 7 * 86400 and billing.parse_when("12h", NOW) == NOW - 43200
    assert billing.parse_when("2026-11-01", NOW) == 1793491200.0
    assert billing.parse_when("2026-11-01T01:00:00Z", NOW) == 1793494800.0
    with pytest.raises(ConfigError) as e:
        billing.parse_when("last week", NOW, "since")
    assert "since 'last week' is not a date" in e.value.message
    with pytest.raises(ConfigError):
        billing.default_window(NOW, since="1d", until="2d")
    assert billing.default_window(NOW) == (NOW - 7 * 86400, NOW)


def test_runpod_billed_by_pod_id(api):
    def answer(req):
        pod = req["query"].get("podId")
        recs = [] if pod == "new" else [
            {"startTime": "2026-11-30T00:00:00Z", "endTime": "2026-12-01T00:00:00Z", "podId": pod, "totalAmount": 1.25,
             "gpuAmount": 1.2, "cpuAmount": 0, "diskAmount": 0.05},
            {"startTime": "2026-12-01T00:00:00Z", "endTime": "2026-12-02T00:00:00Z", "podId": pod, "totalAmount": 0.5,
             "gpuAmount": 0.5, "cpuAmount": 0, "diskAmount": 0}]
        return 200, {"records": recs, "metadata": {}}
    api.add("GET", "/v2/billing/pods", answer)
    p = RunPodProvider("rpa_KEY000000", api.url + "/v2", api.url + "/graphql", sleep=Sleeps())
    got = p.billed(["p1", "new"], since=NOW - 86400 * 1.5)
    assert got["p1"] == {"billed_usd": 1.75, "billed_available": True, "reason": None}
    assert got["new"]["billed_available"] is False and "no billing record for pod new" in got["new"]["reason"]
    q = api.calls("GET", "/v2/billing/pods")[0]["query"]
    assert q["podId"] == "p1" and q["bucketSize"] == "day" and q["startTime"].endswith("T00:00:00Z")
    assert "endTime" not in q  # "until now" is the provider's now, not this clock's


def test_vast_charges_every_page_and_per_day(api):
    def entry(iid, amount, label="job-%d;run_id=r9;owner=al"):
        return {"start": 1, "end": 2, "type": "instance", "source": "instance-%d" % iid, "amount": amount,
                "metadata": {"label": label % iid}, "items": []}

    def answer(req):
        tok = req["query"].get("after_token")
        if not tok:
            nxt = base64.urlsafe_b64encode(json.dumps({"values": {"pos": 1}}).encode()).decode()
            return 200, {"success": True, "count": 1, "total": 2, "next_token": nxt, "results": [entry(7, 0.5)]}
        return 200, {"success": True, "count": 1, "total": 2, "next_token": None, "results": [entry(8, 0.25)]}
    api.add("GET", "/api/v0/charges/", answer)
    p = VastProvider("vast_KEY000000", api.url, sleep=Sleeps())
    got = p.billed(["7", "8", "9"], since=NOW - 3600)
    assert got["7"]["billed_usd"] == 0.5 and got["8"]["billed_usd"] == 0.25 and got["9"]["billed_available"] is False
    first = api.calls("GET", "/api/v0/charges/")[0]["query"]
    flt = json.loads(first["select_filters"])
    assert flt["type"] == {"in": ["instance"]} and flt["day"]["gte"] % 86400 == 0 and flt["day"]["lte"] > NOW

    api.requests.clear()
    recs = p.bills(NOW - 86400, NOW)  # two UTC days: one query (of two pages) per day
    assert len(api.calls("GET", "/api/v0/charges/")) == 4
    assert recs[0]["labels"] == {"run_id": "r9", "owner": "al"} and recs[0]["name"] == "job-7"
    assert {r["day"] for r in recs} == {"2026-11-30", "2026-12-01"}


class FakeBills(Provider):
    def __init__(self, name, records=(), instances=(), error=None):
        self.name = name
        self.records = list(records)
        self.instances = list(instances)
        self.error = error

    def bills(self, since, until):
        if self.error:
            raise self.error
        return list(self.records)

    def billed(self, instance_ids, since=None, until=None):
        if self.error:
            raise self.error
        amounts = {}
        for r in self.records:
            amounts[r["instance_id"]] = amounts.get(r["instance_id"], 0) + r["amount_usd"]
        return {i: {"billed_usd": amounts[i], "billed_available": True, "reason": None} for i in instance_ids}

    def list(self, filters=None):
        return list(self.instances)


def test_billed_for_keeps_the_order_and_never_raises():
    err = http.ApiError("Vast API show charges: HTTP 403: forbidden", status=403)
    provs = {"runpod": FakeBills("runpod", [bill_record("runpod", "p1", "2026-12-01", 1.0)]),
             "vast": FakeBills("vast", error=err)}
    got = billing.billed_for(provs, [{"provider": "vast", "id": 7}, {"provider": "runpod", "id": "p1"},
                                     {"provider": "other", "id": "x"}])
    assert [(g["provider"], g["id"], g["billed_available"]) for g in got] == [
        ("vast", "7", False), ("runpod", "p1", True), ("other", "x", False)]
    assert "HTTP 403" in got[0]["reason"] and "not configured" in got[2]["reason"]


def test_report_splits_per_run_owner_day(tmp_path):
    (tmp_path / "run-a").mkdir()
    (tmp_path / "run-a" / "run.json").write_text(json.dumps({
        "run_id": "run-a", "owner": "al", "status": "succeeded",
        "instances": [{"provider": "runpod", "id": "gone1", "name": "a-0"}]}))
    (tmp_path / "run-a" / "cost.json").write_text(json.dumps({"instances": [{"estimated_usd": 1.0},
                                                                            {"estimated_usd": 0.5}]}))
    live = Instance(id="live1", name="b-0", provider="runpod", status="running",
                    labels={"run_id": "run-b", "owner": "bo"})
    rp = FakeBills("runpod", [bill_record("runpod", "gone1", "2026-11-30", 1.0),
                              bill_record("runpod", "gone1", "2026-12-01", 0.5),
                              bill_record("runpod", "live1", "2026-12-01", 2.0),
                              bill_record("runpod", "stranger", "2026-12-01", 0.1)], instances=[live])
    v = FakeBills("vast", [bill_record("vast", "7", "2026-12-01", 0.25, name="c-0",
                                       labels={"run_id": "run-c", "owner": "al"})])
    rep = billing.report({"runpod": rp, "vast": v}, NOW - 2 * 86400, NOW, runs_dir=str(tmp_path))
    assert rep["by_run"] == {"(unknown)": 0.1, "run-a": 1.5, "run-b": 2.0, "run-c": 0.25}
    assert rep["by_owner"] == {"(unknown)": 0.1, "al": 1.75, "bo": 2.0}
    assert rep["by_day"] == {"2026-11-30": 1.0, "2026-12-01": 2.85} and rep["total_usd"] == 3.85
    assert rep["by_provider"] == {"runpod": 3.6, "vast": 0.25}
    assert rep["runs"] == [{"run_id": "run-a", "owner": "al", "status": "succeeded", "started_at": None,
                            "ended_at": None, "estimated_usd": 1.5, "billed_usd": 1.5}]
    assert rep["provider_errors"] == {}
    lines = billing.report_lines(rep)
    assert lines[0].startswith("billed ") and any("run-a" in x and "estimate 1.5000" in x for x in lines)

    mine = billing.report({"runpod": rp, "vast": v}, NOW - 86400, NOW, runs_dir=str(tmp_path), owner="al")
    assert mine["by_owner"] == {"al": 1.75} and mine["total_usd"] == 1.75

    err = http.ApiError("Vast API show charges: HTTP 410: gone", status=410)
    bad = billing.report({"runpod": rp, "vast": FakeBills("vast", error=err)}, NOW - 86400, NOW)
    assert list(bad["provider_errors"]) == ["vast"] and "MISSING  vast" in billing.report_lines(bad)[-1]
