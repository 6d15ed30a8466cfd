# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node health for gpu.ops: nvidia-smi parsing, host metrics, the 0-100 score and the circuit breaker.

PRIVATE to the collection: used by the node_health_check module (which runs on the node, so stdlib
only and Python >= 3.9) and by the unit tests. Everything here is a pure function of its inputs
(text, numbers, a clock value) except the small readers at the bottom that take their root paths
as arguments so tests can point them at fixtures.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

# ---------------------------------------------------------------------------------------------- nvidia-smi
# One probe: the fields ARCHITECTURE.md section 4 names, plus identity fields (uuid, bus id, driver)
# so a problem can name the exact device. nounits keeps numbers bare; the parser accepts units too.
QUERY_FIELDS = (
    "index", "name", "temperature.gpu", "utilization.gpu", "memory.used", "memory.total",
    "ecc.errors.uncorrected.volatile.total", "uuid", "pci.bus_id", "driver_version",
)
QUERY_ARGS = ["--query-gpu=" + ",".join(QUERY_FIELDS), "--format=csv,noheader,nounits"]

# nvidia-smi(1), RETURN VALUE
NVIDIA_SMI_EXIT_CODES = {
    2: "a supplied argument or flag is invalid",
    3: "the requested operation is not available on the target device",
    4: "the current user does not have permission to access this device",
    6: "a query to find an object was unsuccessful",
    8: "a device's external power cables are not properly attached",
    9: "the NVIDIA driver is not loaded",
    10: "the NVIDIA kernel module detected an interrupt issue with a GPU",
    12: "the NVML shared library could not be found or loaded",
    13: "the local version of NVML does not implement this function",
    14: "the infoROM is corrupted",
    15: "a GPU has fallen off the bus or has otherwise become inaccessible",
    255: "other error or internal driver error",
}
# exit codes and messages that mean "there is no usable driver on this node"
NO_DRIVER_CODES = frozenset((9, 12))
NO_DRIVER_PATTERNS = (
    "couldn't communicate with the nvidia driver",
    "nvml shared library not found",
    "failed to initialize nvml",
    "driver/library version mismatch",
)
NO_GPU_PATTERNS = ("no devices were found",)

# values nvidia-smi prints for a field the device does not have (consumer cards have no ECC)
_NOT_AVAILABLE = frozenset(("", "n/a", "[n/a]", "not supported", "[not supported]"))
_NUMBER = re.compile(r"^(-?\d+(?:\.\d+)?)\s*(?:%|MiB|MB|GiB|W|MHz|C)?$")
_HEADER_UNIT = re.compile(r"\s*\[[^\]]*\]\s*$")

# field -> (key in the result, numeric type)
_FIELD_KEYS = {
    "index": ("index", int),
    "name": ("name", None),
    "gpu_name": ("name", None),
    "uuid": ("uuid", None),
    "gpu_uuid": ("uuid", None),
    "pci.bus_id": ("pci_bus_id", None),
    "gpu_bus_id": ("pci_bus_id", None),
    "driver_version": ("driver_version", None),
    "temperature.gpu": ("temperature_c", float),
    "utilization.gpu": ("utilization_pct", float),
    "memory.used": ("memory_used_mib", float),
    "memory.total": ("memory_total_mib", float),
    "ecc.errors.uncorrected.volatile.total": ("ecc_uncorrected", int),
}


def _number(raw, kind):
    m = _NUMBER.match(raw)
    if not m:
        raise ValueError(raw)
    v = float(m.group(1))
    if kind is int or v.is_integer():
        return int(v)
    return v


def parse_gpu_csv(text, fields=QUERY_FIELDS):
    """Parse ``nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]`` output.

    One line per GPU (any count). A header line, if present, decides the field order; units in the
    header (``memory.used [MiB]``) and in values (``1234 MiB``, ``5 %``) are accepted. Returns
    ``(gpus, errors)``: ``gpus`` is a list of dicts, ``errors`` lists lines that are not GPU rows
    (for example "Unable to determine the device handle for GPU ...: GPU is lost").

    A field the device does not support (``[N/A]``, ``[Not Supported]``) is None. A bracketed error
    value (``[Unknown Error]``, ``[GPU requires reset]``) is None and recorded in the GPU's ``errors``.
    """
    gpus, errors = [], []
    names = list(fields)
    lines = [ln.strip() for ln in (text or "").replace("\r", "").split("\n")]
    lines = [ln for ln in lines if ln]
    if lines:
        first = next(csv.reader([lines[0]], skipinitialspace=True))
        heads = [_HEADER_UNIT.sub("", c).strip().lower() for c in first]
        if all(h in _FIELD_KEYS or h in names for h in heads):
            names = heads
            lines = lines[1:]
    for line in lines:
        cells = next(csv.reader([line], skipinitialspace=True))
        if len(cells) != len(names):
            errors.append(line)
            continue
        gpu = {"errors": {}}
        bad = False
        for field, cell in zip(names, cells):
            key, kind = _FIELD_KEYS.get(field, (field.replace(".", "_"), None))
            raw = cell.strip()
            if raw.lower() in _NOT_AVAILABLE:
                gpu[key] = None
                continue
            if raw.startswith("[") and raw.endswith("]"):
                gpu[key] = None
                gpu["errors"][field] = raw
                continue
            if kind is None:
                gpu[key] = raw
                continue
            try:
                gpu[key] = _number(raw, kind)
            except ValueError:
                if field == "index":
                    bad = True
                    break
                gpu[key] = None
                gpu["errors"][field] = raw
        if bad:
            errors.append(line)
            continue
        used, total = gpu.get("memory_used_mib"), gpu.get("memory_total_mib")
        gpu["memory_used_pct"] = round(100.0 * used / total, 1) if used is not None and total else None
        gpus.append(gpu)
    gpus.sort(key=lambda g: g["index"])
    return gpus, errors


def probe_command(path, timeout, timeout_bin=None):
    """argv for the probe. A wedged GPU can hang nvidia-smi, so it runs under coreutils timeout(1) when the
    node has it (exit 124 then means "timed out"); the KILL follows 5 s after the TERM."""
    argv = [path] + QUERY_ARGS
    if timeout_bin and timeout:
        argv = [timeout_bin, "--kill-after=5", str(int(timeout))] + argv
    return argv


TIMEOUT_EXIT_CODES = frozenset((124, 137))


def classify_nvidia_smi_failure(rc, stdout, stderr):
    """Turn a failed nvidia-smi run into ``(kind, message)``; kind is no_driver, no_gpu or nvidia_smi."""
    text = " ".join(x.strip() for x in (stdout or "", stderr or "") if x and x.strip())
    text = " ".join(text.split())
    low = text.lower()
    meaning = NVIDIA_SMI_EXIT_CODES.get(rc, "unexpected exit code")
    msg = "nvidia-smi exited %s (%s)" % (rc, meaning)
    if text:
        msg += ": " + text[:400]
    if rc in NO_DRIVER_CODES or any(p in low for p in NO_DRIVER_PATTERNS):
        return "no_driver", "no GPU driver: " + msg
    if any(p in low for p in NO_GPU_PATTERNS):
        return "no_gpu", "no GPU visible: " + msg
    return "nvidia_smi", msg


# ---------------------------------------------------------------------------------------------- score
# Deductions of seed 004 (UGRO's _calculate_health_score) plus ECC, GPU errors and GPU count, which
# UGRO did not have. Per-GPU checks deduct once per node, for the worst GPU; every GPU that crosses a
# threshold is still listed in the problems. Each entry: (limit, deduction), first match wins.
DEDUCTIONS = {
    "gpu_temperature": ((85, 30), (80, 15)),      # degrees C, strictly above
    "gpu_memory": ((95, 20), (90, 10)),           # percent of the GPU's memory in use
    "gpu_utilization": ((90, 10),),               # percent: someone else is using the GPU
    "host_memory": ((95, 25), (90, 10)),          # percent of RAM (or the cgroup limit) in use
    "disk": ((95, 20), (90, 10)),                 # percent used on the workspace filesystem
    "gpu_ecc": ((0, 50),),                        # uncorrected volatile ECC errors
}
GPU_ERROR_DEDUCTION = 50
GPU_COUNT_DEDUCTION = 50
HEALTHY_MIN = 80
DEGRADED_MIN = 60

_UNITS = {"gpu_temperature": " C", "gpu_memory": " %", "gpu_utilization": " %", "host_memory": " %", "disk": " %"}


def _tier(check, value):
    if value is None:
        return None
    for limit, deduction in DEDUCTIONS[check]:
        if value > limit:
            return limit, deduction
    return None


def _gpu_label(gpu):
    name = gpu.get("name") or "unknown GPU"
    return "GPU %s (%s)" % (gpu.get("index"), name)


def _problem(check, deduction, message, **extra):
    p = {"check": check, "deduction": deduction, "message": message}
    p.update(extra)
    return p


def score_node(gpus, host, gpu_failure=None, failure_kind="nvidia_smi", expected_gpus=0, require_gpu=True,
               smi_errors=()):
    """Score a node 0-100 and list its problems. Returns ``(score, problems)``.

    ``gpus`` as from parse_gpu_csv, ``host`` as from collect_host. ``gpu_failure`` is the message
    of a failed nvidia-smi run (no GPU data at all; ``failure_kind`` from classify_nvidia_smi_failure
    or ``no_driver`` when nvidia-smi is missing), which scores 0 when a GPU is required.
    """
    problems = []
    if gpu_failure:
        if require_gpu:
            problems.append(_problem(failure_kind, 100, gpu_failure))
    for line in smi_errors:
        problems.append(_problem("gpu_error", GPU_ERROR_DEDUCTION, "nvidia-smi reported: %s" % line))
    if expected_gpus and not gpu_failure and len(gpus) != expected_gpus:
        problems.append(_problem("gpu_count", GPU_COUNT_DEDUCTION,
                                 "expected %d GPU(s), nvidia-smi lists %d" % (expected_gpus, len(gpus)),
                                 value=len(gpus), threshold=expected_gpus))
    for gpu in gpus:
        label = _gpu_label(gpu)
        for field, raw in sorted(gpu.get("errors", {}).items()):
            problems.append(_problem("gpu_error", GPU_ERROR_DEDUCTION, "%s: %s reads %s" % (label, field, raw),
                                     gpu=gpu.get("index"), gpu_name=gpu.get("name"), value=raw))
        checks = (
            ("gpu_temperature", gpu.get("temperature_c"), "temperature %s C > %s C"),
            ("gpu_memory", gpu.get("memory_used_pct"), "memory %s %% used > %s %%"),
            ("gpu_utilization", gpu.get("utilization_pct"), "busy before the job: utilization %s %% > %s %%"),
        )
        for check, value, fmt in checks:
            hit = _tier(check, value)
            if hit:
                problems.append(_problem(check, hit[1], "%s: %s" % (label, fmt % (_fmt(value), hit[0])),
                                         gpu=gpu.get("index"), gpu_name=gpu.get("name"), value=value,
                                         threshold=hit[0]))
        ecc = gpu.get("ecc_uncorrected")
        hit = _tier("gpu_ecc", ecc)
        if hit:
            problems.append(_problem("gpu_ecc", hit[1], "%s: %s uncorrected ECC error(s) since the driver loaded"
                                     % (label, ecc), gpu=gpu.get("index"), gpu_name=gpu.get("name"), value=ecc,
                                     threshold=hit[0]))
    mem = (host or {}).get("memory") or {}
    hit = _tier("host_memory", mem.get("used_pct"))
    if hit:
        problems.append(_problem("host_memory", hit[1], "host memory %s %% used > %s %% (%s MiB available of %s MiB)"
                                 % (_fmt(mem.get("used_pct")), hit[0], mem.get("available_mib"),
                                    mem.get("total_mib")), value=mem.get("used_pct"), threshold=hit[0]))
    disk = (host or {}).get("disk") or {}
    hit = _tier("disk", disk.get("used_pct"))
    if hit:
        problems.append(_problem("disk", hit[1], "disk %s %% used > %s %% on %s (%s GiB free)"
                                 % (_fmt(disk.get("used_pct")), hit[0], disk.get("path"), disk.get("free_gib")),
                                 value=disk.get("used_pct"), threshold=hit[0]))
    # one deduction per check for the worst instance; gpu_error/gpu_count/no_driver likewise
    worst = {}
    for p in problems:
        worst[p["check"]] = max(worst.get(p["check"], 0), p["deduction"])
    score = max(0, 100 - sum(worst.values()))
    return int(score), problems


def _fmt(v):
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def status_band(score):
    if score >= HEALTHY_MIN:
        return "healthy"
    if score >= DEGRADED_MIN:
        return "degraded"
    return "unhealthy"


# ---------------------------------------------------------------------------------------------- breaker
def breaker_state(checks, now, window, threshold):
    """The per-node circuit breaker over the recorded checks (oldest first).

    Open while at least ``threshold`` failed checks fall within the last ``window`` seconds; it
    closes by itself when enough of them age out (then the next check decides again, as UGRO's
    half-open state). ``threshold`` 0 disables it.
    """
    fails = sorted(c["ts"] for c in checks if not c.get("passed") and now - window < c["ts"] <= now)
    state = {"state": "closed", "failures_in_window": len(fails), "window_s": window, "threshold": threshold,
             "open_until": None}
    if threshold and len(fails) >= threshold:
        state["state"] = "open"
        state["open_until"] = round(fails[len(fails) - threshold] + window, 3)
    return state


def load_history(path):
    """The node's health history: ``{"checks": [...]}``; a missing or corrupt file reads as empty."""
    try:
        with open(path) as fh:
            data = json.load(fh)
        if isinstance(data, dict) and isinstance(data.get("checks"), list):
            data["checks"] = [c for c in data["checks"] if isinstance(c, dict) and isinstance(c.get("ts"), (int, float))]
            return data
    except (OSError, ValueError):
        pass
    return {"version": 1, "checks": []}


def append_history(path, record, keep=200, lock_timeout=10.0):
    """Append one check under an exclusive lock; write tmp + fsync + rename (readers never see half a file).

    Returns the history including the new record. Concurrent checks on one node serialize on the lock.
    """
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    lock_fh = open(path + ".lock", "a")
    try:
        _lock(lock_fh, lock_timeout)
        data = load_history(path)
        data["version"] = 1
        data["checks"] = (data["checks"] + [record])[-keep:]
        data["last"] = record
        tmp = "%s.tmp.%d" % (path, os.getpid())
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return data
    finally:
        lock_fh.close()


def _lock(fh, timeout):
    """flock with backoff until the deadline (no blocking call that could hang a play)."""
    if fcntl is None:
        return
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


# ---------------------------------------------------------------------------------------------- host
def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def read_meminfo(proc_root="/proc"):
    text = _read(os.path.join(proc_root, "meminfo")) or ""
    kib = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":"):
            try:
                kib[parts[0][:-1]] = int(parts[1])
            except ValueError:
                pass
    return kib


def _cgroup_memory(cgroup_root):
    """(limit_bytes, working_set_bytes) of this process's memory cgroup, or (None, None).

    Containers (RunPod, Vast) see the host's /proc/meminfo; the container's limit is in the cgroup.
    Working set = usage - inactive file cache, as docker stats and the kubelet count it.
    """
    v2 = os.path.join(cgroup_root, "memory.max")
    if os.path.exists(v2):
        limit, usage = _read(v2), _read(os.path.join(cgroup_root, "memory.current"))
        stat_key = "inactive_file"
        stat = _read(os.path.join(cgroup_root, "memory.stat"))
    else:
        base = os.path.join(cgroup_root, "memory")
        limit, usage = _read(os.path.join(base, "memory.limit_in_bytes")), _read(os.path.join(base, "memory.usage_in_bytes"))
        stat_key = "total_inactive_file"
        stat = _read(os.path.join(base, "memory.stat"))
    try:
        limit = int(limit.strip())
        usage = int(usage.strip())
    except (AttributeError, ValueError):
        return None, None
    inactive = 0
    for line in (stat or "").splitlines():
        k, dummy, v = line.partition(" ")
        if k == stat_key:
            try:
                inactive = int(v)
            except ValueError:
                pass
    return limit, max(0, usage - inactive)


def memory_info(proc_root="/proc", cgroup_root="/sys/fs/cgroup"):
    kib = read_meminfo(proc_root)
    total = kib.get("MemTotal")
    if not total:
        return {}
    avail = kib.get("MemAvailable", kib.get("MemFree", 0) + kib.get("Buffers", 0) + kib.get("Cached", 0))
    total_b, avail_b, source = total * 1024, avail * 1024, "meminfo"
    limit, working = _cgroup_memory(cgroup_root)
    # "no limit" is max (v2) or a huge number (v1); only a limit below physical memory counts
    if limit and working is not None and limit < total_b:
        total_b, avail_b, source = limit, max(0, limit - working), "cgroup"
    used_pct = round(100.0 * (total_b - avail_b) / total_b, 1) if total_b else None
    return {"total_mib": total_b // 1048576, "available_mib": avail_b // 1048576, "used_pct": used_pct,
            "source": source}


def existing_parent(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def disk_info(path):
    """Usage of the filesystem holding ``path`` (or its nearest existing parent), counted as df does."""
    where = existing_parent(path)
    try:
        st = os.statvfs(where)
    except OSError:
        return {"path": where}
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    total = st.f_blocks * st.f_frsize
    used_pct = round(100.0 * used / (used + avail), 1) if used + avail else None
    return {"path": where, "requested_path": path, "total_gib": round(total / 2.0 ** 30, 2),
            "free_gib": round(avail / 2.0 ** 30, 2), "used_pct": used_pct}


def load_info(proc_root="/proc"):
    text = _read(os.path.join(proc_root, "loadavg"))
    try:
        one, five, fifteen = (float(x) for x in text.split()[:3])
    except (AttributeError, ValueError):
        return {}
    cpus = os.cpu_count() or 1
    try:
        cpus = len(os.sched_getaffinity(0)) or cpus
    except (AttributeError, OSError):
        pass
    return {"load_1m": one, "load_5m": five, "load_15m": fifteen, "cpu_count": cpus,
            "load_per_cpu": round(one / cpus, 2)}


def collect_host(workspace, proc_root="/proc", cgroup_root="/sys/fs/cgroup"):
    return {"memory": memory_info(proc_root, cgroup_root), "disk": disk_info(workspace), "load": load_info(proc_root)}
