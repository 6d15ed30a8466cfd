# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RunPod adapter: REST v2 (https://api.runpod.io/v2) for pods and the GPU catalog; GraphQL only for
what v2 cannot do (interruptible "spot" pods: create, bid-resume, bid prices).

PRIVATE to the collection: the API may change between releases.

Labels: RunPod v2 has no labels, so ``run_id``/``owner``/``expires_at`` travel as the pod env vars
``GPUOPS_RUN_ID``/``GPUOPS_OWNER``/``GPUOPS_EXPIRES_AT`` (GET /v2/pods returns ``env``). A spot pod
also carries ``GPUOPS_INTERRUPTIBLE=1`` and ``GPUOPS_BID_PER_GPU`` (v2 does not report spot-ness).
"""

from __future__ import annotations

from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils.container_start import sshd_start_command
from ansible_collections.gpu.ops.plugins.module_utils.provider import (
    ConfigError,
    Instance,
    Offer,
    Provider,
    ProviderOption,
    bill_record,
    canonical_gpu_model,
    dc_country,
    gpu_close_matches,
    gpu_matches,
    gpu_tokens,
    labels_from_env,
    labels_to_env,
    not_billed,
    reconcile_ambiguous,
    utc_day,
    utc_iso,
    version_key,
)

DEFAULT_API_URL = "https://api.runpod.io/v2"
DEFAULT_GRAPHQL_URL = "https://api.runpod.io/graphql"
STATUS_MAP = {"PROVISIONING": "pending", "STARTING": "pending", "RUNNING": "running", "EXITED": "stopped",
              "ERROR": "error", "TERMINATED": "terminated"}
CAPACITY_MESSAGES = ("no longer any instances available", "no instances currently available",
                     "not enough free gpus", "no compatible cuda host", "no longer any instances",
                     "there are no instances")
FUNDS_MESSAGES = ("insufficient balance", "balance is too low", "add funds")
INTERRUPTIBLE_ENV = "GPUOPS_INTERRUPTIBLE"
BID_ENV = "GPUOPS_BID_PER_GPU"

SPOT_CREATE = """mutation RentInterruptable($input: PodRentInterruptableInput!) {
  podRentInterruptable(input: $input) { id desiredStatus costPerHr }
}"""
SPOT_RESUME = """mutation BidResume($input: PodBidResumeInput!) {
  podBidResume(input: $input) { id desiredStatus costPerHr }
}"""
SPOT_PRICES = """query SpotPrices($lp: GpuLowestPriceInput) {
  gpuTypes { id displayName memoryInGb lowestPrice(input: $lp) { minimumBidPrice stockStatus maxUnreservedGpuCount } }
}"""


def _text_of(body, text):
    return (http.error_text(body, text) or "").lower()


def classify(status, body, text):
    msg = _text_of(body, text)
    if status in (400, 500) and any(m in msg for m in CAPACITY_MESSAGES):
        return http.NO_CAPACITY
    if status == 402 or any(m in msg for m in FUNDS_MESSAGES):
        return http.INSUFFICIENT_FUNDS
    return http.default_category(status, body, text)


def classify_graphql_message(message):
    msg = (message or "").lower()
    if any(m in msg for m in CAPACITY_MESSAGES):
        return http.NO_CAPACITY
    if any(m in msg for m in FUNDS_MESSAGES):
        return http.INSUFFICIENT_FUNDS
    if "unauthorized" in msg or "api key" in msg:
        return http.AUTH
    if "not found" in msg:
        return http.NOT_FOUND
    if "something went wrong" in msg:
        return http.UNAVAILABLE
    return http.INVALID_REQUEST


def _env_of(pod):
    env = pod.get("env") or {}
    if isinstance(env, list):  # GraphQL shape ["K=V"]
        env = dict(e.split("=", 1) for e in env if "=" in e)
    return env


def auth_message(err):
    return ("RunPod API key rejected (HTTP %s: %s). Set runpod_api_key or RUNPOD_API_KEY to a valid key with "
            "read/write scope." % (err.status, err.message.split(": ", 2)[-1]))


# RunPod's own templates start sshd and write $PUBLIC_KEY themselves; every other image runs its own
# entrypoint, which gives no SSH (provider-apis.md 1.8): those get the start command that does
TEMPLATE_IMAGES = ("runpod/",)


def start_args(spec):
    """The pod's start command: the user's ``args``, nothing for RunPod's templates, else ours (sshd)."""
    if spec.get("args"):
        return spec["args"]
    if str(spec.get("image") or "").startswith(TEMPLATE_IMAGES):
        return None
    return sshd_start_command()


class RunPodProvider(Provider):
    name = "runpod"
    options = (
        ProviderOption("runpod_api_key", "RUNPOD_API_KEY", "api_key", secret=True),
        ProviderOption("runpod_api_url", "RUNPOD_API_URL", "api_url", default=DEFAULT_API_URL),
        ProviderOption("runpod_graphql_url", "RUNPOD_GRAPHQL_URL", "graphql_url", default=DEFAULT_GRAPHQL_URL),
    )
    single_use_offers = False  # an offer is a GPU type in a cloud: rent it as often as there is stock
    # provider-apis.md 1.1: 60 requests per minute per user; a bucket of 10 refilled at 50 per minute never
    # passes 60 in any 60 s window (and keeps to 3,000 per hour)
    api_quota = (50.0 / 60.0, 10.0)
    api_poll = (0.5, 2.0)
    # the pod-scoped key RunPod puts in every pod, and its id
    instance_credential = {"key_env": "RUNPOD_API_KEY", "id_env": "RUNPOD_POD_ID", "url_env": "RUNPOD_API_URL",
                           "public_url": DEFAULT_API_URL, "destroy_path": "/pods/%s", "destroy_body": None}
    simulator_urls = {"RUNPOD_API_URL": "/v2", "RUNPOD_GRAPHQL_URL": "/graphql"}

    def __init__(self, api_key, api_url=None, graphql_url=None, timeout=30.0, deadline=120.0, **client_kw):
        if not api_key:
            raise ConfigError("no RunPod API key: set runpod_api_key or the RUNPOD_API_KEY environment variable")
        self.api_key = api_key
        self.rest = http.HttpClient(api_url or DEFAULT_API_URL, api_key, provider="runpod", service="RunPod API",
                                    timeout=timeout, deadline=deadline, classify=classify, quota=self.api_quota,
                                    **client_kw)
        self.gql = http.HttpClient(graphql_url or DEFAULT_GRAPHQL_URL, api_key, provider="runpod",
                                   service="RunPod GraphQL", timeout=timeout, deadline=deadline, classify=classify,
                                   quota=self.api_quota, **client_kw)
        self._catalog = None

    @property
    def clients(self):
        return (self.rest, self.gql)

    # ------------------------------------------------------------------ plumbing
    def _call(self, method, path, **kw):
        try:
            return self.rest.request(method, path, **kw)
        except http.ApiError as e:
            if e.category == http.AUTH:
                e.message = auth_message(e)
            raise

    def graphql(self, query, variables=None, what="GraphQL", idempotent=True):
        try:
            resp = self.gql.request("POST", "", json_body={"query": query, "variables": variables or {}},
                                    idempotent=idempotent, what=what)
        except http.ApiError as e:
            if e.category == http.AUTH:
                e.message = auth_message(e)
            raise
        body = resp.data if isinstance(resp.data, dict) else {}
        errors = body.get("errors")
        if errors:
            first = errors[0] if isinstance(errors[0], dict) else {"message": str(errors[0])}
            msg = first.get("message") or "unknown error"
            raise http.ApiError(self.gql.redact("RunPod GraphQL %s: %s" % (what, http.error_text(body))),
                                status=resp.status, category=classify_graphql_message(msg), provider="runpod",
                                details={"errors": errors[:5]})
        return body.get("data") or {}

    # ------------------------------------------------------------------ labels
    @classmethod
    def encode_labels(cls, name, labels):
        """RunPod has no labels: the name is the pod name, the labels travel as pod env vars."""
        return {"name": name, "env": labels_to_env(labels)}

    @classmethod
    def decode_labels(cls, row):
        return row.get("name"), labels_from_env(_env_of(row))

    def create_ports(self, ports):
        return ["%d/tcp" % port for port in ports]

    # ------------------------------------------------------------------ normalization
    def to_instance(self, pod):
        env = _env_of(pod)
        name, labels = self.decode_labels(pod)
        ssh = (pod.get("ssh") or {}).get("direct") or None
        gpu = pod.get("gpu") or {}
        status = STATUS_MAP.get(str(pod.get("status") or "").upper(), "error")
        # RunPod says RUNNING while the image is still pulling: the container is up once runtime is reported
        pulling = status == "running" and pod.get("runtime") is None
        return Instance(
            id=pod.get("id"), name=name, provider=self.name, status=status,
            ssh_host=ssh.get("host") if ssh else None, ssh_port=int(ssh["port"]) if ssh and ssh.get("port") else None,
            ssh_user=ssh.get("username") if ssh else None, gpu_type=gpu.get("id"),
            gpu_count=gpu.get("count"), price_per_hour=pod.get("cost"),
            interruptible=env.get(INTERRUPTIBLE_ENV) == "1", labels=labels,
            created_at=pod.get("createdAt"), provider_status=pod.get("status"), image=pod.get("image"),
            region=pod.get("dataCenterId"), offer_id=None, pulling=pulling,
            status_message="pulling the image (the container has not started)" if pulling else None,
        )

    # ------------------------------------------------------------------ reads
    def list(self, filters=None):
        resp = self._call("GET", "/pods", what="list pods")
        pods = (resp.data or {}).get("pods") or []
        return [self.to_instance(p) for p in pods]

    def get(self, instance_id):
        try:
            resp = self._call("GET", "/pods/%s" % instance_id, what="get pod %s" % instance_id)
        except http.ApiError as e:
            if e.status == 404 and e.category == http.NOT_FOUND:
                return None
            raise
        inst = self.to_instance(resp.data or {})
        return None if inst.status == "terminated" else inst

    def gpu_catalog(self):
        """GPU types (id, name, memory, prices, maxCount) from GET /v2/catalog/gpus; cached per provider."""
        if self._catalog is None:
            resp = self._call("GET", "/catalog/gpus", what="list GPU types")
            self._catalog = (resp.data or {}).get("gpus") or []
        return self._catalog

    def resolve_gpu_type(self, query):
        """The RunPod GPU type id for "RTX 4090", "4090", "NVIDIA GeForce RTX 4090" ...; ConfigError if
        unknown (with close matches) or ambiguous."""
        gpus = self.gpu_catalog()
        q = str(query).strip()
        for g in gpus:
            if g.get("id", "").lower() == q.lower():
                return g["id"]
        hits = [g for g in gpus if gpu_matches(q, g.get("id")) or gpu_matches(q, g.get("name"))]
        if len(hits) > 1:
            exact = [g for g in hits if gpu_tokens(g.get("name")) == gpu_tokens(q)
                     or gpu_tokens(g.get("id")) == gpu_tokens(q)]
            if len(exact) == 1:
                hits = exact
        if len(hits) == 1:
            return hits[0]["id"]
        if hits:
            raise ConfigError("GPU type %r is ambiguous on RunPod: it matches %s; name one of them" % (
                q, ", ".join("'%s'" % g["id"] for g in hits)))
        close = gpu_close_matches(q, [g.get("id") for g in gpus] + [g.get("name") for g in gpus])
        hint = ("; close matches: %s" % ", ".join("'%s'" % c for c in close)) if close else ""
        raise ConfigError("unknown RunPod GPU type %r%s" % (q, hint),
                          details={"known": sorted(g.get("id") for g in gpus)})

    def find_offers(self, filters):
        clouds = [filters.cloud_type] if filters.cloud_type else ["SECURE", "COMMUNITY"]
        offers = []
        spot = None
        if filters.interruptible:
            spot = {}
            for cloud in clouds:
                data = self.graphql(SPOT_PRICES, {"lp": {"gpuCount": filters.gpu_count,
                                                         "secureCloud": cloud == "SECURE"}}, what="spot prices")
                for t in data.get("gpuTypes") or []:
                    lp = t.get("lowestPrice") or {}
                    if lp.get("minimumBidPrice") is not None and lp.get("stockStatus"):
                        spot[(cloud, t.get("id"))] = float(lp["minimumBidPrice"])
        for cloud in clouds:
            params = {"include": "AVAILABILITY", "product": "POD", "count": filters.gpu_count, "cloud": cloud}
            if filters.min_cuda_version:
                params["minCudaVersion"] = filters.min_cuda_version
            resp = self._call("GET", "/catalog/gpus", params=params, what="GPU availability (%s)" % cloud)
            for g in (resp.data or {}).get("gpus") or []:
                avail = str(g.get("availability") or "NONE").upper()
                max_count = ((g.get("maxCount") or {}).get(cloud.lower())) or 0
                if avail == "NONE" or max_count < filters.gpu_count:
                    continue
                dcs = [d["id"] for d in (g.get("dataCenters") or []) if str(d.get("availability")).upper() != "NONE"]
                if filters.regions:
                    dcs = [d for d in dcs if d.upper() in filters.regions or dc_country(d) in filters.regions]
                    if not dcs:
                        continue
                cudas = [c["version"] for c in (g.get("cudaVersions") or []) if c.get("available", True)]
                if filters.min_cuda_version:
                    cudas = [c for c in cudas if version_key(c) >= version_key(filters.min_cuda_version)]
                    if not cudas:
                        continue
                cudas.sort(key=version_key)
                per_gpu = (g.get("price") or {}).get(cloud.lower())
                min_bid = None
                if spot is not None:
                    min_bid = spot.get((cloud, g.get("id")))
                    if min_bid is None:
                        continue
                    per_gpu = min_bid
                if per_gpu is None:
                    continue
                offers.append(Offer(
                    provider="runpod", offer_id="runpod:%s:%s" % (cloud, g.get("id")), gpu_type=g.get("id"),
                    gpu_model=canonical_gpu_model(g.get("name") or g.get("id")), gpu_count=filters.gpu_count,
                    vram_gb=g.get("memory"), price_per_hour=round(float(per_gpu) * filters.gpu_count, 4),
                    price_per_gpu_hour=float(per_gpu), interruptible=filters.interruptible, min_bid=min_bid,
                    region=",".join(dcs) if dcs else None, country=None, data_centers=dcs,
                    cuda_version=cudas[-1] if cudas else None, cuda_versions=cudas, reliability=None,
                    cloud_type=cloud, availability=avail, verified=True,
                ))
        return [o for o in offers if filters.matches(o)]

    # ------------------------------------------------------------------ writes
    def _create_body(self, spec):
        env = dict(spec.get("env") or {})
        if spec.get("public_key"):
            env["PUBLIC_KEY"] = spec["public_key"]
        env.update(self.encode_labels(spec["name"], spec.get("labels") or {})["env"])
        ports = list(spec.get("ports") or [])
        if "22/tcp" not in ports:
            ports.append("22/tcp")
        gpu = {"id": spec["gpu_type"], "count": int(spec.get("gpu_count") or 1)}
        if spec.get("min_cuda_version"):
            gpu["minCudaVersion"] = str(spec["min_cuda_version"])
        body = {"name": spec["name"], "image": spec["image"], "gpu": gpu, "cloud": spec.get("cloud_type") or "SECURE",
                "ports": ports, "env": env, "startSsh": True}
        if spec.get("disk_gb"):
            body["disk"] = int(spec["disk_gb"])
        if spec.get("data_centers"):
            body["dataCenterIds"] = list(spec["data_centers"])
        args = start_args(spec)
        if args:
            body["args"] = args
        return body

    def _spot_input(self, spec):
        body = self._create_body(spec)
        env = dict(body["env"])
        env[INTERRUPTIBLE_ENV] = "1"
        env[BID_ENV] = str(spec["bid_per_gpu"])
        inp = {"name": body["name"], "imageName": body["image"], "gpuTypeId": spec["gpu_type"],
               "gpuCount": body["gpu"]["count"], "bidPerGpu": float(spec["bid_per_gpu"]),
               "cloudType": body["cloud"], "containerDiskInGb": int(spec.get("disk_gb") or 20), "volumeInGb": 0,
               "volumeMountPath": "/workspace", "ports": ",".join(body["ports"]), "supportPublicIp": True,
               "startSsh": True, "env": [{"key": k, "value": v} for k, v in sorted(env.items())]}
        if spec.get("data_centers"):
            inp["dataCenterId"] = spec["data_centers"][0]
        if spec.get("allowed_cuda_versions"):
            inp["allowedCudaVersions"] = list(spec["allowed_cuda_versions"])
        args = start_args(spec)
        if args:
            inp["dockerArgs"] = args
        return inp

    def create(self, spec):
        """Create a pod (REST v2, or GraphQL podRentInterruptable for spot). A create whose answer was lost
        is reconciled by name before it is tried again, so it never makes two pods."""
        attempts = 0
        while True:
            attempts += 1
            try:
                if spec.get("interruptible"):
                    data = self.graphql(SPOT_CREATE, {"input": self._spot_input(spec)},
                                        what="create spot pod %r" % spec["name"], idempotent=False)
                    pod_id = (data.get("podRentInterruptable") or {}).get("id")
                    if not pod_id:
                        raise http.ApiError("RunPod GraphQL create spot pod %r: no pod id in the answer" % spec["name"],
                                            category=http.ERROR, provider="runpod")
                    try:
                        inst = self.get(pod_id)
                    except http.ApiError:
                        inst = None
                    if inst is None:  # not readable yet: a pending stub, so the caller can still track it
                        inst = Instance(id=pod_id, name=spec["name"], provider="runpod", status="pending",
                                        gpu_type=spec["gpu_type"], gpu_count=spec.get("gpu_count") or 1,
                                        interruptible=True, labels=dict(spec.get("labels") or {}))
                    return inst
                resp = self._call("POST", "/pods", json_body=self._create_body(spec), ok=(200, 201),
                                  idempotent=False, what="create pod %r" % spec["name"])
                return self.to_instance(resp.data or {})
            except http.AmbiguousError as e:
                found = reconcile_ambiguous(self, spec["name"], e)
                if found:
                    return found
                if attempts >= 3:
                    raise
                self.rest.pause(attempts)

    def create_from_offer(self, offer, spec):
        spec = dict(spec)
        spec.update(gpu_type=offer.gpu_type, gpu_count=offer.gpu_count, cloud_type=offer.cloud_type)
        if spec.get("regions_requested") and offer.data_centers:
            spec["data_centers"] = list(offer.data_centers)
        if offer.interruptible:
            spec["interruptible"] = True
            if not spec.get("bid_per_gpu"):
                spec["bid_per_gpu"] = offer.min_bid
            if spec.get("min_cuda_version") and offer.cuda_versions:
                spec["allowed_cuda_versions"] = list(offer.cuda_versions)
        return self.create(spec)

    def _action(self, instance, action):
        resp = self._call("POST", "/pods/%s/action" % instance.id, json_body={"action": action}, ok=(200, 204),
                          idempotent=True, what="%s pod %s" % (action, instance.id))
        if resp.status == 204 or not resp.data:
            return self.get(instance.id)
        return self.to_instance(resp.data)

    def start(self, instance, bid_per_gpu=None, **kw):
        if instance.interruptible:
            bid = bid_per_gpu
            if bid is None:
                pod = self._call("GET", "/pods/%s" % instance.id, what="get pod %s" % instance.id).data or {}
                bid = (pod.get("env") or {}).get(BID_ENV)
            if bid is None:
                raise ConfigError("spot pod %s needs bid_per_gpu to be resumed" % instance.id)
            self.graphql(SPOT_RESUME, {"input": {"podId": instance.id, "bidPerGpu": float(bid),
                                                 "gpuCount": int(instance.gpu_count or 1)}},
                         what="resume spot pod %s" % instance.id, idempotent=True)
            return self.get(instance.id)
        return self._action(instance, "start")

    def stop(self, instance):
        return self._action(instance, "stop")

    def restart(self, instance):
        if instance.status != "running":
            return self.start(instance)
        return self._action(instance, "restart")

    # ------------------------------------------------------------------ billing (GET /v2/billing/pods)
    def _pod_billing(self, since, until, pod_id=None):
        params = {"bucketSize": "day"}
        if since is not None:
            params["startTime"] = utc_iso(utc_day(since))
        if until is not None:
            params["endTime"] = utc_iso(until)
        if pod_id:
            params["podId"] = pod_id
        resp = self._call("GET", "/billing/pods", params=params, what="pod billing")
        return (resp.data or {}).get("records") or []

    def bills(self, since, until):
        return [bill_record("runpod", r.get("podId"), str(r.get("startTime", ""))[:10], r.get("totalAmount") or 0.0)
                for r in self._pod_billing(since, until) if r.get("podId")]

    def billed(self, instance_ids, since=None, until=None):
        out = {}
        for iid in instance_ids:
            try:
                recs = [r for r in self._pod_billing(since, until, pod_id=iid) if r.get("podId") == str(iid)]
            except http.ApiError as e:
                out[str(iid)] = not_billed("RunPod billing failed: %s" % e.message)
                continue
            if not recs:
                out[str(iid)] = not_billed("RunPod has no billing record for pod %s yet (bills lag behind use)" % iid)
                continue
            out[str(iid)] = {"billed_usd": round(sum(float(r.get("totalAmount") or 0) for r in recs), 6),
                             "billed_available": True, "reason": None}
        return out

    def terminate(self, instance_id):
        try:
            self._call("DELETE", "/pods/%s" % instance_id, ok=(200, 202, 204), what="terminate pod %s" % instance_id)
        except http.ApiError as e:
            if e.status == 404 and e.category == http.NOT_FOUND:
                return False
            raise
        return True
