#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cost_info
short_description: What the providers billed, per instance, run, owner and day
version_added: 0.1.0
description:
  - Reads the providers' own bills (RunPod C(GET /v2/billing/pods), Vast C(GET /api/v0/charges)), not an estimate.
  - With O(instances), returns what each instance was billed, for a run's C(cost.json) at teardown. Bills lag
    behind use; an instance the provider has not billed yet, or whose bill cannot be read, is returned with
    C(billed_usd=null), C(billed_available=false) and the reason, and the task does not fail.
  - Without O(instances), reports spend per run, owner, day and provider over O(since) .. O(until). Who an
    instance belonged to comes from the run records in O(runs_dir), the labels of live instances and the labels a
    bill carries. A provider whose billing fails fails the task, naming it (its spend would be missing).
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  instances:
    description:
      - Instances to read the bill of, each with C(provider) and C(id) (and optionally C(created_at), which narrows
        the window asked for).
    type: list
    elements: dict
  since:
    description:
      - Start of the window (inclusive), an ISO 8601 date or date-time (UTC unless it says otherwise), or a duration
        back from now such as C(7d) or C(12h).
      - Default for the report is 7 days before O(until); for O(instances) the earliest C(created_at) given, else
        the provider's default window.
    type: str
  until:
    description:
      - End of the window (exclusive), in the same forms as O(since), or C(now) (the default).
    type: str
    aliases: [to]
  runs_dir:
    description:
      - Directory of the run records (C(<runs_dir>/<run_id>/run.json), C(cost.json)) that map instances to runs and
        owners and give each run's own estimate.
    type: path
  owner:
    description:
      - Report only the instances of this owner.
    type: str
  providers:
    description:
      - Providers to read. By default every provider that has an API key configured.
    type: list
    elements: str
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
    description: Runs on the controller (or any host with network access to the provider APIs).
seealso:
  - module: gpu.ops.reap
"""

EXAMPLES = r"""
- name: What the providers billed for this run's instances (teardown fills cost.json with it)
  gpu.ops.cost_info:
    instances: "{{ (lookup('ansible.builtin.file', runs_dir ~ '/' ~ run_id ~ '/run.json') | from_json).instances }}"
  register: bill

- name: Spend per run, owner and day over the last 30 days
  gpu.ops.cost_info:
    since: 30d
    runs_dir: ./runs
  register: spend
"""

RETURN = r"""
instances:
  description:
    - With O(instances), one entry per instance given, in order, with C(billed_usd), C(billed_available) and C(reason).
    - Without, one entry per billed instance with C(name), C(run_id), C(owner), C(billed_usd) and C(days) (USD per UTC
      day).
  returned: always
  type: list
  elements: dict
  sample:
    - {provider: runpod, id: abc123, billed_usd: 1.3821, billed_available: true, reason: null}
    - {provider: vast, id: "7835610", billed_usd: null, billed_available: false,
       reason: "Vast has no charges for instance 7835610 yet (charges lag behind use)"}
by_run:
  description: USD billed per run id (C((unknown)) for instances no record or label names).
  returned: without O(instances)
  type: dict
  sample: {ddp-1: 12.5, (unknown): 0.4}
by_owner:
  description: USD billed per owner.
  returned: without O(instances)
  type: dict
  sample: {alice: 12.9}
by_day:
  description: USD billed per UTC day.
  returned: without O(instances)
  type: dict
  sample: {"2026-11-30": 8.1, "2026-12-01": 4.8}
by_provider:
  description: USD billed per provider.
  returned: without O(instances)
  type: dict
  sample: {runpod: 9.0, vast: 3.9}
runs:
  description: The runs of O(runs_dir) that were billed, with their own estimate next to the bill.
  returned: without O(instances)
  type: list
  elements: dict
  sample: [{run_id: ddp-1, owner: alice, status: succeeded, billed_usd: 12.5, estimated_usd: 12.41}]
total_usd:
  description: Everything billed in the window (for O(owner) only, with O(owner)).
  returned: without O(instances)
  type: float
  sample: 12.9
report:
  description: The same as text lines, for C(debug).
  returned: without O(instances)
  type: list
  elements: str
provider_errors:
  description: Providers whose billing could not be read.
  returned: without O(instances)
  type: dict
since:
  description: Start of the window, UTC.
  returned: without O(instances)
  type: str
until:
  description: End of the window, UTC.
  returned: without O(instances)
  type: str
api_requests:
  description: HTTP requests the module sent (retries included).
  returned: always
  type: int
"""

import time

from ansible_collections.gpu.ops.plugins.module_utils import billing
from ansible_collections.gpu.ops.plugins.module_utils.module_base import GpuOpsModule
from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError


def main():
    m = GpuOpsModule(dict(
        instances=dict(type="list", elements="dict"),
        since=dict(type="str"),
        until=dict(type="str", aliases=["to"]),
        runs_dir=dict(type="path"),
        owner=dict(type="str"),
        providers=dict(type="list", elements="str"),
    ), supports_check_mode=True)

    def run():
        p = m.params
        now = time.time()
        names = p.get("providers") or m.configured_providers()
        providers = {n: m.provider(n) for n in names}
        if p.get("instances") is not None:
            bad = [i for i in p["instances"] if not i.get("provider") or i.get("id") in (None, "")]
            if bad:
                raise ConfigError("every entry of instances needs provider and id: %s" % bad[:3])
            since = billing.parse_when(p["since"], now, "since") if p.get("since") else None
            until = billing.parse_when(p["until"], now, "until") if p.get("until") else None
            return m.exit(changed=False, instances=billing.billed_for(providers, p["instances"], since, until))
        if not providers:
            raise ConfigError("no provider configured: set the API key of at least one provider")
        since, until = billing.default_window(now, p.get("since"), p.get("until"))
        rep = billing.report(providers, since, until, runs_dir=p.get("runs_dir"), owner=p.get("owner"))
        rep["report"] = billing.report_lines(rep)
        if rep["provider_errors"]:
            return m.fail("billing of %s could not be read, so this report is incomplete: %s" % (
                ", ".join(sorted(rep["provider_errors"])), "; ".join(
                    e["message"] for _n, e in sorted(rep["provider_errors"].items()))), teardown=False, **rep)
        return m.exit(changed=False, **rep)

    m.guard(run)


if __name__ == "__main__":
    main()
