"""What the real clouds do that a kind simulator would hide (issue 10): a passphrase-protected key that no
agent offers, pods that run without a public SSH mapping, Vast account keys."""

from __future__ import annotations

import subprocess

from provtools import live


def test_a_locked_key_without_an_agent_is_refused_before_renting(play, sim, sim_env, ssh_vars, uid, tmp_path, cleanup,
                                                                 recorder):
    name = "lk-%s" % uid
    cleanup(name)
    key = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret", "-f", str(key)], check=True)
    env = dict(sim_env, SSH_AUTH_SOCK="")  # no agent, whatever the shell running the tests has
    args = dict(ssh_vars, ssh_private_key_file=str(key), image="img")
    r = play([
        {"name": "fleet", "gpu.ops.gpu_instance": dict(args, name_prefix=name, gpu=["4090"]), "ignore_errors": True},
        {"name": "vast", "gpu.ops.vast_instance": dict(args, name=name + "-v", gpu=["4090"]), "ignore_errors": True},
    ], env=env)
    for task in ("fleet", "vast"):
        assert r[task].get("failed"), r[task]
        assert "is protected by a passphrase and no ssh-agent is running" in r[task]["msg"], r[task]["msg"]
        assert "ssh-add" in r[task]["msg"]
    assert recorder.creates() == []
    assert not live(sim, name)
