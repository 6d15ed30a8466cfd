#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: job
short_description: Start or kill a detached gpu.ops job in tmux on a node
version_added: "0.1.0"
description:
  - Runs on the node through the gpu.ops node helper (C(~/.bifrost/bin/gpuops-jobs-<hash>.pyz), installed once per
    collection version) - one SSH round trip with the arguments on stdin, no module payload. Needs Python 3.9 or
    later on the node; C(become) is honoured.
  - O(state=started) creates C(~/.bifrost/jobs/<job_id>/) and a tmux session C(bifrost-<job_id>) in which the
    gpu.ops runner (started from that helper) optionally waits for the job's bootstrap flag and then runs O(command)
    in O(workdir).
  - The runner always records C(exit_code), C(ended_at) and a final C(status) (V(succeeded), V(failed),
    V(bootstrap_failed), V(bootstrap_timeout), V(killed)); it never uses C(set -e) around the command. A job whose
    session is gone without a final status is reported as V(lost) by M(gpu.ops.job_info).
  - Environment variables in O(env) reach the job through a 0600 file that the runner reads and deletes; they never
    appear on a command line, in a log or in a result. They travel to the node on the helper's stdin, so no system
    log on either side records them (no module is invoked, so there is no "Invoked with" journal entry), and
    Ansible does not star out short values such as a C(NODE_RANK) of C(0) elsewhere in the output; the result
    shows the names only.
  - Idempotent on O(job_id) - an existing job is never replaced or killed because a name is reused. Starting the
    same job id again reports the existing job unchanged; a different command for an existing id fails.
  - O(state=killed) sends SIGTERM to the runner, which stops the command's process group and records V(killed);
    after O(kill_grace) seconds everything left gets SIGKILL. A job that already ended is left alone (not changed).
  - The companion action plugin adds C(attach_command) to the result from the connection details.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  job_id:
    description:
      - The job id, normally C({name}-{YYYYmmdd-HHMMSS}-{8 hex}) as the M(gpu.ops.tmux_job) role makes it.
      - Letters, digits, C(-) and C(_) only (tmux session names cannot hold C(.) or C(:)).
    type: str
    required: true
  state:
    description:
      - V(started) starts the job unless it exists. V(killed) stops it if it is still running.
    type: str
    choices: [started, killed]
    default: started
  command:
    description:
      - The command, run by O(shell) as a script in O(workdir). Required with O(state=started).
    type: str
  workdir:
    description:
      - Directory the command runs in; C(~) is expanded on the node. It must exist.
    type: str
    default: ~/.bifrost/workspace
  env:
    description:
      - Environment variables for the job (secrets such as C(HF_TOKEN) included). Values never appear in results.
      - The job also gets C(BIFROST_JOB_ID), C(BIFROST_JOB_DIR) and C(BIFROST_OUTPUTS) (the job's C(outputs/) dir),
        and the C(PATH) this module runs with unless O(env) sets C(PATH).
    type: dict
    default: {}
  bootstrap:
    description:
      - V(auto) waits for the bootstrap flag when a bootstrap was started for this O(job_id)
        (see M(gpu.ops.job_bootstrap)), V(wait) always waits, V(skip) never waits.
    type: str
    choices: [auto, wait, skip]
    default: auto
  bootstrap_timeout:
    description:
      - Seconds the job waits for the bootstrap flag before it ends as V(bootstrap_timeout). It also stops
        waiting at once when the bootstrap session dies without a flag (V(bootstrap_failed)).
    type: int
    default: 600
  kill_grace:
    description:
      - Seconds between SIGTERM and SIGKILL when a job is killed (also used by the runner on its own deadlines).
    type: int
    default: 10
  shell:
    description:
      - Shell that runs the command script.
    type: str
    default: /bin/bash
  name:
    description:
      - Human name of the job, recorded in C(metadata.json) and used by M(gpu.ops.job_info) O(gpu.ops.job_info#module:name).
    type: str
  metadata:
    description:
      - Extra non-secret data to record in C(metadata.json) (run id, rank, ...).
    type: dict
    default: {}
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
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
notes:
  - Needs C(tmux) and Python >= 3.9 on the node; no root.
seealso:
  - module: gpu.ops.job_info
  - module: gpu.ops.job_wait
  - module: gpu.ops.job_bootstrap
"""

EXAMPLES = r"""
- name: Start training detached
  gpu.ops.job:
    job_id: train-20260101-120000-0a1b2c3d
    command: .venv/bin/python train.py --epochs 3
    env:
      HF_TOKEN: "{{ vault_hf_token }}"
      PYTHONUNBUFFERED: "1"

- name: Stop it
  gpu.ops.job:
    job_id: train-20260101-120000-0a1b2c3d
    state: killed
"""

RETURN = r"""
job:
  description: The job as M(gpu.ops.job_info) reports it.
  returned: always
  type: dict
  contains:
    job_id:
      description: The job id.
      type: str
      sample: train-20260101-120000-0a1b2c3d
    status:
      description: starting, bootstrapping, running, succeeded, failed, bootstrap_failed, bootstrap_timeout, killed or lost.
      type: str
      sample: running
    exit_code:
      description: Exit code once the job has a final status, else null.
      type: int
      sample: 0
    session:
      description: The tmux session name.
      type: str
      sample: bifrost-train-20260101-120000-0a1b2c3d
    job_dir:
      description: The job directory on the node.
      type: str
      sample: /root/.bifrost/jobs/train-20260101-120000-0a1b2c3d
    attach_command:
      description: Command that attaches to the job's tmux session from the controller (added by the action plugin).
      type: str
      sample: ssh -t -p 22 root@203.0.113.7 tmux attach -t bifrost-train-20260101-120000-0a1b2c3d
msg:
  description: What happened.
  returned: always
  type: str
"""
