#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: run_node_collect
short_description: Stop a gpu.ops run's job on one node if asked, and bring its results home, in one task
version_added: 0.4.0
description:
  - The collect step of a run for one node as one task. With O(stop_job) it first stops the job when it may
    still run (M(gpu.ops.job) V(killed)); then it brings the job directory, the spec's C(outputs) and (cloud nodes)
    the watchdog's log home with M(gpu.ops.collect_results) and the arguments the M(gpu.ops.collect) role would give
    it, into C(<run_dir>/<host>/) (a later job - C(jobs/<job_id>/<host>/); a managed run's restart - its
    C(restart-NN/)).
  - Never fails the host. The outcome is the fact C(run_collected) - C(ok), C(job), C(files), or C(ok) false with
    C(msg) - and C(run_marks) (when collecting began and ended).
  - Internal to the pipeline playbooks; users collecting from their own playbooks call the M(gpu.ops.collect) role.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  spec:
    description:
      - The normalized run spec (the C(spec) that M(gpu.ops.run_spec) returns).
    type: dict
    required: true
  stop_job:
    description:
      - Stop the job first unless it ended (teardown). V(false) collects from a job that keeps running.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: As M(gpu.ops.collect_results) in check mode; nothing is stopped.
  diff_mode:
    support: none
    description: No diff.
  platform:
    support: full
    platforms: posix
    description: Runs on the run's nodes; the files land on the controller.
seealso:
  - module: gpu.ops.collect_results
  - module: gpu.ops.run_node_prepare
"""

EXAMPLES = r"""
- name: Collect
  gpu.ops.run_node_collect:
    spec: "{{ run_spec }}"
    stop_job: true
"""

RETURN = r"""
collected:
  description: What came home (also the fact C(run_collected)).
  returned: always
  type: dict
  sample: {"ok": true, "job": {"status": "succeeded", "exit_code": 0}, "files": 7}
dest:
  description: Where the files came home (as M(gpu.ops.collect_results) returns it).
  returned: when the collect ran
  type: str
files:
  description: How many files the collect saw.
  returned: when the collect ran
  type: int
bytes:
  description: How many bytes came over.
  returned: when the collect ran
  type: int
msg:
  description: How many files came home, or why none did.
  returned: always
  type: str
"""
