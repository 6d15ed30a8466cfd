#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: run_checkpoint
short_description: Choose the checkpoint a managed run restarts from, on the controller
version_added: 0.3.0
description:
  - Reads the checkpoints a managed run synced home into C(<run_dir>/checkpoints/<host>/steps/step-<N>/) and returns
    the newest step that every node can restart from.
  - A checkpoint counts only when its directory holds the marker C(COMPLETE) (the job writes it last) and every one
    of its files is sha256-verified by the sync (C(collect.json)) and unchanged since. A directory caught while the
    job was writing it is never chosen.
  - Step 0 means no checkpoint is usable (for example the node was preempted before the first checkpoint); the job
    restarts from scratch.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  run_dir:
    description:
      - The run's directory on the controller.
    type: path
    required: true
  hosts:
    description:
      - The nodes (inventory names) that restart.
    type: list
    elements: str
    required: true
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: No diff.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller only.
seealso:
  - module: gpu.ops.run_watch
"""

EXAMPLES = r"""
- name: Choose the checkpoint
  gpu.ops.run_checkpoint:
    run_dir: "{{ run_spec.run_dir }}"
    hosts: "{{ groups['gpuops_nodes'] }}"
  register: run_ckpt
"""

RETURN = r"""
step:
  description: The step of the chosen checkpoint, 0 for none.
  returned: always
  type: int
sources:
  description: Per host, the controller directory of the chosen checkpoint (empty for step 0).
  returned: always
  type: dict
"""
