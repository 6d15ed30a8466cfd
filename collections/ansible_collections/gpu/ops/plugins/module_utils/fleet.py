# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offers across providers and "give me N nodes like this" with failover.

PRIVATE to the collection: the API may change between releases. No Ansible imports.

``search`` asks every provider for offers (per-provider errors are collected, an auth error is
raised), ``explain_empty`` says why nothing matched (unknown GPU with close matches, a price
ceiling below every offer), ``provision`` walks the ranked offers: on no capacity / no_such_ask /
insufficient funds / a node that never becomes reachable it records the error category and moves
on to the next offer, until N nodes are ready or the offers or attempts run out.
"""

from __future__ import annotations

import copy

from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils import registry
from ansible_collections.gpu.ops.plugins.module_utils import ssh as sshu
from ansible_collections.gpu.ops.plugins.module_utils.provider import (
    ConfigError,
    gpu_close_matches,
    gpu_matches,
    rank_offers,
    version_key,
)

FATAL = (http.AUTH, http.QUOTA)


def search(providers, filters, sort_by="price"):
    """(ranked offers, {provider: error dict}) from every provider; auth errors are raised."""
    offers = []
    errors = {}
    for name, prov in providers.items():
        try:
            offers.extend(prov.find_offers(filters))
        except ConfigError:
            raise
        except http.ApiError as e:
            if e.category in FATAL:
                raise
            errors[name] = e.to_dict()
    return rank_offers(offers, sort_by), errors


def known_gpu_names(providers, filters):
    """(catalog names, names on offer now): RunPod's catalog lists every GPU type it has; Vast only shows
    what is for rent at the moment."""
    catalog, on_offer = [], []
    for name, prov in providers.items():
        try:
            if hasattr(prov, "gpu_catalog"):
                for g in prov.gpu_catalog():
                    catalog += [g.get("id"), g.get("name")]
            else:
                relaxed = copy.copy(filters)
                relaxed.gpu = []
                relaxed.max_price_per_hour = None
                relaxed.min_vram_gb = None
                relaxed.regions = []
                relaxed.min_reliability = None
                relaxed.min_cuda_version = None
                on_offer += [o.gpu_type for o in prov.find_offers(relaxed)]
        except http.ApiError:
            continue
    return sorted(set(n for n in catalog if n)), sorted(set(n for n in on_offer if n))


def near_misses(providers, filters):
    """Offers of the wanted GPU model that the other filters excluded: [(provider name, [Offer])]."""
    out = []
    for name, prov in providers.items():
        try:
            near = [o for o in prov.near_offers(filters) if not set(filters.excluded_by(o)) & {"gpu", "interruptible"}]
        except http.ApiError:
            continue
        if near:
            out.append((name, near))
    return out


def _cheapest_above(f, offers):
    o = min(offers, key=lambda x: (f.excluded_by(x) != ["max_price_per_hour"], x.price_per_hour))
    what = "match" if f.excluded_by(o) == ["max_price_per_hour"] else "of them"
    return "the cheapest %s costs %.3f USD/h (%s %s x%s, offer %s), above max_price_per_hour %.3f" % (
        what, o.price_per_hour, o.provider, o.gpu_model, o.gpu_count, o.offer_id, f.max_price_per_hour)


_EXCLUDED_WHY = {
    "gpu_count": lambda f, os_: "they have %s GPUs" % ", ".join(str(c) for c in sorted(set(o.gpu_count for o in os_))),
    "verified_only": lambda f, os_: "unverified machines",
    "max_price_per_hour": _cheapest_above,
    "min_reliability": lambda f, os_: "the best reliability is %s" % max(o.reliability for o in os_),
    "min_cuda_version": lambda f, os_: "the highest CUDA is %s" % max(
        (o.cuda_version for o in os_ if o.cuda_version), key=version_key, default="unknown"),
    "regions": lambda f, os_: "they are in %s" % ", ".join(sorted(set(
        o.country or ",".join(o.data_centers or []) or "?" for o in os_))[:8]),
    "min_vram_gb": lambda f, os_: "the most memory is %s GB per GPU" % max(o.vram_gb or 0 for o in os_),
    "min_disk_gb": lambda f, os_: "the most disk is %s GB" % max(o.disk_gb or 0 for o in os_),
}


def describe_exclusions(filters, provider, offers):
    """"4 vast offers of RTX 4090 exist but were excluded by gpu_count=1 (2 offers: they have 2, 4 GPUs), ..."."""
    by = {}
    for o in offers:
        for name in filters.excluded_by(o):
            by.setdefault(name, []).append(o)
    parts = []
    for name, excluded in by.items():
        value = getattr(filters, name)
        setting = name if value is True else "%s=%s" % (name, ",".join(value) if isinstance(value, list) else value)
        why = _EXCLUDED_WHY.get(name, lambda f, os_: "")(filters, excluded)
        plural = "" if len(excluded) == 1 else "s"
        parts.append("%s (%d offer%s%s)" % (setting, len(excluded), plural, ": %s" % why if why else ""))
    models = sorted(set(o.gpu_model or o.gpu_type for o in offers))
    one = len(offers) == 1
    return "%d %s offer%s of %s %s but %s excluded by %s" % (
        len(offers), provider, "" if one else "s", "/".join(models), "exists" if one else "exist",
        "it was" if one else "they were", ", ".join(parts))


def explain_empty(providers, filters):
    """Why no offer matched: which filters excluded the offers of the wanted GPU, or a ConfigError for a
    GPU no catalog knows, or a sentence about the price ceiling."""
    where = "/".join(providers)
    near = near_misses(providers, filters) if filters.gpu else []
    if near:
        return "no %s offer matches the filters (%s): %s" % (where, describe(filters), "; ".join(
            describe_exclusions(filters, name, offers) for name, offers in near))
    if filters.gpu:
        catalog, on_offer = known_gpu_names(providers, filters)
        known = catalog + on_offer
        unknown = [g for g in filters.gpu if not any(gpu_matches(g, n) for n in known)]
        if known and len(unknown) == len(filters.gpu):
            close = []
            for g in unknown:
                close += [c for c in gpu_close_matches(g, known) if c not in close]
            hint = "; close matches: %s" % ", ".join("'%s'" % c for c in close[:6]) if close else ""
            names = ", ".join("'%s'" % g for g in unknown)
            if catalog:
                raise ConfigError("unknown GPU model%s %s on %s%s" % ("s" if len(unknown) > 1 else "", names, where,
                                                                      hint), details={"known": known})
            return "no %s offer has a GPU matching %s right now%s" % (where, names, hint.replace(
                "close matches", "close matches on offer"))
    msg = "no %s offer matches the filters (%s)" % (where, describe(filters))
    if filters.max_price_per_hour is not None:
        relaxed = copy.copy(filters)
        relaxed.max_price_per_hour = None
        above, _errors = search(providers, relaxed)
        if above:
            o = above[0]
            msg += "; the cheapest match costs %.3f USD/h (%s %s x%s, offer %s), above max_price_per_hour %.3f" % (
                o.price_per_hour, o.provider, o.gpu_model, o.gpu_count, o.offer_id, filters.max_price_per_hour)
    return msg


def describe(f):
    parts = ["gpu_count=%s" % f.gpu_count]
    if f.gpu:
        parts.append("gpu=%s" % ",".join(f.gpu))
    for k in ("min_vram_gb", "max_price_per_hour", "min_cuda_version", "min_reliability", "min_disk_gb",
              "cloud_type"):
        if getattr(f, k, None) is not None:
            parts.append("%s=%s" % (k, getattr(f, k)))
    if f.regions:
        parts.append("regions=%s" % ",".join(f.regions))
    if f.interruptible:
        parts.append("interruptible")
    return ", ".join(parts)


def offer_key(offer):
    return "%s/%s" % (offer.provider, offer.offer_id)


def plan(offers, names):
    """Check mode: which offer each missing name would get (a catalog offer repeats, a single-use one, such as a
    market ask, is taken once)."""
    out = []
    queue = list(offers)
    for name in names:
        while queue:
            o = queue[0]
            if registry.single_use_offers(o.provider):
                queue.pop(0)
            out.append({"name": name, "provider": o.provider, "offer_id": o.offer_id, "gpu_model": o.gpu_model,
                        "gpu_count": o.gpu_count, "price_per_hour": o.price_per_hour})
            break
    return out


class Provisioner:
    """Creates ``names`` on the ranked ``offers``, waits for SSH, replaces nodes that fail.

    ``spec_for(name, offer)`` builds the create spec; ``on_created(prov, inst)`` registers a new
    instance for teardown; ``destroy(prov, inst)`` destroys one; ``waiter`` is an ssh.Waiter or None.
    """

    def __init__(self, providers, offers, spec_for, on_created, destroy, waiter=None, max_attempts=10, log=None,
                 stopped_grace=0.0):
        self.providers = providers
        self.offers = list(offers)
        self.spec_for = spec_for
        self.on_created = on_created
        self.destroy = destroy
        self.waiter = waiter
        self.max_attempts = max_attempts
        self.log = log or (lambda msg: None)
        self.exhausted = set()
        self.dead_providers = {}
        self.attempts = []
        self.ready = {}
        self.failed_existing = {}
        self.stopped_grace = stopped_grace
        self.mapped = set()  # offers whose nodes got a direct SSH mapping
        self.unmapped = set()  # offers whose nodes ran without one (no_public_ssh)

    def _next_offer(self):
        """The best offer left; after a node came up without a public SSH mapping, offers whose nodes did get
        one come first (a host without a public IP is a property of where the offer lands)."""
        left = [o for o in self.offers if offer_key(o) not in self.exhausted and o.provider not in self.dead_providers]
        if self.unmapped:
            left.sort(key=lambda o: offer_key(o) not in self.mapped)  # stable: rank order within each group
        return left[0] if left else None

    def _create(self, name):
        while len(self.attempts) < self.max_attempts:
            offer = self._next_offer()
            if offer is None:
                return None
            prov = self.providers[offer.provider]
            rec = {"name": name, "provider": offer.provider, "offer_id": offer.offer_id, "gpu_model": offer.gpu_model,
                   "gpu_count": offer.gpu_count, "price_per_hour": offer.price_per_hour}
            self.attempts.append(rec)
            try:
                inst = prov.create_from_offer(offer, self.spec_for(name, offer))
            except ConfigError:
                raise
            except http.ApiError as e:
                rec.update(outcome=e.category, message=e.message)
                self.log("%s on %s offer %s: %s" % (name, offer.provider, offer.offer_id, e.category))
                if e.category in FATAL or e.details.get("lookup_failed"):
                    raise  # (an unverifiable create: another offer under the same name could make a twin)
                if e.category == http.INSUFFICIENT_FUNDS:
                    self.dead_providers[offer.provider] = e.message
                self.exhausted.add(offer_key(offer))
                continue
            self.on_created(prov, inst)
            rec.update(outcome="created", instance_id=inst.id)
            if registry.single_use_offers(offer.provider):  # an ask is rented once
                self.exhausted.add(offer_key(offer))
            self.log("%s created on %s offer %s as %s" % (name, offer.provider, offer.offer_id, inst.id))
            return (prov, inst, offer, rec)
        return None

    def run(self, names, existing=None):
        """existing: {name: (prov, inst)} made earlier; they are waited for but never replaced or destroyed."""
        pending = list(names)
        first = True
        while True:
            made = []
            for name in list(pending):
                got = self._create(name)
                if got is None:
                    break
                made.append((name,) + got)
                pending.remove(name)
            waiting = []
            if first and existing:
                waiting += [(n, p, i, None, None) for n, (p, i) in existing.items()]
            first = False
            waiting += made
            if not waiting:
                break
            if self.waiter is None:
                for name, prov, inst, _o, _r in waiting:
                    self.ready[name] = inst
            else:
                targets = []
                for name, prov, inst, offer, rec in waiting:
                    if rec is not None and inst.ssh_host and inst.ssh_port and self.waiter.ssh:
                        sshu.forget_host(self.waiter.ssh["known_hosts"], inst.ssh_host, inst.ssh_port,
                                         self.waiter.ssh["run"])
                    targets.append(sshu.Target(name, prov.get, inst, lister=prov.list, label="%s %s %r (%s)" % (
                        prov.name, "instance", inst.name, inst.id)))
                self.waiter.wait(targets)
                for (name, prov, inst, offer, rec), t in zip(waiting, targets):
                    if offer is not None and t.mapped_at is not None:
                        self.mapped.add(offer_key(offer))
                    if t.ready:
                        self.ready[name] = t.instance
                        if rec is not None:
                            rec["wait"] = sshu.wait_report(t)
                        continue
                    why = sshu.describe_failure(t, self.waiter.timeout)
                    if rec is None:  # existed before: not ours to destroy or replace
                        self.failed_existing[name] = why
                        continue
                    rec.update(outcome=t.category or "not_ready", message=why, wait=sshu.wait_report(t))
                    if t.category == "no_public_ssh":
                        self.unmapped.add(offer_key(offer))
                    if t.category != "no_public_ssh" or offer_key(offer) not in self.mapped:
                        self.exhausted.add(offer_key(offer))  # an offer that also gave mapped nodes stays
                    try:
                        self.destroy(prov, t.instance)
                        rec["destroyed"] = True
                    except http.ApiError as e:
                        rec["destroyed"] = False
                        rec["message"] += "; destroy failed: %s" % e.message
                    pending.append(name)
            if not pending or not made:
                break
        self.missing = sorted(pending, key=lambda n: names.index(n) if n in names else 0)
        return self.ready
