# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parser, score, breaker and host readers of module_utils/node_health (fixtures in fixtures/nvidia_smi)."""

from __future__ import annotations

import json
import os
import re

import pytest

from ansible_collections.gpu.ops.plugins.module_utils import node_health as nh

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "nvidia_smi")
CASES = sorted(f[:-4] for f in os.listdir(FIXTURES) if f.endswith(".out"))


def fixture(case):
    with open(os.path.join(FIXTURES, case + ".out")) as fh:
        out = fh.read()
    rc_path = os.path.join(FIXTURES, case + ".rc")
    rc = 0
    if os.path.exists(rc_path):
        with open(rc_path) as fh:
            rc = int(fh.read().strip())
    return out, rc


HOST_OK = {"memory": {"total_mib": 65536, "available_mib": 60000, "used_pct": 8.4},
           "disk": {"path": "/", "free_gib": 500.0, "used_pct": 20.0}}


def gpu(index=0, name="NVIDIA GeForce RTX 4090", temp=40, util=0, used=1, total=24564, ecc=None, errors=None):
    g = {"index": index, "name": name, "temperature_c": temp, "utilization_pct": util, "memory_used_mib": used,
         "memory_total_mib": total, "ecc_uncorrected": ecc, "errors": errors or {}}
    g["memory_used_pct"] = round(100.0 * used / total, 1)
    return g


# ------------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize("case", CASES)
def test_every_fixture_parses_one_row_per_gpu(case):
    out, rc = fixture(case)
    gpus, bad = nh.parse_gpu_csv(out)
    m = re.match(r"(?:real_)?(\d+)x_", case)
    if m:  # named <N>x_...: N GPUs, each either a row or an error line
        assert len(gpus) + len(bad) == int(m.group(1))
        assert [g["index"] for g in gpus] == sorted(g["index"] for g in gpus)
        for g in gpus:
            assert g["name"] and g["uuid"].startswith("GPU-")
    else:  # failure outputs: no GPU rows, and a non-zero exit code recorded next to them
        assert gpus == [] and rc != 0


def test_single_gpu_without_units():
    gpus, bad = nh.parse_gpu_csv(fixture("1x_rtx4090.nounits")[0])
    assert bad == []
    assert gpus == [{
        "index": 0, "name": "NVIDIA GeForce RTX 4090", "temperature_c": 41, "utilization_pct": 0,
        "memory_used_mib": 1, "memory_total_mib": 24564, "ecc_uncorrected": None,
        "uuid": "GPU-3f1c9a2e-7b4d-5e60-8a91-c2d3e4f5a6b7", "pci_bus_id": "00000000:01:00.0",
        "driver_version": "550.127.05", "memory_used_pct": 0.0, "errors": {}}]


def test_header_and_units_are_understood():
    gpus, bad = nh.parse_gpu_csv(fixture("1x_rtx4090.units.out".replace(".out", ""))[0])
    assert bad == [] and len(gpus) == 1
    assert gpus[0]["utilization_pct"] == 3 and gpus[0]["memory_used_mib"] == 1187
    assert gpus[0]["memory_used_pct"] == round(100 * 1187 / 24564, 1)


def test_four_gpus_with_units_keep_their_own_values():
    gpus, bad = nh.parse_gpu_csv(fixture("4x_a100.units")[0])
    assert bad == []
    assert [g["index"] for g in gpus] == [0, 1, 2, 3]
    assert [g["temperature_c"] for g in gpus] == [33, 31, 35, 34]
    assert {g["pci_bus_id"] for g in gpus} == {"00000000:07:00.0", "00000000:0F:00.0", "00000000:47:00.0",
                                               "00000000:4E:00.0"}
    assert all(g["ecc_uncorrected"] == 0 and g["memory_total_mib"] == 81920 for g in gpus)


def test_header_order_decides_the_mapping():
    text = "memory.total [MiB], index, temperature.gpu\n24564 MiB, 1, 55\n24564 MiB, 0, 50\n"
    gpus, bad = nh.parse_gpu_csv(text)
    assert bad == []
    assert [(g["index"], g["temperature_c"], g["memory_total_mib"]) for g in gpus] == [(0, 50, 24564), (1, 55, 24564)]


def test_crlf_blank_lines_and_garbage():
    text = "\r\n0, A, 40, 0, 1, 100, 0, GPU-a, 0:1, 1\r\n\r\nWARNING: infoROM is corrupted at gpu 0000:01:00.0\r\n"
    gpus, bad = nh.parse_gpu_csv(text)
    assert len(gpus) == 1 and gpus[0]["name"] == "A"
    assert bad == ["WARNING: infoROM is corrupted at gpu 0000:01:00.0"]


def test_not_supported_and_na_are_absent_not_errors():
    gpus, dummy = nh.parse_gpu_csv(fixture("2x_a10_not_supported.nounits")[0])
    assert [g["utilization_pct"] for g in gpus] == [None, None]
    assert [g["ecc_uncorrected"] for g in gpus] == [None, None]
    assert all(g["errors"] == {} for g in gpus)
    score, problems = nh.score_node(gpus, HOST_OK)
    assert (score, problems) == (100, [])


def test_error_values_are_recorded_per_field():
    gpus, dummy = nh.parse_gpu_csv(fixture("1x_l40s_requires_reset.nounits")[0])
    assert gpus[0]["errors"] == {"temperature.gpu": "[GPU requires reset]", "utilization.gpu": "[GPU requires reset]",
                                 "memory.used": "[GPU requires reset]",
                                 "ecc.errors.uncorrected.volatile.total": "[Unknown Error]"}
    assert gpus[0]["temperature_c"] is None and gpus[0]["memory_used_pct"] is None
    score, problems = nh.score_node(gpus, HOST_OK)
    assert score == 100 - nh.GPU_ERROR_DEDUCTION  # once per node, though four fields failed
    assert len(problems) == 4
    assert all(p["message"].startswith("GPU 0 (NVIDIA L40S): ") for p in problems)


def test_numbers_with_decimals_and_bad_numbers():
    gpus, bad = nh.parse_gpu_csv("0, X, 40.5, abc, 10, 100, 0, GPU-x, b, d\nx, Y, 1, 1, 1, 1, 0, GPU-y, b, d\n")
    assert gpus[0]["temperature_c"] == 40.5
    assert gpus[0]["utilization_pct"] is None and gpus[0]["errors"] == {"utilization.gpu": "abc"}
    assert bad == ["x, Y, 1, 1, 1, 1, 0, GPU-y, b, d"]  # no index: not a GPU row


# ------------------------------------------------------------------------------------------ failures
@pytest.mark.parametrize("case,kind", [("driver_missing", "no_driver"), ("version_mismatch", "no_driver"),
                                       ("no_devices", "no_gpu")])
def test_failures_are_classified(case, kind):
    out, rc = fixture(case)
    got_kind, msg = nh.classify_nvidia_smi_failure(rc, out, "")
    assert got_kind == kind
    assert ("exited %d" % rc) in msg and out.split("\n")[0].strip()[:40] in msg


def test_driver_message_is_quoted_whole():
    out, rc = fixture("driver_missing")
    kind, msg = nh.classify_nvidia_smi_failure(rc, out, "")
    assert rc == 9 and kind == "no_driver"
    assert msg.startswith("no GPU driver: nvidia-smi exited 9 (the NVIDIA driver is not loaded): ")
    assert "couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed" in msg
    score, problems = nh.score_node([], HOST_OK, gpu_failure=msg, failure_kind=kind)
    assert score == 0 and problems[0]["check"] == "no_driver"
    # a CPU node (require_gpu false) is not penalised for having no GPU
    assert nh.score_node([], HOST_OK, gpu_failure=msg, failure_kind=kind, require_gpu=False) == (100, [])


def test_unknown_exit_code_keeps_output():
    kind, msg = nh.classify_nvidia_smi_failure(15, "", "Unable to determine the device handle for GPU0000:61:00.0")
    assert kind == "nvidia_smi"
    assert "fallen off the bus" in msg and "GPU0000:61:00.0" in msg
    kind, msg = nh.classify_nvidia_smi_failure(77, "", "")
    assert msg == "nvidia-smi exited 77 (unexpected exit code)"


def test_lost_gpu_counts_and_is_named():
    out, rc = fixture("8x_rtx4090_gpu_lost.nounits")
    gpus, bad = nh.parse_gpu_csv(out)
    assert rc == 15 and len(gpus) == 7 and 3 not in [g["index"] for g in gpus]
    score, problems = nh.score_node(gpus, HOST_OK, smi_errors=bad, expected_gpus=8)
    assert score == 100 - nh.GPU_ERROR_DEDUCTION - nh.GPU_COUNT_DEDUCTION
    msgs = [p["message"] for p in problems]
    assert "expected 8 GPU(s), nvidia-smi lists 7" in msgs
    assert any("GPU0000:61:00.0: GPU is lost" in m for m in msgs)


# ------------------------------------------------------------------------------------------ score
@pytest.mark.parametrize("temp,deduction", [(40, 0), (80, 0), (80.5, 15), (81, 15), (85, 15), (86, 30), (120, 30)])
def test_temperature_tiers(temp, deduction):
    score, problems = nh.score_node([gpu(temp=temp)], HOST_OK)
    assert score == 100 - deduction
    assert [p["check"] for p in problems] == (["gpu_temperature"] if deduction else [])


@pytest.mark.parametrize("used,deduction", [(22000, 0), (22108, 0), (22200, 10), (23336, 10), (23400, 20), (24564, 20)])
def test_gpu_memory_tiers(used, deduction):
    # 24564 MiB total: 90 % = 22107.6, 95 % = 23335.8
    assert nh.score_node([gpu(used=used)], HOST_OK)[0] == 100 - deduction


@pytest.mark.parametrize("pct,deduction", [(90, 0), (90.1, 10), (95, 10), (95.1, 25)])
def test_host_memory_tiers(pct, deduction):
    host = {"memory": {"used_pct": pct, "available_mib": 1, "total_mib": 2}, "disk": HOST_OK["disk"]}
    assert nh.score_node([gpu()], host)[0] == 100 - deduction


@pytest.mark.parametrize("pct,deduction", [(90, 0), (91, 10), (96, 20)])
def test_disk_tiers(pct, deduction):
    host = {"memory": HOST_OK["memory"], "disk": {"path": "/w", "free_gib": 3.0, "used_pct": pct}}
    score, problems = nh.score_node([gpu()], host)
    assert score == 100 - deduction
    if deduction:
        assert problems[0]["message"] == "disk %s %% used > %s %% on /w (3.0 GiB free)" % (pct, 95 if pct > 95 else 90)


def test_ecc_utilization_and_worst_gpu_only():
    gpus = [gpu(0, temp=86), gpu(1, temp=90), gpu(2, temp=82), gpu(3, ecc=0), gpu(4, ecc=1), gpu(5, util=95)]
    score, problems = nh.score_node(gpus, HOST_OK)
    # temperature: worst is -30 (not 30+30+15); ECC -50; utilization -10
    assert score == 100 - 30 - 50 - 10
    by_gpu = {(p["check"], p.get("gpu")) for p in problems}
    assert by_gpu == {("gpu_temperature", 0), ("gpu_temperature", 1), ("gpu_temperature", 2), ("gpu_ecc", 4),
                      ("gpu_utilization", 5)}
    hot = [p for p in problems if p.get("gpu") == 1][0]
    assert hot["message"] == "GPU 1 (NVIDIA GeForce RTX 4090): temperature 90 C > 85 C"
    assert (hot["value"], hot["threshold"], hot["deduction"]) == (90, 85, 30)


def test_eight_h100_fixture_names_the_bad_gpus():
    gpus, dummy = nh.parse_gpu_csv(fixture("8x_h100.nounits")[0])
    score, problems = nh.score_node(gpus, HOST_OK, expected_gpus=8)
    assert score == 0  # -30 -20 -10 -50, floored
    expected = {("gpu_temperature", 5), ("gpu_memory", 5), ("gpu_utilization", 5), ("gpu_ecc", 6)}
    assert {(p["check"], p["gpu"]) for p in problems} == expected
    assert any(p["message"] == "GPU 6 (NVIDIA H100 80GB HBM3): 2 uncorrected ECC error(s) since the driver loaded"
               for p in problems)


def test_gpu_count_mismatch_and_status_bands():
    assert nh.score_node([gpu()], HOST_OK, expected_gpus=2)[0] == 50
    assert nh.score_node([gpu(), gpu(1)], HOST_OK, expected_gpus=2) == (100, [])
    bands = [nh.status_band(s) for s in (100, 80, 79, 60, 59, 0)]
    assert bands == ["healthy", "healthy", "degraded", "degraded", "unhealthy", "unhealthy"]


def test_every_declared_deduction_is_reachable():
    """No declared-but-unused weights (UGRO's bug): each DEDUCTIONS tier changes some score."""
    for check, tiers in nh.DEDUCTIONS.items():
        for limit, deduction in tiers:
            v = limit + 0.5
            if check == "gpu_temperature":
                s = nh.score_node([gpu(temp=v)], HOST_OK)[0]
            elif check == "gpu_memory":
                s = nh.score_node([gpu(used=v * 100, total=10000)], HOST_OK)[0]
            elif check == "gpu_utilization":
                s = nh.score_node([gpu(util=v)], HOST_OK)[0]
            elif check == "gpu_ecc":
                s = nh.score_node([gpu(ecc=int(v + 0.5))], HOST_OK)[0]
            else:
                host = json.loads(json.dumps(HOST_OK))
                host["memory" if check == "host_memory" else "disk"]["used_pct"] = v
                s = nh.score_node([gpu()], host)[0]
            assert s == 100 - deduction, (check, limit)


# ------------------------------------------------------------------------------------------ breaker
def checks(*spec):
    return [{"ts": ts, "passed": ok} for ts, ok in spec]


def test_breaker_opens_at_three_failures_in_window():
    now = 1000.0
    assert nh.breaker_state(checks((900, False), (950, False)), now, 300, 3)["state"] == "closed"
    b = nh.breaker_state(checks((800, False), (900, True), (950, False), (999, False)), now, 300, 3)
    assert b["state"] == "open" and b["failures_in_window"] == 3
    # closes when the oldest of the three ages out: 800 + 300
    assert b["open_until"] == 1100
    assert nh.breaker_state(checks((800, False), (950, False), (999, False)), 1100.0, 300, 3)["state"] == "closed"


def test_breaker_ignores_old_and_future_failures_and_can_be_disabled():
    now = 1000.0
    old = checks((100, False), (200, False), (300, False), (990, False))
    assert nh.breaker_state(old, now, 300, 3)["failures_in_window"] == 1
    future = checks((1500, False), (1600, False), (1700, False))  # clock went back: not counted
    assert nh.breaker_state(future, now, 300, 3)["state"] == "closed"
    many = checks(*[(900 + i, False) for i in range(10)])
    assert nh.breaker_state(many, now, 300, 0)["state"] == "closed"
    b = nh.breaker_state(many, now, 300, 3)
    assert b["open_until"] == 907 + 300  # the 3rd most recent failure ages out last


def test_history_is_bounded_atomic_and_survives_corruption(tmp_path):
    path = str(tmp_path / "health" / "history.json")
    for i in range(5):
        data = nh.append_history(path, {"ts": float(i), "passed": i % 2 == 0, "score": i}, keep=3)
    assert [c["ts"] for c in data["checks"]] == [2.0, 3.0, 4.0]
    assert nh.load_history(path)["last"]["score"] == 4
    assert not [p for p in os.listdir(tmp_path / "health") if ".tmp." in p]
    with open(path, "w") as fh:
        fh.write('{"checks": [{"ts": 1, "pas')  # torn write by something else
    assert nh.load_history(path)["checks"] == []
    assert len(nh.append_history(path, {"ts": 9.0, "passed": True})["checks"]) == 1


def test_history_lock_times_out_with_an_error(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    path = str(tmp_path / "history.json")
    holder = open(path + ".lock", "a")
    try:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        # a second open file description conflicts with the held lock
        with pytest.raises(OSError):
            nh.append_history(path, {"ts": 1.0, "passed": True}, lock_timeout=0.05)
    finally:
        holder.close()
    assert nh.append_history(path, {"ts": 1.0, "passed": True}, lock_timeout=0.05)["checks"][0]["ts"] == 1.0


# ------------------------------------------------------------------------------------------ host readers
def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


MEMINFO = "MemTotal:       65536000 kB\nMemFree:         1000000 kB\nMemAvailable:   32768000 kB\n"


def test_memory_from_meminfo_when_cgroup_is_unlimited(tmp_path):
    write(str(tmp_path / "proc" / "meminfo"), MEMINFO)
    write(str(tmp_path / "cg" / "memory.max"), "max\n")
    write(str(tmp_path / "cg" / "memory.current"), "1000\n")
    m = nh.memory_info(str(tmp_path / "proc"), str(tmp_path / "cg"))
    assert m == {"total_mib": 64000, "available_mib": 32000, "used_pct": 50.0, "source": "meminfo"}


def test_memory_from_cgroup_v2_limit(tmp_path):
    write(str(tmp_path / "proc" / "meminfo"), MEMINFO)
    gib = 2 ** 30
    write(str(tmp_path / "cg" / "memory.max"), "%d\n" % (16 * gib))
    write(str(tmp_path / "cg" / "memory.current"), "%d\n" % (16 * gib))
    write(str(tmp_path / "cg" / "memory.stat"), "anon 1\ninactive_file %d\nactive_file 5\n" % gib)
    m = nh.memory_info(str(tmp_path / "proc"), str(tmp_path / "cg"))
    assert m["source"] == "cgroup" and m["total_mib"] == 16384 and m["available_mib"] == 1024
    assert m["used_pct"] == round(100 * 15 / 16, 1)


def test_memory_from_cgroup_v1_limit(tmp_path):
    write(str(tmp_path / "proc" / "meminfo"), MEMINFO)
    base = tmp_path / "cg" / "memory"
    write(str(base / "memory.limit_in_bytes"), "%d\n" % (8 * 2 ** 30))
    write(str(base / "memory.usage_in_bytes"), "%d\n" % (4 * 2 ** 30))
    write(str(base / "memory.stat"), "total_inactive_file 0\n")
    m = nh.memory_info(str(tmp_path / "proc"), str(tmp_path / "cg"))
    assert (m["source"], m["total_mib"], m["used_pct"]) == ("cgroup", 8192, 50.0)
    write(str(base / "memory.limit_in_bytes"), "9223372036854771712\n")  # v1 "unlimited"
    assert nh.memory_info(str(tmp_path / "proc"), str(tmp_path / "cg"))["source"] == "meminfo"


def test_missing_proc_reads_as_unknown(tmp_path):
    assert nh.memory_info(str(tmp_path), str(tmp_path)) == {}
    assert nh.load_info(str(tmp_path)) == {}
    host = nh.collect_host(str(tmp_path / "nope"), str(tmp_path), str(tmp_path))
    assert nh.score_node([gpu()], host) == (100, [])


def test_disk_of_a_path_not_created_yet(tmp_path):
    d = nh.disk_info(str(tmp_path / "a" / "b" / "workspace"))
    assert d["path"] == str(tmp_path)
    st = os.statvfs(str(tmp_path))
    assert d["free_gib"] == round(st.f_bavail * st.f_frsize / 2.0 ** 30, 2)
    assert 0 <= d["used_pct"] <= 100


def test_load(tmp_path):
    write(str(tmp_path / "loadavg"), "3.50 2.00 1.00 2/345 6789\n")
    info = nh.load_info(str(tmp_path))
    assert (info["load_1m"], info["load_5m"], info["load_15m"]) == (3.5, 2.0, 1.0)
    assert info["load_per_cpu"] == round(3.5 / info["cpu_count"], 2)
