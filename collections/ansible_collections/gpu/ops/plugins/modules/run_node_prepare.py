#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: run_node_prepare
short_description: Prepare one node of a gpu.ops run in one task (tools, watchdog, deploy, artifacts, bootstrap, health)
version_added: 0.4.0
description:
  - The pipeline's prepare step for one node as one task. It runs, in order and on the task's connection, the
    actions the roles M(gpu.ops.node_tools), M(gpu.ops.watchdog) (cloud nodes), M(gpu.ops.workspace),
    M(gpu.ops.artifacts) (when the spec has artifacts), M(gpu.ops.bootstrap) and M(gpu.ops.node_health) (the gate)
    call, with the arguments those roles would give them from the run spec, so the node work is the same; the
    per-task cost of a chain of role includes and facts is not paid.
  - Never fails the host (a failed host would end the playbook before its teardown). The outcome is the fact
    C(run_node_state); V(ready), V(unhealthy) (failed the health gate or stopped answering; the pipeline replaces
    it while replacements are left) or V(failed) (a step failed that a new node would fail too), with
    C(run_node_failure) (C(step), C(msg)) when it is not ready.
  - Sets the facts the roles register, under their names, for the plays after it - C(node_tools_result),
    C(watchdog_result), C(workspace_result), C(workspace_provenance), C(artifacts_result), C(bootstrap_result),
    C(node_health_result), C(bootstrap_effective_id) - and C(run_prepare_marks), when each step ended.
  - Prints one line per node (ready with its health summary, or the step that stopped it).
  - Internal to the pipeline playbooks; users preparing nodes from their own playbooks call the roles.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  spec:
    description:
      - The normalized run spec (the C(spec) that M(gpu.ops.run_spec) returns).
    type: dict
    required: true
  health:
    description:
      - Run the health gate. V(false) for a redeploy onto nodes that passed it (C(gpuops exec), deploy).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Each step runs in check mode as its own action does.
  diff_mode:
    support: none
    description: No diff.
  platform:
    support: full
    platforms: posix
    description: Runs on the run's nodes.
seealso:
  - module: gpu.ops.run_spec
  - module: gpu.ops.node_tools
  - module: gpu.ops.workspace_deploy
  - module: gpu.ops.job_bootstrap
  - module: gpu.ops.node_health_check
"""

EXAMPLES = r"""
- name: Prepare the node
  gpu.ops.run_node_prepare:
    spec: "{{ run_spec }}"
    health: true
"""

RETURN = r"""
state:
  description: The node's state after the step (also the fact C(run_node_state)).
  returned: always
  type: str
  sample: ready
failure:
  description: The step that stopped the node and why (C(step), C(msg)); null when it is ready.
  returned: always
  type: dict
msg:
  description: The node's line (ready with its health summary, or the step that stopped it).
  returned: always
  type: str
steps:
  description: The steps that ran.
  returned: always
  type: list
  elements: str
"""
