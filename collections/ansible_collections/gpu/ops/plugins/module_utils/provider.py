# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The provider interface every GPU cloud adapter implements, and the normalized data it returns.

PRIVATE to the collection: the API may change between releases.

* :class:`Instance` -- one instance as every module, the inventory plugin and the reaper see it.
* :class:`Offer` -- one rentable configuration (RunPod: a GPU type in a cloud; Vast: an ask).
* :class:`Provider` -- ``find_offers``, ``create``, ``get``, ``list``, ``find_by_name``, ``start``,
  ``stop``, ``restart``, ``terminate``.
* GPU model names normalized across providers ("NVIDIA GeForce RTX 4090" == "RTX 4090" == "4090").
* Ownership labels (run_id, owner, expires_at) and their encodings.
* Offer filters and ranking (plain AND-ed filters, no operator DSL).

No Ansible imports: the inventory plugin uses this module too.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import os
import re

from ansible_collections.gpu.ops.plugins.module_utils.http_client import ApiError

STATUSES = ("pending", "running", "stopped", "terminated", "error")
LABEL_KEYS = ("run_id", "owner", "expires_at")
# RunPod has no labels: they travel as env vars on the pod (returned by GET /v2/pods)
LABEL_ENV = {"run_id": "GPUOPS_RUN_ID", "owner": "GPUOPS_OWNER", "expires_at": "GPUOPS_EXPIRES_AT"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9._:+-]{1,100}$")


class ConfigError(ApiError):
    """Bad input found before any API call that costs money."""

    def __init__(self, message, details=None):
        super().__init__(message, category="invalid_input", details=details)


# ---------------------------------------------------------------------------- normalized types
class Instance:
    """A provider-neutral view of one instance (ARCHITECTURE section 3)."""

    FIELDS = ("id", "name", "provider", "status", "ssh_host", "ssh_port", "ssh_user", "gpu_type", "gpu_model",
              "gpu_count", "price_per_hour", "interruptible", "labels", "created_at", "provider_status", "image",
              "region", "offer_id", "status_message", "pulling")

    def __init__(self, **kw):
        for f in self.FIELDS:
            setattr(self, f, kw.pop(f, None))
        if kw:
            raise TypeError("unknown Instance fields: %s" % ", ".join(sorted(kw)))
        if self.labels is None:
            self.labels = {}
        if self.status not in STATUSES:
            raise ValueError("status %r is not one of %s" % (self.status, ", ".join(STATUSES)))
        if self.gpu_model is None and self.gpu_type:
            self.gpu_model = canonical_gpu_model(self.gpu_type)

    @property
    def ssh_ready_address(self):
        """(host, port) when the API reports a direct SSH endpoint, else None."""
        if self.ssh_host and self.ssh_port:
            return self.ssh_host, int(self.ssh_port)
        return None

    def to_dict(self):
        d = {f: getattr(self, f) for f in self.FIELDS}
        d["labels"] = dict(self.labels)
        return d

    def __repr__(self):
        return "Instance(%s %s %r %s)" % (self.provider, self.id, self.name, self.status)


class Offer:
    """One rentable configuration, normalized. ``price_per_hour`` is for the whole instance."""

    FIELDS = ("provider", "offer_id", "gpu_model", "gpu_type", "gpu_count", "vram_gb", "price_per_hour",
              "price_per_gpu_hour", "interruptible", "min_bid", "region", "country", "data_centers", "cuda_version",
              "cuda_versions", "reliability", "cloud_type", "availability", "verified", "disk_gb", "vcpus",
              "ram_gb", "inet_down_mbps")

    def __init__(self, **kw):
        for f in self.FIELDS:
            setattr(self, f, kw.pop(f, None))
        if kw:
            raise TypeError("unknown Offer fields: %s" % ", ".join(sorted(kw)))
        if self.gpu_model is None and self.gpu_type:
            self.gpu_model = canonical_gpu_model(self.gpu_type)
        if self.price_per_gpu_hour is None and self.price_per_hour is not None and self.gpu_count:
            self.price_per_gpu_hour = round(float(self.price_per_hour) / int(self.gpu_count), 4)

    def to_dict(self):
        d = {f: getattr(self, f) for f in self.FIELDS}
        d["data_centers"] = list(self.data_centers or [])
        d["cuda_versions"] = list(self.cuda_versions or [])
        return d

    def __repr__(self):
        return "Offer(%s %s %s x%s $%s/h)" % (
            self.provider, self.offer_id, self.gpu_model, self.gpu_count, self.price_per_hour)


class ProviderOption:
    """One connection option of a provider: the module (and inventory) option ``name``, the environment variable
    ``env`` it falls back to, the constructor keyword ``kwarg``, its ``default``; ``secret`` marks the API key
    (``no_log``; a provider counts as configured when it is set)."""

    __slots__ = ("name", "env", "kwarg", "default", "secret")

    def __init__(self, name, env, kwarg, default=None, secret=False):
        self.name = name
        self.env = env
        self.kwarg = kwarg
        self.default = default
        self.secret = secret

    def __repr__(self):
        return "ProviderOption(%s)" % self.name


class Provider:
    """The interface. Adapters raise :class:`ApiError` (with a category) and never touch Ansible.

    Everything the generic code needs to know about a provider is declared here, on the class, so that a
    provider's name appears in its own files only (and once in the registry's list of built-in providers,
    ``registry.BUILTIN``). See docs/design-notes.md, "Adding a provider".
    """

    name = "provider"
    # connection options shared by every module (doc fragment gpu.ops.auth) and the inventory plugin
    options = ()
    # options of the inventory plugin only (beyond ``options``), for example the SSH user
    inventory_options = ()
    # constructor keywords a module may pass to :meth:`from_params` besides the options (for example ssh_user)
    extra_kwargs = ()
    # the environment variable of the SSH user when the API does not report one (modules' ``ssh_user``)
    ssh_user_env = None
    # an offer can be rented once (a market ask), not again and again (a catalog entry)
    single_use_offers = False
    # per-user request budget shared by every process of the user: (requests per second, burst), or None
    api_quota = None
    # (first delay, steady interval) in seconds of API polls of one instance, or None: the caller's interval
    api_poll = None
    # the watchdog on the node destroys its own instance with the credential the provider gives the instance:
    # {"key_env", "id_env", "url_env", "public_url", "destroy_path" (with %s for the id), "destroy_body"
    # (a JSON text or None)}; None when the provider gives instances no credential
    instance_credential = None
    # how the local simulator serves this provider: {environment variable: path under the simulator's base
    # URL} for every URL option, as ``gpuops-sim start`` exports them
    simulator_urls = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def key_option(cls):
        """The option holding the API key (the first secret one), or None."""
        return next((o for o in cls.options if o.secret), None)

    @classmethod
    def configured(cls, get):
        """True when the API key is set; ``get(option name)`` reads an option."""
        key = cls.key_option()
        return bool(key is None or get(key.name))

    @classmethod
    def from_params(cls, params, client_kw=None, **extra):
        """An instance from module parameters (``params`` holds every option, its fallback already applied)."""
        kw = {o.kwarg: params.get(o.name) for o in cls.options}
        kw.update((k, v) for k, v in extra.items() if k in cls.extra_kwargs)
        kw.update(client_kw or {})
        return cls(**kw)

    @classmethod
    def from_env(cls, environ, client_kw=None):
        """An instance from environment variables alone (the controller's), or None when the key is not set."""
        key = cls.key_option()
        if key is not None and not environ.get(key.env):
            return None
        kw = {o.kwarg: environ.get(o.env) or o.default for o in cls.options}
        kw.update(client_kw or {})
        return cls(**kw)

    @classmethod
    def from_options(cls, get, client_kw=None):
        """An instance from plugin options: ``get(option name)`` returns the value, or None when the plugin does
        not document the option (then the environment variable, then the default, apply)."""
        kw = {}
        for o in tuple(cls.options) + tuple(cls.inventory_options):
            value = get(o.name)
            if value is None:
                value = (os.environ.get(o.env) if o.env else None) or o.default
            kw[o.kwarg] = value
        kw.update(client_kw or {})
        return cls(**kw)

    # ------------------------------------------------------------------ labels
    @classmethod
    def encode_labels(cls, name, labels):
        """The instance name and ownership labels in the provider's own create fields (a dict). Default: one
        free-text label ``<name>;run_id=<r>;owner=<o>;expires_at=<iso>``."""
        return {"label": encode_name_label(name, labels)}

    @classmethod
    def decode_labels(cls, row):
        """(name, labels) from one instance as the provider's API returns it (inverse of :meth:`encode_labels`)."""
        return decode_name_label(row.get("label"))

    # ------------------------------------------------------------------ hooks of the generic modules
    def create_ports(self, ports):
        """gpu.ops.gpu_instance ``ports`` (ints) in the form the provider's create spec takes."""
        return list(ports)

    def configure_task(self, params):
        """Read the module parameters a provider acts on beyond its options (gpu.ops.gpu_instance)."""

    def task_results(self):
        """Extra result keys of gpu.ops.gpu_instance; the values may be filled while the task runs."""
        return {}

    def find_offers(self, filters):
        """Offers matching an :class:`OfferFilters`, unsorted."""
        raise NotImplementedError

    def create(self, spec):
        """Create an instance from a dict spec; return its :class:`Instance` (usually still pending)."""
        raise NotImplementedError

    def get(self, instance_id):
        """The :class:`Instance`, or None when it does not exist (any more)."""
        raise NotImplementedError

    def list(self, filters=None):
        """Every instance of the account (one paginated listing, no per-instance calls)."""
        raise NotImplementedError

    def near_offers(self, filters):
        """Offers of the wanted GPU model (and gpu_count where the provider needs it to search) whatever the
        other filters say, so a caller can tell which filter excluded them. Unsorted."""
        relaxed = copy.copy(filters)
        relaxed.verified_only = False
        for k in ("max_price_per_hour", "min_vram_gb", "min_cuda_version", "min_reliability", "min_disk_gb"):
            setattr(relaxed, k, None)
        relaxed.regions = []
        return self.find_offers(relaxed)

    def find_by_name(self, name):
        """Instances whose name (RunPod) / label name (Vast) equals ``name`` and are not terminated."""
        return [i for i in self.list() if i.name == name and i.status != "terminated"]

    def start(self, instance, **kw):
        raise NotImplementedError

    def stop(self, instance):
        raise NotImplementedError

    def restart(self, instance):
        raise NotImplementedError

    def terminate(self, instance_id):
        """Destroy; True when something was destroyed, False when it was already gone."""
        raise NotImplementedError

    def bills(self, since, until):
        """What the provider billed per instance per UTC day in [since, until) (epoch seconds): a list of
        :func:`bill_record` dicts. Raises :class:`ApiError` when the billing API fails."""
        raise NotImplementedError

    def billed(self, instance_ids, since=None, until=None):
        """{id: {"billed_usd": float or None, "billed_available": bool, "reason": str or None}} for each id:
        the provider's bill over [since, until) (None: the provider's default window, until now). An id the
        provider has not billed (yet: bills lag) is ``billed_available: False`` with the reason."""
        raise NotImplementedError


def bill_record(provider, instance_id, day, amount, name=None, labels=None):
    """One instance's bill on one UTC day (``day`` "YYYY-MM-DD"); name and gpu.ops labels when the bill says."""
    return {"provider": provider, "instance_id": str(instance_id), "day": day, "amount_usd": float(amount),
            "name": name, "labels": dict(labels or {})}


def not_billed(reason):
    return {"billed_usd": None, "billed_available": False, "reason": reason}


def utc_day(ts):
    """Start (epoch seconds) of the UTC day holding ``ts``."""
    return int(ts // 86400) * 86400


def reconcile_ambiguous(provider, name, err):
    """After an ambiguous create (5xx or timeout): the instance named ``name`` if the create happened, else None.

    When the lookup itself fails nobody can tell, so the AmbiguousError is raised with
    ``details['lookup_failed']`` set: the caller must not create ``name`` anywhere else.
    """
    try:
        found = provider.find_by_name(name)
    except ApiError as e:
        err.details["lookup_failed"] = True
        err.message = "%s; looking for %r afterwards failed too: %s" % (err.message, name, e.message)
        raise err from None
    return found[0] if found else None


def filter_instances(instances, name=None, name_prefix=None, ids=None, run_id=None, owner=None, statuses=None):
    out = []
    ids = set(str(i) for i in ids) if ids else None
    for inst in instances:
        if name is not None and inst.name != name:
            continue
        if name_prefix and not (inst.name or "").startswith(name_prefix):
            continue
        if ids is not None and str(inst.id) not in ids:
            continue
        if run_id and inst.labels.get("run_id") != run_id:
            continue
        if owner and inst.labels.get("owner") != owner:
            continue
        if statuses and inst.status not in statuses:
            continue
        out.append(inst)
    return out


# ---------------------------------------------------------------------------- GPU model names
_VENDOR_WORDS = {"nvidia", "geforce", "tesla", "amd", "radeon", "instinct"}


def gpu_tokens(name):
    """Lower-case tokens of a GPU name without vendor words: "NVIDIA GeForce RTX 4090" -> ["rtx", "4090"]."""
    s = str(name or "").lower().replace("_", " ").replace("-", " ")
    s = re.sub(r"\b(rtx|gtx)(\d)", r"\1 \2", s)
    return [t for t in s.split() if t and t not in _VENDOR_WORDS]


def canonical_gpu_model(name):
    """A display name without vendor words, upper-cased model tokens: "NVIDIA GeForce RTX 4090" -> "RTX 4090"."""
    toks = gpu_tokens(name)
    out = []
    for t in toks:
        if t in ("pcie", "sxm", "sxm4", "sxm5", "nvl", "hbm3", "ada"):
            out.append({"pcie": "PCIe", "ada": "Ada"}.get(t, t.upper()))
        elif re.match(r"^\d+gb$", t):
            out.append(t[:-2] + "GB")
        else:
            out.append(t.upper())
    return " ".join(out)


def gpu_matches(query, name):
    """True when every token of ``query`` is a token of ``name`` ("A100" matches "A100 80GB PCIe")."""
    q = gpu_tokens(query)
    n = gpu_tokens(name)
    return bool(q) and all(t in n for t in q)


def gpu_close_matches(query, names, n=5, cutoff=0.5):
    """Names close to ``query`` for an 'unknown GPU type' message, best first (whole names and single
    words are compared, so "H200" finds "NVIDIA H100 80GB HBM3" and "RTX 4909" finds "RTX 4090")."""
    q_toks = gpu_tokens(query)
    q_full = " ".join(q_toks)
    best = {}
    for name in names:
        if not name:
            continue
        toks = gpu_tokens(name)
        score = difflib.SequenceMatcher(None, q_full, " ".join(toks)).ratio()
        for q in q_toks:
            for t in toks:
                if any(c.isdigit() for c in q + t):  # model numbers matter; "rtx" alone says little
                    score = max(score, difflib.SequenceMatcher(None, q, t).ratio() - 0.05)
        key = canonical_gpu_model(name).lower()
        if score >= cutoff and score > best.get(key, (0, None))[0]:
            best[key] = (score, name)
    ranked = sorted(best.values(), key=lambda sn: (-sn[0], sn[1]))
    return [name for _s, name in ranked[:n]]


# ---------------------------------------------------------------------------- labels
def utc_iso(ts):
    return datetime.datetime.fromtimestamp(int(ts), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value):
    """Epoch seconds from an ISO 8601 UTC time (as written by :func:`utc_iso`), None if unparsable."""
    if value is None:
        return None
    v = str(value).strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    try:
        dt = datetime.datetime.fromisoformat(v)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(value):
    """Seconds from "90m", "12h", "2d", "3600" or "3600s"; raises ValueError."""
    v = str(value).strip().lower()
    m = re.match(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$", v)
    if not m:
        raise ValueError("ttl %r is not a duration like 90m, 12h or 2d" % (value,))
    secs = float(m.group(1)) * _TTL_UNITS[m.group(2) or "s"]
    if secs <= 0:
        raise ValueError("ttl must be greater than zero")
    return int(secs)


def make_labels(run_id, owner, expires_at):
    labels = {"run_id": run_id, "owner": owner, "expires_at": expires_at}
    for k, v in labels.items():
        if v is not None and not LABEL_VALUE_RE.match(str(v)):
            raise ConfigError("%s %r may only contain letters, digits and . _ : + - (at most 100 characters)" % (k, v))
    return {k: v for k, v in labels.items() if v is not None}


def labels_to_env(labels):
    return {LABEL_ENV[k]: str(v) for k, v in labels.items() if k in LABEL_ENV and v is not None}


def labels_from_env(env):
    env = env or {}
    return {k: env[e] for k, e in LABEL_ENV.items() if env.get(e)}


def encode_name_label(name, labels):
    """One free-text label: ``<name>;run_id=<r>;owner=<o>;expires_at=<iso>`` (plain ``<name>`` without labels)."""
    parts = [name] + ["%s=%s" % (k, labels[k]) for k in LABEL_KEYS if labels.get(k)]
    return ";".join(parts)


def decode_name_label(label):
    """(name, labels) from a label written by :func:`encode_name_label`; foreign labels are names."""
    if not label:
        return "", {}
    parts = str(label).split(";")
    labels = {}
    for p in parts[1:]:
        k, sep, v = p.partition("=")
        if sep and k in LABEL_KEYS:
            labels[k] = v
        else:
            return str(label), {}
    return parts[0], labels


def validate_name(name, what="name"):
    if not NAME_RE.match(str(name or "")):
        raise ConfigError("%s %r must start with a letter or digit and contain only letters, digits and . _ - "
                          "(at most 63 characters)" % (what, name))


# ---------------------------------------------------------------------------- offers
class OfferFilters:
    """What the user asks for. All filters are AND-ed; a list within one filter is OR-ed.

    gpu: list of model names ("RTX 4090", "4090", "A100"); gpu_count: GPUs per instance (exact);
    min_vram_gb: per GPU; max_price_per_hour: whole instance; regions: country codes ("US") or RunPod
    data center ids ("EU-RO-1"); min_cuda_version: "12.4"; min_reliability: 0..1 (offers with no
    figure, i.e. RunPod, pass); interruptible: spot/bid offers instead of on-demand; cloud_type:
    RunPod SECURE/COMMUNITY; verified_only: Vast verified machines.
    """

    def __init__(self, gpu=None, gpu_count=1, min_vram_gb=None, max_price_per_hour=None, regions=None,
                 min_cuda_version=None, min_reliability=None, interruptible=False, cloud_type=None,
                 verified_only=True, min_disk_gb=None):
        self.gpu = [g for g in (gpu or []) if g]
        self.gpu_count = int(gpu_count or 1)
        self.min_vram_gb = min_vram_gb
        self.max_price_per_hour = max_price_per_hour
        self.regions = [r.upper() for r in (regions or []) if r]
        self.min_cuda_version = str(min_cuda_version) if min_cuda_version else None
        self.min_reliability = min_reliability
        self.interruptible = bool(interruptible)
        self.cloud_type = cloud_type
        self.verified_only = verified_only
        self.min_disk_gb = min_disk_gb

    def matches(self, offer, ignore_price=False):
        """Client-side check of every filter (providers also filter server-side where they can)."""
        return not self.excluded_by(offer, ignore_price)

    def excluded_by(self, offer, ignore_price=False):
        """Names of the filters ``offer`` fails (empty when it matches), in the order of :data:`FILTER_CHECKS`."""
        out = []
        for name, check in FILTER_CHECKS:
            if ignore_price and name == "max_price_per_hour":
                continue
            if name not in ("gpu_count", "interruptible") and getattr(self, name) in (None, [], False):
                continue  # not set
            if not check(self, offer):
                out.append(name)
        return out


def _gpu_ok(f, o):
    return any(gpu_matches(g, o.gpu_type) or gpu_matches(g, o.gpu_model or "") for g in f.gpu)


# (filter, passes(filters, offer)); a filter is checked only when it is set
FILTER_CHECKS = (
    ("gpu", _gpu_ok),
    ("gpu_count", lambda f, o: o.gpu_count == f.gpu_count),
    ("interruptible", lambda f, o: bool(o.interruptible) == f.interruptible),
    ("verified_only", lambda f, o: o.verified is not False),
    ("min_vram_gb", lambda f, o: o.vram_gb is not None and o.vram_gb >= f.min_vram_gb),
    ("max_price_per_hour", lambda f, o: o.price_per_hour is not None and o.price_per_hour <= f.max_price_per_hour),
    ("regions", lambda f, o: region_matches(f.regions, o)),
    ("min_cuda_version", lambda f, o: cuda_at_least(o.cuda_version, f.min_cuda_version)),
    ("min_reliability", lambda f, o: o.reliability is None or o.reliability >= f.min_reliability),
    ("min_disk_gb", lambda f, o: o.disk_gb is None or o.disk_gb >= f.min_disk_gb),
)


def region_matches(regions, offer):
    wanted = set(regions)
    if offer.country and offer.country.upper() in wanted:
        return True
    return any(dc.upper() in wanted or dc_country(dc) in wanted for dc in (offer.data_centers or []))


def dc_country(dc):
    """Country of a RunPod data center id: "US-TX-3" -> "US", "EU-RO-1" -> "RO", "CA-MTL-1" -> "CA"."""
    parts = str(dc).upper().split("-")
    if len(parts) >= 2 and parts[0] in ("EU", "AP", "OC", "SA", "AF", "ME"):
        return parts[1]
    return parts[0]


def version_key(v):
    out = []
    for p in str(v).split("."):
        try:
            out.append(int(p))
        except ValueError:
            out.append(0)
    while len(out) < 2:
        out.append(0)
    return tuple(out)


def cuda_at_least(have, want):
    if have is None:
        return False
    return version_key(have) >= version_key(want)


SORT_KEYS = {
    "price": lambda o: (o.price_per_hour if o.price_per_hour is not None else float("inf"),
                        -(o.reliability or 0)),
    "price_per_gpu": lambda o: (o.price_per_gpu_hour if o.price_per_gpu_hour is not None else float("inf"),
                                o.price_per_hour or 0),
    "reliability": lambda o: (-(o.reliability if o.reliability is not None else 0.0), o.price_per_hour or 0),
    "vram": lambda o: (-(o.vram_gb or 0), o.price_per_hour or 0),
}


def rank_offers(offers, sort_by="price"):
    """Sorted copy (stable; ties keep provider order), cheapest first by default."""
    key = SORT_KEYS[sort_by]
    return sorted(offers, key=lambda o: (key(o), str(o.provider), str(o.offer_id)))
