#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: runpod_instance
short_description: Create, start, stop, restart and destroy RunPod GPU pods
version_added: 0.1.0
description:
  - Manages one RunPod pod, identified by its O(name), through the RunPod REST API v2.
  - Interruptible (spot) pods are created and resumed through RunPod GraphQL, the only API that can.
  - With O(wait=true) (the default) the module returns only when SSH login to the pod works.
  - A pod created by the task is destroyed again when the task fails afterwards (unless O(keep_on_failure=true)).
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  name:
    description:
      - Name of the pod. It is the idempotency key, so it must be unique among your pods.
      - Letters, digits and C(. _ -), at most 63 characters.
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the pod exists; a new pod is created running, an existing one is left as it is
        (a stopped pod stays stopped).
      - V(started) makes sure the pod exists and runs (creates it, or starts it when it is stopped).
      - V(stopped) stops a running pod (RunPod keeps its disk and bills storage). Fails if the pod does not exist.
      - V(restarted) restarts the pod (starts it when it is stopped). Fails if the pod does not exist.
      - V(absent) destroys the pod (every pod of that name).
    type: str
    choices: [present, started, stopped, restarted, absent]
    default: present
  gpu_type:
    description:
      - GPU type to rent, as a RunPod GPU type id (C(NVIDIA GeForce RTX 4090)) or a model name (C(RTX 4090), C(4090),
        C(H100 SXM)), resolved against the RunPod catalog. Unknown or ambiguous names fail before anything is rented,
        naming the close matches.
      - Required to create a pod.
    type: str
  gpu_count:
    description:
      - Number of GPUs in the pod. C(1) when not set.
    type: int
  image:
    description:
      - Container image, for example C(runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04).
      - Required to create a pod. The image must start sshd with C($PUBLIC_KEY) (every RunPod image does).
    type: str
  disk_gb:
    description:
      - Container disk in GB.
    type: int
    default: 20
  ports:
    description:
      - Ports to expose, as C(port/http) or C(port/tcp). C(22/tcp) is always added (SSH needs it).
    type: list
    elements: str
    default: []
  env:
    description:
      - Environment variables of the container.
      - C(PUBLIC_KEY) is set from the SSH public key and the C(GPUOPS_*) variables carry the ownership labels, so
        neither may be given here.
      - Values may be secrets - they reach no log and no result (a C(no_log) option that this module's action
        plugin hands over as one string, so Ansible does not star out short values elsewhere in the output).
    type: dict
    default: {}
  args:
    description:
      - Arguments passed to the image entrypoint.
    type: str
  cloud_type:
    description:
      - RunPod cloud tier.
    type: str
    choices: [SECURE, COMMUNITY]
    default: SECURE
  data_centers:
    description:
      - Data center ids the pod may be placed in, for example C(EU-RO-1). Any when not set.
    type: list
    elements: str
  min_cuda_version:
    description:
      - Lowest acceptable CUDA version of the host, for example C(12.4).
    type: str
  interruptible:
    description:
      - Create a spot (interruptible) pod through GraphQL. RunPod may stop it at any time when outbid.
    type: bool
    default: false
  bid_per_gpu:
    description:
      - Bid in USD per GPU and hour for a spot pod. Defaults to the current minimum bid.
      - Only with O(interruptible=true).
    type: float
  ssh_user:
    description:
      - SSH login user. By default the user RunPod reports for the pod (C(ssh.direct.username), C(root) on RunPod).
    type: str
extends_documentation_fragment:
  - gpu.ops.auth
  - gpu.ops.instance
attributes:
  check_mode:
    support: full
    description: Nothing is created, started, stopped or destroyed; the result says what would change.
  diff_mode:
    support: none
    description: No diff is returned.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller (or any host with network access to the provider APIs and C(ssh)).
notes:
  - The pod's direct SSH endpoint (C(ssh.direct)) is used; the RunPod SSH proxy cannot carry Ansible.
  - A pod that runs but gets no C(ssh.direct) because its host has no public IP (REST v2 cannot ask for one) fails the
    task after a grace of 60 seconds (a third of O(wait_timeout) when that is shorter, at least 10 seconds) and is
    destroyed; the message says so. M(gpu.ops.gpu_instance) replaces such pods on another offer.
  - API polls keep within RunPod's budget of 60 requests per minute per user, shared by every gpu.ops process of the
    user through a file in C(~/.cache/gpuops/); once the address is known, SSH is probed directly every half
    second. E(GPUOPS_API_QUOTAS=off) lifts the budget, for simulators only.
seealso:
  - module: gpu.ops.runpod_instance_info
  - module: gpu.ops.gpu_instance
"""

EXAMPLES = r"""
- name: A RunPod pod with one RTX 4090, ready for SSH
  gpu.ops.runpod_instance:
    name: train-0
    gpu_type: RTX 4090
    image: runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04
    ssh_private_key_file: ~/.ssh/id_ed25519
    run_id: "{{ run_id }}"
    ttl: 12h
  register: pod

- name: Reach it with Ansible
  ansible.builtin.add_host:
    name: "{{ pod.instance.name }}"
    groups: gpu_nodes
    ansible_host: "{{ pod.instance.connection.ansible_host }}"
    ansible_port: "{{ pod.instance.connection.ansible_port }}"
    ansible_user: "{{ pod.instance.connection.ansible_user }}"
    ansible_ssh_private_key_file: "{{ pod.instance.connection.ansible_ssh_private_key_file | default(omit) }}"
    ansible_ssh_common_args: "{{ pod.instance.connection.ansible_ssh_common_args }}"

- name: A spot pod on community cloud, bidding 0.25 USD per GPU-hour
  gpu.ops.runpod_instance:
    name: sweep-3
    gpu_type: NVIDIA RTX A6000
    gpu_count: 2
    cloud_type: COMMUNITY
    interruptible: true
    bid_per_gpu: 0.25
    image: runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04
    ssh_public_key_file: ~/.ssh/id_ed25519.pub

- name: Stop it (keeps the disk)
  gpu.ops.runpod_instance:
    name: train-0
    state: stopped

- name: Destroy it
  gpu.ops.runpod_instance:
    name: train-0
    state: absent
"""

RETURN = r"""
instance:
  description: The pod, normalized (the same shape for RunPod and Vast). None when it does not exist.
  returned: always
  type: dict
  contains:
    id:
      description: Pod id.
      type: str
      sample: xedezhzb9la3ye
    name:
      description: Pod name.
      type: str
      sample: train-0
    provider:
      description: Always C(runpod).
      type: str
      sample: runpod
    status:
      description: One of C(pending), C(running), C(stopped), C(terminated), C(error).
      type: str
      sample: running
    provider_status:
      description: The status as RunPod reports it (C(PROVISIONING), C(STARTING), C(RUNNING), C(EXITED), C(ERROR)).
      type: str
      sample: RUNNING
    ssh_host:
      description: Address of the direct SSH endpoint, null until the pod runs.
      type: str
      sample: 213.173.108.12
    ssh_port:
      description: Public port mapped to the pod's port 22.
      type: int
      sample: 17445
    ssh_user:
      description: SSH login user.
      type: str
      sample: root
    gpu_type:
      description: RunPod GPU type id.
      type: str
      sample: NVIDIA GeForce RTX 4090
    gpu_model:
      description: The GPU model without vendor words, the same across providers.
      type: str
      sample: RTX 4090
    gpu_count:
      description: GPUs in the pod.
      type: int
      sample: 1
    price_per_hour:
      description: What the pod costs now in USD per hour (0 while stopped).
      type: float
      sample: 0.69
    interruptible:
      description: Whether it is a spot pod.
      type: bool
      sample: false
    labels:
      description: Ownership labels C(run_id), C(owner), C(expires_at).
      type: dict
      sample: {run_id: r-20261123, owner: alice, expires_at: "2026-11-24T10:00:00Z"}
    created_at:
      description: Creation time (UTC, ISO 8601).
      type: str
      sample: "2026-11-23T10:00:00Z"
    image:
      description: Container image.
      type: str
      sample: runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04
    region:
      description: Data center id.
      type: str
      sample: EU-RO-1
    offer_id:
      description: Not used for RunPod (null).
      type: str
      sample: null
    status_message:
      description: The provider's status message, if any.
      type: str
      sample: null
    connection:
      description: Host vars to reach the pod with Ansible (for M(ansible.builtin.add_host)); null without SSH endpoint.
        C(ansible_ssh_private_key_file) is set when O(ssh_private_key_file) was given - C(ansible_ssh_common_args)
        then holds C(IdentitiesOnly=yes), so pass both (see the examples).
      type: dict
      sample: {ansible_host: 213.173.108.12, ansible_port: 17445, ansible_user: root,
               ansible_ssh_private_key_file: /home/alice/.ssh/gpu_ed25519,
               ansible_ssh_common_args: "-o UserKnownHostsFile=/home/alice/.cache/gpuops/known_hosts
                 -o StrictHostKeyChecking=accept-new -o IdentitiesOnly=yes"}
    wait:
      description: How the wait went (API polls, SSH probes, events with seconds since the wait began, C(ready_at) epoch).
      type: dict
      sample: {ready: true, api_polls: 4, ssh_probes: 1, ready_at: 1763892000.12, events: [], last_error: null}
created:
  description: Whether the pod was created by this task.
  returned: when a pod was created
  type: bool
  sample: true
destroyed:
  description: Ids of the pods destroyed by this task.
  returned: when O(state=absent) or after a failure
  type: list
  elements: str
  sample: [xedezhzb9la3ye]
kept:
  description: With O(state=absent) and O(run_id) or O(owner), the pods of that name left alone because their labels
    belong to another run or owner (a warning names them).
  returned: when O(state=absent)
  type: list
  elements: dict
  sample: [{id: abc123, name: ddp-0, run_id: other-run, owner: bob}]
planned:
  description: In check mode, the pod that would be created.
  returned: in check mode when a pod would be created
  type: dict
  sample: {gpu_type: NVIDIA GeForce RTX 4090, gpu_count: 1, cloud_type: SECURE, image: runpod/pytorch:2.4.0}
api_requests:
  description: HTTP requests the module sent (retries included).
  returned: always
  type: int
  sample: 6
error:
  description: The API error behind a failure (message, HTTP status, category such as C(no_capacity) or C(auth)).
  returned: on API failures
  type: dict
  sample: {message: "RunPod API key rejected (HTTP 401: invalid api key)", status: 401, category: auth}
"""

import re

from ansible_collections.gpu.ops.plugins.module_utils._secret_env import env_option
from ansible_collections.gpu.ops.plugins.module_utils.module_base import (
    GpuOpsModule,
    InstanceStateMachine,
    instance_argument_spec,
)
from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError, gpu_matches, validate_name

PORT_RE = re.compile(r"^\d{1,5}/(http|tcp)$")
RESERVED_ENV = ("PUBLIC_KEY",)


class RunPodInstance(InstanceStateMachine):
    kind = "pod"

    @property
    def count(self):
        return self.p["gpu_count"] or 1

    def prepare_create(self):
        p = self.p
        missing = [k for k in ("gpu_type", "image") if not p.get(k)]
        if missing:
            raise ConfigError("%s %s required to create RunPod pod %r" % (
                " and ".join(missing), "is" if len(missing) == 1 else "are", self.name))
        for port in p["ports"]:
            if not PORT_RE.match(str(port)):
                raise ConfigError("port %r must look like 8888/http or 2222/tcp" % port)
        bad = [k for k in p["env"] if k in RESERVED_ENV or str(k).startswith("GPUOPS_")]
        if bad:
            raise ConfigError("env must not set %s: the module sets them (ssh key and ownership labels)" % ", ".join(bad))
        labels = self.m.labels()
        gpu_id = self.prov.resolve_gpu_type(p["gpu_type"])
        for g in self.prov.gpu_catalog():
            if g.get("id") == gpu_id:
                limit = (g.get("maxCount") or {}).get(p["cloud_type"].lower())
                if limit is not None and self.count > limit:
                    raise ConfigError("%s pods on %s cloud have at most %s GPUs (gpu_count=%s)" % (
                        gpu_id, p["cloud_type"], limit, self.count))
        spec = {"name": self.name, "image": p["image"], "gpu_type": gpu_id, "gpu_count": self.count,
                "disk_gb": p["disk_gb"], "ports": list(p["ports"]), "env": {str(k): str(v) for k, v in p["env"].items()},
                "public_key": self.public_key, "cloud_type": p["cloud_type"], "data_centers": p.get("data_centers"),
                "min_cuda_version": p.get("min_cuda_version"), "labels": labels, "args": p.get("args"),
                "interruptible": p["interruptible"], "bid_per_gpu": p.get("bid_per_gpu")}
        if p["interruptible"] and not p.get("bid_per_gpu"):
            spec["bid_per_gpu"] = self.min_bid(gpu_id)
        summary = {k: spec[k] for k in ("gpu_type", "gpu_count", "cloud_type", "image", "interruptible",
                                        "bid_per_gpu", "labels")}
        return {"spec": spec, "summary": summary}

    def min_bid(self, gpu_id):
        from ansible_collections.gpu.ops.plugins.module_utils.runpod import SPOT_PRICES  # pylint: disable=import-outside-toplevel
        data = self.prov.graphql(SPOT_PRICES, {"lp": {"gpuCount": self.count,
                                                      "secureCloud": self.p["cloud_type"] == "SECURE"}},
                                 what="spot prices")
        for t in data.get("gpuTypes") or []:
            if t.get("id") == gpu_id:
                bid = (t.get("lowestPrice") or {}).get("minimumBidPrice")
                if bid:
                    return float(bid)
        raise ConfigError("RunPod offers no spot capacity for %s on %s cloud; set bid_per_gpu or use "
                          "interruptible=false" % (gpu_id, self.p["cloud_type"]))

    def create(self, plan):
        inst = self.prov.create(plan["spec"])
        self.m.created.append((self.prov, inst))
        self.m.log("created %s" % self.label(inst))
        return inst

    def start_kwargs(self):
        return {"bid_per_gpu": self.p.get("bid_per_gpu")}

    def drift(self, inst):
        p = self.p
        out = []
        if p.get("gpu_type") and inst.gpu_type and not (p["gpu_type"].lower() == inst.gpu_type.lower()
                                                        or gpu_matches(p["gpu_type"], inst.gpu_type)):
            out.append("gpu_type %s, not %s" % (inst.gpu_type, p["gpu_type"]))
        if inst.gpu_count and p["gpu_count"] and p["gpu_count"] != inst.gpu_count:
            out.append("gpu_count %s, not %s" % (inst.gpu_count, p["gpu_count"]))
        if p.get("image") and inst.image and p["image"] != inst.image:
            out.append("image %s, not %s" % (inst.image, p["image"]))
        return out


def main():
    spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "started", "stopped", "restarted", "absent"]),
        gpu_type=dict(type="str"),
        gpu_count=dict(type="int"),
        image=dict(type="str"),
        disk_gb=dict(type="int", default=20),
        ports=dict(type="list", elements="str", default=[]),
        env=env_option(),
        args=dict(type="str"),
        cloud_type=dict(type="str", default="SECURE", choices=["SECURE", "COMMUNITY"]),
        data_centers=dict(type="list", elements="str"),
        min_cuda_version=dict(type="str"),
        interruptible=dict(type="bool", default=False),
        bid_per_gpu=dict(type="float"),
        ssh_user=dict(type="str"),
    )
    spec.update(instance_argument_spec())
    m = GpuOpsModule(spec, supports_check_mode=True, mutually_exclusive=[("ssh_public_key", "ssh_public_key_file")])

    def run():
        p = m.params
        validate_name(p["name"])
        if p.get("bid_per_gpu") is not None and not p["interruptible"]:
            raise ConfigError("bid_per_gpu is only valid with interruptible=true")
        if p.get("bid_per_gpu") is not None and p["bid_per_gpu"] <= 0:
            raise ConfigError("bid_per_gpu must be greater than 0")
        if p["gpu_count"] is not None and p["gpu_count"] < 1:
            raise ConfigError("gpu_count must be at least 1")
        if p["disk_gb"] < 1:
            raise ConfigError("disk_gb must be at least 1")
        RunPodInstance(m, m.provider("runpod"), p["name"]).run()

    m.guard(run)


if __name__ == "__main__":
    main()
