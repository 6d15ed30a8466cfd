#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: run_guard
short_description: Start the run's guardian, which tears the run down if ansible-playbook dies
version_added: 0.2.0
description:
  - Starts one detached process on the controller that watches the C(ansible-playbook) process running this task.
  - "When that process ends and the run record (C(run.json)) does not say the run finished and was torn down (or
    was kept, or detached, on purpose), the guardian stops what the dead process left running, then runs
    C(ansible-playbook gpu.ops.teardown) for the run - the job is stopped, the results are collected, every instance
    of the run is destroyed and the record says C(cancelled) and why."
  - This covers SIGKILL, a crash of the controller process, Ctrl-C and SIGTERM (Ansible itself runs nothing after
    those). The guardian runs in its own session (the terminal's Ctrl-C does not reach it) and exits when the
    teardown ends. Its log is C(<run_dir>/guardian.log).
  - Used by the C(gpu.ops.pipeline) playbook; the node watchdog and the reaper are the layers behind it.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  spec:
    description:
      - The normalized run spec returned by M(gpu.ops.run_spec).
    type: dict
    required: true
attributes:
  check_mode:
    support: full
    description: Starts nothing in check mode.
  diff_mode:
    support: none
    description: No diff.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller; needs C(/proc) (Linux), elsewhere it starts nothing and says so.
seealso:
  - module: gpu.ops.run_spec
  - module: gpu.ops.run_record
"""

EXAMPLES = r"""
- name: Start the guardian right before renting
  gpu.ops.run_guard:
    spec: "{{ run_spec }}"
"""

RETURN = r"""
guardian_pid:
  description: Process id of the guardian (null when none was started).
  returned: success
  type: int
  sample: 48213
"""
