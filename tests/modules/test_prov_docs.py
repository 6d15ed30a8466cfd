"""ansible-doc renders every provider module; the action group serves them all with the shared auth options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from gpuops.testing import REPO, ansible_env
from provtools import example_task

MODULES = ["cost_info", "gpu_instance", "gpu_offer_info", "reap", "runpod_instance", "runpod_instance_info",
           "vast_instance", "vast_instance_info"]
AUTH = {"runpod_api_key", "runpod_api_url", "runpod_graphql_url", "vast_api_key", "vast_api_url", "api_timeout",
        "api_deadline"}
COLL = REPO / "collections" / "ansible_collections" / "gpu" / "ops"


def test_ansible_doc_renders_every_module():
    doc = str(Path(sys.executable).parent / "ansible-doc")
    res = subprocess.run([doc, "-j"] + ["gpu.ops.%s" % m for m in MODULES], capture_output=True, text=True,
                         env=ansible_env(), cwd=str(REPO), timeout=120)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert sorted(data) == sorted("gpu.ops.%s" % m for m in MODULES)
    for name, entry in data.items():
        d = entry["doc"]
        assert d["short_description"] and d["description"] and d["author"], name
        assert AUTH <= set(d["options"]), name  # one module_defaults block for group/gpu.ops.all works
        for opt in ("runpod_api_key", "vast_api_key"):
            assert "Never logged" in " ".join(d["options"][opt]["description"]), name
        examples = yaml.safe_load(entry["examples"])
        assert examples and all(any(k.startswith(("gpu.ops.", "ansible.builtin.")) for k in t) for t in examples), name
        assert entry["return"], name
        assert d["attributes"]["check_mode"]["support"] == "full", name
    # the instance modules document the same wait/SSH/label options
    for name in ("gpu.ops.runpod_instance", "gpu.ops.vast_instance", "gpu.ops.gpu_instance"):
        opts = data[name]["doc"]["options"]
        assert {"wait", "wait_timeout", "ssh_private_key_file", "keep_on_failure", "run_id", "owner", "ttl"} <= set(opts)
        assert opts["wait_timeout"]["default"] == 600


def test_action_group_lists_the_provider_modules():
    runtime = yaml.safe_load((COLL / "meta" / "runtime.yml").read_text())
    assert set(MODULES) <= set(runtime["action_groups"]["all"])


def test_add_host_examples_pass_every_connection_fact():
    """connection_facts() sets IdentitiesOnly=yes with a key: an add_host example without the key file only works
    when the key is ssh's default identity. The gpu_instance example is also run as written (test_prov_gpu_instance)."""
    facts = {"ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file", "ansible_ssh_common_args"}
    for module in ("gpu_instance", "runpod_instance"):
        args = example_task(module, "ansible.builtin.add_host")["ansible.builtin.add_host"]
        assert facts <= set(args), module
        assert "default(omit)" in args["ansible_ssh_private_key_file"], module  # no key given: no key var
