#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: job_wait
short_description: Wait for a gpu.ops job to finish, to be ready (serve mode) or to be bootstrapped, showing progress
version_added: "0.1.0"
description:
  - The action plugin waits in rounds of at most O(progress_interval) seconds; in each round the gpu.ops node
    helper waits on the node (one SSH round trip of about 2 kB, no module payload), polling the job's files (and
    O(ready_url)) with backoff, so a finished job is seen within a fraction of a second. Between rounds the action
    prints one progress line per host on stderr - status, elapsed time and the job's last log line - so a long
    wait shows that the job is alive and how far it is.
  - O(state=finished) ends when the job has a final status (or is V(lost); then V(lost) is recorded in the job's
    C(status) file). The task fails unless the status is
    V(succeeded) and O(fail_on_failure=false) is not set; the message holds the status, exit code and log tail.
  - O(state=ready) is serve mode - it ends when O(ready_url), fetched on the node, answers with one of
    O(ready_status) (and matches O(ready_match)); it fails when the job ends first or on the deadline. For vLLM use
    C(http://127.0.0.1:8000/v1/models).
  - O(state=bootstrapped) ends when the job's bootstrap wrote its flag; it fails when the bootstrap failed,
    timed out or its session died without a flag.
  - Every wait has a deadline, O(timeout); on the deadline the task fails and the job keeps running.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  job_id:
    description:
      - The job to wait for.
    type: str
    required: true
  state:
    description:
      - What to wait for.
    type: str
    choices: [finished, ready, bootstrapped]
    default: finished
  timeout:
    description:
      - Deadline in seconds for the whole wait.
    type: int
    default: 86400
  progress_interval:
    description:
      - Seconds between progress lines (the first comes after at most 10 s).
    type: int
    default: 30
  progress:
    description:
      - Print progress lines.
    type: bool
    default: true
  ready_url:
    description:
      - URL that answers once the server is ready, fetched on the node. Required with O(state=ready).
    type: str
  ready_status:
    description:
      - HTTP status codes that mean ready.
    type: list
    elements: int
    default: [200]
  ready_match:
    description:
      - Regular expression the response body must match to count as ready.
    type: str
  fail_on_failure:
    description:
      - With O(state=finished), fail the task when the job did not succeed.
    type: bool
    default: true
  log_lines:
    description:
      - Lines of log tail in the result and in failure messages.
    type: int
    default: 20
  stop_on_peer_failure:
    description:
      - For a job that runs on several hosts as one (C(torchrun) across nodes) - when the wait on another host of
        the play ends with the job failed, killed or lost, stop this host's part of the job (C(killed)) and fail,
        instead of waiting for a collective that will never complete. Checked every few seconds.
      - Leave it V(false) for independent jobs that happen to run on several hosts.
    type: bool
    default: false
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
    details: In check mode a job that does not exist (because its start was only simulated) is skipped, and a lost
      job is not recorded as lost in its status file.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
seealso:
  - module: gpu.ops.job
  - module: gpu.ops.job_info
"""

EXAMPLES = r"""
- name: Wait for training, fail with the exit code and log tail if it fails
  gpu.ops.job_wait:
    job_id: "{{ tmux_job_effective_id }}"
    timeout: 43200

- name: Serve mode - wait until vLLM answers
  gpu.ops.job_wait:
    job_id: vllm-20260101-120000-0a1b2c3d
    state: ready
    ready_url: http://127.0.0.1:8000/v1/models
    timeout: 900
"""

RETURN = r"""
job:
  description: The job as M(gpu.ops.job_info) reports it, at the end of the wait.
  returned: always
  type: dict
done:
  description: Whether the awaited state was reached.
  returned: always
  type: bool
ready:
  description: With O(state=ready), whether the URL answered as ready.
  returned: always
  type: bool
ready_detail:
  description: Last readiness probe result.
  returned: always
  type: str
elapsed:
  description: Seconds waited.
  returned: always
  type: float
stopped_for_peer:
  description: The other host (host, status, exit_code) whose failure made this wait stop this host's job.
  returned: when O(stop_on_peer_failure=true) stopped the job
  type: dict
msg:
  description: Outcome, with the exit code and log tail on failure.
  returned: always
  type: str
"""
