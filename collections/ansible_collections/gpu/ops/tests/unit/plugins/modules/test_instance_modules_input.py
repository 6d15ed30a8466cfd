# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input to the instance modules fails with a clear message before any API request is sent.

The modules run their real main() against a scripted loopback API that records every request.
"""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.gpu.ops.plugins.modules import gpu_instance, runpod_instance, vast_instance
from ansible_collections.gpu.ops.tests.unit.plugins.module_utils.fake_api import FakeApi

PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH3ryOjE0l8Qq9cJzQ8vQnYkJ8a6xg1oT1M8C4sOk2xE test@host"


@pytest.fixture
def api():
    a = FakeApi().start()
    yield a
    a.stop()


def run(capsys, module, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            module.main()
    res = json.loads(capsys.readouterr().out)
    res["_rc"] = exc.value.code
    return res


def auth(api):
    return {"runpod_api_key": "rk", "runpod_api_url": api.url + "/v2", "runpod_graphql_url": api.url + "/graphql",
            "vast_api_key": "vk", "vast_api_url": api.url}


@pytest.mark.parametrize("module,extra,needle", [
    (runpod_instance, {"name": "a", "wait_timeout": 0, "ssh_public_key": PUB}, "wait_timeout must be greater than 0"),
    (runpod_instance, {"name": "a", "wait_timeout": -5, "ssh_public_key": PUB}, "wait_timeout must be greater than 0"),
    (runpod_instance, {"name": "a", "bid_per_gpu": 0.2, "ssh_public_key": PUB}, "bid_per_gpu is only valid with interruptible"),
    (runpod_instance, {"name": "bad name", "ssh_public_key": PUB}, "must start with a letter or digit"),
    (runpod_instance, {"name": "a", "ssh_public_key": PUB, "ssh_public_key_file": "/x.pub"}, "mutually exclusive"),
    (runpod_instance, {"name": "a", "ssh_public_key_file": "/nonexistent/key.pub"}, "does not exist"),
    (runpod_instance, {"name": "a", "ssh_public_key": PUB, "ttl": "forever"}, "ttl 'forever' is not a duration"),
    (vast_instance, {"name": "a", "offer_id": 5, "gpu": ["4090"], "ssh_public_key": PUB}, "mutually exclusive"),
    (vast_instance, {"name": "a", "bid_price": 0.3, "ssh_public_key": PUB}, "bid_price is only valid with interruptible"),
    (vast_instance, {"name": "a", "max_offers": 0, "ssh_public_key": PUB}, "max_offers must be at least 1"),
    (vast_instance, {"name": "a", "ports": [70000], "ssh_public_key": PUB}, "port 70000 is not between"),
    (gpu_instance, {"name_prefix": "f", "count": 2, "min_count": 3, "ssh_public_key": PUB}, "min_count must be between"),
    (gpu_instance, {"name_prefix": "f", "env": {"PUBLIC_KEY": "x"}, "ssh_public_key": PUB}, "env must not set PUBLIC_KEY"),
    (gpu_instance, {"name_prefix": "f", "wait_timeout": 0, "ssh_public_key": PUB}, "wait_timeout must be greater than 0"),
])
def test_bad_input_fails_before_any_request(capsys, api, module, extra, needle):
    args = auth(api)
    args.update(extra)
    res = run(capsys, module, args)
    assert res["_rc"] == 1 and res["failed"] is True
    assert needle in res["msg"]
    assert api.requests == []


def test_missing_key_names_the_env_var(capsys, api, monkeypatch):
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    res = run(capsys, runpod_instance, {"name": "a", "runpod_api_url": api.url + "/v2", "ssh_public_key": PUB})
    assert res["failed"] and "RUNPOD_API_KEY" in res["msg"] and api.requests == []


def test_private_key_readable_by_others_is_refused(capsys, api, tmp_path):
    key = tmp_path / "id"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o644)
    args = auth(api)
    args.update(name="a", ssh_private_key_file=str(key))
    res = run(capsys, runpod_instance, args)
    assert res["failed"] and "chmod 600" in res["msg"] and api.requests == []


def test_existing_pod_that_differs_is_kept_with_a_warning(capsys, api):
    pod = {"id": "abc123def456gh", "name": "a", "status": "EXITED", "image": "old:1", "cost": 0.0, "env": {},
           "gpu": {"id": "NVIDIA RTX A6000", "count": 2}, "ssh": {"proxy": None, "direct": None}}
    api.add("GET", "/v2/pods", (200, {"pods": [pod]}))
    args = auth(api)
    args.update(name="a", gpu_type="RTX 4090", image="new:2", ssh_public_key=PUB, wait=False)
    res = run(capsys, runpod_instance, args)
    assert res["_rc"] == 0 and res["changed"] is False and res["instance"]["status"] == "stopped"
    warning = json.dumps(res["warnings"])
    assert "gpu_type NVIDIA RTX A6000, not RTX 4090" in warning and "image old:1, not new:2" in warning
    assert "gpu_count" not in warning  # not asked for, so no complaint
    assert [(r["method"], r["path"]) for r in api.requests] == [("GET", "/v2/pods")]


def test_starting_an_existing_pod_needs_no_public_key(capsys, api):
    pod = {"id": "abc123def456gh", "name": "a", "status": "EXITED", "image": "img", "cost": 0.0, "env": {},
           "gpu": {"id": "NVIDIA RTX A6000", "count": 1}, "ssh": {"proxy": None, "direct": None}}
    api.add("GET", "/v2/pods", (200, {"pods": [pod]}))
    api.add("POST", "/v2/pods/abc123def456gh/action", (200, dict(pod, status="STARTING")))
    args = auth(api)
    args.update(name="a", state="started", wait=False)
    res = run(capsys, runpod_instance, args)
    assert res["_rc"] == 0 and res["changed"] is True and res["instance"]["status"] == "pending"
    assert api.requests[-1]["body"] == {"action": "start"}


def test_creating_without_any_key_is_refused_after_the_lookup(capsys, api):
    api.add("GET", "/v2/pods", (200, {"pods": []}))
    args = auth(api)
    args.update(name="a", gpu_type="RTX 4090", image="img")
    res = run(capsys, runpod_instance, args)
    assert res["failed"] and "no SSH public key to put on the instance" in res["msg"]
    assert [(r["method"], r["path"]) for r in api.requests] == [("GET", "/v2/pods")]
