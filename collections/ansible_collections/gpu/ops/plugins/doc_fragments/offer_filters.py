# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Offer filters. All filters must match (AND); the values of one list filter are alternatives (OR).
    DOCUMENTATION = r"""
options:
  gpu:
    description:
      - GPU models to accept. Names are matched across providers by their words, ignoring vendor words, so
        C(RTX 4090), C(4090) and C(NVIDIA GeForce RTX 4090) are the same GPU and C(A100) matches every A100 variant.
      - Any model when not set.
    type: list
    elements: str
  gpu_count:
    description:
      - GPUs per instance (exact).
    type: int
    default: 1
  min_vram_gb:
    description:
      - Minimum memory per GPU in GB.
    type: int
  max_price_per_hour:
    description:
      - Price ceiling in USD per hour for the whole instance (all its GPUs), as the provider bills it.
    type: float
  regions:
    description:
      - Where the machine may be, as ISO country codes (C(US), C(DE)) or RunPod data center ids (C(EU-RO-1)).
    type: list
    elements: str
  min_cuda_version:
    description:
      - Lowest acceptable CUDA version of the host driver, for example C(12.4).
    type: str
  min_reliability:
    description:
      - Lowest acceptable host reliability between 0 and 1 (Vast publishes one per machine; RunPod offers carry none
        and are not filtered by it).
    type: float
  interruptible:
    description:
      - Interruptible capacity (RunPod spot pods, Vast bids) instead of on-demand. Cheaper, but the provider may stop
        the instance at any time.
    type: bool
    default: false
  verified_only:
    description:
      - Only Vast machines that Vast has verified.
    type: bool
    default: true
"""
