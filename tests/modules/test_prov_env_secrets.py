"""The instance modules' env goes through their action plugin as one no_log string: the pod gets every value, the
output at -vvv (which prints the module invocation) shows the names only, short values elsewhere are not starred
out, and async (which the docs suggest for long waits) still works through the plugin."""

from __future__ import annotations

import hashlib
import re
import sys

import yaml

from gpuops.testing import run_playbook
from provtools import live


def test_env_values_reach_the_pod_but_no_output(sim, sim_env, ssh_vars, uid, cleanup, recorder, tmp_path):
    name = "env-%s" % uid
    cleanup(name)
    secret = "hf_" + hashlib.sha256(name.encode()).hexdigest()[:30]
    env = {"HF_TOKEN": secret, "NODE_RANK": "0"}
    pod = dict(name=name, gpu_type="RTX 4090", image="runpod/pytorch:2.4.0", wait_timeout=60, env=env, **ssh_vars)
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    pb = tmp_path / "play.yml"
    pb.write_text(yaml.safe_dump([{"name": "env", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "create", "gpu.ops.runpod_instance": pod},
        # async, as the docs suggest for long waits, through the action plugin
        {"name": "destroy", "gpu.ops.runpod_instance": {"name": name, "state": "absent", "env": env},
         "async": 120, "poll": 1, "register": "gone"},
        {"name": "destroyed", "ansible.builtin.assert": {"that": ["gone.changed", "gone.destroyed | length == 1"]}},
    ]}], sort_keys=False))
    proc = run_playbook(pb, inv, env=dict(sim_env, ANSIBLE_INJECT_INVOCATION="1"), args=["-vvv"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    # the values reached the API ...
    bodies = [c.get("body") for c in recorder.creates()]
    assert any(secret in str(b) for b in bodies), bodies
    # ... and no output: the invocation shows the names; the "0" of NODE_RANK did not star out other zeros
    assert secret not in out
    assert re.search(r"HF_TOKEN\W+VALUE_SPECIFIED_IN_NO_LOG_PARAMETER", out), out[-3000:]
    assert "ansible_host: 127.0.0." in out and "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER.0" not in out
    assert not live(sim, name)
