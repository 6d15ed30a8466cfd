# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reaper's decisions: who is a candidate, why, what a failing provider blocks, and the table."""

from __future__ import annotations

import json

import pytest

from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils import reaper
from ansible_collections.gpu.ops.plugins.module_utils.provider import Instance, Provider, utc_iso

NOW = 1796000000.0


class FakeProvider(Provider):
    def __init__(self, name, instances, list_error=None, terminate_errors=None):
        self.name = name
        self.instances = instances
        self.list_error = list_error
        self.terminate_errors = dict(terminate_errors or {})
        self.terminated = []
        self.lists = 0

    def list(self, filters=None):
        self.lists += 1
        if self.list_error:
            raise self.list_error
        return list(self.instances)

    def terminate(self, instance_id):
        errs = self.terminate_errors.get(instance_id)
        if errs:
            raise errs.pop(0)
        self.terminated.append(instance_id)
        return True


def inst(iid, provider="runpod", run_id="r1", owner="alice", expires=-3600, status="running", **kw):
    labels = {}
    if run_id:
        labels["run_id"] = run_id
    if owner:
        labels["owner"] = owner
    if expires is not None:
        labels["expires_at"] = utc_iso(NOW + expires)
    return Instance(id=iid, name="n-" + iid, provider=provider, status=status, labels=labels, price_per_hour=0.5,
                    created_at=utc_iso(NOW - 7200), gpu_type="RTX 4090", gpu_count=1, **kw)


def make(providers, **kw):
    kw.setdefault("owner", "alice")
    kw.setdefault("now", NOW)
    kw.setdefault("workers", 1)
    kw.setdefault("terminate", lambda prov, iid: prov.terminate(iid))
    return reaper.Reaper({p.name: p for p in providers}, **kw)


def test_candidates_and_reasons(tmp_path):
    for run_id, rec in (("ended", {"status": "succeeded"}), ("torn", {"status": "running", "torn_down": True}),
                        ("running", {"status": "running", "torn_down": False})):
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "run.json").write_text(json.dumps(dict(rec, run_id=run_id)))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{not json")
    rp = FakeProvider("runpod", [
        inst("expired"), inst("fresh", expires=3600), inst("noexp", expires=None),
        inst("bob", owner="bob"), inst("nolabel", run_id=None, owner=None), inst("gone", status="terminated"),
        inst("ended", run_id="ended", expires=3600), inst("torn", run_id="torn", expires=None),
        inst("running", run_id="running", expires=3600), inst("broken", run_id="broken", expires=3600),
        inst("named", run_id="named", expires=3600)])
    r = make([rp], runs_dir=str(tmp_path), run_ids=["named"])
    rows = {x["id"]: x for x in r.plan()}
    assert sorted(rows) == ["ended", "expired", "named", "torn"]
    assert rows["expired"]["reasons"] == ["expired"] and rows["expired"]["why"].startswith("expired 1h00m ago")
    assert rows["ended"]["why"] == "run record says succeeded" and rows["torn"]["why"] == "run record says torn_down"
    assert rows["named"]["reasons"] == ["named"]
    assert rows["expired"]["cost_so_far"] == pytest.approx(1.0)  # two hours at 0.5 USD/h
    assert r.counts == {"listed": 10, "unlabelled": 1, "other_owner": 1, "kept": 4}
    assert "broken" in r.records.unreadable  # an unreadable record is no licence to destroy
    r.reap()
    assert sorted(rp.terminated) == ["ended", "expired", "named", "torn"] and r.failures() == []
    assert rp.lists == 1


def test_all_owners_and_an_owner_is_required():
    rp = FakeProvider("runpod", [inst("a"), inst("b", owner="bob")])
    assert sorted(x["id"] for x in make([rp], owner=None, all_owners=True).plan()) == ["a", "b"]
    with pytest.raises(ValueError):
        make([rp], owner=None)


@pytest.mark.parametrize("status", [500, 410])
def test_a_failing_listing_blocks_every_provider_by_default(status):
    err = http.ApiError("Vast API list instances: HTTP %d: gone" % status, status=status, provider="vast")
    rp = FakeProvider("runpod", [inst("a")])
    v = FakeProvider("vast", [inst("7", provider="vast")], list_error=err)
    r = make([rp, v])
    r.plan()
    r.reap()
    assert rp.terminated == [] and v.terminated == []
    assert [(x["id"], x["action"]) for x in r.result_rows()] == [("a", "not_destroyed_provider_error")]
    fail = r.failures()
    assert len(fail) == 1 and fail[0].startswith("vast: listing vast failed, so nothing was read as 'no instances'")
    assert ("update gpu.ops" in fail[0]) == (status == 410)

    r = make([FakeProvider("runpod", [inst("a")]), FakeProvider("vast", [], list_error=err)],
             on_provider_error="reap_others")
    r.plan()
    r.reap()
    assert [(x["id"], x["action"]) for x in r.result_rows()] == [("a", "destroyed")] and r.failures()


def test_destroy_failures_are_reported_and_the_rest_goes_on():
    boom = http.ApiError("RunPod API terminate pod b: HTTP 403: forbidden", status=403, category=http.FORBIDDEN)
    rp = FakeProvider("runpod", [inst("a"), inst("b"), inst("c")], terminate_errors={"b": [boom]})
    r = make([rp], workers=4)
    r.plan()
    r.reap()
    assert sorted(rp.terminated) == ["a", "c"]
    assert {x["id"]: x["action"] for x in r.result_rows()} == {"a": "destroyed", "b": "destroy_failed",
                                                               "c": "destroyed"}
    assert r.failures() == ["could not destroy runpod b (n-b): RunPod API terminate pod b: HTTP 403: forbidden"]


def test_terminate_with_retries_retries_transient_errors_only():
    flaky = http.ApiError("HTTP 500: Something went wrong", status=500, category=http.UNAVAILABLE)
    rp = FakeProvider("runpod", [], terminate_errors={"a": [flaky, flaky]})
    sleeps = []
    assert reaper.terminate_with_retries(rp, "a", sleep=sleeps.append) is True and sleeps == [0.5, 1.0]
    auth = http.ApiError("HTTP 401", status=401, category=http.AUTH)
    rp.terminate_errors["b"] = [auth]
    with pytest.raises(http.ApiError):
        reaper.terminate_with_retries(rp, "b", sleep=sleeps.append)


def test_table():
    assert reaper.table([]) == ["nothing to reap"]
    r = make([FakeProvider("runpod", [inst("a"), inst("bb")])])
    lines = reaper.table(r.plan(), NOW)
    assert lines[0].split() == ["PROVIDER", "ID", "NAME", "RUN", "OWNER", "USD/H", "COST", "SO", "FAR", "ACTION", "WHY"]
    assert lines[1].split()[:7] == ["runpod", "a", "n-a", "r1", "alice", "0.500", "1.00"]
    assert lines[-1].startswith("2 instance(s), 1.000 USD/h, about 2.00 USD so far at ")
