# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node side of gpu.ops.node_health_check (``_health_node.check``, what the health helper runs on the node):
a stand-in nvidia-smi prints a fixture and exits with its code."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.gpu.ops.plugins.action.node_health_check import ARGUMENT_SPEC
from ansible_collections.gpu.ops.plugins.module_utils._node_protocol import NodeError
from ansible_collections.gpu.ops.plugins.plugin_utils import _health_node

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "module_utils", "fixtures", "nvidia_smi")
DEFAULTS = dict((k, v.get("default")) for k, v in ARGUMENT_SPEC.items())


def fake_smi(tmp_path, case=None, rc=0, body=None):
    """An executable that prints the fixture and exits like nvidia-smi did; logs its argv."""
    out = os.path.join(FIXTURES, case + ".out") if case else None
    rc_file = os.path.join(FIXTURES, case + ".rc") if case else None
    if rc_file and os.path.exists(rc_file):
        with open(rc_file) as fh:
            rc = int(fh.read())
    script = tmp_path / "nvidia-smi"
    lines = ["#!/bin/sh", 'echo "$@" >> "%s"' % (tmp_path / "argv.log")]
    if body:
        lines.append(body)
    elif out:
        lines.append('cat "%s"' % out)
    lines.append("exit %d" % rc)
    script.write_text("\n".join(lines) + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def run(capsys, **args):
    """The answer as the action plugin gets it (the arguments with the action's defaults)."""
    del capsys
    try:
        res = _health_node.check(dict(DEFAULTS, **args))
    except NodeError as exc:
        res = {"failed": True, "msg": str(exc)}
    json.dumps(res)  # the answer travels as one JSON line
    res["_rc"] = 1 if res.get("failed") else 0
    return res


def base(tmp_path, smi, **kw):
    args = {"nvidia_smi": smi, "workspace": str(tmp_path / "ws"), "history_dir": str(tmp_path / "health"),
            "min_score": 0}
    args.update(kw)
    return args


def gpu_problems(res):
    return [p for p in res["problems"] if p["check"].startswith("gpu") or p["check"] in ("no_driver", "nvidia_smi")]


def test_healthy_four_gpus_pass_and_use_one_probe(tmp_path, capsys):
    res = run(capsys, **base(tmp_path, fake_smi(tmp_path, "4x_a100.units"), expected_gpus=4))
    assert res["_rc"] == 0 and res["changed"] is False
    assert res["gpu_count"] == 4 and gpu_problems(res) == []
    assert res["driver"] == {"available": True, "version": "550.54.15", "error": None}
    assert (tmp_path / "argv.log").read_text().splitlines() == [
        "--query-gpu=index,name,temperature.gpu,utilization.gpu,memory.used,memory.total,"
        "ecc.errors.uncorrected.volatile.total,uuid,pci.bus_id,driver_version --format=csv,noheader,nounits"]
    assert os.path.exists(res["history_path"])


def test_gate_message_names_the_gpu_and_problem(tmp_path, capsys):
    res = run(capsys, **base(tmp_path, fake_smi(tmp_path, "8x_h100.nounits"), min_score=80))
    assert res["_rc"] == 1 and res["failed"] is True and res["healthy"] is False
    assert res["msg"].startswith("health score 0/100 is below min_score 80: ")
    assert "GPU 5 (NVIDIA H100 80GB HBM3): temperature 87 C > 85 C (-30)" in res["msg"]
    assert "GPU 6 (NVIDIA H100 80GB HBM3): 2 uncorrected ECC error(s)" in res["msg"]
    # worst first
    assert [p["deduction"] for p in res["problems"]] == sorted((p["deduction"] for p in res["problems"]), reverse=True)


def test_driver_missing_exit_9(tmp_path, capsys):
    res = run(capsys, **base(tmp_path, fake_smi(tmp_path, "driver_missing"), min_score=1))
    assert res["_rc"] == 1 and res["score"] == 0 and res["gpus"] == []
    assert res["driver"]["available"] is False
    assert res["msg"].startswith("health score 0/100 is below min_score 1: no GPU driver: nvidia-smi exited 9")


def test_no_nvidia_smi_at_all(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    res = run(capsys, **base(tmp_path, "nvidia-smi-not-installed", min_score=1))
    assert res["_rc"] == 1 and "no GPU driver: nvidia-smi-not-installed not found" in res["msg"]
    # on a CPU node that is fine
    res = run(capsys, **base(tmp_path, "nvidia-smi-not-installed", require_gpu=False, history=False))
    assert res["_rc"] == 0 and gpu_problems(res) == [] and res["driver"]["available"] is False


def test_hung_nvidia_smi_times_out(tmp_path, capsys):
    smi = fake_smi(tmp_path, body="exec sleep 30")
    res = run(capsys, **base(tmp_path, smi, timeout=1, min_score=1))
    assert res["_rc"] == 1 and "did not answer within 1 s" in res["msg"]


def test_partial_answer_keeps_the_good_gpus(tmp_path, capsys):
    res = run(capsys, **base(tmp_path, fake_smi(tmp_path, "8x_rtx4090_gpu_lost.nounits"), expected_gpus=8,
                             min_score=80))
    assert res["_rc"] == 1 and res["gpu_count"] == 7
    assert "expected 8 GPU(s), nvidia-smi lists 7" in res["msg"]
    assert "GPU is lost" in res["msg"] and "exited 15" in res["msg"]


def test_breaker_opens_on_third_failure_and_holds(tmp_path, capsys):
    hot = fake_smi(tmp_path, "8x_h100.nounits")
    states = [run(capsys, **base(tmp_path, hot, min_score=80))["breaker"] for dummy in range(3)]
    assert [b["failures_in_window"] for b in states] == [1, 2, 3]
    assert [b["state"] for b in states] == ["closed", "closed", "open"]
    good = fake_smi(tmp_path, "4x_a100.units")
    res = run(capsys, **base(tmp_path, good, min_score=0))
    assert res["passed"] is True and res["healthy"] is False and res["status"] == "unhealthy"
    assert res["msg"].startswith("circuit breaker open: 3 failed health checks within 300 s (threshold 3)")
    with open(res["history_path"]) as fh:
        assert [c["passed"] for c in json.load(fh)["checks"]] == [False, False, False, True]
    # disabled breaker: the good reading passes
    assert run(capsys, **base(tmp_path, good, breaker_failures=0))["_rc"] == 0


def test_check_mode_writes_nothing(tmp_path, capsys):
    args = base(tmp_path, fake_smi(tmp_path, "1x_rtx4090.nounits"))
    args["check_mode"] = True
    res = run(capsys, **args)
    assert res["_rc"] == 0 and res["breaker"]["failures_in_window"] == 0
    assert not os.path.exists(tmp_path / "health")


@pytest.mark.parametrize("args,msg", [({"min_score": 101}, "min_score must be between 0 and 100"),
                                      ({"breaker_window": -1}, "breaker_window must be >= 0")])
def test_bad_arguments(tmp_path, capsys, args, msg):
    res = run(capsys, **base(tmp_path, "nvidia-smi", **args))
    assert res["_rc"] == 1 and msg in res["msg"]
