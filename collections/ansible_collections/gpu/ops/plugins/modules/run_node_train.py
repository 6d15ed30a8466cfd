#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: run_node_train
short_description: Start a gpu.ops run's job on one node, or wait for it
version_added: 0.4.0
description:
  - The train step of a plain (not managed) run for one node, as two tasks. They run the actions the
    M(gpu.ops.tmux_job) role calls with the arguments that role would give them - O(phase=start) M(gpu.ops.job) with
    the multi-node environment (C(MASTER_ADDR) the first of O(hosts), C(MASTER_PORT) 29500, C(NODE_RANK),
    C(WORLD_SIZE), C(NPROC_PER_NODE)), O(phase=wait) M(gpu.ops.job_wait) with progress lines unless the spec says
    C(detach) or the job did not start. Two tasks, so that the start is an event of its own (the CLI's C(--detach)
    returns on it) and the wait result another, as with the role.
  - The values of the spec's C(secret_env) names are read from the controller's environment here and go to the
    node over stdin, as with M(gpu.ops.job); they are never arguments of this task.
  - Never fails the host. The outcome is the fact C(run_job) - C(status), C(exit_code), C(msg), C(attach),
    C(budget_exceeded) (the wait was cut at the budget, O(budget_seconds), and the job still ran) - and
    C(run_train_marks) (when training began and ended); the start phase leaves C(run_train_started), the job it
    started, for the wait phase.
  - Internal to the pipeline playbooks; managed runs (checkpoints, preemptions) train through
    C(roles/run/tasks/node_train_managed.yml).
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  spec:
    description:
      - The normalized run spec (the C(spec) that M(gpu.ops.run_spec) returns).
    type: dict
    required: true
  phase:
    description:
      - V(start) starts the job, V(wait) waits for the job the start phase started (reading C(run_job)).
    type: str
    required: true
    choices: [start, wait]
  hosts:
    description:
      - The nodes that train, in rank order (the first is the master); the task's host alone when empty.
    type: list
    elements: str
    default: []
  wait_seconds:
    description:
      - How long to wait for the job (the smaller of C(job_timeout) and the time the budget lasts).
    type: int
    default: 0
  budget_seconds:
    description:
      - How long the budget lasts (null without C(max_cost)); a wait cut short by it is a budget stop.
    type: raw
attributes:
  check_mode:
    support: full
    description: The job is not started; the wait says so.
  diff_mode:
    support: none
    description: No diff.
  platform:
    support: full
    platforms: posix
    description: Runs on the run's nodes.
seealso:
  - module: gpu.ops.job
  - module: gpu.ops.job_wait
  - module: gpu.ops.run_node_prepare
"""

EXAMPLES = r"""
- name: Start the job
  gpu.ops.run_node_train:
    spec: "{{ run_spec }}"
    phase: start
    hosts: "{{ groups['gpuops_nodes'] }}"

- name: Wait for it
  gpu.ops.run_node_train:
    spec: "{{ run_spec }}"
    phase: wait
    hosts: "{{ groups['gpuops_nodes'] }}"
    wait_seconds: "{{ run_spec.job_timeout }}"
"""

RETURN = r"""
job:
  description:
    - O(phase=start) - the job as M(gpu.ops.job) returned it (C(job_id), C(session), C(attach_command)).
    - O(phase=wait) - the job as M(gpu.ops.job_wait) returned it (empty when nothing was waited for).
  returned: always
  type: dict
outcome:
  description: O(phase=wait) - how the job ended on this node (also the fact C(run_job)).
  returned: when O(phase=wait)
  type: dict
  sample: {"status": "succeeded", "exit_code": 0, "msg": "job train-x succeeded (exit code 0) in 0:00:04",
           "attach": "ssh -t -p 40022 root@203.0.113.7 tmux attach -t gpuops-train-x", "budget_exceeded": false}
msg:
  description: The job's message.
  returned: always
  type: str
"""
