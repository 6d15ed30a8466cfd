#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: job_info
short_description: Status, exit code, times and log tail of gpu.ops jobs on a node
version_added: "0.1.0"
description:
  - Runs on the node and reads C(~/.bifrost/jobs/) (one C(tmux) call for any number of jobs).
  - With O(job_id), returns that job; without it, returns every job (optionally only those named O(name)).
  - Status comes from the files the runner writes, never from guesses - V(succeeded) needs the runner's final
    status and an exit code of 0, and a job whose tmux session is gone without a final status is V(lost)
    (with C(lost_reason)). The first look that finds a job lost records it - the job's C(status) file then says
    V(lost) (and C(lost_reason) why), so the record kept after teardown does not say C(running).
  - The companion action plugin adds C(attach_command) (for example
    C(ssh -t -p PORT user@host tmux attach -t bifrost-<job_id>)) from the connection details.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  job_id:
    description:
      - The job to report. Omit to list jobs.
    type: str
  name:
    description:
      - When listing, only jobs with this name (the O(gpu.ops.job#module:name) they were started with).
    type: str
  log_lines:
    description:
      - How many lines of C(job.log) to return in C(log_tail) (C(last_line) is always returned).
    type: int
    default: 20
  root:
    description:
      - The gpu.ops state directory on the node.
    type: str
    default: ~/.bifrost
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Runs in check mode, and then does not record a lost job in its status file.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
seealso:
  - module: gpu.ops.job
  - module: gpu.ops.job_wait
"""

EXAMPLES = r"""
- name: One job
  gpu.ops.job_info:
    job_id: train-20260101-120000-0a1b2c3d
    log_lines: 50
  register: train_info

- name: Show where it is
  ansible.builtin.debug:
    msg: "{{ train_info.job.status }} - {{ train_info.job.last_line }} - {{ train_info.job.attach_command }}"

- name: All jobs on the node
  gpu.ops.job_info:
    log_lines: 0
  register: all_jobs
"""

RETURN = r"""
job:
  description: The job, when O(job_id) is given.
  returned: when O(job_id) is given
  type: dict
  contains:
    job_id:
      description: The job id.
      type: str
    status:
      description: starting, bootstrapping, running, succeeded, failed, bootstrap_failed, bootstrap_timeout, killed or lost.
      type: str
      sample: failed
    final:
      description: Whether the status is final.
      type: bool
    exit_code:
      description: Exit code of the command (of the bootstrap for bootstrap_failed, 124 for timeouts); null until final.
      type: int
      sample: 1
    created_at:
      description: When the job was started (UTC, ISO 8601).
      type: str
    started_at:
      description: When the command started, after the bootstrap (UTC).
      type: str
    ended_at:
      description: When the job ended (UTC).
      type: str
    duration_s:
      description: Seconds from started_at to ended_at (or now).
      type: int
    pid:
      description: PID of the runner.
      type: int
    pid_alive:
      description: Whether that process is alive.
      type: bool
    session:
      description: tmux session name.
      type: str
    session_alive:
      description: Whether the session exists with a live pane.
      type: bool
    log_tail:
      description: The last O(log_lines) lines of job.log.
      type: list
      elements: str
    last_line:
      description: The job's last output line as a terminal shows it (progress bars included).
      type: str
    lost_reason:
      description: Why the job is lost.
      type: str
      returned: when status is lost
    bootstrap:
      description: The bootstrap of this job - state (none, running, done, failed, timeout, lost), exit_code, cached, session, log.
      type: dict
    attach_command:
      description: Command that attaches to the tmux session from the controller.
      type: str
    command:
      description: The command.
      type: str
    metadata:
      description: Extra metadata given at start.
      type: dict
    env_names:
      description: Names (not values) of the environment variables passed to the job.
      type: list
      elements: str
jobs:
  description: All jobs, oldest first, each like RV(job).
  returned: when O(job_id) is not given
  type: list
  elements: dict
"""
