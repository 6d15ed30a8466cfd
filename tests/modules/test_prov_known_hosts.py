"""Host keys of destroyed instances leave the known_hosts file the module trusted them into, also when the task
that destroys them names neither known_hosts_file nor run_id (ARCHITECTURE §8: removed at teardown)."""

from __future__ import annotations

import subprocess

from provtools import live


def known(path, inst) -> bool:
    """Whether ``path`` holds a key for the instance's address (names may be hashed: ask ssh-keygen)."""
    pattern = "[%s]:%s" % (inst["ssh_host"], inst["ssh_port"])
    return path.exists() and subprocess.run(["ssh-keygen", "-F", pattern, "-f", str(path)],
                                            capture_output=True, timeout=30).returncode == 0


def test_default_known_hosts_entries_are_removed_on_destroy(play, sim, sim_env, uid, cleanup, tmp_path):
    home = tmp_path / "home"  # the controller's ~ for this play: the default files land here
    home.mkdir()
    env = dict(sim_env, HOME=str(home))
    rp, fleet = "khr-%s" % uid, "khg-%s" % uid
    cleanup(rp)
    cleanup(fleet)
    key = {"ssh_private_key_file": str(sim.key)}
    r = play([
        {"name": "pod", "gpu.ops.runpod_instance": dict(name=rp, gpu_type="RTX 4090", image="runpod/pytorch:2.4.0",
                                                        run_id=rp, wait_timeout=60, **key)},
        {"name": "fleet", "gpu.ops.gpu_instance": dict(name_prefix=fleet, count=1, gpu=["RTX 4090"], run_id=fleet,
                                                       providers=["vast"], image="vastai/base-image:cuda-12.4",
                                                       max_price_per_hour=1.0, wait_timeout=60, **key)},
    ], env=env)
    assert r.rc == 0, r
    pod, node = r["pod"]["instance"], r["fleet"]["instances"][0]
    kh_pod = home / ".cache" / "gpuops" / ("known_hosts-%s" % rp)
    kh_fleet = home / ".cache" / "gpuops" / ("known_hosts-%s" % fleet)
    assert known(kh_pod, pod) and known(kh_fleet, node)
    # destroyed by name only: no known_hosts_file, no run_id
    r = play([
        {"name": "destroy pod", "gpu.ops.runpod_instance": {"name": rp, "state": "absent"}},
        {"name": "destroy fleet", "gpu.ops.gpu_instance": {"name_prefix": fleet, "state": "absent"}},
    ], env=env)
    assert r.rc == 0, r
    assert r["destroy pod"]["changed"] and r["destroy fleet"]["changed"]
    assert not known(kh_pod, pod) and not known(kh_fleet, node)
    assert not live(sim, rp) and not live(sim, fleet)
