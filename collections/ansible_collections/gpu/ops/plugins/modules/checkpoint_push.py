#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: checkpoint_push
short_description: Put a node on a managed run's chosen checkpoint (the controller's verified copy)
version_added: 0.3.0
description:
  - Used by the C(gpu.ops.pipeline) train rounds of a managed run before a job (re)starts. Makes the run's
    checkpoint directory O(dest) on the node and answers with its absolute path (the job's E(GPUOPS_CHECKPOINT_DIR)).
  - With O(prune), removes every C(step-*) directory in O(dest) but the one named like O(src), so that every rank
    restarts from the same checkpoint (a surviving rank may hold a newer one than a replaced rank ever synced).
  - With O(src), the directory of a checkpoint on the controller (a verified copy, see M(gpu.ops.run_checkpoint)),
    sends only the files the node does not already hold with the same sha256, as one tar stream over the task's
    SSH connection; the node verifies each file against its sha256 before it takes its name, and removes files of
    that checkpoint that O(src) does not have.
  - Runs on the node through the gpu.ops node helper (the one of M(gpu.ops.collect_results), one SSH round trip
    to look, one stream to send, no module payload). C(become) is honoured the way M(gpu.ops.collect_results)
    honours it.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  dest:
    description:
      - The run's checkpoint directory on the node (C(~) is the node's home), for example
        C(~/.bifrost/checkpoints/<run_id>).
    type: str
    required: true
  src:
    description:
      - The checkpoint to put on the node - a C(step-<N>) directory on the controller. Omit to send nothing.
    type: path
  prune:
    description:
      - Remove every C(step-*) directory in O(dest) except the one named like O(src) (all of them without O(src)).
    type: bool
    default: false
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
  check_mode:
    support: full
    description: Reports what would be removed and sent; changes nothing (the node helper is installed).
  diff_mode:
    support: none
    description: No diff.
  platform:
    support: full
    platforms: posix
    description: POSIX nodes with Python 3.9 or later.
seealso:
  - module: gpu.ops.run_checkpoint
  - module: gpu.ops.collect_results
"""

EXAMPLES = r"""
- name: Restart every rank from the checkpoint the controller chose
  gpu.ops.checkpoint_push:
    dest: "~/.bifrost/checkpoints/{{ run_id }}"
    src: "{{ chosen.sources[inventory_hostname] }}"
    prune: true
  register: pushed

- name: The job reads its checkpoints from here
  ansible.builtin.debug:
    msg: "GPUOPS_CHECKPOINT_DIR={{ pushed.dir }}"
"""

RETURN = r"""
dir:
  description: The absolute path of O(dest) on the node.
  returned: success
  type: str
  sample: /root/.bifrost/checkpoints/ddp-20261201-120000-ab12
pruned:
  description: The C(step-*) directories removed (or, in check mode, that would be).
  returned: success
  type: list
  elements: str
sent:
  description: Files of O(src) sent to the node (paths relative to O(src)); the others were already there.
  returned: success
  type: list
  elements: str
bytes:
  description: Bytes of the files sent.
  returned: success
  type: int
seconds:
  description: Time the task took.
  returned: success
  type: float
"""
