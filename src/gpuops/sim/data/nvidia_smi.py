#!/usr/bin/env python3
"""Simulated nvidia-smi for gpuops-sim nodes.

Answers the flags health checks use, from the node's GPU file ($GPUOPS_SIM_GPU_FILE), which the
simulator rewrites at run time for faults (hot GPU, ECC errors, driver not loaded):

  nvidia-smi                                   summary table
  nvidia-smi -L                                one line per GPU
  nvidia-smi --query-gpu=F1,F2 --format=csv[,noheader][,nounits] [-i IDX]
"""
import json
import os
import sys
import time

DRIVER_FAIL = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)

# field -> (unit shown in header and values, getter)
FIELDS = {
    "index": (None, lambda g, s: g["index"]),
    "name": (None, lambda g, s: g["name"]),
    "gpu_name": (None, lambda g, s: g["name"]),
    "uuid": (None, lambda g, s: g["uuid"]),
    "gpu_uuid": (None, lambda g, s: g["uuid"]),
    "serial": (None, lambda g, s: g.get("serial", "[N/A]")),
    "pci.bus_id": (None, lambda g, s: g["pci_bus_id"]),
    "gpu_bus_id": (None, lambda g, s: g["pci_bus_id"]),
    "driver_version": (None, lambda g, s: s["driver_version"]),
    "vbios_version": (None, lambda g, s: g.get("vbios_version", "95.02.3C.00.8E")),
    "pstate": (None, lambda g, s: "P0" if g.get("utilization", 0) > 0 else "P8"),
    "compute_cap": (None, lambda g, s: g.get("compute_cap", "8.9")),
    "temperature.gpu": (None, lambda g, s: g["temperature"]),
    "temperature.memory": (None, lambda g, s: "N/A"),
    "fan.speed": ("%", lambda g, s: g.get("fan_speed", 30)),
    "utilization.gpu": ("%", lambda g, s: g.get("utilization", 0)),
    "utilization.memory": ("%", lambda g, s: g.get("memory_utilization", 0)),
    "memory.total": ("MiB", lambda g, s: g["memory_total_mib"]),
    "memory.used": ("MiB", lambda g, s: g.get("memory_used_mib", 0)),
    "memory.free": ("MiB", lambda g, s: g["memory_total_mib"] - g.get("memory_used_mib", 0)),
    "memory.reserved": ("MiB", lambda g, s: 0),
    "power.draw": ("W", lambda g, s: "%.2f" % g.get("power_draw", 30.0)),
    "power.limit": ("W", lambda g, s: "%.2f" % g.get("power_limit", 450.0)),
    "clocks.sm": ("MHz", lambda g, s: g.get("clock_sm", 210)),
    "clocks.mem": ("MHz", lambda g, s: g.get("clock_mem", 405)),
    "ecc.mode.current": (None, lambda g, s: "Enabled" if g.get("ecc_supported") else "[N/A]"),
    "ecc.errors.uncorrected.volatile.total": (None, lambda g, s: _ecc(g, "ecc_uncorrected")),
    "ecc.errors.corrected.volatile.total": (None, lambda g, s: _ecc(g, "ecc_corrected")),
    "ecc.errors.uncorrected.aggregate.total": (None, lambda g, s: _ecc(g, "ecc_uncorrected")),
    "ecc.errors.corrected.aggregate.total": (None, lambda g, s: _ecc(g, "ecc_corrected")),
    "count": (None, lambda g, s: len(s["gpus"])),
    "timestamp": (None, lambda g, s: time.strftime("%Y/%m/%d %H:%M:%S.000")),
}


def _ecc(g, key):
    if not g.get("ecc_supported"):
        return "[N/A]"
    return g.get(key, 0)


def load():
    path = os.environ.get("GPUOPS_SIM_GPU_FILE") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                                  "gpus.json")
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {"driver_loaded": False, "gpus": []}


def query(state, fields, fmt, only):
    opts = set(x.strip() for x in fmt.split(",")) if fmt else set()
    if "csv" not in opts:
        sys.stderr.write('Only "csv" format is supported by this simulator: use --format=csv\n')
        return 2
    for f in fields:
        if f not in FIELDS:
            sys.stdout.write('Field "%s" is not a valid field to query.\n\n' % f)
            return 2
    out = []
    if "noheader" not in opts:
        hdr = []
        for f in fields:
            unit = FIELDS[f][0]
            hdr.append("%s [%s]" % (f, unit) if unit and "nounits" not in opts else f)
        out.append(", ".join(hdr))
    for g in state["gpus"]:
        if only is not None and g["index"] not in only:
            continue
        vals = []
        for f in fields:
            unit, get = FIELDS[f]
            v = get(g, state)
            if unit and "nounits" not in opts and not str(v).startswith("["):
                v = "%s %s" % (v, unit)
            vals.append(str(v))
        out.append(", ".join(vals))
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def table(state):
    w = sys.stdout.write
    w(time.strftime("%a %b %d %H:%M:%S %Y") + "\n")
    w("+-----------------------------------------------------------------------------------------+\n")
    w("| NVIDIA-SMI %-12s Driver Version: %-12s CUDA Version: %-8s             |\n"
      % (state["driver_version"], state["driver_version"], state.get("cuda_version", "12.4")))
    w("|-----------------------------------------+------------------------+----------------------+\n")
    for g in state["gpus"]:
        w("| %3d  %-34s | %-22s | %20s |\n" % (g["index"], g["name"][:34], g["pci_bus_id"],
                                              _ecc(g, "ecc_uncorrected")))
        w("| %3s%%  %3dC  P0  %5.0fW / %5.0fW          | %8dMiB / %8dMiB | %5d%%      Default |\n"
          % (g.get("fan_speed", 30), g["temperature"], g.get("power_draw", 30.0), g.get("power_limit", 450.0),
             g.get("memory_used_mib", 0), g["memory_total_mib"], g.get("utilization", 0)))
        w("+-----------------------------------------+------------------------+----------------------+\n")
    w("\n+-----------------------------------------------------------------------------------------+\n")
    w("| Processes:                                                                              |\n")
    w("|  No running processes found                                                             |\n")
    w("+-----------------------------------------------------------------------------------------+\n")
    return 0


def main(argv):
    state = load()
    if not state.get("driver_loaded", True):
        sys.stdout.write(DRIVER_FAIL)
        return 9
    fields, fmt, only = None, None, None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-L", "--list-gpus"):
            for g in state["gpus"]:
                sys.stdout.write("GPU %d: %s (UUID: %s)\n" % (g["index"], g["name"], g["uuid"]))
            return 0
        if a.startswith("--query-gpu="):
            fields = [f.strip() for f in a.split("=", 1)[1].split(",") if f.strip()]
        elif a in ("--query-gpu", "-q-gpu") and i + 1 < len(argv):
            i += 1
            fields = [f.strip() for f in argv[i].split(",") if f.strip()]
        elif a.startswith("--format="):
            fmt = a.split("=", 1)[1]
        elif a == "--format" and i + 1 < len(argv):
            i += 1
            fmt = argv[i]
        elif a.startswith("--id="):
            only = set(int(x) for x in a.split("=", 1)[1].split(","))
        elif a in ("-i", "--id") and i + 1 < len(argv):
            i += 1
            only = set(int(x) for x in argv[i].split(","))
        elif a in ("-h", "--help"):
            sys.stdout.write(__doc__)
            return 0
        i += 1
    if fields is not None:
        return query(state, fields, fmt, only)
    return table(state)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
