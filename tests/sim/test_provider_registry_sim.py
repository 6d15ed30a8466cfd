"""Each provider in the collection's registry says how the simulator serves it (its URL options' environment
variables and their paths, its key variable, its instance credential); ``gpuops-sim start`` must export and
set exactly that, or a provider's modules would talk to the public API instead of the simulator."""

from __future__ import annotations

import sys

from simapi import REPO

from gpuops.sim.client import SimClient


def _registry():
    sys.path.insert(0, str(REPO / "collections"))
    try:
        from ansible_collections.gpu.ops.plugins.module_utils import registry
    finally:
        sys.path.pop(0)
    return registry


def test_the_simulator_exports_every_providers_urls_and_key(tmp_path):
    info = {"url": "http://127.0.0.1:9", "runpod_api_key": "rk", "vast_api_key": "vk"}
    env = SimClient(tmp_path, info=info).env()
    classes = _registry().classes()
    assert classes, "no provider registered"
    for cls in classes:
        urls = {o.env for o in cls.options if not o.secret}
        assert set(cls.simulator_urls) == urls, cls.name  # every URL option is served
        for var, path in cls.simulator_urls.items():
            assert env[var] == info["url"] + path, (cls.name, var)
        assert env[cls.key_option().env], cls.name
        if cls.ssh_user_env:
            assert env[cls.ssh_user_env], cls.name
