#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vast_instance
short_description: Rent, start, stop, restart and destroy Vast.ai GPU instances
version_added: 0.1.0
description:
  - Manages one Vast.ai instance, identified by the name part of its label (O(name)).
  - Rents a given offer (O(offer_id)) or the cheapest offer matching the filters; when an offer was taken in the
    meantime (Vast C(no_such_ask)) the next one is tried, up to O(max_offers).
  - With O(wait=true) (the default) the module returns only when SSH login works, over the direct SSH pair
    (C(public_ipaddr) and the host port mapped to 22).
  - An instance created by the task is destroyed again when the task fails afterwards (unless O(keep_on_failure=true)).
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  name:
    description:
      - Name of the instance, stored as the first part of the Vast label. It is the idempotency key, so it must be
        unique among your instances.
      - Letters, digits and C(. _ -), at most 63 characters.
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the instance exists; a new one is rented running, an existing one is left as it is.
      - V(started) makes sure it exists and runs (rents it, or starts it when it is stopped).
      - V(stopped) stops it (Vast keeps the disk and bills storage). Fails if it does not exist.
      - V(restarted) stops and starts it. Fails if it does not exist.
      - V(absent) destroys it (every instance of that name).
    type: str
    choices: [present, started, stopped, restarted, absent]
    default: present
  offer_id:
    description:
      - Id of the offer (ask) to rent. Mutually exclusive with the offer filters.
      - When not set, the cheapest offer matching the filters is rented.
    type: int
  max_offers:
    description:
      - How many matching offers to try, cheapest first, when an offer is gone or has no capacity.
    type: int
    default: 5
  image:
    description:
      - Docker image. Required to rent an instance.
    type: str
  disk_gb:
    description:
      - Disk size in GB (also a filter, offers with less disk are skipped).
    type: int
    default: 20
  env:
    description:
      - Environment variables of the container. Sent in the Docker-flag form Vast specifies (C(-e K=V)).
      - The C(GPUOPS_*) variables carry the ownership labels and may not be given here.
      - Values may be secrets - they reach no log and no result (a C(no_log) option that this module's action
        plugin hands over as one string, so Ansible does not star out short values elsewhere in the output).
    type: dict
    default: {}
  ports:
    description:
      - Extra container ports to expose (C(-p P:P)). Port 22 is always exposed (direct SSH).
    type: list
    elements: int
    default: []
  onstart:
    description:
      - Shell commands Vast runs when the instance starts. C(touch ~/.no_auto_tmux) always runs first, so SSH
        sessions are not wrapped in tmux.
    type: str
  bid_price:
    description:
      - Bid in USD per hour for the whole machine when O(interruptible=true). Defaults to the offer's minimum bid.
    type: float
  keep_account_key:
    description:
      - The public key is put on the new instance through Vast's per-instance key endpoint, which leaves the
        account alone. Only when that fails, or the offer is a VM (which takes only account keys), is it registered
        as an account key (Vast then copies it into every new instance, and per its API into current ones); the
        result says so in RV(ssh_key).
      - An account key gpu.ops registered carries the comment C(gpuops-run=<run_id>) and is removed when the last
        instance of that run is destroyed by gpu.ops. V(true) keeps it.
    type: bool
    default: false
  ssh_user:
    description:
      - SSH login user. Vast does not report one (it is C(root) there).
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
    description: Offers are searched but nothing is rented, started, stopped or destroyed.
  diff_mode:
    support: none
    description: No diff is returned.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller (or any host with network access to the provider APIs and C(ssh)).
notes:
  - The instance is polled at most once every 10 seconds, as Vast asks, and requests keep within a budget shared by
    every gpu.ops process of the user through a file in C(~/.cache/gpuops/); once the address is known, SSH is
    probed directly every half second. E(GPUOPS_API_QUOTAS=off) lifts the limits, for simulators only.
seealso:
  - module: gpu.ops.vast_instance_info
  - module: gpu.ops.gpu_offer_info
  - module: gpu.ops.gpu_instance
"""

EXAMPLES = r"""
- name: The cheapest verified RTX 4090 under 0.40 USD/h, ready for SSH
  gpu.ops.vast_instance:
    name: train-0
    gpu: [RTX 4090]
    max_price_per_hour: 0.40
    min_reliability: 0.98
    image: vastai/base-image:cuda-12.4
    disk_gb: 40
    ssh_private_key_file: ~/.ssh/id_ed25519
    run_id: "{{ run_id }}"
  register: node

- name: Rent one specific offer as an interruptible bid
  gpu.ops.vast_instance:
    name: sweep-1
    offer_id: 4200007
    interruptible: true
    bid_price: 0.20
    image: vastai/base-image:cuda-12.4
    ssh_public_key_file: ~/.ssh/id_ed25519.pub

- name: Destroy it
  gpu.ops.vast_instance:
    name: train-0
    state: absent
"""

RETURN = r"""
instance:
  description: The instance, normalized (the same shape for RunPod and Vast). None when it does not exist.
  returned: always
  type: dict
  contains:
    id:
      description: Instance (contract) id, as a string.
      type: str
      sample: "7835610"
    name:
      description: Name part of the label.
      type: str
      sample: train-0
    provider:
      description: Always C(vast).
      type: str
      sample: vast
    status:
      description: One of C(pending), C(running), C(stopped), C(terminated), C(error).
      type: str
      sample: running
    provider_status:
      description: C(actual_status) as Vast reports it (null while provisioning, C(loading), C(running), C(exited) ...).
      type: str
      sample: running
    ssh_host:
      description: C(public_ipaddr) (stripped), null until the instance runs.
      type: str
      sample: 63.135.50.11
    ssh_port:
      description: Host port mapped to port 22 (direct SSH).
      type: int
      sample: 41022
    ssh_user:
      description: SSH login user (O(ssh_user)).
      type: str
      sample: root
    gpu_type:
      description: GPU name as Vast reports it.
      type: str
      sample: RTX 4090
    gpu_model:
      description: The GPU model without vendor words, the same across providers.
      type: str
      sample: RTX 4090
    gpu_count:
      description: GPUs in the instance.
      type: int
      sample: 1
    price_per_hour:
      description: Price in USD per hour (C(dph_total), or the bid).
      type: float
      sample: 0.31
    interruptible:
      description: Whether it is a bid (interruptible) instance.
      type: bool
      sample: false
    labels:
      description: Ownership labels C(run_id), C(owner), C(expires_at) decoded from the Vast label.
      type: dict
      sample: {run_id: r-20261123, owner: alice, expires_at: "2026-11-24T10:00:00Z"}
    created_at:
      description: Start of the rental (UTC, ISO 8601).
      type: str
      sample: "2026-11-23T10:00:00Z"
    image:
      description: Docker image.
      type: str
      sample: vastai/base-image:cuda-12.4
    region:
      description: Geolocation of the machine.
      type: str
      sample: Washington, US
    offer_id:
      description: The offer rented, when the instance was created by this task.
      type: int
      sample: 4200007
    status_message:
      description: C(status_msg) as Vast reports it.
      type: str
      sample: success, running vastai/base-image:cuda-12.4/ssh
    connection:
      description: Host vars to reach the instance with Ansible (for M(ansible.builtin.add_host)); null without SSH.
        C(ansible_ssh_private_key_file) is set when O(ssh_private_key_file) was given - C(ansible_ssh_common_args)
        then holds C(IdentitiesOnly=yes), so pass both (see the examples).
      type: dict
      sample: {ansible_host: 63.135.50.11, ansible_port: 41022, ansible_user: root,
               ansible_ssh_private_key_file: /home/alice/.ssh/gpu_ed25519,
               ansible_ssh_common_args: "-o UserKnownHostsFile=/home/alice/.cache/gpuops/known_hosts
                 -o StrictHostKeyChecking=accept-new -o IdentitiesOnly=yes"}
    wait:
      description: How the wait went (API polls, SSH probes, events, C(ready_at) epoch).
      type: dict
      sample: {ready: true, api_polls: 3, ssh_probes: 1, ready_at: 1763892000.12, events: [], last_error: null}
created:
  description: Whether the instance was created by this task.
  returned: when an instance was created
  type: bool
  sample: true
attempts:
  description: Offers tried by this task, in order, with the outcome (C(created), or an error category such as
    C(offer_gone) or C(no_capacity)) and the message.
  returned: when an instance was rented or renting failed
  type: list
  elements: dict
  sample: [{offer_id: 4200001, outcome: offer_gone, message: "no_such_ask ..."}, {offer_id: 4200002, outcome: created}]
ssh_key:
  description: How the public key was put on the instance created by this task. C(method) is C(instance) (the
    per-instance endpoint) or C(account) (registered on the account; C(account_key_id), C(added) when gpu.ops added
    it, and C(why) the account key was needed).
  returned: when an instance was created
  type: dict
  sample: {method: instance}
account_keys_removed:
  description: Ids of account keys gpu.ops had added and removed because no instance of their run is left.
  returned: always
  type: list
  elements: str
  sample: ["30001"]
destroyed:
  description: Ids of the instances destroyed by this task.
  returned: when O(state=absent) or after a failure
  type: list
  elements: str
  sample: ["7835610"]
kept:
  description: With O(state=absent) and O(run_id) or O(owner), the instances of that name left alone because their labels
    belong to another run or owner (a warning names them).
  returned: when O(state=absent)
  type: list
  elements: dict
  sample: [{id: abc123, name: ddp-0, run_id: other-run, owner: bob}]
planned:
  description: In check mode, the offer that would be rented.
  returned: in check mode when an instance would be rented
  type: dict
  sample: {offer_id: 4200007, gpu_model: RTX 4090, price_per_hour: 0.31}
api_requests:
  description: HTTP requests the module sent (retries included).
  returned: always
  type: int
  sample: 7
error:
  description: The API error behind a failure (message, HTTP status, category such as C(offer_gone) or C(auth)).
  returned: on API failures
  type: dict
  sample: {message: "Vast API key rejected (HTTP 401: Invalid user key)", status: 401, category: auth}
"""

from ansible_collections.gpu.ops.plugins.module_utils import fleet
from ansible_collections.gpu.ops.plugins.module_utils import http_client as http
from ansible_collections.gpu.ops.plugins.module_utils._secret_env import env_option
from ansible_collections.gpu.ops.plugins.module_utils.module_base import (
    GpuOpsModule,
    InstanceStateMachine,
    filter_argument_spec,
    instance_argument_spec,
    ssh_user_spec,
)
from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError, gpu_matches, rank_offers, validate_name

FILTER_KEYS = ("gpu", "min_vram_gb", "max_price_per_hour", "regions", "min_cuda_version", "min_reliability")
FAILOVER = (http.OFFER_GONE, http.NO_CAPACITY)


class VastInstance(InstanceStateMachine):
    kind = "instance"

    def prepare_create(self):
        p = self.p
        if not p.get("image"):
            raise ConfigError("image is required to rent Vast instance %r" % self.name)
        bad = [k for k in p["env"] if str(k).startswith("GPUOPS_")]
        if bad:
            raise ConfigError("env must not set %s: the module sets them (ownership labels)" % ", ".join(bad))
        labels = self.m.labels()
        filters = self.m.filters()
        if p.get("offer_id") is not None:
            offers = self.offer_by_id(p["offer_id"], filters)
        else:
            offers = rank_offers(self.prov.find_offers(filters))
            if not offers:
                raise ConfigError(fleet.explain_empty({"vast": self.prov}, filters))
        spec = {"name": self.name, "image": p["image"], "disk_gb": p["disk_gb"],
                "env": {str(k): str(v) for k, v in p["env"].items()}, "ports": list(p["ports"]),
                "onstart": p.get("onstart"), "public_key": self.public_key, "labels": labels,
                "interruptible": p["interruptible"], "bid_price": p.get("bid_price")}
        first = offers[0]
        summary = {"offer_id": first.offer_id, "gpu_model": first.gpu_model, "gpu_count": first.gpu_count,
                   "price_per_hour": first.price_per_hour, "labels": labels}
        return {"spec": spec, "offers": offers[:max(1, p["max_offers"])], "summary": summary}

    def offer_by_id(self, offer_id, filters):
        """The offer with that ask id (searched by id, so the filters do not hide it)."""
        from ansible_collections.gpu.ops.plugins.module_utils.provider import OfferFilters  # pylint: disable=import-outside-toplevel
        body = self.prov.search_body(OfferFilters(gpu_count=filters.gpu_count, interruptible=filters.interruptible,
                                                  verified_only=False), limit=5)
        del body["num_gpus"]
        body["id"] = {"eq": int(offer_id)}
        resp = self.prov._call("POST", "/api/v0/bundles/", json_body=body, idempotent=True,  # pylint: disable=protected-access
                               what="look up offer %s" % offer_id)
        rows = [o for o in (resp.data or {}).get("offers") or [] if str(o.get("id")) == str(offer_id)]
        if not rows:
            raise ConfigError("Vast offer %s is not available (already rented, or no such offer)" % offer_id)
        return [self.prov.to_offer(rows[0], filters.interruptible)]

    def drift(self, inst):
        p = self.p
        out = []
        if p.get("gpu") and inst.gpu_type and not any(gpu_matches(g, inst.gpu_type) for g in p["gpu"]):
            out.append("GPU %s, not %s" % (inst.gpu_type, " or ".join(p["gpu"])))
        if p.get("offer_id") is None and inst.gpu_count and p["gpu_count"] != inst.gpu_count:
            out.append("gpu_count %s, not %s" % (inst.gpu_count, p["gpu_count"]))
        if p.get("image") and inst.image and p["image"] != inst.image:
            out.append("image %s, not %s" % (inst.image, p["image"]))
        return out

    def create(self, plan):
        attempts = []
        self.m.result["attempts"] = attempts
        last = None
        for offer in plan["offers"]:
            try:
                inst = self.prov.create_from_offer(offer, plan["spec"])
            except http.ApiError as e:
                attempts.append({"offer_id": offer.offer_id, "outcome": e.category, "message": e.message,
                                 "price_per_hour": offer.price_per_hour})
                last = e
                if e.category in FAILOVER:
                    self.m.log("offer %s: %s, trying the next one" % (offer.offer_id, e.category))
                    continue
                raise
            self.m.created.append((self.prov, inst))
            self.m.result["ssh_key"] = self.prov.key_reports.get(inst.id)
            attempts.append({"offer_id": offer.offer_id, "outcome": "created", "instance_id": inst.id,
                             "price_per_hour": offer.price_per_hour})
            self.m.log("created %s from offer %s" % (self.label(inst), offer.offer_id))
            return inst
        raise http.ApiError("no Vast offer could be rented after %d attempt(s); last error: %s" % (
            len(attempts), last.message if last else "none"), category=last.category if last else http.ERROR,
            provider="vast")


def main():
    spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "started", "stopped", "restarted", "absent"]),
        offer_id=dict(type="int"),
        max_offers=dict(type="int", default=5),
        image=dict(type="str"),
        disk_gb=dict(type="int", default=20),
        env=env_option(),
        ports=dict(type="list", elements="int", default=[]),
        onstart=dict(type="str"),
        bid_price=dict(type="float"),
        ssh_user=ssh_user_spec(),
        keep_account_key=dict(type="bool", default=False),
    )
    spec.update(instance_argument_spec())
    spec.update(filter_argument_spec())
    m = GpuOpsModule(spec, supports_check_mode=True,
                     mutually_exclusive=[("ssh_public_key", "ssh_public_key_file")] + [
                         ("offer_id", k) for k in FILTER_KEYS])

    def run():
        p = m.params
        validate_name(p["name"])
        if p.get("bid_price") is not None and not p["interruptible"]:
            raise ConfigError("bid_price is only valid with interruptible=true")
        if p.get("bid_price") is not None and p["bid_price"] <= 0:
            raise ConfigError("bid_price must be greater than 0")
        if p["max_offers"] < 1:
            raise ConfigError("max_offers must be at least 1")
        if p["disk_gb"] < 1:
            raise ConfigError("disk_gb must be at least 1")
        for port in p["ports"]:
            if not 1 <= port <= 65535:
                raise ConfigError("port %s is not between 1 and 65535" % port)
        prov = m.provider("vast", ssh_user=p["ssh_user"])
        prov.keep_account_keys = p["keep_account_key"]
        m.result["account_keys_removed"] = prov.removed_account_keys  # filled as instances are destroyed
        VastInstance(m, prov, p["name"]).run()

    m.guard(run)


if __name__ == "__main__":
    main()
