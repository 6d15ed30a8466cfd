#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_instance
short_description: Give me N GPU nodes like this, from whichever provider has them
version_added: 0.1.0
description:
  - Provider-agnostic provisioning. Searches RunPod and Vast.ai for offers matching the filters, ranks them (cheapest
    first by default) and creates the nodes C(<name_prefix>-0) ... C(<name_prefix>-<count-1>) on them.
  - When an offer answers with no capacity, C(no_such_ask), insufficient funds (that provider is then skipped) or
    another refusal, or its node never becomes reachable over SSH (the node is destroyed), the error category is
    recorded in RV(attempts) and the next offer is tried, up to O(max_attempts).
  - Nodes that already exist (by name, on either provider) are reused, so a rerun changes nothing.
  - When fewer than O(min_count) nodes can be made ready, the nodes this task created are destroyed
    (O(on_partial=rollback)) or kept and listed (O(on_partial=keep)), and the task fails either way; nothing is
    left running silently.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  name_prefix:
    description:
      - Nodes are named C(<name_prefix>-<index>) (RunPod pod name, Vast label name).
    type: str
    required: true
  count:
    description:
      - Number of nodes wanted.
    type: int
    default: 1
  min_count:
    description:
      - Fewest ready nodes the task accepts; with fewer it fails and applies O(on_partial). Defaults to O(count).
      - Between O(min_count) and O(count) ready nodes the task succeeds with a warning.
    type: int
  on_partial:
    description:
      - What to do with the nodes this task created when fewer than O(min_count) are ready.
      - V(rollback) destroys them. V(keep) keeps them (they carry O(ttl) for the reaper) and lists them.
    type: str
    choices: [rollback, keep]
    default: rollback
  state:
    description:
      - V(present) makes sure the nodes exist and are reachable.
      - V(absent) destroys the nodes named C(<name_prefix>-<number>) on the searched providers (only those listed in
        O(names) when it is set). With O(run_id) or O(owner) given (O(run_id) also from E(GPUOPS_RUN_ID)), only the
        nodes whose labels match them are destroyed; nodes of the same names that belong to another run or owner are
        left alone and listed in RV(kept).
    type: str
    choices: [present, absent]
    default: present
  exclude_offers:
    description:
      - Offers not to rent, each C(<provider>:<offer_id>) as the C(provider) and C(offer_id) of RV(instances) name
        them, for example the offer of a node that was just preempted.
    type: list
    elements: str
    default: []
  names:
    description:
      - With O(state=absent), destroy only the nodes with these names (each must be C(<name_prefix>-<number>)),
        for example one node that failed its health check.
    type: list
    elements: str
  providers:
    description:
      - Providers to use. By default every provider that has an API key configured.
    type: list
    elements: str
    choices: [runpod, vast]
  cloud_type:
    description:
      - RunPod cloud tier. Both when not set.
    type: str
    choices: [SECURE, COMMUNITY]
  sort_by:
    description:
      - How offers are ranked before they are tried (see M(gpu.ops.gpu_offer_info)).
    type: str
    choices: [price, price_per_gpu, reliability, vram]
    default: price
  max_attempts:
    description:
      - Most create calls the task makes in total, failed ones included.
    type: int
    default: 10
  image:
    description:
      - Container image for every node. Required to create nodes.
    type: str
  images:
    description:
      - "Per-provider image overriding O(image), for example C({runpod: runpod/pytorch:2.4.0, vast: vastai/pytorch})."
    type: dict
  disk_gb:
    description:
      - Container disk in GB.
    type: int
    default: 20
  env:
    description:
      - Environment variables of the containers. C(PUBLIC_KEY) and C(GPUOPS_*) are set by the module.
      - Values may be secrets - they reach no log and no result (a C(no_log) option that this module's action
        plugin hands over as one string, so Ansible does not star out short values elsewhere in the output).
    type: dict
    default: {}
  ports:
    description:
      - Extra TCP ports to expose. Port 22 is always exposed.
    type: list
    elements: int
    default: []
  keep_account_key:
    description:
      - Vast nodes get the public key through Vast's per-instance key endpoint; only when that fails, or the offer is
        a VM, is it registered as an account key (see RV(vast_ssh_keys)). Such a key carries the comment
        C(gpuops-run=<run_id>) and is removed when the last instance of that run is destroyed by gpu.ops; V(true)
        keeps it.
    type: bool
    default: false
  ssh_user:
    description:
      - SSH login user on Vast nodes (Vast does not report one; it is C(root) there). RunPod nodes use the user
        RunPod reports.
      - If not set, the value of the E(VAST_SSH_USER) environment variable is used, then C(root).
    type: str
    default: root
extends_documentation_fragment:
  - gpu.ops.auth
  - gpu.ops.instance
  - gpu.ops.offer_filters
attributes:
  check_mode:
    support: full
    description: Offers are searched and the plan is returned in RV(planned); nothing is created or destroyed.
  diff_mode:
    support: none
    description: No diff is returned.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller (or any host with network access to the provider APIs and C(ssh)).
notes:
  - Interruptible nodes bid the offer's minimum bid.
  - A node that runs but gets no direct (public) SSH port mapping, because its host has no public IP (RunPod's
    REST v2 cannot ask for one), is given up after a grace of 60 seconds (a third of O(wait_timeout) when that is
    shorter, at least 10 seconds) with the outcome C(no_public_ssh), destroyed, and replaced; offers whose nodes
    did get a mapping are then tried first.
  - API polls keep within the providers' budgets, shared by every gpu.ops process of the user through a file in
    C(~/.cache/gpuops/) (RunPod at most 60 requests per minute; Vast one poll per 10 seconds per instance, one
    listing for many instances). Once an address is known, readiness is found by probing it directly (TCP, SSH
    banner, login) every half second. E(GPUOPS_API_QUOTAS=off) lifts the budgets, for simulators only.
  - Nodes are created one after the other and then waited for together, so N nodes take about as long as the
    slowest one.
seealso:
  - module: gpu.ops.gpu_offer_info
  - module: gpu.ops.runpod_instance
  - module: gpu.ops.vast_instance
"""

EXAMPLES = r"""
- name: Four single-4090 nodes under 0.70 USD/h each, from whichever provider has them
  gpu.ops.gpu_instance:
    name_prefix: "ddp-{{ run_id }}"
    count: 4
    gpu: [RTX 4090]
    max_price_per_hour: 0.70
    images:
      runpod: runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04
      vast: vastai/pytorch:2.4.0-cuda-12.4
    image: pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime
    ssh_private_key_file: ~/.ssh/id_ed25519
    run_id: "{{ run_id }}"
    ttl: 6h
  register: fleet

- name: Add them to the inventory
  ansible.builtin.add_host:
    name: "{{ item.name }}"
    groups: gpu_nodes
    ansible_host: "{{ item.connection.ansible_host }}"
    ansible_port: "{{ item.connection.ansible_port }}"
    ansible_user: "{{ item.connection.ansible_user }}"
    ansible_ssh_private_key_file: "{{ item.connection.ansible_ssh_private_key_file | default(omit) }}"
    ansible_ssh_common_args: "{{ item.connection.ansible_ssh_common_args }}"
  loop: "{{ fleet.instances }}"

- name: Eight 8xH100 nodes with slow image pulls; async/poll prints progress while the task waits
  gpu.ops.gpu_instance:
    name_prefix: "big-{{ run_id }}"
    count: 8
    gpu: [H100]
    gpu_count: 8
    image: nvcr.io/nvidia/pytorch:24.10-py3
    ssh_private_key_file: ~/.ssh/id_ed25519
    wait_timeout: 1800
  async: 2000
  poll: 15

- name: Tear them down
  gpu.ops.gpu_instance:
    name_prefix: "ddp-{{ run_id }}"
    state: absent
"""

RETURN = r"""
instances:
  description: The ready nodes, normalized (see M(gpu.ops.runpod_instance) for every key, including C(connection)).
  returned: always
  type: list
  elements: dict
  sample:
    - {id: "7835610", name: ddp-0, provider: vast, status: running, ssh_host: 63.135.50.11, ssh_port: 41022,
       ssh_user: root, gpu_model: RTX 4090, gpu_count: 1, price_per_hour: 0.31,
       connection: {ansible_host: 63.135.50.11, ansible_port: 41022, ansible_user: root,
                    ansible_ssh_private_key_file: /home/alice/.ssh/id_ed25519,
                    ansible_ssh_common_args: "-o UserKnownHostsFile=/home/alice/.cache/gpuops/known_hosts-r1
                      -o StrictHostKeyChecking=accept-new -o IdentitiesOnly=yes"}}
attempts:
  description: Every create this task tried, in order, with C(outcome) (C(created), C(not_ready), C(no_public_ssh), or
    an error category such as C(no_capacity), C(offer_gone), C(insufficient_funds), C(invalid_request)) and the
    message. The task's failure message repeats the last message of each outcome.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: ddp-0, provider: vast, offer_id: 4200001, gpu_model: RTX 4090, price_per_hour: 0.29,
       outcome: offer_gone, message: "Vast API rent offer 4200001: HTTP 410: no_such_ask ..."}
    - {name: ddp-0, provider: vast, offer_id: 4200002, outcome: created, instance_id: "7835611"}
created:
  description: Names of the nodes this task created (and kept).
  returned: always
  type: list
  elements: str
  sample: [ddp-0, ddp-1]
missing:
  description: Names that could not be provisioned.
  returned: always
  type: list
  elements: str
  sample: []
planned:
  description: In check mode, the offer each missing node would be created on.
  returned: in check mode
  type: list
  elements: dict
  sample: [{name: ddp-0, provider: vast, offer_id: 4200001, price_per_hour: 0.29}]
destroyed:
  description: Ids of nodes destroyed (O(state=absent), rollback, or nodes that never became reachable).
  returned: always
  type: list
  elements: str
  sample: ["7835610"]
destroyed_at:
  description:
    - With O(state=absent), per destroyed id the moment (epoch seconds, controller clock) its delete call returned,
      so a record stamps the end of billing there and not when a later task runs.
  returned: when O(state=absent) destroyed nodes
  type: dict
  sample: {"7835610": 1796652878.81}
kept:
  description: With O(state=absent) and O(run_id) or O(owner), the nodes that matched the names but not the labels,
    and were left alone.
  returned: when O(state=absent)
  type: list
  elements: dict
  sample: [{provider: runpod, id: abc123, name: ddp-0, run_id: other-run, owner: bob}]
vast_ssh_keys:
  description: For each Vast instance created by this task, how its public key was put on it (C(method) C(instance)
    or C(account), as C(ssh_key) of M(gpu.ops.vast_instance)).
  returned: when Vast is one of the providers
  type: dict
  sample: {"7835610": {method: instance}}
account_keys_removed:
  description: Ids of Vast account keys gpu.ops had added and removed because no instance of their run is left.
  returned: when Vast is one of the providers
  type: list
  elements: str
  sample: []
provider_errors:
  description: Providers whose offer search failed (the others were still used).
  returned: when O(state=present)
  type: dict
  sample: {}
api_requests:
  description: HTTP requests the module sent (retries included).
  returned: always
  type: int
  sample: 14
"""

import re
import time

from ansible_collections.gpu.ops.plugins.module_utils import fleet, registry
from ansible_collections.gpu.ops.plugins.module_utils import ssh as sshu
from ansible_collections.gpu.ops.plugins.module_utils._secret_env import env_option
from ansible_collections.gpu.ops.plugins.module_utils.module_base import (
    GpuOpsModule,
    filter_argument_spec,
    instance_argument_spec,
    instance_result,
    provider_choices,
    ssh_user_spec,
)
from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError, validate_name


class GpuInstance:
    def __init__(self, m):
        self.m = m
        self.p = m.params
        self.destroyed = []
        self.destroyed_at = {}

    def node_names(self):
        return ["%s-%d" % (self.p["name_prefix"], i) for i in range(self.p["count"])]

    def providers(self):
        names = self.p.get("providers") or self.m.configured_providers()
        if not names:
            raise ConfigError("no provider configured: set %s" % registry.key_hint())
        out = {n: self.m.provider(n, ssh_user=self.p["ssh_user"]) for n in names}
        for prov in out.values():
            prov.configure_task(self.p)
            # filled as instances are made and destroyed; returned with whatever result the task ends with
            self.m.result.update(prov.task_results())
        return out

    def existing(self, providers, pattern):
        found = {}
        for prov in providers.values():
            for inst in prov.list():
                if inst.status != "terminated" and pattern(inst.name or ""):
                    found.setdefault(inst.name, []).append((prov, inst))
        return found

    def destroy(self, prov, inst):
        self.m.terminate(prov, inst, known_hosts=getattr(self.m, "known_hosts", None))
        self.m.created = [(p, i) for p, i in self.m.created if i.id != inst.id]
        self.destroyed.append(str(inst.id))
        self.destroyed_at[str(inst.id)] = round(time.time(), 3)

    # ------------------------------------------------------------------ absent
    def absent(self):
        providers = self.providers()
        rx = re.compile(r"^%s-\d+$" % re.escape(self.p["name_prefix"]))
        only = set(self.p.get("names") or [])
        found = self.existing(providers, lambda name: bool(rx.match(name)) and (not only or name in only))
        named = [pi for lst in found.values() for pi in lst]
        # same names, another run or owner: a rerun of a run_id, or a colleague's prefix, is not ours to destroy
        want = {k: self.p[k] for k in ("run_id", "owner") if self.p.get(k)}
        victims = [(pr, i) for pr, i in named if all(i.labels.get(k) == v for k, v in want.items())]
        kept = [{"provider": pr.name, "id": str(i.id), "name": i.name, "run_id": i.labels.get("run_id"),
                 "owner": i.labels.get("owner")} for pr, i in named if (pr, i) not in victims]
        if kept:
            self.m.module.warn("left %d node(s) named %s-N that are not labelled %s: %s" % (
                len(kept), self.p["name_prefix"], ", ".join("%s=%s" % kv for kv in sorted(want.items())),
                ", ".join("%s %s (%s)" % (k["provider"], k["id"], k["name"]) for k in kept)))
        if self.m.module.check_mode or not victims:
            return self.m.exit(changed=bool(victims), instances=[], attempts=[], created=[], missing=[],
                               destroyed=[str(i.id) for _p, i in victims], kept=kept)
        for prov, inst in victims:
            self.destroy(prov, inst)
        return self.m.exit(changed=True, instances=[], attempts=[], created=[], missing=[], destroyed=self.destroyed,
                           destroyed_at=self.destroyed_at, kept=kept)

    # ------------------------------------------------------------------ present
    def spec_for(self, providers, labels, public_key):
        p = self.p

        def build(name, offer):
            image = (p.get("images") or {}).get(offer.provider) or p["image"]
            env = {str(k): str(v) for k, v in p["env"].items()}
            spec = {"name": name, "image": image, "disk_gb": p["disk_gb"], "env": env, "public_key": public_key,
                    "labels": labels, "min_cuda_version": p.get("min_cuda_version"),
                    "regions_requested": bool(p.get("regions"))}
            spec["ports"] = providers[offer.provider].create_ports(p["ports"])
            return spec
        return build

    def without_excluded(self, offers):
        """The offers minus O(exclude_offers) (``<provider>:<offer_id>``), for example a preempted node's."""
        skipped = set(self.p["exclude_offers"])
        if not skipped:
            return offers
        kept = [o for o in offers if "%s:%s" % (o.provider, o.offer_id) not in skipped]
        if offers and not kept:
            self.m.module.warn("every matching offer is in exclude_offers (%s)" % ", ".join(sorted(skipped)))
        return kept

    def present(self):
        m, p = self.m, self.p
        if p["count"] < 1:
            raise ConfigError("count must be at least 1")
        min_count = p["count"] if p.get("min_count") is None else p["min_count"]
        if not 1 <= min_count <= p["count"]:
            raise ConfigError("min_count must be between 1 and count (%s)" % p["count"])
        if p["max_attempts"] < 1:
            raise ConfigError("max_attempts must be at least 1")
        if p["disk_gb"] < 1:
            raise ConfigError("disk_gb must be at least 1")
        bad = [k for k in p["env"] if k == "PUBLIC_KEY" or str(k).startswith("GPUOPS_")]
        if bad:
            raise ConfigError("env must not set %s: the module sets them (ssh key and ownership labels)" % ", ".join(bad))
        m.check_wait_options()
        public_key, ssh_opts = m.ssh_setup(need_public_key=False)
        labels = m.labels()
        providers = self.providers()
        names = self.node_names()
        found = self.existing(providers, set(names).__contains__)
        dupes = {n: v for n, v in found.items() if len(v) > 1}
        if dupes:
            return m.fail("node names are not unique: %s; destroy the extras first" % "; ".join(
                "%s on %s" % (n, ", ".join("%s %s" % (pr.name, i.id) for pr, i in v)) for n, v in dupes.items()),
                teardown=False)
        existing = {n: v[0] for n, v in found.items()}
        broken = ["%s (%s %s: %s)" % (n, pr.name, i.id, i.status) for n, (pr, i) in existing.items()
                  if i.status in ("error", "stopped")]
        if broken:
            return m.fail("existing nodes are not running: %s; start them or destroy them (state=absent) first" %
                          ", ".join(broken), teardown=False)
        missing = [n for n in names if n not in existing]
        errors = {}
        offers = []
        if missing:
            if not public_key:  # only new nodes need the key put on them
                public_key = sshu.load_public_key(private_key_file=ssh_opts["private_key"])
            images = p.get("images") or {}
            if not p.get("image") and not all(images.get(n) for n in providers):
                raise ConfigError("image is required to create nodes (or images for every provider: %s)" %
                                  ", ".join(providers))
            filters = m.filters(cloud_type=p.get("cloud_type"))
            offers, errors = fleet.search(providers, filters, p["sort_by"])
            offers = self.without_excluded(offers)
            if not offers:
                live = {n: v for n, v in providers.items() if n not in errors}
                why = fleet.explain_empty(live, filters) if live else "every provider failed"
                if errors:
                    why += "; provider errors: %s" % "; ".join(e["message"] for e in errors.values())
                if len(existing) < min_count:
                    raise ConfigError(why)
                m.module.warn(why)
        if m.module.check_mode:
            return m.exit(changed=bool(missing), instances=[i.to_dict() for _n, (_p, i) in sorted(existing.items())],
                          attempts=[], created=[], missing=[], destroyed=[], planned=fleet.plan(offers, missing),
                          provider_errors=errors)
        waiter = None
        if p["wait"]:
            waiter = sshu.Waiter(p["wait_timeout"], p["poll_interval"], ssh=ssh_opts, log=m.log,
                                 pull_timeout=p["pull_timeout"])
        prov = fleet.Provisioner(providers, offers, self.spec_for(providers, labels, public_key),
                                 on_created=lambda pr, i: m.created.append((pr, i)), destroy=self.destroy,
                                 waiter=waiter, max_attempts=p["max_attempts"], log=m.log)
        m.result["attempts"] = prov.attempts
        prov.run(missing, existing=existing)
        created = [n for n in names if n in prov.ready and n not in existing]
        ready = [prov.ready[n] for n in names if n in prov.ready]
        key = ssh_opts["private_key"]
        stamp_offers(ready, prov.attempts)
        result = dict(instances=[instance_result(i, key, m.known_hosts) for i in ready], attempts=prov.attempts,
                      created=created, missing=prov.missing, destroyed=self.destroyed, provider_errors=errors)
        if prov.failed_existing:
            return m.fail("existing nodes are not reachable: %s" % "; ".join(prov.failed_existing.values()),
                          **result)
        if len(ready) < min_count:
            why = "only %d of %d nodes are ready (min_count %d) after %d attempt(s): %s" % (
                len(ready), p["count"], min_count, len(prov.attempts), summarize(prov.attempts))
            if p["on_partial"] == "keep":
                m.params["keep_on_failure"] = True
                return m.fail(why + "; the ready nodes were kept (on_partial=keep): %s" % ", ".join(
                    "%s (%s %s)" % (i.name, i.provider, i.id) for i in ready), **result)
            m.params["keep_on_failure"] = False
            result["instances"] = []
            result["created"] = []
            return m.fail(why + " (on_partial=rollback)", **result)
        if prov.missing:
            m.module.warn("only %d of %d nodes are ready (min_count %d); missing: %s" % (
                len(ready), p["count"], min_count, ", ".join(prov.missing)))
        return m.exit(changed=bool(created) or bool(self.destroyed), **result)


def stamp_offers(ready, attempts):
    """A ready instance is re-read from the API, which does not say which offer it was rented from: the attempt does."""
    rented_from = dict((str(a.get("instance_id")), a.get("offer_id")) for a in attempts if a.get("outcome") == "created")
    for inst in ready:
        if inst.offer_id is None:
            inst.offer_id = rented_from.get(str(inst.id))


def summarize(attempts):
    """"no_public_ssh x2 (last: <why>), offer_gone x1 (last: <why>)": the cause of each failure, not only its name."""
    counts, last = {}, {}
    for a in attempts:
        counts[a.get("outcome")] = counts.get(a.get("outcome"), 0) + 1
        if a.get("message"):
            last[a.get("outcome")] = a["message"]
    return ", ".join("%s x%d%s" % (k, v, " (last: %s)" % last[k] if k in last else "")
                     for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))) or "no offers"


def main():
    spec = dict(
        name_prefix=dict(type="str", required=True),
        count=dict(type="int", default=1),
        min_count=dict(type="int"),
        on_partial=dict(type="str", default="rollback", choices=["rollback", "keep"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        names=dict(type="list", elements="str"),
        exclude_offers=dict(type="list", elements="str", default=[]),
        providers=dict(type="list", elements="str", choices=provider_choices()),
        cloud_type=dict(type="str", choices=["SECURE", "COMMUNITY"]),
        sort_by=dict(type="str", default="price", choices=["price", "price_per_gpu", "reliability", "vram"]),
        max_attempts=dict(type="int", default=10),
        image=dict(type="str"),
        images=dict(type="dict"),
        disk_gb=dict(type="int", default=20),
        env=env_option(),
        ports=dict(type="list", elements="int", default=[]),
        ssh_user=ssh_user_spec(),
        keep_account_key=dict(type="bool", default=False),
    )
    spec.update(instance_argument_spec())
    spec.update(filter_argument_spec())
    m = GpuOpsModule(spec, supports_check_mode=True, mutually_exclusive=[("ssh_public_key", "ssh_public_key_file")])

    def run():
        validate_name("%s-0" % m.params["name_prefix"], "name_prefix")
        g = GpuInstance(m)
        if m.params["state"] == "absent":
            return g.absent()
        return g.present()

    m.guard(run)


if __name__ == "__main__":
    main()
