#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: run_watch
short_description: Watch a managed run's job on one node for one slice, and tell preemption from job failure
version_added: 0.3.0
description:
  - Used by the C(gpu.ops.pipeline) train rounds of a managed run (interruptible nodes, C(on_preemption),
    C(max_restarts_on_errors)). Waits for the job on the node for at most O(timeout) seconds, in node-side waits
    of a few seconds, so that a lost SSH connection is noticed at once.
  - When SSH stops answering, or the job ends without succeeding, the provider API is asked about the instance
    (O(provider), O(instance_id)); an instance the platform stopped or removed (RunPod spot pod EXITED or gone,
    Vast outbid and stopped) is reported as preempted, within O(preemption_detect_s). A job that ended on a node
    that still runs failed by itself.
  - With O(stop_on_peer_failure), a rank whose peer ended badly or was preempted is stopped, so that every rank
    restarts from the same checkpoint.
  - The task itself fails only when the node module fails; the outcome is in the result.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  job_id:
    description:
      - The job to watch.
    type: str
    required: true
  timeout:
    description:
      - Seconds this slice lasts at most (the pipeline syncs checkpoints between slices).
    type: int
    required: true
  provider:
    description:
      - The node's provider (V(runpod), V(vast)); unset for a home-lab node (then only SSH is watched).
    type: str
  instance_id:
    description:
      - The node's instance id at O(provider).
    type: str
  preemption_detect_s:
    description:
      - Seconds the provider API is asked, after SSH was lost, before the node counts as lost although the API
        still says it runs.
    type: int
    default: 30
  stop_on_peer_failure:
    description:
      - Stop the job when another node's part of it ended badly or was preempted.
    type: bool
    default: false
attributes:
  check_mode:
    support: none
    description: Not meant for check mode.
  diff_mode:
    support: none
    description: No diff.
  platform:
    support: full
    platforms: posix
    description: The wait runs on the node, the provider check on the controller (API keys from its environment).
seealso:
  - module: gpu.ops.job_wait
  - module: gpu.ops.run_checkpoint
"""

EXAMPLES = r"""
- name: Watch the job for one sync interval
  gpu.ops.run_watch:
    job_id: train-myrun
    timeout: 30
    provider: runpod
    instance_id: "{{ gpuops_id }}"
  register: run_slice
"""

RETURN = r"""
done:
  description: Whether the job ended (or the node was lost) in this slice.
  returned: always
  type: bool
preempted:
  description: Whether the node was taken away by the platform or lost (SSH gone).
  returned: always
  type: bool
job:
  description: The job as gpu.ops.job_info reports it (status, exit code, last line, ...).
  returned: always
  type: dict
provider_state:
  description: The instance state the provider API reported when the node was checked.
  returned: when the provider was asked
  type: str
detected_at:
  description: Epoch seconds when the loss or the end was noticed.
  returned: when preempted
  type: float
detect_s:
  description: Seconds the classification (asking the provider) took.
  returned: when preempted
  type: float
"""
