# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one HTTP client of gpu.ops (RunPod REST v2 + GraphQL, Vast).

PRIVATE to the collection: the API may change between releases.

* Bearer auth, a per-request timeout and a total deadline for a request and all its retries.
* Retries with jittered exponential backoff on 429 (honouring ``Retry-After``), 502/503/504 and
  connection errors. Requests that create something (``idempotent=False``) are retried only where
  the server cannot have acted (429, 503, a connection never established); a 502/504 or a read
  timeout there raises :class:`AmbiguousError` so the caller can look before it creates again.
* RFC 9457 problem details, GraphQL ``errors[]`` and Vast ``{"error","msg"}`` bodies become one
  clear message in a typed :class:`ApiError` with a ``category`` callers can act on.
* API keys are redacted from every message and exception.

No Ansible imports: the inventory plugin uses this module too.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import re
import time

try:
    import fcntl
except ImportError:  # not POSIX: every process keeps its own budget
    fcntl = None

try:
    import requests
    from requests import exceptions as req_exc
except ImportError as _imp_err:  # reported by the caller with missing_required_lib("requests")
    requests = None
    req_exc = None
    REQUESTS_IMPORT_ERROR = _imp_err
    HAS_REQUESTS = False
else:
    REQUESTS_IMPORT_ERROR = None
    HAS_REQUESTS = True

USER_AGENT = "gpu.ops/0.1.0 (+https://github.com/gpu-ops/gpu.ops)"
RETRY_STATUSES = frozenset((429, 502, 503, 504))
# for requests that create something: statuses where the server certainly did not act. Any 5xx may come
# from a gateway after the backend committed (RunPod answers "Something went wrong" 500s for pods it made),
# so a 5xx on a create is ambiguous, never retried blindly
SAFE_RETRY_STATUSES = frozenset((429,))
REDACTED = "********"

# error categories callers act on (offer failover, bad-input messages, teardown decisions)
AUTH = "auth"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
NO_CAPACITY = "no_capacity"
OFFER_GONE = "offer_gone"
INSUFFICIENT_FUNDS = "insufficient_funds"
INVALID_REQUEST = "invalid_request"
CONFLICT = "conflict"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"
AMBIGUOUS = "ambiguous"
QUOTA = "quota"
ERROR = "error"


class ApiError(Exception):
    """A failed API call, already redacted.

    ``category`` is one of the module constants (AUTH, NO_CAPACITY, ...); ``status`` the HTTP status
    (None for transport errors); ``provider`` "runpod" or "vast"; ``details`` extra facts (the
    vendor's error code, validation errors, attempts made).
    """

    def __init__(self, message, status=None, category=ERROR, provider=None, details=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.category = category
        self.provider = provider
        self.details = details or {}

    def __str__(self):
        return self.message

    def to_dict(self):
        return {"message": self.message, "status": self.status, "category": self.category,
                "provider": self.provider, "details": self.details}


class AmbiguousError(ApiError):
    """A create may or may not have happened (any 5xx that names no definite refusal, or a timeout after
    the request was sent, on a non-idempotent call). The caller looks the instance up before trying again."""


class Redactor:
    """Replaces secrets (API keys) in any text; also masks ``api_key=`` parameters and Bearer tokens."""

    _PATTERNS = (
        re.compile(r"(?i)(api_key=)[^&\s\"']+"),
        re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
        re.compile(r"(?i)(\"?authorization\"?\s*[:=]\s*\"?(?:bearer\s+|basic\s+|token\s+)?)[^\s\"',}]+"),
    )

    def __init__(self, secrets=()):
        self.secrets = [s for s in secrets if s and len(str(s)) >= 4]

    def add(self, secret):
        if secret and len(str(secret)) >= 4 and secret not in self.secrets:
            self.secrets.append(secret)

    def __call__(self, text):
        if text is None:
            return text
        out = str(text)
        for s in sorted(self.secrets, key=len, reverse=True):
            out = out.replace(str(s), REDACTED)
        for pat in self._PATTERNS:
            out = pat.sub(lambda m: m.group(1) + REDACTED, out)
        return out


def parse_retry_after(value, now=None):
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/invalid."""
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def _truncate(text, limit=400):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def error_text(body, raw_text=""):
    """One line out of any vendor error body (problem details, GraphQL, Vast, plain text)."""
    if isinstance(body, dict):
        parts = []
        if isinstance(body.get("errors"), list) and body["errors"] and "title" not in body and "detail" not in body:
            # GraphQL: errors[] of {message, path, extensions}
            msgs = []
            for e in body["errors"]:
                if isinstance(e, dict):
                    msg = e.get("message") or json.dumps(e)
                    path = e.get("path")
                    if path:
                        msg = "%s (at %s)" % (msg, ".".join(str(p) for p in path))
                    msgs.append(msg)
                else:
                    msgs.append(str(e))
            return _truncate("; ".join(msgs))
        if "detail" in body or "title" in body:  # RFC 9457
            title = body.get("title")
            detail = body.get("detail")
            if detail and title and str(detail).lower() != str(title).lower():
                parts.append("%s: %s" % (title, detail))
            else:
                parts.append(str(detail or title))
            errs = body.get("errors")
            if isinstance(errs, list) and errs:
                parts.append("(%s)" % "; ".join(str(e) for e in errs[:10]))
            return _truncate(" ".join(parts))
        for key in ("msg", "message", "error_msg", "error", "detail"):
            val = body.get(key)
            if val:
                if key == "msg" and body.get("error") and str(body["error"]) not in str(val):
                    return _truncate("%s: %s" % (body["error"], val))
                return _truncate(val)
        return _truncate(json.dumps(body))
    if isinstance(body, list):
        return _truncate(json.dumps(body))
    return _truncate(raw_text or "(empty body)")


def default_category(status, body, text):
    if status == 401:
        return AUTH
    if status == 403:
        return FORBIDDEN
    if status == 402:
        return INSUFFICIENT_FUNDS
    if status == 404:
        return NOT_FOUND
    if status == 409:
        return CONFLICT
    if status in (400, 410, 422):
        return INVALID_REQUEST
    if status == 429:
        return RATE_LIMITED
    if status is not None and status >= 500:
        return UNAVAILABLE
    return ERROR


class Response:
    __slots__ = ("status", "headers", "data", "text", "attempts")

    def __init__(self, status, headers, data, text, attempts):
        self.status = status
        self.headers = headers
        self.data = data
        self.text = text
        self.attempts = attempts


class HttpClient:
    """One vendor API at one base URL.

    ``classify(status, body, text)`` maps an error answer to a category (providers refine the
    defaults: RunPod's capacity 400, Vast's no_such_ask ...). ``sleep`` and ``clock`` are injectable
    for tests. ``stats`` counts requests, retries and time slept.
    """

    def __init__(self, base_url, api_key=None, provider="api", service="API", timeout=30.0, deadline=120.0,
                 max_retries=8, backoff_base=0.25, backoff_max=30.0, user_agent=USER_AGENT, classify=None,
                 sleep=None, clock=None, session=None, extra_headers=None, budget=None, quota=None):
        if not HAS_REQUESTS:
            raise ApiError("the Python library 'requests' is required", category=ERROR, provider=provider)
        self.base_url = str(base_url or "").rstrip("/")
        self.api_key = api_key
        self.provider = provider
        self.service = service
        self.timeout = float(timeout)
        self.deadline = float(deadline)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.classify = classify or default_category
        self.sleep = sleep or time.sleep
        self.clock = clock or time.monotonic
        self.redact = Redactor([api_key] if api_key else [])
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})
        if extra_headers:
            self.session.headers.update(extra_headers)
        self.stats = {"requests": 0, "retries": 0, "slept": 0.0}
        self._rng = random.Random()
        self.budget = budget if budget is not None else default_budget(provider, self.base_url, api_key, quota)

    # ------------------------------------------------------------------ helpers
    def url(self, path):
        if path.startswith("http://") or path.startswith("https://"):
            return path
        if not path:
            return self.base_url
        return self.base_url + ("" if path.startswith("/") else "/") + path

    def _backoff(self, attempt):
        """Full-jitter exponential backoff: a random delay in [cap/2, cap], cap = base * 2**attempt."""
        cap = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        return cap / 2.0 + self._rng.uniform(0, cap / 2.0)

    def pause(self, attempt):
        """Sleep one backoff step (for callers that retry a whole operation, e.g. an ambiguous create)."""
        wait = self._backoff(attempt)
        self.stats["slept"] += wait
        self.sleep(wait)

    def _headers(self, json_body):
        h = {}
        if self.api_key:
            h["Authorization"] = "Bearer %s" % self.api_key
        if json_body is not None:
            h["Content-Type"] = "application/json"
        return h

    def _error(self, status, body, text, what, attempts, retry_after=None):
        message = error_text(body, text)
        cat = self.classify(status, body, text)
        details = {"attempts": attempts}
        if isinstance(body, dict):
            for key in ("error", "code", "errors", "ask_id"):
                if key in body:
                    details[key] = body[key]
        if retry_after is not None:
            details["retry_after"] = retry_after
        msg = "%s %s: HTTP %s: %s" % (self.service, what, status, message)
        return ApiError(self.redact(msg), status=status, category=cat, provider=self.provider,
                        details=json.loads(self.redact(json.dumps(details, default=str))))

    # ------------------------------------------------------------------ the call
    def request(self, method, path, json_body=None, params=None, ok=(200, 201, 204), idempotent=None,
                what=None, deadline=None):
        """Send one logical request (with retries); return :class:`Response` or raise :class:`ApiError`."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "DELETE", "OPTIONS")
        what = what or "%s %s" % (method, path.split("?")[0])
        url = self.url(path)
        total = self.deadline if deadline is None else float(deadline)
        end = self.clock() + total
        attempt = 0
        last_error = None
        data = None if json_body is None else json.dumps(json_body)
        while True:
            attempt += 1
            self.stats["requests"] += 1
            remaining = end - self.clock()
            timeout = max(0.5, min(self.timeout, remaining)) if remaining > 0 else 0.5
            wait = None
            self._spend_budget(end)
            try:
                resp = self.session.request(method, url, data=data, params=params, headers=self._headers(json_body),
                                            timeout=timeout, allow_redirects=False)
            except req_exc.RequestException as e:  # pylint: disable=catching-non-exception
                connect_phase = isinstance(e, (req_exc.ConnectTimeout,)) or (
                    isinstance(e, req_exc.ConnectionError) and not isinstance(e, req_exc.ReadTimeout)
                    and _never_sent(e))
                reason = self.redact(_exc_text(e))
                if not idempotent and not connect_phase:
                    raise AmbiguousError(
                        self.redact("%s %s: no answer (%s); the request may have been processed" % (
                            self.service, what, reason)),
                        category=AMBIGUOUS, provider=self.provider, details={"attempts": attempt})
                last_error = ApiError(self.redact("%s %s: connection failed: %s" % (self.service, what, reason)),
                                      category=UNAVAILABLE, provider=self.provider, details={"attempts": attempt})
            else:
                text = resp.text or ""
                body = None
                if text:
                    try:
                        body = resp.json()
                    except ValueError:
                        body = None
                if resp.status_code in ok:
                    return Response(resp.status_code, resp.headers, body, text, attempt)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                err = self._error(resp.status_code, body, text, what, attempt, retry_after)
                retryable = RETRY_STATUSES if idempotent else SAFE_RETRY_STATUSES
                if resp.status_code not in retryable or err.category == QUOTA:
                    if not idempotent and resp.status_code >= 500 and err.category in (UNAVAILABLE, ERROR):
                        raise AmbiguousError(err.message + " (the request may have been processed)",
                                             status=err.status, category=AMBIGUOUS, provider=self.provider,
                                             details=err.details)
                    raise err
                last_error = err
                if resp.status_code == 429 and self.budget is not None:
                    self.budget.penalize(retry_after if retry_after is not None else 1.0)
                if resp.status_code == 429 and retry_after is not None:
                    # honour the server's wait, plus a little jitter so parallel clients spread out
                    wait = retry_after + self._rng.uniform(0, min(0.25, self.backoff_base))
            if attempt > self.max_retries:
                last_error.message = "%s (gave up after %d attempts)" % (last_error.message, attempt)
                raise last_error
            if wait is None:
                wait = self._backoff(attempt - 1)
            remaining = end - self.clock()
            if wait >= remaining:
                last_error.message = "%s (gave up after %d attempts in %.0fs: the next retry would pass the %.0fs deadline)" % (
                    last_error.message, attempt, total - max(0.0, remaining), total)
                raise last_error
            self.stats["retries"] += 1
            self.stats["slept"] += wait
            self.sleep(wait)

    def _spend_budget(self, end):
        """Wait for a token of the shared per-user budget (every gpu.ops process of this user and key)."""
        if self.budget is None:
            return
        waited = self.budget.acquire(max(0.0, end - self.clock()), self.sleep)
        self.stats["slept"] += waited
        self.stats["budget_waits"] = self.stats.get("budget_waits", 0.0) + waited

    # convenience
    def get(self, path, params=None, **kw):
        return self.request("GET", path, params=params, **kw)

    def post(self, path, json_body=None, **kw):
        return self.request("POST", path, json_body=json_body, **kw)

    def put(self, path, json_body=None, **kw):
        return self.request("PUT", path, json_body=json_body, **kw)

    def delete(self, path, json_body=None, **kw):
        return self.request("DELETE", path, json_body=json_body, **kw)


def _exc_text(e):
    text = str(e) or e.__class__.__name__
    return _truncate(text, 300)


def _never_sent(e):
    """True when a ConnectionError happened before the request reached the server."""
    text = str(e).lower()
    return any(s in text for s in ("connection refused", "name or service not known", "failed to establish",
                                   "nodename nor servname", "no route to host", "network is unreachable",
                                   "temporary failure in name resolution"))


# ---------------------------------------------------------------------------- shared request budgets
# Per-user request budgets: each provider declares its own (``Provider.api_quota``, (requests per second, burst))
# and passes it as ``quota``; every process of the user draws from one bucket per provider, account and API.
QUOTA_ENV = "GPUOPS_API_QUOTAS"  # "off" disables budgets and poll floors (simulators only)
QUOTA_DIR_ENV = "GPUOPS_API_QUOTA_DIR"


def quotas_enabled():
    return os.environ.get(QUOTA_ENV, "on").strip().lower() not in ("off", "0", "false", "no")


def quota_dir():
    base = os.environ.get(QUOTA_DIR_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "gpuops")
    return base


def default_budget(provider, base_url, api_key, quota=None):
    """The shared budget (``quota``: requests per second, burst) of ``provider`` for this account (the key) at
    this API, or None without a quota."""
    if not quota or not quotas_enabled():
        return None
    rate, burst = quota
    host = base_url.split("/")[2] if "//" in base_url else base_url
    account = hashlib.sha256(("%s\n%s" % (host, api_key or "")).encode("utf-8")).hexdigest()[:16]
    return SharedBudget(os.path.join(quota_dir(), "budget-%s-%s.json" % (provider, account)), rate, burst)


class SharedBudget:
    """A token bucket in a file, locked with flock, shared by every process of the user.

    ``acquire`` takes one token, sleeping (outside the lock) until one is there; ``penalize`` empties the
    bucket for a while after a 429, so the other processes back off too. A file that cannot be used
    (read-only cache, no flock) degrades to a bucket in this process.
    """

    def __init__(self, path, rate, burst, clock=None):
        self.path = path
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock or time.time
        self._local = {"tokens": self.burst, "t": self.clock()}

    def _update(self, fn):
        """Apply ``fn(state, now) -> result`` to the stored state under the lock; return the result."""
        try:
            d = os.path.dirname(self.path)
            if d and not os.path.isdir(d):
                os.makedirs(d, mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return fn(self._local, self.clock())
        with os.fdopen(fd, "r+") as fh:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                state = json.loads(fh.read() or "{}")
                state = {"tokens": float(state["tokens"]), "t": float(state["t"])}
            except (ValueError, KeyError, TypeError):
                state = {"tokens": self.burst, "t": self.clock()}
            out = fn(state, self.clock())
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(state))
            return out

    def _refill(self, state, now):
        state["tokens"] = min(self.burst, state["tokens"] + max(0.0, now - state["t"]) * self.rate)
        state["t"] = max(state["t"], now)

    def _take(self, state, now):
        self._refill(state, now)
        if state["tokens"] >= 1.0:
            state["tokens"] -= 1.0
            return 0.0
        return (1.0 - state["tokens"]) / self.rate

    def acquire(self, max_wait, sleep):
        """Seconds waited for the token; gives up waiting after ``max_wait`` (the request's deadline)."""
        waited = 0.0
        while True:
            wait = self._update(self._take)
            if wait <= 0.0:
                return waited
            if waited >= max_wait:
                return waited  # the request deadline rules; the server's 429, if any, is handled as usual
            wait = min(wait + 0.01, max(0.01, max_wait - waited))
            sleep(wait)
            waited += wait

    def penalize(self, seconds):
        def drain(state, now):
            self._refill(state, now)
            state["tokens"] = min(state["tokens"], 0.0) - float(seconds) * self.rate
        self._update(drain)
