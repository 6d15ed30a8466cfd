#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_health_check
short_description: Check a GPU node's health, score it 0-100 and gate on the score
version_added: 0.1.0
description:
  - Runs on the GPU node through the gpu.ops node helper (C(~/.bifrost/bin/gpuops-health-<hash>.pyz), installed once
    per collection version) - one SSH round trip with the arguments on stdin, no module payload. Needs Python 3.9
    or later on the node; C(become) is honoured. In one call it reads every GPU with a single
    C(nvidia-smi --query-gpu=... --format=csv,noheader,nounits) (fields index, name, temperature.gpu,
    utilization.gpu, memory.used, memory.total, ecc.errors.uncorrected.volatile.total, uuid, pci.bus_id,
    driver_version; one line per GPU, any number of GPUs), disk usage of the filesystem holding O(workspace), host memory
    (the container's cgroup limit when one is set) and load.
  - "Scores the node from 100 down, once per check for the worst GPU: GPU temperature above 85 C -30, above 80 C -15;
    GPU memory in use above 95 % -20, above 90 % -10; GPU utilization above 90 % (busy before the job) -10;
    uncorrected volatile ECC errors -50; a GPU field reading an error such as C([GPU requires reset]) -50;
    GPU count different from O(expected_gpus) -50; host memory above 95 % -25, above 90 % -10;
    disk above 95 % -20, above 90 % -10. No driver, no visible GPU or a failing C(nvidia-smi) scores 0
    when O(require_gpu=true). Load is reported, not scored (containers see the host's load)."
  - Records each check in a history file on the node and applies a circuit breaker, so a node that keeps
    failing is marked unhealthy even when one reading looks fine.
  - Fails the host when the score is below O(min_score) or the breaker is open, with a message that names
    each GPU and problem. The full result is returned in both cases.
  - The history record is the module's own bookkeeping, so the module never reports a change.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  min_score:
    description:
      - Lowest passing score. V(0) never fails on the score (the check is only recorded).
    type: int
    default: 80
  expected_gpus:
    description:
      - Number of GPUs the node must show. V(0) does not check the count.
    type: int
    default: 0
  require_gpu:
    description:
      - When V(true), a missing C(nvidia-smi), a driver that is not loaded or no visible GPU scores 0.
      - When V(false) (CPU nodes), a missing C(nvidia-smi) is not a problem.
    type: bool
    default: true
  workspace:
    description:
      - Path whose filesystem is checked for free space (its nearest existing parent when it does not exist yet).
    type: path
    default: ~/.bifrost/workspace
  history_dir:
    description:
      - Directory for the health history (C(history.json)), written atomically under a lock.
    type: path
    default: ~/.bifrost/health
  history:
    description:
      - Record this check in the history. V(false) still reads the history for the breaker.
      - Nothing is written in check mode.
    type: bool
    default: true
  breaker_failures:
    description:
      - The breaker opens when this many failed checks fall within O(breaker_window) seconds. V(0) disables it.
    type: int
    default: 3
  breaker_window:
    description:
      - Window of the circuit breaker, in seconds. The breaker closes once failures age out of it.
    type: int
    default: 300
  nvidia_smi:
    description:
      - Name or path of C(nvidia-smi). A bare name is searched in E(PATH), C(/usr/bin), C(/usr/local/nvidia/bin)
        and C(/usr/lib/wsl/lib).
    type: str
    default: nvidia-smi
  timeout:
    description:
      - Seconds to wait for C(nvidia-smi); a wedged GPU can make it hang. Enforced with C(timeout) from coreutils
        when the node has it.
    type: int
    default: 30
notes:
  - Needs Python 3.9 or later on the node and nothing else than the standard library.
  - Meant as a gate before a job. While a job runs, high GPU memory and utilization are expected; use O(min_score=0)
    there to record without failing.
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reads everything, computes the breaker as if the check were recorded, writes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
"""

EXAMPLES = r"""
- name: Gate a node before renting it for a job
  gpu.ops.node_health_check:
    min_score: 80
    expected_gpus: "{{ gpuops_gpu_count | default(0) }}"
  register: node_health

- name: Record health while a job runs, never fail
  gpu.ops.node_health_check:
    min_score: 0
"""

RETURN = r"""
score:
  description: Health score, 0 to 100.
  returned: always
  type: int
  sample: 70
status:
  description: V(healthy) (score >= 80), V(degraded) (>= 60) or V(unhealthy); V(unhealthy) while the breaker is open.
  returned: always
  type: str
  sample: degraded
healthy:
  description: The gate's verdict, V(true) when the score is at least O(min_score) and the breaker is closed.
  returned: always
  type: bool
passed:
  description: Whether this reading alone reached O(min_score) (what the breaker counts).
  returned: always
  type: bool
problems:
  description: Every problem found, worst first.
  returned: always
  type: list
  elements: dict
  sample:
    - check: gpu_temperature
      deduction: 30
      gpu: 0
      gpu_name: NVIDIA GeForce RTX 4090
      value: 91
      threshold: 85
      message: "GPU 0 (NVIDIA GeForce RTX 4090): temperature 91 C > 85 C"
gpus:
  description: One entry per GPU as nvidia-smi reported it.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: GPU index.
      type: int
    name:
      description: Product name.
      type: str
    uuid:
      description: GPU UUID.
      type: str
    pci_bus_id:
      description: PCI bus id.
      type: str
    driver_version:
      description: Driver version.
      type: str
    temperature_c:
      description: Core temperature, degrees C.
      type: float
    utilization_pct:
      description: GPU utilization, percent; null where the device does not report it.
      type: float
    memory_used_mib:
      description: Memory in use, MiB.
      type: float
    memory_total_mib:
      description: Total memory, MiB.
      type: float
    memory_used_pct:
      description: Memory in use, percent.
      type: float
    ecc_uncorrected:
      description: Uncorrected volatile ECC errors; null where the GPU has no ECC (GeForce cards print C([N/A])).
      type: int
    errors:
      description: Fields that read an error value, such as C([GPU requires reset]), by field name.
      type: dict
gpu_count:
  description: Number of GPUs listed.
  returned: always
  type: int
driver:
  description: Driver state, C(available), C(version) and C(error) (why there is no GPU data).
  returned: always
  type: dict
host:
  description: Host metrics, C(memory) (total_mib, available_mib, used_pct, source), C(disk) (path, total_gib, free_gib, used_pct)
    and C(load) (load_1m, load_5m, load_15m, cpu_count, load_per_cpu).
  returned: always
  type: dict
breaker:
  description: Circuit breaker, C(state) (closed or open), C(failures_in_window), C(window_s), C(threshold) and C(open_until) (epoch seconds).
  returned: always
  type: dict
history_path:
  description: The history file on the node.
  returned: always
  type: str
checked_at:
  description: Time of the check (UTC, ISO 8601).
  returned: always
  type: str
"""
