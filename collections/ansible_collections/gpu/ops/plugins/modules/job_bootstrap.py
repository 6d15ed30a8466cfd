#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: job_bootstrap
short_description: Set up a job's environment in a tmux session with flag files, skipping unchanged dependencies
version_added: "0.1.0"
description:
  - Runs on the node. Starts tmux session C(bifrost-<job_id>-bootstrap), in which the gpu.ops runner runs the
    bootstrap in O(workdir) into C(~/.bifrost/jobs/<job_id>/bootstrap.log) with a deadline of O(timeout) seconds,
    then creates C(bootstrap_done) or C(bootstrap_failed) (JSON with C(exit_code) and C(reason)).
    A job started with M(gpu.ops.job) for the same id waits for that flag.
  - Without O(command) the bootstrap is detected from the workdir. With C(uv) on the node (C(PATH),
    C(~/.local/bin), C(~/.cargo/bin)) - C(uv sync) (C(--frozen) with a C(uv.lock)) for a C(uv.lock) or a
    C(pyproject.toml) with a C([project]) table, else C(uv venv) + C(uv pip install -r requirements.txt).
    Without uv - C(python3 -m venv) + C(pip install -e .) or C(pip install -r requirements.txt).
    The venv is O(venv) inside the workdir.
  - The bootstrap is skipped (not changed, C(bootstrap_done) written at once) when the hash of the bootstrap
    script and of C(uv.lock), C(pyproject.toml), C(requirements.txt), C(.python-version) and O(hash_files) equals
    the hash of the last successful bootstrap of this workdir and the venv still exists, unless O(force=true).
  - Idempotent on O(job_id) - a bootstrap already started for the id is reported, never started twice.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  job_id:
    description:
      - The job the bootstrap belongs to.
    type: str
    required: true
  workdir:
    description:
      - The workspace to bootstrap; C(~) is expanded on the node. It must exist.
    type: str
    default: ~/.bifrost/workspace
  command:
    description:
      - A bootstrap command (shell script text) instead of the detected one.
    type: str
  timeout:
    description:
      - Seconds the bootstrap may run; then its process group is stopped and C(bootstrap_failed) records
        reason C(timeout) and exit code 124.
    type: int
    default: 600
  force:
    description:
      - Run even when the dependency hash is unchanged.
    type: bool
    default: false
  env:
    description:
      - Environment for the bootstrap (for example a private index token). Passed in a 0600 file that the runner
        deletes after reading it. The values travel on the node helper's stdin - they reach no log (the node's
        syslog/journal included) and no result; the names stay visible.
    type: dict
    default: {}
  python:
    description:
      - Python used to create the venv when uv is not there.
    type: str
    default: python3
  venv:
    description:
      - Venv directory, relative to O(workdir).
    type: str
    default: .venv
  system_site_packages:
    description:
      - Create the venv with access to the system site-packages (reuses a CUDA torch that a GPU image ships).
    type: bool
    default: false
  hash_files:
    description:
      - More files (relative to O(workdir)) whose content decides whether the bootstrap can be skipped.
    type: list
    elements: str
    default: []
  kill_grace:
    description:
      - Seconds between SIGTERM and SIGKILL when the bootstrap is stopped.
    type: int
    default: 10
  shell:
    description:
      - Shell that runs the bootstrap script.
    type: str
    default: /bin/bash
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
  - Use M(gpu.ops.job_wait) with O(gpu.ops.job_wait#module:state=bootstrapped) to wait for the result.
seealso:
  - module: gpu.ops.job
  - module: gpu.ops.job_wait
"""

EXAMPLES = r"""
- name: Bootstrap the workspace for a job (detected uv / pip)
  gpu.ops.job_bootstrap:
    job_id: train-20260101-120000-0a1b2c3d

- name: Custom bootstrap, rerun even if nothing changed
  gpu.ops.job_bootstrap:
    job_id: train-20260101-120000-0a1b2c3d
    command: make setup
    hash_files: [Makefile]
    force: true
"""

RETURN = r"""
outcome:
  description: V(started), V(skipped) (dependency hash unchanged), V(nothing) (nothing to install) or V(existing).
  returned: always
  type: str
  sample: started
state:
  description: Bootstrap state - running, done, failed, timeout or lost.
  returned: always
  type: str
  sample: running
kind:
  description: custom, uv-sync, uv-pip, pip-project, pip-requirements or none.
  returned: always
  type: str
  sample: pip-requirements
hash:
  description: sha256 of the bootstrap script and the dependency files.
  returned: always
  type: str
session:
  description: The bootstrap's tmux session.
  returned: always
  type: str
  sample: bifrost-train-20260101-120000-0a1b2c3d-bootstrap
job_dir:
  description: The job directory on the node.
  returned: always
  type: str
cached:
  description: True when the bootstrap was skipped because the dependency hash was unchanged.
  returned: always
  type: bool
exit_code:
  description: Exit code of the bootstrap once known, else null.
  returned: always
  type: int
attach_command:
  description: Command that attaches to the bootstrap's tmux session from the controller (added by the action plugin).
  returned: success
  type: str
msg:
  description: What happened.
  returned: always
  type: str
"""
