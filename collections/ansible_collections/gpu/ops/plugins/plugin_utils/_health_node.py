# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node side of gpu.ops.node_health_check. PRIVATE to the collection, may change without notice.

The ``__main__`` of the ``health`` helper (a zip application with ``node_health``, see ``_node_helper``),
installed once per version as ``~/.bifrost/bin/gpuops-health-<hash>.pyz``. Standard library only, Python >= 3.9.
One command, ``check``: one nvidia-smi probe, host checks, score, history and circuit breaker; the answer is the
module's result (``failed`` with the reasons when the node is not healthy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from ansible_collections.gpu.ops.plugins.module_utils import node_health as nh
from ansible_collections.gpu.ops.plugins.module_utils._node_protocol import NodeError, serve

EXTRA_BIN_DIRS = ["/usr/bin", "/usr/local/nvidia/bin", "/usr/lib/wsl/lib"]
NUMBERS = ("min_score", "expected_gpus", "breaker_failures", "breaker_window", "timeout")


def find_bin(name):
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(EXTRA_BIN_DIRS)
    return shutil.which(name, path=path)


def query_gpus(p):
    """Run nvidia-smi once. Returns (gpus, smi_errors, failure_kind, failure_msg, driver_version)."""
    name = p["nvidia_smi"]
    path = os.path.expanduser(name) if os.sep in name else find_bin(name)
    if not path or not os.path.exists(path):
        return [], [], "no_driver", "no GPU driver: %s not found on PATH or in %s" % (name, ", ".join(EXTRA_BIN_DIRS)), None
    timeout_bin = shutil.which("timeout")
    try:
        proc = subprocess.run(nh.probe_command(path, p["timeout"], timeout_bin), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False)
    except OSError as e:
        return [], [], "no_driver", "no GPU driver: cannot run %s: %s" % (path, e), None
    rc = proc.returncode
    out, err = (proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))
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


def check_args(p):
    for key in NUMBERS:
        if p[key] < 0:
            raise NodeError("%s must be >= 0, got %d" % (key, p[key]))
    if p["min_score"] > 100:
        raise NodeError("min_score must be between 0 and 100, got %d" % p["min_score"])


def record_check(p, record, now):
    """(checks in the window's history, breaker state, warnings); the history file is written unless check mode."""
    history_path = os.path.join(os.path.expanduser(p["history_dir"]), "history.json")
    warnings, checks = [], None
    if p["history"] and not p.get("check_mode"):
        try:
            checks = nh.append_history(history_path, record)["checks"]
        except OSError as e:
            warnings.append("health history not recorded in %s: %s" % (history_path, e))
    if checks is None:
        checks = nh.load_history(history_path)["checks"] + [record]
    return history_path, nh.breaker_state(checks, now, p["breaker_window"], p["breaker_failures"]), warnings


def failure_msg(score, p, problems, breaker):
    details = "; ".join("%s (-%d)" % (x["message"], x["deduction"]) for x in problems) or "no problem found"
    if breaker["state"] == "open":
        until = time.strftime("%H:%M:%SZ", time.gmtime(breaker["open_until"]))
        return ("circuit breaker open: %d failed health checks within %d s (threshold %d); node marked unhealthy "
                "until %s. This check scored %d/100: %s"
                % (breaker["failures_in_window"], breaker["window_s"], breaker["threshold"], until, score, details))
    return "health score %d/100 is below min_score %d: %s" % (score, p["min_score"], details)


def check(p):
    check_args(p)
    gpus, smi_errors, kind, smi_failure, driver = query_gpus(p)
    failure = None if kind == "no_driver" and not p["require_gpu"] else smi_failure
    host = nh.collect_host(os.path.expanduser(p["workspace"]))
    score, problems = nh.score_node(gpus, host, gpu_failure=failure, failure_kind=kind or "nvidia_smi",
                                    expected_gpus=p["expected_gpus"], require_gpu=p["require_gpu"],
                                    smi_errors=smi_errors)
    problems.sort(key=lambda x: -x["deduction"])
    passed = score >= p["min_score"]
    now = round(time.time(), 3)  # the record's own time, so this check always falls inside the window
    record = {"ts": now, "score": score, "passed": passed, "problems": [x["message"] for x in problems[:10]]}
    history_path, breaker, warnings = record_check(p, record, now)
    healthy = passed and breaker["state"] == "closed"
    result = {
        "changed": False, "score": score, "healthy": healthy, "passed": passed, "min_score": p["min_score"],
        "status": "unhealthy" if breaker["state"] == "open" else nh.status_band(score),
        "problems": problems, "gpus": gpus, "gpu_count": len(gpus),
        "driver": {"available": kind != "no_driver", "version": driver, "error": smi_failure},
        "host": host, "breaker": breaker, "history_path": history_path,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    }
    if warnings:
        result["warnings"] = warnings
    if not healthy:
        result.update(failed=True, msg=failure_msg(score, p, problems, breaker))
    return result


def main(argv=None):
    return serve({"check": check}, argv)


if __name__ == "__main__":
    sys.exit(main())
