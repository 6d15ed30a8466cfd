#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_health_check
short_description: Check a GPU node's health, score it 0-100 and gate on the score
version_added: 0.1.0
description:
  - Runs on the GPU node. In one call it reads every GPU with a single
    C(nvidia-smi --query-gpu=... --format=csv,noheader,nounits) (fields index, name, temperature.gpu,
    utilization.gpu, memory.used, memory.total, ecc.errors.uncorrected.volatile.total, uuid, pci.bus_id,
    driver_version; one line per GPU, any number of GPUs), disk usage of the filesystem holding O(workspace), host memory
    (the container's cgroup limit when one is set) and load.
  - "Scores the node from 100 down, once per check for the worst GPU: GPU temperature above 85 C -30, above 80 C -15;
    GPU memory in use above 95 % -20, above 90 % -10; GPU utilization above 90 % (busy before the job) -10;
    uncorrected volatile ECC errors -50; a GPU field reading an error such as C([GPU requires reset]) -50;
    GPU count different from O(expected_gpus) -50; host memory above 95 % -25, above 90 % -10;
    disk above 95 % -20, above 90 % -10. No driver, no visible GPU or a failing C(nvidia-smi) scores 0
    when O(require_gpu=true). Load is reported, not scored (containers see the host's load)."
  - Records each check in a history file on the node and applies a circuit breaker, so a node that keeps
    failing is marked unhealthy even when one reading looks fine.
  - Fails the host when the score is below O(min_score) or the breaker is open, with a message that names
    each GPU and problem. The full result is returned in both cases.
  - The history record is the module's own bookkeeping, so the module never reports a change.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  min_score:
    description:
      - Lowest passing score. V(0) never fails on the score (the check is only recorded).
    type: int
    default: 80
  expected_gpus:
    description:
      - Number of GPUs the node must show. V(0) does not check the count.
    type: int
    default: 0
  require_gpu:
    description:
      - When V(true), a missing C(nvidia-smi), a driver that is not loaded or no visible GPU scores 0.
      - When V(false) (CPU nodes), a missing C(nvidia-smi) is not a problem.
    type: bool
    default: true
  workspace:
    description:
      - Path whose filesystem is checked for free space (its nearest existing parent when it does not exist yet).
    type: path
    default: ~/.bifrost/workspace
  history_dir:
    description:
      - Directory for the health history (C(history.json)), written atomically under a lock.
    type: path
    default: ~/.bifrost/health
  history:
    description:
      - Record this check in the history. V(false) still reads the history for the breaker.
      - Nothing is written in check mode.
    type: bool
    default: true
  breaker_failures:
    description:
      - The breaker opens when this many failed checks fall within O(breaker_window) seconds. V(0) disables it.
    type: int
    default: 3
  breaker_window:
    description:
      - Window of the circuit breaker, in seconds. The breaker closes once failures age out of it.
    type: int
    default: 300
  nvidia_smi:
    description:
      - Name or path of C(nvidia-smi). A bare name is searched in E(PATH), C(/usr/bin), C(/usr/local/nvidia/bin)
        and C(/usr/lib/wsl/lib).
    type: str
    default: nvidia-smi
  timeout:
    description:
      - Seconds to wait for C(nvidia-smi); a wedged GPU can make it hang. Enforced with C(timeout) from coreutils
        when the node has it.
    type: int
    default: 30
notes:
  - Needs Python 3.9 or later on the node and nothing else than the standard library.
  - Meant as a gate before a job. While a job runs, high GPU memory and utilization are expected; use O(min_score=0)
    there to record without failing.
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reads everything, computes the breaker as if the check were recorded, writes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
"""

EXAMPLES = r"""
- name: Gate a node before renting it for a job
  gpu.ops.node_health_check:
    min_score: 80
    expected_gpus: "{{ gpuops_gpu_count | default(0) }}"
  register: node_health

- name: Record health while a job runs, never fail
  gpu.ops.node_health_check:
    min_score: 0
"""

RETURN = r"""
score:
  description: Health score, 0 to 100.
  returned: always
  type: int
  sample: 70
status:
  description: V(healthy) (score >= 80), V(degraded) (>= 60) or V(unhealthy); V(unhealthy) while the breaker is open.
  returned: always
  type: str
  sample: degraded
healthy:
  description: The gate's verdict, V(true) when the score is at least O(min_score) and the breaker is closed.
  returned: always
  type: bool
passed:
  description: Whether this reading alone reached O(min_score) (what the breaker counts).
  returned: always
  type: bool
problems:
  description: Every problem found, worst first.
  returned: always
  type: list
  elements: dict
  sample:
    - check: gpu_temperature
      deduction: 30
      gpu: 0
      gpu_name: NVIDIA GeForce RTX 4090
      value: 91
      threshold: 85
      message: "GPU 0 (NVIDIA GeForce RTX 4090): temperature 91 C > 85 C"
gpus:
  description: One entry per GPU as nvidia-smi reported it.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: GPU index.
      type: int
    name:
      description: Product name.
      type: str
    uuid:
      description: GPU UUID.
      type: str
    pci_bus_id:
      description: PCI bus id.
      type: str
    driver_version:
      description: Driver version.
      type: str
    temperature_c:
      description: Core temperature, degrees C.
      type: float
    utilization_pct:
      description: GPU utilization, percent; null where the device does not report it.
      type: float
    memory_used_mib:
      description: Memory in use, MiB.
      type: float
    memory_total_mib:
      description: Total memory, MiB.
      type: float
    memory_used_pct:
      description: Memory in use, percent.
      type: float
    ecc_uncorrected:
      description: Uncorrected volatile ECC errors; null where the GPU has no ECC (GeForce cards print C([N/A])).
      type: int
    errors:
      description: Fields that read an error value, such as C([GPU requires reset]), by field name.
      type: dict
gpu_count:
  description: Number of GPUs listed.
  returned: always
  type: int
driver:
  description: Driver state, C(available), C(version) and C(error) (why there is no GPU data).
  returned: always
  type: dict
host:
  description: Host metrics, C(memory) (total_mib, available_mib, used_pct, source), C(disk) (path, total_gib, free_gib, used_pct)
    and C(load) (load_1m, load_5m, load_15m, cpu_count, load_per_cpu).
  returned: always
  type: dict
breaker:
  description: Circuit breaker, C(state) (closed or open), C(failures_in_window), C(window_s), C(threshold) and C(open_until) (epoch seconds).
  returned: always
  type: dict
history_path:
  description: The history file on the node.
  returned: always
  type: str
checked_at:
  description: Time of the check (UTC, ISO 8601).
  returned: always
  type: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpu.ops.plugins.module_utils import node_health as nh

EXTRA_BIN_DIRS = ["/usr/bin", "/usr/local/nvidia/bin", "/usr/lib/wsl/lib"]


def query_gpus(module, p):
    """Run nvidia-smi once. Returns (gpus, smi_errors, failure_kind, failure_msg, driver_version)."""
    name = p["nvidia_smi"]
    path = name if os.sep in name else module.get_bin_path(name, opt_dirs=EXTRA_BIN_DIRS)
    if not path or not os.path.exists(path):
        return [], [], "no_driver", "no GPU driver: %s not found on PATH or in %s" % (name, ", ".join(EXTRA_BIN_DIRS)), None
    timeout_bin = module.get_bin_path("timeout")
    try:
        rc, out, err = module.run_command(nh.probe_command(path, p["timeout"], timeout_bin),
                                          errors="surrogate_or_replace", handle_exceptions=False)
    except OSError as e:
        return [], [], "no_driver", "no GPU driver: cannot run %s: %s" % (path, e), None
    if timeout_bin and rc in nh.TIMEOUT_EXIT_CODES:
        return [], [], "nvidia_smi", "nvidia-smi did not answer within %d s (hung GPU or driver?)" % p["timeout"], None
    gpus, bad_lines = nh.parse_gpu_csv(out) if rc == 0 or out else ([], [])
    driver = next((g.get("driver_version") for g in gpus if g.get("driver_version")), None)
    if rc != 0:
        kind, msg = nh.classify_nvidia_smi_failure(rc, out if not gpus else "", err)
        if not gpus:
            return [], [], kind, msg, None
        # some GPUs answered: the failure is about the others
        return gpus, bad_lines + [msg], None, None, driver
    if not gpus and not bad_lines:
        return [], [], "no_gpu", "no GPU visible: nvidia-smi listed no GPU", None
    return gpus, bad_lines, None, None, driver


def main():
    module = AnsibleModule(
        argument_spec=dict(
            min_score=dict(type="int", default=80),
            expected_gpus=dict(type="int", default=0),
            require_gpu=dict(type="bool", default=True),
            workspace=dict(type="path", default="~/.bifrost/workspace"),
            history_dir=dict(type="path", default="~/.bifrost/health"),
            history=dict(type="bool", default=True),
            breaker_failures=dict(type="int", default=3),
            breaker_window=dict(type="int", default=300),
            nvidia_smi=dict(type="str", default="nvidia-smi"),
            timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for key in ("min_score", "expected_gpus", "breaker_failures", "breaker_window", "timeout"):
        if p[key] < 0:
            module.fail_json(msg="%s must be >= 0, got %d" % (key, p[key]))
    if p["min_score"] > 100:
        module.fail_json(msg="min_score must be between 0 and 100, got %d" % p["min_score"])

    gpus, smi_errors, kind, smi_failure, driver = query_gpus(module, p)
    failure = None if kind == "no_driver" and not p["require_gpu"] else smi_failure
    host = nh.collect_host(p["workspace"])
    score, problems = nh.score_node(gpus, host, gpu_failure=failure, failure_kind=kind or "nvidia_smi",
                                    expected_gpus=p["expected_gpus"], require_gpu=p["require_gpu"],
                                    smi_errors=smi_errors)
    problems.sort(key=lambda x: -x["deduction"])
    passed = score >= p["min_score"]
    now = round(time.time(), 3)  # the record's own time, so this check always falls inside the window
    record = {"ts": now, "score": score, "passed": passed,
              "problems": [x["message"] for x in problems[:10]]}

    history_path = os.path.join(p["history_dir"], "history.json")
    warnings = []
    checks = None
    if p["history"] and not module.check_mode:
        try:
            checks = nh.append_history(history_path, record)["checks"]
        except OSError as e:
            warnings.append("health history not recorded in %s: %s" % (history_path, e))
    if checks is None:
        checks = nh.load_history(history_path)["checks"] + [record]
    breaker = nh.breaker_state(checks, now, p["breaker_window"], p["breaker_failures"])
    healthy = passed and breaker["state"] == "closed"

    result = dict(
        changed=False,
        score=score,
        status="unhealthy" if breaker["state"] == "open" else nh.status_band(score),
        healthy=healthy,
        passed=passed,
        min_score=p["min_score"],
        problems=problems,
        gpus=gpus,
        gpu_count=len(gpus),
        driver={"available": kind != "no_driver", "version": driver, "error": smi_failure},
        host=host,
        breaker=breaker,
        history_path=history_path,
        checked_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    )
    for w in warnings:
        module.warn(w)
    if healthy:
        module.exit_json(**result)

    details = "; ".join("%s (-%d)" % (x["message"], x["deduction"]) for x in problems) or "no problem found"
    if breaker["state"] == "open":
        until = time.strftime("%H:%M:%SZ", time.gmtime(breaker["open_until"]))
        msg = ("circuit breaker open: %d failed health checks within %d s (threshold %d); node marked unhealthy "
               "until %s. This check scored %d/100: %s"
               % (breaker["failures_in_window"], breaker["window_s"], breaker["threshold"], until, score, details))
    else:
        msg = "health score %d/100 is below min_score %d: %s" % (score, p["min_score"], details)
    module.fail_json(msg=msg, **result)


if __name__ == "__main__":
    main()
