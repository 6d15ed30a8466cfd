#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vast_instance_info
short_description: List Vast.ai instances, normalized
version_added: 0.1.0
description:
  - Lists the instances of the Vast.ai account through the paginated C(GET /api/v1/instances/) (25 per page,
    following C(next_token)) and filters them by name, name prefix, id or ownership label.
  - Returns the same normalized shape as M(gpu.ops.runpod_instance_info).
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  name:
    description:
      - Only the instances whose label name is exactly this.
    type: str
  name_prefix:
    description:
      - Only the instances whose label name starts with this prefix.
    type: str
  ids:
    description:
      - Only these instance ids.
    type: list
    elements: str
  run_id:
    description:
      - Only the instances labelled with this C(run_id).
    type: str
  owner:
    description:
      - Only the instances labelled with this C(owner).
    type: str
  statuses:
    description:
      - Only the instances in one of these normalized states.
    type: list
    elements: str
    choices: [pending, running, stopped, error]
  ssh_user:
    description:
      - SSH user to report for the instances (Vast does not report one; it is C(root) there).
      - If not set, the value of the E(VAST_SSH_USER) environment variable is used, then C(root).
    type: str
    default: root
extends_documentation_fragment:
  - gpu.ops.auth
attributes:
  check_mode:
    support: full
    description: Read-only, runs the same in check mode.
  diff_mode:
    support: none
    description: No diff is returned.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller (or any host with network access to the provider APIs and C(ssh)).
seealso:
  - module: gpu.ops.vast_instance
  - module: gpu.ops.runpod_instance_info
"""

EXAMPLES = r"""
- name: Instances of one run
  gpu.ops.vast_instance_info:
    run_id: "{{ run_id }}"
  register: nodes

- name: One instance by id
  gpu.ops.vast_instance_info:
    ids: ["7835610"]
"""

RETURN = r"""
instances:
  description: The matching instances, normalized (see M(gpu.ops.vast_instance) for every key).
  returned: always
  type: list
  elements: dict
  sample:
    - {id: "7835610", name: train-0, provider: vast, status: running, ssh_host: 63.135.50.11, ssh_port: 41022,
       ssh_user: root, gpu_type: RTX 4090, gpu_model: RTX 4090, gpu_count: 1, price_per_hour: 0.31,
       interruptible: false, labels: {run_id: r1, owner: alice, expires_at: "2026-11-24T10:00:00Z"},
       created_at: "2026-11-23T10:00:00Z", provider_status: running, image: vastai/base-image:cuda-12.4,
       region: "Washington, US", offer_id: null, status_message: null}
api_requests:
  description: HTTP requests the module sent (retries included).
  returned: always
  type: int
  sample: 2
"""

from ansible_collections.gpu.ops.plugins.module_utils.module_base import GpuOpsModule, ssh_user_spec
from ansible_collections.gpu.ops.plugins.module_utils.provider import filter_instances


def main():
    m = GpuOpsModule(dict(
        name=dict(type="str"),
        name_prefix=dict(type="str"),
        ids=dict(type="list", elements="str"),
        run_id=dict(type="str"),
        owner=dict(type="str"),
        statuses=dict(type="list", elements="str", choices=["pending", "running", "stopped", "error"]),
        ssh_user=ssh_user_spec(),
    ), supports_check_mode=True)

    def run():
        p = m.params
        found = filter_instances(m.provider("vast", ssh_user=p["ssh_user"]).list(), name=p.get("name"),
                                 name_prefix=p.get("name_prefix"), ids=p.get("ids"), run_id=p.get("run_id"),
                                 owner=p.get("owner"), statuses=p.get("statuses"))
        m.exit(changed=False, instances=[i.to_dict() for i in found])

    m.guard(run)


if __name__ == "__main__":
    main()
