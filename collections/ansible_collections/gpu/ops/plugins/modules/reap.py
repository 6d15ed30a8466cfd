#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: reap
short_description: Destroy gpu.ops instances that outlived their run, on every provider
version_added: 0.1.0
description:
  - Lists every configured provider once (every page) and destroys the instances that carry gpu.ops labels
    (C(run_id) and C(owner)), belong to O(owner) (or to anyone with O(all_owners)), and either are expired
    (C(expires_at) in the past), belong to a run whose record C(<runs_dir>/<run_id>/run.json) says it was torn down
    or ended (C(torn_down=true) or a final C(status)), or belong to a run named in O(run_ids).
  - Never touches an instance without gpu.ops labels, nor one of another owner unless O(all_owners=true).
  - Safe to run any time and on a schedule; a second run changes nothing.
  - "When a provider's listing fails (HTTP errors, a retired endpoint answering 410) the module fails and names the
    provider: an error is never read as \"no instances\". With O(on_provider_error=abort) (the default) nothing
    is destroyed on any provider, since the picture is incomplete; with V(reap_others) the providers that
    answered are reaped and the module still fails."
  - RV(table) is the same table in check mode (what would be destroyed and why, the price per hour and the estimated
    cost so far) and after a normal run (what was destroyed).
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  owner:
    description:
      - Only instances labelled with this owner are considered.
      - If not set, the value of the E(GPUOPS_OWNER) environment variable is used, then the current user (the same
        default the modules use when they label instances).
    type: str
  all_owners:
    description:
      - Consider the instances of every owner.
    type: bool
    default: false
  run_ids:
    description:
      - Runs whose instances are destroyed whatever their C(expires_at).
    type: list
    elements: str
    default: []
  runs_dir:
    description:
      - Directory of the run records (C(<runs_dir>/<run_id>/run.json)). An instance of a run whose record says
        C(torn_down=true) or a final C(status) (succeeded, failed, budget_exceeded, preempted, cancelled) is reaped.
      - Without it, run records are not read.
    type: path
  providers:
    description:
      - Providers to reap. By default every provider that has an API key configured.
    type: list
    elements: str
  on_provider_error:
    description:
      - What to do when a provider's listing fails. The module fails in both cases.
      - V(abort) destroys nothing anywhere.
      - V(reap_others) reaps the providers that answered.
    type: str
    choices: [abort, reap_others]
    default: abort
  parallel:
    description:
      - Instances destroyed at the same time.
    type: int
    default: 8
extends_documentation_fragment:
  - gpu.ops.auth
attributes:
  check_mode:
    support: full
    description: Lists what would be destroyed and why; destroys nothing.
  diff_mode:
    support: none
    description: No diff is returned.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller (or any host with network access to the provider APIs).
notes:
  - The cost so far is an estimate (hours since creation at the current price); the providers' bills are read by
    M(gpu.ops.cost_info).
  - Run it from cron or an AWX schedule; see the C(gpu.ops.reap) playbook.
seealso:
  - module: gpu.ops.cost_info
  - module: gpu.ops.gpu_instance
"""

EXAMPLES = r"""
- name: What would be reaped, and why
  gpu.ops.reap:
    runs_dir: ./runs
  check_mode: true
  register: plan

- name: Show it
  ansible.builtin.debug:
    msg: "{{ plan.table }}"

- name: Reap every owner's expired instances, and two runs by name
  gpu.ops.reap:
    all_owners: true
    run_ids: [ddp-20261201-1, ddp-20261201-2]
"""

RETURN = r"""
reaped:
  description: The instances reaped (or, in check mode, that would be), with why and what happened.
  returned: always
  type: list
  elements: dict
  sample:
    - {provider: vast, id: "7835610", name: ddp-0, status: running, run_id: ddp-1, owner: alice,
       expires_at: "2026-12-01T10:00:00Z", gpu_model: RTX 4090, gpu_count: 1, price_per_hour: 0.31,
       created_at: "2026-11-30T10:00:00Z", cost_so_far: 7.44, reasons: [expired],
       why: "expired 2h10m ago (expires_at 2026-12-01T10:00:00Z)", action: destroyed}
table:
  description: The same as lines of a fixed-width table, for C(debug).
  returned: always
  type: list
  elements: str
  sample: ["PROVIDER  ID       NAME   RUN    OWNER  USD/H  COST SO FAR  ACTION     WHY", "..."]
provider_errors:
  description: Providers whose listing failed, with the error.
  returned: always
  type: dict
  sample: {vast: {status: 410, category: offer_gone, message: "listing vast failed ..."}}
counts:
  description: Instances listed, without gpu.ops labels, of other owners, and labelled but kept.
  returned: always
  type: dict
  sample: {listed: 12, unlabelled: 3, other_owner: 4, kept: 2}
api_requests:
  description: HTTP requests the module sent (retries included).
  returned: always
  type: int
  sample: 3
"""

from ansible_collections.gpu.ops.plugins.module_utils import reaper
from ansible_collections.gpu.ops.plugins.module_utils.module_base import GpuOpsModule
from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError


def main():
    m = GpuOpsModule(dict(
        owner=dict(type="str"),
        all_owners=dict(type="bool", default=False),
        run_ids=dict(type="list", elements="str", default=[]),
        runs_dir=dict(type="path"),
        providers=dict(type="list", elements="str"),
        on_provider_error=dict(type="str", default="abort", choices=list(reaper.ON_PROVIDER_ERROR)),
        parallel=dict(type="int", default=8),
    ), supports_check_mode=True)

    def run():
        p = m.params
        names = p.get("providers") or m.configured_providers()
        if not names:
            raise ConfigError("no provider configured: set the API key of at least one provider")
        if p["parallel"] < 1:
            raise ConfigError("parallel must be at least 1")
        r = reaper.Reaper({n: m.provider(n) for n in names}, owner=p.get("owner") or reaper.default_owner(),
                          all_owners=p["all_owners"], run_ids=p["run_ids"], runs_dir=p.get("runs_dir"),
                          on_provider_error=p["on_provider_error"], workers=p["parallel"])
        r.plan()
        if m.module.check_mode:
            r.mark_blocked()
        else:
            r.reap()
        rows = r.result_rows()
        done = [x for x in rows if x["action"] in ("destroyed", "already_gone")]
        would = [x for x in rows if x["action"] == "would_destroy"]
        changed = bool(would) if m.module.check_mode else bool(done)
        out = dict(changed=changed, reaped=rows, table=reaper.table(rows, r.now),
                   provider_errors=r.errors, counts=r.counts)
        for run_id, why in sorted(r.records.unreadable.items()):
            m.module.warn("run record of %s is unreadable, so it was not used: %s" % (run_id, why))
        failures = r.failures()
        if failures:
            return m.fail("the reaper failed: %s" % "; ".join(failures), teardown=False, **out)
        return m.exit(**out)

    m.guard(run)


if __name__ == "__main__":
    main()
