"""Calls of the ``runpod`` SDK, in order, as a user's script makes them; prints their results as a JSON list.

Run by tests/sim/test_vendor_tools.py with the Python of the SDK's own venv (not ours: it cannot share one
with the other vendor's tool). Only the SDK's public functions are used; the key is set the way the
SDK's README says (``runpod.api_key = ...``) and the API address comes from ``RUNPOD_API_BASE_URL``.

  python runpod_sdk_calls.py '[["CALL", "ARG", ...], ...]'

"@created" stands for the id of the pod created earlier in the run. An SDK error ends the run; its result is {"exception": <class name>, "message": ...}.
"""

from __future__ import annotations

import json
import os
import sys

import runpod
from runpod.cli.utils.rp_info import get_pod_ssh_ip_port


def main(call: str, *args: str) -> object:
    runpod.api_key = os.environ["RUNPOD_API_KEY"]
    if call == "gpus":
        return runpod.get_gpus()
    if call == "gpu":
        return runpod.get_gpu(args[0])
    if call == "set_keys":
        return runpod.update_user_settings(args[0])
    if call == "user":
        return runpod.get_user()
    if call == "create":
        name, gpu = args[0], args[1]
        return runpod.create_pod(name, "runpod/base:0.6.2-cuda12.4.1", gpu, ports="22/tcp")
    if call == "pods":
        return runpod.get_pods()
    if call == "pod":
        return runpod.get_pod(args[0])
    if call == "ssh_address":  # the SDK's own lookup (what `runpod ssh` / `runpod pod connect` use)
        ip, port = get_pod_ssh_ip_port(args[0], timeout=60)
        return {"ip": ip, "port": port}
    if call == "stop":
        return runpod.stop_pod(args[0])
    if call == "resume":
        return runpod.resume_pod(args[0], gpu_count=int(args[1]))
    if call == "terminate":
        return runpod.terminate_pod(args[0])
    raise SystemExit(f"unknown call {call}")


if __name__ == "__main__":
    results: list = []
    created = None  # "@created" in a later call's arguments: the id of the pod this run created
    for call in json.loads(sys.argv[1]):
        try:
            results.append(main(*[created if a == "@created" else a for a in call]))
            if call[0] == "create":
                created = results[-1]["id"]
        except Exception as e:  # the SDK's errors (QueryError, ValueError ...) as data, for the test to check
            results.append({"exception": type(e).__name__, "message": str(e)})
            break
    json.dump(results, sys.stdout)
