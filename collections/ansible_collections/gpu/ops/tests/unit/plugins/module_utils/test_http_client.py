# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP client at the HTTP level: retries, Retry-After, deadlines, error messages, redaction."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils.runpod import RunPodProvider
from ansible_collections.gpu.ops.tests.unit.plugins.module_utils.fake_api import FakeApi, Sleeps

KEY = "rpa_SECRETKEY1234567890"


@pytest.fixture
def api():
    a = FakeApi().start()
    yield a
    a.stop()


def client(api, **kw):
    kw.setdefault("sleep", Sleeps())
    return http.HttpClient(api.url + "/v2", KEY, provider="runpod", service="RunPod API", **kw)


def test_bearer_auth_user_agent_and_json_body(api):
    api.add("POST", "/v2/pods", (201, {"id": "p1"}))
    r = client(api).request("POST", "/pods", json_body={"name": "a"}, idempotent=False)
    assert r.status == 201 and r.data == {"id": "p1"} and r.attempts == 1
    req = api.requests[0]
    assert req["headers"]["authorization"] == "Bearer " + KEY
    assert req["headers"]["user-agent"].startswith("gpu.ops/")
    assert req["headers"]["content-type"] == "application/json"
    assert req["body"] == {"name": "a"}


def test_429_honours_retry_after(api):
    api.add("GET", "/v2/pods", (429, {"title": "Too Many Requests", "status": 429, "detail": "slow down"},
                                {"Retry-After": "3"}), (200, {"pods": []}))
    sleeps = Sleeps()
    r = client(api, sleep=sleeps).get("/pods")
    assert r.data == {"pods": []} and r.attempts == 2
    assert len(sleeps.calls) == 1 and 3.0 <= sleeps.calls[0] <= 3.25


def test_429_without_retry_after_backs_off_exponentially_with_jitter(api):
    api.add("GET", "/api/v0/bundles/", (429, "API requests too frequent"), (429, "API requests too frequent"),
            (429, "API requests too frequent"), (200, {"offers": []}))
    sleeps = Sleeps()
    c = http.HttpClient(api.url, KEY, provider="vast", sleep=sleeps, backoff_base=0.25)
    assert c.get("/api/v0/bundles/").data == {"offers": []}
    assert len(sleeps.calls) == 3
    for i, s in enumerate(sleeps.calls):
        cap = 0.25 * 2 ** i
        assert cap / 2 <= s <= cap
    assert c.stats["retries"] == 3 and c.stats["requests"] == 4


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_for_reads(api, status):
    api.add("GET", "/v2/pods/x", (status, "upstream"), (200, {"id": "x"}))
    assert client(api).get("/pods/x").data == {"id": "x"}
    assert len(api.calls("GET", "/v2/pods/x")) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_create_is_retried_on_429_but_every_5xx_is_ambiguous(api, status):
    api.add("POST", "/v2/pods", (429, "slow down"), (201, {"id": "p1"}))
    assert client(api).request("POST", "/pods", json_body={}, idempotent=False).data == {"id": "p1"}
    api.requests.clear()
    api.add("POST", "/v2/pods", (status, {"title": "x", "status": status, "detail": "Something went wrong"}),
            (201, {"id": "p2"}))
    with pytest.raises(http.AmbiguousError) as e:
        client(api).request("POST", "/pods", json_body={}, idempotent=False)
    assert e.value.category == http.AMBIGUOUS and "may have been processed" in e.value.message
    assert e.value.status == status
    assert len(api.requests) == 1  # never sent twice: the caller must look first


def test_a_timeout_answering_a_create_is_ambiguous_and_a_read_is_retried(api):
    import time

    def slow(req):
        time.sleep(1.2)  # the client waits at least 0.5 s
        return 201, {"id": "late"}

    api.add("POST", "/v2/pods", slow)
    with pytest.raises(http.AmbiguousError) as e:
        client(api, timeout=0.2).request("POST", "/pods", json_body={}, idempotent=False)
    assert e.value.category == http.AMBIGUOUS and "may have been processed" in e.value.message
    assert len(api.calls("POST", "/v2/pods")) == 1
    api.add("GET", "/v2/pods", slow, (200, {"pods": []}))
    assert client(api, timeout=0.2).get("/pods").data == {"pods": []}


def test_a_5xx_that_names_a_definite_refusal_stays_definite(api):
    def classify(status, body, text):
        return http.NO_CAPACITY if "no longer any instances" in text else http.default_category(status, body, text)

    api.add("POST", "/v2/pods", (500, {"title": "x", "status": 500, "detail": "There are no longer any instances"}))
    with pytest.raises(http.ApiError) as e:
        client(api, classify=classify).request("POST", "/pods", json_body={}, idempotent=False)
    assert not isinstance(e.value, http.AmbiguousError) and e.value.category == http.NO_CAPACITY


def test_connection_refused_is_retried_then_reported():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    sleeps = Sleeps()
    c = http.HttpClient("http://127.0.0.1:%d" % port, KEY, provider="vast", service="Vast API", sleep=sleeps,
                        max_retries=3)
    with pytest.raises(http.ApiError) as e:
        c.get("/api/v0/instances/1/")
    assert e.value.category == http.UNAVAILABLE
    assert "connection failed" in e.value.message and "gave up after 4 attempts" in e.value.message
    assert len(sleeps.calls) == 3 and KEY not in e.value.message


def test_retry_after_beyond_the_deadline_fails_at_once(api):
    api.add("GET", "/v2/pods", (429, {"title": "Too Many Requests", "status": 429, "detail": "hour window"},
                                {"Retry-After": "600"}))
    sleeps = Sleeps()
    with pytest.raises(http.ApiError) as e:
        client(api, sleep=sleeps, deadline=30).get("/pods")
    assert e.value.category == http.RATE_LIMITED and "deadline" in e.value.message
    assert sleeps.calls == [] and len(api.requests) == 1


def test_max_retries_bound_the_attempts(api):
    api.add("GET", "/v2/pods", (503, {"title": "Service Unavailable", "status": 503, "detail": "down"}))
    with pytest.raises(http.ApiError) as e:
        client(api, max_retries=2).get("/pods")
    assert len(api.requests) == 3 and "gave up after 3 attempts" in e.value.message
    assert e.value.status == 503 and e.value.details["attempts"] == 3


def test_problem_details_become_one_message(api):
    api.add("POST", "/v2/pods", (422, {"title": "Unprocessable Entity", "status": 422,
                                       "detail": "Request validation failed.",
                                       "errors": ["$.gpu.count: should be >= 1", "$: missing property 'name'"]}))
    with pytest.raises(http.ApiError) as e:
        client(api).request("POST", "/pods", json_body={}, idempotent=False, what="create pod 'a'")
    msg = e.value.message
    assert msg.startswith("RunPod API create pod 'a': HTTP 422: Unprocessable Entity: Request validation failed.")
    assert "$.gpu.count: should be >= 1; $: missing property 'name'" in msg
    assert e.value.category == http.INVALID_REQUEST and len(api.requests) == 1


@pytest.mark.parametrize("status,category", [(401, http.AUTH), (403, http.FORBIDDEN), (402, http.INSUFFICIENT_FUNDS),
                                             (404, http.NOT_FOUND), (409, http.CONFLICT), (400, http.INVALID_REQUEST),
                                             (500, http.UNAVAILABLE)])
def test_status_categories(api, status, category):
    api.add("GET", "/v2/pods", (status, {"title": "x", "status": status, "detail": "d"}))
    with pytest.raises(http.ApiError) as e:
        client(api, max_retries=0).get("/pods")
    assert e.value.category == category and e.value.status == status


def test_error_text_shapes():
    assert http.error_text({"errors": [{"message": "There are no longer any instances", "path": ["podRent"]}]}) \
        == "There are no longer any instances (at podRent)"
    assert http.error_text({"success": False, "error": "no_such_ask", "msg": "error 410/3907: gone"}) \
        == "no_such_ask: error 410/3907: gone"
    assert http.error_text({"detail": "API requests too frequent endpoint threshold=1.0"}) \
        == "API requests too frequent endpoint threshold=1.0"
    assert http.error_text(None, "API requests too frequent") == "API requests too frequent"
    assert http.error_text(None, "") == "(empty body)"


def test_keys_are_redacted_from_messages_and_details(api):
    echo = {"title": "Bad Request", "status": 400, "detail": "key %s is not allowed here" % KEY,
            "errors": ["Authorization: Bearer %s" % KEY]}
    api.add("GET", "/v2/pods", (400, echo))
    with pytest.raises(http.ApiError) as e:
        client(api).get("/pods?api_key=%s" % KEY)
    text = str(e.value) + repr(e.value.to_dict())
    assert KEY not in text and http.REDACTED in text


def test_redactor_masks_query_keys_and_bearer_tokens():
    r = http.Redactor(["s3cr3t-value"])
    out = r("GET /x?api_key=abc123&x=1 Authorization: Bearer tok.en-1 and s3cr3t-value")
    assert "abc123" not in out and "tok.en-1" not in out and "s3cr3t-value" not in out
    assert out.count(http.REDACTED) == 3


def test_parse_retry_after():
    assert http.parse_retry_after("7") == 7.0
    assert http.parse_retry_after("0.5") == 0.5
    assert http.parse_retry_after(None) is None
    assert http.parse_retry_after("soon") is None
    assert 0 < http.parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480) == 10.0


class SharedClock:
    """One virtual clock for several 'processes'; sleeping advances it."""

    def __init__(self):
        self.now = 5000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_budgets_of_two_processes_share_one_runpod_quota(tmp_path):
    # RunPod v2 allows 60 requests per minute per user: two waiting processes together stay within it
    clock = SharedClock()
    rate, burst = RunPodProvider.api_quota
    path = str(tmp_path / "budget.json")
    procs = [http.SharedBudget(path, rate, burst, clock=clock) for _i in range(2)]
    sent = []
    while clock.now < 5000.0 + 300:
        for b in procs:  # each process sends as fast as its budget lets it
            b.acquire(60.0, clock.sleep)
            sent.append(clock.now)
    worst = max(sum(1 for x in sent if t <= x < t + 60) for t in sent)
    assert 55 <= worst <= 60, worst


def test_a_429_empties_the_shared_budget_for_every_process(tmp_path):
    clock = SharedClock()
    a = http.SharedBudget(str(tmp_path / "b.json"), 1.0, 10.0, clock=clock)
    b = http.SharedBudget(str(tmp_path / "b.json"), 1.0, 10.0, clock=clock)
    a.penalize(5.0)
    assert b.acquire(60.0, clock.sleep) >= 5.0


def test_real_processes_share_the_budget_file(tmp_path):
    import multiprocessing  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel
    path = str(tmp_path / "budget.json")
    start = time.time()
    procs = [multiprocessing.Process(target=_take_tokens, args=(path, 30)) for _i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    # 60 tokens at 20/s with a burst of 5 take at least 2.75 s together; alone each would take 1.25 s
    assert all(p.exitcode == 0 for p in procs) and time.time() - start >= 2.7


def _take_tokens(path, n):
    import time  # pylint: disable=import-outside-toplevel
    b = http.SharedBudget(path, 20.0, 5.0)
    for _i in range(n):
        b.acquire(30.0, time.sleep)


def test_the_client_waits_for_the_budget_before_each_request(api, monkeypatch, tmp_path):
    monkeypatch.setenv("GPUOPS_API_QUOTAS", "on")
    api.add("GET", "/v2/pods", (200, {"pods": []}))
    sleeps = Sleeps()
    c = client(api, sleep=sleeps, quota=RunPodProvider.api_quota)
    assert c.budget is not None and c.budget.path.startswith(str(tmp_path))
    for _i in range(12):
        c.get("/pods")
    assert len(sleeps.calls) >= 2 and c.stats["budget_waits"] > 1.0  # the burst of 10 was spent
    monkeypatch.setenv("GPUOPS_API_QUOTAS", "off")
    assert client(api, quota=RunPodProvider.api_quota).budget is None
    monkeypatch.setenv("GPUOPS_API_QUOTAS", "on")
    assert client(api).budget is None  # no quota declared: no budget
