#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_watchdog
short_description: A dead-man switch on a cloud node that destroys its own instance
version_added: "0.1.0"
description:
  - Arms, feeds or disarms a small watchdog daemon on a RunPod or Vast node. The daemon destroys its own instance
    (destroy, not stop, since a stopped instance still bills its storage) through the provider's API when
    O(expires_at) has passed, when the controller's heartbeat has been silent for O(idle_timeout) while no job runs,
    or when O(price_per_hour) times the instance's uptime reached O(max_cost) (it stops the running jobs first).
  - It uses the credential the provider gives the instance itself, never the user's account key. On Vast the
    container's C(CONTAINER_API_KEY) and C(CONTAINER_ID); on RunPod the pod-scoped C(RUNPOD_API_KEY) and
    C(RUNPOD_POD_ID). They are read from the daemon's environment, else from C(/proc/1/environ) (the container's
    first process). When the node has no such key the task warns and the reaper is the only backstop.
  - The daemon runs outside any tmux session of the jobs, survives the jobs ending, and is one per node (it holds a
    lock). O(state=heartbeat) restarts it when the node restarted. A container start hook
    C(~/.bifrost/bin/gpuops-watchdog-resume) restarts it without a controller (for example Vast's C(onstart)).
  - Every decision is a JSON line in C(~/.bifrost/watchdog/watchdog.log) on the node.
  - The node logic is a versioned stdlib helper (C(~/.bifrost/bin/gpuops-watchdog-<hash>.py)) installed on first
    use; one command over the existing connection per call. Needs Python >= 3.9 on the node.
author:
  - gpu.ops contributors (@gpu-ops)
options:
  state:
    description:
      - V(present) writes the settings and starts the daemon unless it runs, and touches the heartbeat.
      - V(heartbeat) touches the heartbeat, restarts the daemon when it is armed but not running, and, when O(provider)
        is given and the node lost its settings (RunPod wipes the container disk on a restart), arms it with the
        settings given. A node disarmed with V(absent) is not re-armed by heartbeats.
      - V(absent) stops the daemon and removes its settings. V(status) reports what it last decided.
    type: str
    choices: [present, heartbeat, absent, status]
    default: present
  provider:
    description: The node's provider. Required with O(state=present).
    type: str
    choices: [runpod, vast]
  instance_id:
    description:
      - The instance id the controller knows. When given, the watchdog refuses to arm (and never destroys) if the
        node's own id differs.
    type: str
  run_id:
    description: The run the instance belongs to (logged).
    type: str
  expires_at:
    description:
      - When the instance must be gone whatever else happens, as epoch seconds or an ISO 8601 date (UTC when no zone
        is given), usually the instance's C(expires_at) label. Empty disables it.
    type: raw
  idle_timeout:
    description:
      - Destroy after the heartbeat has been silent this long while no job runs on the node (seconds, or a number
        with V(s), V(m), V(h), V(d)). A running job keeps the node; the silence counts from the later of the last
        heartbeat and the end of the last job. V(0) disables it.
    type: raw
    default: 1800
  max_cost:
    description:
      - Budget of this node in USD. When O(price_per_hour) times the time since O(started_at) reaches it, the
        watchdog stops the running jobs and destroys the instance. Needs O(price_per_hour).
    type: float
  price_per_hour:
    description: What the instance costs per hour in USD.
    type: float
  started_at:
    description:
      - When the instance started billing (epoch seconds or ISO 8601). Defaults to when the watchdog was first armed
        on this node; later calls keep the first value.
    type: raw
  interval:
    description: Seconds between the daemon's checks.
    type: float
    default: 15
  stop_grace:
    description: Seconds a stopped job gets between SIGTERM and SIGKILL when the budget is spent.
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    description: Reports whether the settings or the daemon would change; nothing is written or started.
  diff_mode:
    support: none
    description: Nothing to show; the settings are returned in RV(config).
  platform:
    support: full
    platforms: posix
    description: Needs Python >= 3.9 on the node, and a provider that gives the node an instance key.
notes:
  - The heartbeat is the file C(~/.bifrost/heartbeat) (a timestamp). Playbooks feed it with O(state=heartbeat) while
    they work and wait.
  - On the simulator, nodes see the virtual clock through C(GPUOPS_CLOCK_OFFSET_FILE) and the API through
    C(RUNPOD_API_URL)/C(VAST_API_URL); on the clouds neither is set and the public API URLs are used.
seealso:
  - name: gpu.ops.watchdog role
    description: The role wrapping this action, with C(watchdog_) variables and a heartbeat entry point.
    link: https://github.com/gpu-ops/gpu.ops/blob/main/collections/ansible_collections/gpu/ops/roles/watchdog/README.md
"""

EXAMPLES = r"""
- name: Arm the dead-man switch right after provisioning
  gpu.ops.node_watchdog:
    provider: vast
    instance_id: "{{ gpuops_id }}"
    run_id: "{{ run_id }}"
    expires_at: "2026-12-01T18:00:00Z"
    idle_timeout: 30m
    max_cost: 25
    price_per_hour: 0.41

- name: Feed it while waiting for the job
  gpu.ops.node_watchdog:
    state: heartbeat
"""

RETURN = r"""
pid:
  description: The daemon's process id on the node.
  returned: state=present, or when a heartbeat restarted it
  type: int
credential:
  description: Whether the node has its instance key (without it the watchdog cannot destroy the instance).
  returned: state=present
  type: bool
credential_source:
  description: Where the key was found (V(environment), V(/proc/1/environ)), or why it was not.
  returned: state=present
  type: str
config:
  description: The settings armed on the node (times as epoch seconds).
  returned: state=present
  type: dict
config_changed:
  description: Whether the settings changed.
  returned: state=present
  type: bool
log:
  description: The decision log on the node.
  returned: state=present
  type: str
  sample: /root/.bifrost/watchdog/watchdog.log
restarted:
  description: A heartbeat found the daemon gone (the node restarted) and started it again.
  returned: when it happened
  type: bool
state:
  description: What the daemon last decided (C(checked_at), C(decision), C(jobs_active), C(details)).
  returned: state=status
  type: dict
"""
