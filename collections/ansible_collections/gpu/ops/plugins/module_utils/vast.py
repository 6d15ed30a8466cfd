# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Vast.ai adapter: /api/v0 (bundles, asks, instances/{id}, ssh) and the paginated /api/v1/instances/ list.

PRIVATE to the collection: the API may change between releases.

Labels: the Vast label holds the instance name and the ownership labels,
``<name>;run_id=<r>;owner=<o>;expires_at=<iso>`` (see provider.encode_name_label); they are also
passed to the container as ``GPUOPS_*`` env vars. SSH: the direct pair only, ``public_ipaddr``
(stripped) + ``ports["22/tcp"][0]["HostPort"]``; the proxy pair (``ssh_host``/``ssh_port``) is used
only for an instance that has no direct mapping at all, and the two are never mixed. The SSH user is
not reported by Vast (it is root there): ``ssh_user`` / ``VAST_SSH_USER``, default ``root``.
"""

from __future__ import annotations

import json
import shlex
import time

from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils.provider import (
    ConfigError,
    Instance,
    Offer,
    OfferFilters,
    Provider,
    ProviderOption,
    bill_record,
    canonical_gpu_model,
    gpu_matches,
    labels_to_env,
    not_billed,
    reconcile_ambiguous,
    utc_day,
    utc_iso,
)

DEFAULT_API_URL = "https://console.vast.ai"
PAGE_SIZE = 25
CHARGES_PAGE = 500  # the server's maximum for /api/v0/charges
MAX_PAGES = 2000
PENDING = {None, "", "created", "loading", "scheduling", "rebooting", "starting", "provisioning"}
FAILED = {"unknown", "offline", "frozen"}
NO_AUTO_TMUX = "touch ~/.no_auto_tmux"
# GPU names as Vast's market spells them (``gpu_name`` of offers). The search filters models on the
# server with ``gpu_name in [...]``: the market lists thousands of offers and a search returns only
# ``limit`` of them, so filtering locally would never see an H100 behind hundreds of cheaper cards.
VAST_GPU_NAMES = (
    "A10", "A100 PCIE", "A100 SXM4", "A100X", "A16", "A30", "A40", "A800 PCIE", "B200", "GH200 SXM",
    "GTX 1080 Ti", "H100 NVL", "H100 PCIE", "H100 SXM", "H200", "H200 NVL", "L4", "L40", "L40S", "Q RTX 6000",
    "Q RTX 8000", "RTX 2080 Ti", "RTX 3060", "RTX 3070", "RTX 3080", "RTX 3080 Ti", "RTX 3090", "RTX 3090 Ti",
    "RTX 4000Ada", "RTX 4060 Ti", "RTX 4070", "RTX 4070 Ti", "RTX 4080", "RTX 4080S", "RTX 4090", "RTX 4090D",
    "RTX 5000Ada", "RTX 5060 Ti", "RTX 5070", "RTX 5070 Ti", "RTX 5080", "RTX 5090", "RTX 6000Ada", "RTX A2000",
    "RTX A4000", "RTX A4500", "RTX A5000", "RTX A6000", "RTX PRO 6000 S", "RTX PRO 6000 WS", "Tesla P100",
    "Tesla P40", "Tesla T4", "Tesla V100", "Titan RTX", "Titan V", "MI300X",
)
SEARCH_LIMIT = 256


def _body_field(body, key):
    return str(body.get(key) or "") if isinstance(body, dict) else ""


def classify(status, body, text):
    msg = http.error_text(body, text).lower()
    err = _body_field(body, "error").lower()
    if status == 401 or "invalid user key" in msg or err == "auth_error":
        return http.AUTH
    if status == 429 and ("search_quota_exceeded" in msg or err == "search_quota_exceeded"):
        return http.QUOTA
    if status == 410 or err == "no_such_ask" or "no_such_ask" in msg:
        return http.OFFER_GONE
    if "insufficient_credit" in msg or err in ("insufficient_credit", "insufficient_funds") or status == 402:
        return http.INSUFFICIENT_FUNDS
    return http.default_category(status, body, text)


def auth_message(err):
    return ("Vast API key rejected (HTTP %s: %s). Set vast_api_key or VAST_API_KEY to a valid key." % (
        err.status, err.message.split(": ", 2)[-1]))


def docker_env(env, ports=("22",)):
    """Vast's create ``env`` as the Docker-flag string the OpenAPI specifies: ``-p 22:22 -e K=V``."""
    parts = []
    for p in ports:
        parts += ["-p", "%s:%s" % (p, p)]
    for k, v in sorted((env or {}).items()):
        parts += ["-e", shlex.quote("%s=%s" % (k, v))]
    return " ".join(parts)


def normalize_status(row):
    actual = row.get("actual_status")
    intended = row.get("intended_status")
    msg = str(row.get("status_msg") or "")
    a = str(actual).lower() if actual is not None else None
    if "oci runtime create failed" in msg.lower():
        return "error"
    if a == "running":
        return "stopped" if intended == "stopped" else "running"
    if a in PENDING:
        return "stopped" if intended == "stopped" and a not in (None, "") else "pending"
    if a in ("stopped", "exited"):
        return "stopped" if (intended == "stopped" or a == "stopped") else "error"
    if a in FAILED:
        return "error"
    return "error"


def vast_gpu_names(queries):
    """Vast's names for the models asked for: "H100" -> H100 NVL, H100 PCIE, H100 SXM. The query itself
    (as a model name) is sent too, so a model newer than :data:`VAST_GPU_NAMES` is still found."""
    out = []
    for q in queries:
        for name in [n for n in VAST_GPU_NAMES if gpu_matches(q, n)] + [canonical_gpu_model(q)]:
            if name and name not in out:
                out.append(name)
    return out


ACCOUNT_KEY_MARK = "gpuops-run="


def _key_text(row):
    return str(row.get("key") or row.get("public_key") or row.get("ssh_key") or "")


class VastProvider(Provider):
    name = "vast"
    options = (
        ProviderOption("vast_api_key", "VAST_API_KEY", "api_key", secret=True),
        ProviderOption("vast_api_url", "VAST_API_URL", "api_url", default=DEFAULT_API_URL),
    )
    inventory_options = (ProviderOption("vast_ssh_user", "VAST_SSH_USER", "ssh_user", default="root"),)
    extra_kwargs = ("ssh_user",)
    ssh_user_env = "VAST_SSH_USER"  # Vast does not report the SSH user; it is root on Vast images
    single_use_offers = True  # an offer is one machine's ask: rented once
    # provider-apis.md 2.2, 2.8: no per-user figure, only per-endpoint minimum intervals and "poll every 10 s
    # or more": a guard of 1 request per second with bursts of 10, and one poll per 10 s per instance
    api_quota = (1.0, 10.0)
    api_poll = (10.0, 10.0)
    # the container's own key (CONTAINER_API_KEY) and id; DELETE wants a JSON body
    instance_credential = {"key_env": "CONTAINER_API_KEY", "id_env": "CONTAINER_ID", "url_env": "VAST_API_URL",
                           "public_url": DEFAULT_API_URL, "destroy_path": "/api/v0/instances/%s/",
                           "destroy_body": "{}"}
    simulator_urls = {"VAST_API_URL": ""}

    def __init__(self, api_key, api_url=None, ssh_user=None, timeout=30.0, deadline=120.0, **client_kw):
        if not api_key:
            raise ConfigError("no Vast API key: set vast_api_key or the VAST_API_KEY environment variable")
        self.api_key = api_key
        self.ssh_user = ssh_user or "root"
        self.keep_account_keys = False  # opt-out of removing the account keys gpu.ops added
        self.key_reports = {}  # instance id -> how its SSH key was put on it (see put_key_on)
        self.removed_account_keys = []
        self.client = http.HttpClient(api_url or DEFAULT_API_URL, api_key, provider="vast", service="Vast API",
                                      timeout=timeout, deadline=deadline, classify=classify, quota=self.api_quota,
                                      **client_kw)

    @property
    def clients(self):
        return (self.client,)

    # ------------------------------------------------------------------ hooks of gpu.ops.gpu_instance
    def configure_task(self, params):
        self.keep_account_keys = bool(params.get("keep_account_key"))

    def task_results(self):
        """How each new instance got its SSH key, and the account keys removed (filled as the task runs)."""
        return {"vast_ssh_keys": self.key_reports, "account_keys_removed": self.removed_account_keys}

    def _call(self, method, path, **kw):
        try:
            return self.client.request(method, path, **kw)
        except http.ApiError as e:
            if e.category == http.AUTH:
                e.message = auth_message(e)
            raise

    # ------------------------------------------------------------------ normalization
    def to_instance(self, row):
        name, labels = self.decode_labels(row)
        ports = row.get("ports") or {}
        host = port = None
        direct = ports.get("22/tcp") if isinstance(ports, dict) else None
        status = normalize_status(row)
        if direct:
            try:
                port = int(direct[0]["HostPort"])
                host = str(row.get("public_ipaddr") or "").strip() or None
            except (KeyError, IndexError, TypeError, ValueError):
                host = port = None
        elif status == "running" and "direc" not in str(row.get("image_runtype") or "") and row.get("ssh_host"):
            # proxy-only instance: the proxy pair, whole (never the proxy host with a direct port)
            host, port = str(row["ssh_host"]).strip(), int(row.get("ssh_port") or 0) or None
        if host is None or port is None:
            host = port = None
        start = row.get("start_date")
        geo = row.get("geolocation")
        return Instance(
            id=str(row.get("id")), name=name, provider="vast", status=status, ssh_host=host, ssh_port=port,
            ssh_user=self.ssh_user if host else None, gpu_type=row.get("gpu_name"), gpu_count=row.get("num_gpus"),
            price_per_hour=row.get("dph_total"), interruptible=bool(row.get("is_bid")), labels=labels,
            created_at=utc_iso(start) if isinstance(start, (int, float)) else start,
            provider_status=row.get("actual_status"), image=row.get("image_uuid"),
            region=str(geo).strip() if geo else None, offer_id=None, status_message=row.get("status_msg"),
            pulling=row.get("actual_status") == "loading",  # the image is pulling; status_msg has the progress
        )

    def to_offer(self, o, interruptible):
        gpu_ram = o.get("gpu_ram")
        geo = str(o.get("geolocation") or "")
        cuda = o.get("cuda_max_good")
        return Offer(
            provider="vast", offer_id=o.get("id"), gpu_type=o.get("gpu_name"),
            gpu_model=canonical_gpu_model(o.get("gpu_name")), gpu_count=o.get("num_gpus"),
            vram_gb=int(round(float(gpu_ram) / 1024.0)) if gpu_ram else None,
            price_per_hour=o.get("dph_total"), interruptible=interruptible, min_bid=o.get("min_bid"),
            region=geo or None, country=geo[-2:].upper() if len(geo) >= 2 else None, data_centers=[],
            cuda_version=str(cuda) if cuda is not None else None, cuda_versions=[],
            reliability=o.get("reliability2", o.get("reliability")), cloud_type=None,
            availability="HIGH", verified=o.get("verification") == "verified" if "verification" in o
            else o.get("verified"), disk_gb=o.get("disk_space"), vcpus=o.get("cpu_cores_effective"),
            ram_gb=round(float(o["cpu_ram"]) / 1000.0, 1) if o.get("cpu_ram") else None,
            inet_down_mbps=o.get("inet_down"),
        )

    # ------------------------------------------------------------------ reads
    def list(self, filters=None):
        """Every instance, through GET /api/v1/instances/ (25 per page, following next_token)."""
        params = {"limit": PAGE_SIZE, "order_by": json.dumps([{"col": "id", "dir": "asc"}])}
        if filters:
            params["select_filters"] = json.dumps(filters)
        out = []
        seen_tokens = set()
        for _page in range(MAX_PAGES):
            resp = self._call("GET", "/api/v1/instances/", params=dict(params), what="list instances")
            data = resp.data or {}
            out.extend(self.to_instance(r) for r in data.get("instances") or [])
            token = data.get("next_token")
            if not token or token in seen_tokens:
                break
            seen_tokens.add(token)
            params["after_token"] = token
        return out

    def get(self, instance_id):
        try:
            resp = self._call("GET", "/api/v0/instances/%s/" % instance_id, what="show instance %s" % instance_id)
        except http.ApiError as e:
            if e.status == 404 and e.category == http.NOT_FOUND:
                return None
            raise
        row = (resp.data or {}).get("instances")
        if not row:
            return None
        return self.to_instance(row)

    def search_body(self, filters, limit=SEARCH_LIMIT):
        """The bundles query: every filter Vast can apply is sent, so ``limit`` cuts after filtering."""
        q = {"verified": {"eq": True}, "rentable": {"eq": True}, "rented": {"eq": False},
             "num_gpus": {"eq": filters.gpu_count}, "direct_port_count": {"gte": 1},
             "order": [["dph_total", "asc"], ["reliability", "desc"]],
             "type": "bid" if filters.interruptible else "ondemand", "limit": limit}
        if not filters.verified_only:
            del q["verified"]
        if filters.gpu:
            q["gpu_name"] = {"in": vast_gpu_names(filters.gpu)}
        if filters.min_vram_gb:
            q["gpu_ram"] = {"gte": int(filters.min_vram_gb * 1000)}
        if filters.max_price_per_hour is not None:
            q["dph_total"] = {"lte": float(filters.max_price_per_hour)}
        if filters.min_cuda_version:
            q["cuda_max_good"] = {"gte": float(filters.min_cuda_version)}
        if filters.min_reliability is not None:
            q["reliability"] = {"gte": float(filters.min_reliability)}
        if filters.regions and all(len(r) == 2 for r in filters.regions):
            q["geolocation"] = {"in": list(filters.regions)}
        if filters.min_disk_gb:
            q["disk_space"] = {"gte": float(filters.min_disk_gb)}
            q["allocated_storage"] = float(filters.min_disk_gb)
        return q

    def find_offers(self, filters):
        resp = self._call("POST", "/api/v0/bundles/", json_body=self.search_body(filters), idempotent=True,
                          what="search offers")
        offers = [self.to_offer(o, filters.interruptible) for o in (resp.data or {}).get("offers") or []]
        return [o for o in offers if filters.matches(o)]

    def near_offers(self, filters):
        """Offers of the wanted models with any GPU count, verified or not, at any price (see Provider)."""
        body = self.search_body(OfferFilters(gpu=filters.gpu, interruptible=filters.interruptible,
                                             verified_only=False), limit=SEARCH_LIMIT)
        del body["num_gpus"]
        resp = self._call("POST", "/api/v0/bundles/", json_body=body, idempotent=True, what="search offers")
        return [self.to_offer(o, filters.interruptible) for o in (resp.data or {}).get("offers") or []]

    # ------------------------------------------------------------------ writes
    def account_keys(self):
        resp = self._call("GET", "/api/v0/ssh/", what="list SSH keys")
        return resp.data if isinstance(resp.data, list) else (resp.data or {}).get("keys") or []

    def ensure_account_key(self, public_key, run_id=None):
        """(key id, added): register the key on the account unless it is there already. A key gpu.ops adds
        carries ``gpuops-run=<run_id>`` as its comment, so it can be removed once that run is gone."""
        want = " ".join(public_key.split()[:2])
        for r in self.account_keys():
            if " ".join(_key_text(r).split()[:2]) == want:
                return r.get("id"), False
        marked = "%s %s%s" % (want, ACCOUNT_KEY_MARK, run_id or "manual")
        resp = self._call("POST", "/api/v0/ssh/", json_body={"ssh_key": marked}, idempotent=True,
                          what="add SSH key")
        return ((resp.data or {}).get("key") or {}).get("id"), True

    def attach_key(self, instance_id, public_key):
        self._call("POST", "/api/v0/instances/%s/ssh/" % instance_id, json_body={"ssh_key": public_key},
                   idempotent=True, what="attach SSH key to %s" % instance_id)

    def put_key_on(self, instance_id, public_key, run_id=None):
        """The per-instance key endpoint, which leaves the account alone; the account key only when that
        fails (Vast copies account keys into every new instance, and per the OpenAPI into current ones)."""
        try:
            self.attach_key(instance_id, public_key)
            return {"method": "instance"}
        except http.ApiError as e:
            if e.category in (http.AUTH, http.QUOTA):
                raise
            why = e.message
        kid, added = self.ensure_account_key(public_key, run_id)
        return {"method": "account", "account_key_id": kid, "added": added,
                "why": "attaching the key to the instance failed: %s" % why}

    def release_account_keys(self):
        """Remove the account keys gpu.ops added for runs that have no instance left; their ids."""
        marked = [(r, _key_text(r).split(ACCOUNT_KEY_MARK, 1)[1].split()[0]) for r in self.account_keys()
                  if ACCOUNT_KEY_MARK in _key_text(r) and r.get("id") is not None]
        if not marked:
            return []
        live = {i.labels.get("run_id") or "manual" for i in self.list() if i.status != "terminated"}
        removed = []
        for row, run in marked:
            if run not in live:
                self._call("DELETE", "/api/v0/ssh/%s/" % row["id"], what="remove SSH key %s" % row["id"])
                removed.append(str(row["id"]))
        self.removed_account_keys.extend(removed)
        return removed

    def create_body(self, spec):
        env = dict(spec.get("env") or {})
        env.update(labels_to_env(spec.get("labels") or {}))
        onstart = NO_AUTO_TMUX
        if spec.get("onstart"):
            onstart = "%s\n%s" % (NO_AUTO_TMUX, spec["onstart"])
        body = {"image": spec["image"], "label": self.encode_labels(spec["name"], spec.get("labels") or {})["label"],
                "disk": float(spec.get("disk_gb") or 20), "runtype": "ssh_direct",
                "env": docker_env(env, ["22"] + [str(p) for p in spec.get("ports") or [] if str(p) != "22"]),
                "onstart": onstart, "cancel_unavail": True}
        if spec.get("interruptible"):
            body["price"] = float(spec["bid_price"])
        return body

    def create(self, spec):
        """Rent ask ``spec['offer_id']``. OFFER_GONE (no_such_ask) tells the caller to try the next offer."""
        body = self.create_body(spec)
        ask = spec["offer_id"]
        run_id = (spec.get("labels") or {}).get("run_id")
        attempts = 0
        account_key = None
        while True:
            attempts += 1
            try:
                resp = self._call("PUT", "/api/v0/asks/%s/" % ask, json_body=body, idempotent=False,
                                  what="rent offer %s" % ask)
                break
            except http.AmbiguousError as e:
                found = reconcile_ambiguous(self, spec["name"], e)
                if found:
                    return found
                if attempts >= 3:
                    raise
                self.client.pause(attempts)
            except http.ApiError as e:
                # a VM offer takes only account keys (the spec's no_ssh_key_for_vm): register it, rent again
                if e.details.get("error") != "no_ssh_key_for_vm" or not spec.get("public_key") or account_key:
                    raise
                kid, added = self.ensure_account_key(spec["public_key"], run_id)
                account_key = {"method": "account", "account_key_id": kid, "added": added,
                               "why": "the offer is a VM, which takes only account keys (no_ssh_key_for_vm)"}
        data = resp.data or {}
        if not data.get("success", True) or not data.get("new_contract"):
            raise http.ApiError("Vast API rent offer %s: %s" % (ask, http.error_text(data, resp.text)),
                                status=resp.status, category=classify(400, data, resp.text), provider="vast",
                                details={"ask_id": ask})
        iid = str(data["new_contract"])
        if account_key:
            self.key_reports[iid] = account_key
        elif spec.get("public_key"):
            self.key_reports[iid] = self.put_key_on(iid, spec["public_key"], run_id)
        try:
            inst = self.get(iid)
        except http.ApiError:
            inst = None
        if inst is None:  # not readable yet: a pending stub with what we know, so the caller can track it
            inst = Instance(id=iid, name=spec["name"], provider="vast", status="pending",
                            labels=dict(spec.get("labels") or {}), interruptible=bool(spec.get("interruptible")))
        inst.offer_id = ask
        return inst

    def create_from_offer(self, offer, spec):
        spec = dict(spec)
        spec["offer_id"] = offer.offer_id
        if offer.interruptible:
            spec["interruptible"] = True
            if not spec.get("bid_price"):
                spec["bid_price"] = offer.min_bid if offer.min_bid is not None else offer.price_per_hour
        return self.create(spec)

    def _state(self, instance, state):
        self._call("PUT", "/api/v0/instances/%s/" % instance.id, json_body={"state": state}, idempotent=True,
                   what="set instance %s %s" % (instance.id, state))
        return self.get(instance.id)

    def start(self, instance, **kw):
        return self._state(instance, "running")

    def stop(self, instance):
        return self._state(instance, "stopped")

    def restart(self, instance):
        if instance.status in ("running", "pending"):
            self._state(instance, "stopped")
        return self._state(instance, "running")

    # ------------------------------------------------------------------ billing (GET /api/v0/charges)
    def charges(self, gte, lte):
        """Every instance contract's charge entry for [gte, lte] (unix seconds; Vast requires both), all pages."""
        params = {"select_filters": json.dumps({"day": {"gte": int(gte), "lte": int(lte)},
                                                "type": {"in": ["instance"]}}), "limit": CHARGES_PAGE}
        out = []
        seen = set()
        for _page in range(MAX_PAGES):
            data = self._call("GET", "/api/v0/charges/", params=dict(params), what="show charges").data or {}
            out.extend(r for r in data.get("results") or [] if r.get("type", "instance") == "instance")
            token = data.get("next_token")
            if not token or token in seen:
                break
            seen.add(token)
            params["after_token"] = token
        return out

    @staticmethod
    def charge_instance_id(entry):
        src = str(entry.get("source") or "")
        return src.split("-", 1)[1] if src.startswith("instance-") else None

    def bills(self, since, until):
        """One charges query per UTC day: Vast reports per contract over the queried range, not per day."""
        out = []
        day = utc_day(since)
        while day < until:
            for e in self.charges(day, min(until, day + 86400) - 1):
                iid = self.charge_instance_id(e)
                if iid:
                    name, labels = self.decode_labels(e.get("metadata") or {})
                    out.append(bill_record("vast", iid, utc_iso(day)[:10], e.get("amount") or 0.0, name=name or None,
                                           labels=labels))
            day += 86400
        return out

    def billed(self, instance_ids, since=None, until=None):
        now = time.time()
        since = now - 30 * 86400 if since is None else since
        # Vast wants both bounds; "until now" ends tomorrow night, so a clock behind Vast's loses nothing
        lte = utc_day(now) + 2 * 86400 - 1 if until is None else until
        try:
            entries = self.charges(utc_day(since), lte)
        except http.ApiError as e:
            return {str(i): not_billed("Vast charges failed: %s" % e.message) for i in instance_ids}
        amounts = {}
        for e in entries:
            iid = self.charge_instance_id(e)
            if iid:
                amounts[iid] = amounts.get(iid, 0.0) + float(e.get("amount") or 0)
        out = {}
        for iid in instance_ids:
            if str(iid) in amounts:
                out[str(iid)] = {"billed_usd": round(amounts[str(iid)], 6), "billed_available": True, "reason": None}
            else:
                out[str(iid)] = not_billed("Vast has no charges for instance %s yet (charges lag behind use)" % iid)
        return out

    def terminate(self, instance_id):
        try:
            self._call("DELETE", "/api/v0/instances/%s/" % instance_id, what="destroy instance %s" % instance_id)
        except http.ApiError as e:
            if e.status == 404 and e.category == http.NOT_FOUND:
                return False
            raise
        if not self.keep_account_keys:
            try:
                self.release_account_keys()
            except http.ApiError as e:  # the instance is gone, which is what was asked; say what is left
                self.removed_account_keys.append("not removed: %s" % e.message)
        return True
