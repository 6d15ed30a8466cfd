#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_offer_info
short_description: Search GPU offers on RunPod and Vast.ai in one normalized, ranked list
version_added: 0.1.0
description:
  - Asks RunPod (GPU catalog with availability, C(GET /v2/catalog/gpus); spot bids through GraphQL) and Vast.ai
    (C(POST /api/v0/bundles/)) for rentable GPU configurations and returns them in one list, normalized and sorted.
  - All filters must match (they are AND-ed); the values of one list filter are alternatives. There is no query
    language, so there is no operator precedence to get wrong.
  - GPU model names are normalized across providers (C(NVIDIA GeForce RTX 4090) on RunPod and C(RTX 4090) on Vast
    are both C(RTX 4090)).
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  providers:
    description:
      - Providers to search. By default every provider that has an API key configured.
    type: list
    elements: str
    choices: [runpod, vast]
  cloud_type:
    description:
      - RunPod cloud tier to search. Both when not set.
    type: str
    choices: [SECURE, COMMUNITY]
  sort_by:
    description:
      - V(price) sorts by the instance price, V(price_per_gpu) by the price per GPU, V(reliability) most reliable
        first, V(vram) most GPU memory first. Ties are broken by price.
    type: str
    choices: [price, price_per_gpu, reliability, vram]
    default: price
  limit:
    description:
      - Return at most this many offers (0 for all).
    type: int
    default: 50
extends_documentation_fragment:
  - gpu.ops.auth
  - gpu.ops.offer_filters
attributes:
  check_mode:
    support: full
    description: Read-only, runs the same in check mode.
  diff_mode:
    support: none
    description: No diff is returned.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller (or any host with network access to the provider APIs and C(ssh)).
notes:
  - An unknown GPU model fails the task and names the close matches. A price ceiling below every offer returns an
    empty list with a warning that names the cheapest matching offer.
  - A provider that fails (after retries) is reported in RV(provider_errors) and the others are still returned; a
    rejected API key fails the task.
  - Vast lists thousands of offers and one search returns at most 256 of them, so the GPU models (in Vast's own
    names, C(H100) as C(H100 NVL), C(H100 PCIE) and C(H100 SXM)), the GPU count, price, reliability, CUDA, region
    and disk filters are sent to Vast; the 256 are the cheapest offers that match them all.
  - When offers of the wanted GPU exist but other filters excluded them, the warning says which filter excluded how
    many, and why (for example that they have 2 or 4 GPUs where O(gpu_count=1) was asked).
seealso:
  - module: gpu.ops.gpu_instance
"""

EXAMPLES = r"""
- name: The five cheapest single 4090s or A6000s under 0.50 USD/h in the US or Canada
  gpu.ops.gpu_offer_info:
    gpu: ["4090", "A6000"]
    max_price_per_hour: 0.50
    regions: [US, CA]
    limit: 5
  register: offers

- name: 8x H100 with at least CUDA 12.4, most reliable first, Vast only
  gpu.ops.gpu_offer_info:
    providers: [vast]
    gpu: [H100]
    gpu_count: 8
    min_cuda_version: "12.4"
    sort_by: reliability
"""

RETURN = r"""
offers:
  description: Matching offers, sorted.
  returned: always
  type: list
  elements: dict
  contains:
    provider:
      description: C(runpod) or C(vast).
      type: str
      sample: vast
    offer_id:
      description: What to rent. Vast ask id (int); RunPod C(runpod:<cloud>:<gpu type id>).
      type: raw
      sample: 4200004
    gpu_model:
      description: Normalized GPU model.
      type: str
      sample: RTX 4090
    gpu_type:
      description: The provider's GPU name or id.
      type: str
      sample: NVIDIA GeForce RTX 4090
    gpu_count:
      description: GPUs per instance.
      type: int
      sample: 1
    vram_gb:
      description: Memory per GPU in GB.
      type: int
      sample: 24
    price_per_hour:
      description: USD per hour for the instance (on-demand price, or the minimum bid when interruptible).
      type: float
      sample: 0.31
    price_per_gpu_hour:
      description: USD per GPU and hour.
      type: float
      sample: 0.31
    interruptible:
      description: Whether this is spot/bid capacity.
      type: bool
      sample: false
    min_bid:
      description: Minimum bid (Vast per machine, RunPod per GPU), when known.
      type: float
      sample: 0.16
    region:
      description: Vast geolocation, or the RunPod data centers with stock.
      type: str
      sample: Washington, US
    country:
      description: Country code (Vast).
      type: str
      sample: US
    data_centers:
      description: RunPod data centers with stock.
      type: list
      elements: str
      sample: [US-TX-3, EU-RO-1]
    cuda_version:
      description: Highest CUDA version available.
      type: str
      sample: "12.4"
    cuda_versions:
      description: RunPod CUDA versions with capacity.
      type: list
      elements: str
      sample: ["12.4", "12.8"]
    reliability:
      description: Vast machine reliability (0-1); null on RunPod.
      type: float
      sample: 0.996
    cloud_type:
      description: RunPod cloud tier.
      type: str
      sample: SECURE
    availability:
      description: RunPod stock level (C(LOW), C(MEDIUM), C(HIGH)).
      type: str
      sample: HIGH
    verified:
      description: Vast verified machine.
      type: bool
      sample: true
    disk_gb:
      description: Disk the machine offers (Vast).
      type: float
      sample: 250
    vcpus:
      description: Effective vCPUs (Vast).
      type: float
      sample: 16
    ram_gb:
      description: Host RAM in GB (Vast).
      type: float
      sample: 64
    inet_down_mbps:
      description: Download bandwidth (Vast).
      type: float
      sample: 900
total:
  description: Matching offers before O(limit) was applied.
  returned: always
  type: int
  sample: 12
provider_errors:
  description: Providers that failed, with the error (the other providers' offers are still returned).
  returned: always
  type: dict
  sample: {runpod: {message: "RunPod API GET /catalog/gpus: HTTP 503 ...", category: unavailable, status: 503}}
api_requests:
  description: HTTP requests the module sent (retries included).
  returned: always
  type: int
  sample: 3
"""

from ansible_collections.gpu.ops.plugins.module_utils import fleet, registry
from ansible_collections.gpu.ops.plugins.module_utils.module_base import GpuOpsModule, filter_argument_spec, provider_choices
from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError


def main():
    spec = dict(
        providers=dict(type="list", elements="str", choices=provider_choices()),
        cloud_type=dict(type="str", choices=["SECURE", "COMMUNITY"]),
        sort_by=dict(type="str", default="price", choices=["price", "price_per_gpu", "reliability", "vram"]),
        limit=dict(type="int", default=50),
    )
    spec.update(filter_argument_spec())
    m = GpuOpsModule(spec, supports_check_mode=True)

    def run():
        p = m.params
        if p["limit"] < 0:
            raise ConfigError("limit must be 0 (all) or more")
        names = p.get("providers") or m.configured_providers()
        if not names:
            raise ConfigError("no provider to search: set %s" % registry.key_hint())
        filters = m.filters(cloud_type=p.get("cloud_type"))
        filters.min_disk_gb = None
        providers = {n: m.provider(n) for n in names}
        offers, errors = fleet.search(providers, filters, p["sort_by"])
        if errors and len(errors) == len(providers):
            return m.fail("every provider failed: %s" % "; ".join(e["message"] for e in errors.values()),
                          provider_errors=errors)
        if not offers:
            m.module.warn(fleet.explain_empty({n: v for n, v in providers.items() if n not in errors}, filters))
        for name, err in errors.items():
            m.module.warn("%s offers are missing: %s" % (name, err["message"]))
        shown = offers[:p["limit"]] if p["limit"] else offers
        m.exit(changed=False, offers=[o.to_dict() for o in shown], total=len(offers), provider_errors=errors)

    m.guard(run)


if __name__ == "__main__":
    main()
