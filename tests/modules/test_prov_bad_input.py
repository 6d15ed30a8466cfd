"""Bad input gets a clear message before any money is spent: the simulator's request recording shows
that no create call was made. One playbook, one task per mistake."""

from __future__ import annotations

import os

from provtools import live


def test_bad_input_is_refused_before_any_create(play, sim, sim_env, ssh_vars, uid, tmp_path, cleanup, recorder):
    name = "bad-%s" % uid
    cleanup(name)
    loose = tmp_path / "loose_key"
    loose.write_text(open(ssh_vars["ssh_private_key_file"]).read())
    os.chmod(loose, 0o644)
    rp = dict(name=name, gpu_type="RTX 4090", image="img", **ssh_vars)
    vast = dict(name=name, gpu=["4090"], image="img", **ssh_vars)
    cases = {
        "wrong runpod key": ("gpu.ops.runpod_instance", dict(rp, runpod_api_key="rpa_wrong_key_123456")),
        "wrong vast key": ("gpu.ops.vast_instance", dict(vast, vast_api_key="vast_wrong_key_123456")),
        "missing runpod key": ("gpu.ops.runpod_instance", dict(rp, runpod_api_key="")),
        "unknown gpu type": ("gpu.ops.runpod_instance", dict(rp, gpu_type="RTX 4909")),
        "ambiguous gpu type": ("gpu.ops.runpod_instance", dict(rp, gpu_type="RTX")),
        "unknown gpu model": ("gpu.ops.gpu_instance", dict(name_prefix=name, gpu=["H200"], image="img", **ssh_vars)),
        "image missing": ("gpu.ops.runpod_instance", dict(rp, image=None)),
        "price below every offer": ("gpu.ops.vast_instance", dict(vast, max_price_per_hour=0.05)),
        "fleet price below every offer": ("gpu.ops.gpu_instance", dict(name_prefix=name, gpu=["4090"], image="img",
                                                                       max_price_per_hour=0.05, **ssh_vars)),
        "world-readable private key": ("gpu.ops.runpod_instance", dict(rp, ssh_private_key_file=str(loose))),
        "missing private key": ("gpu.ops.vast_instance", dict(vast, ssh_private_key_file=str(tmp_path / "nokey"))),
        "public key file missing": ("gpu.ops.runpod_instance", dict(rp, ssh_public_key_file=str(tmp_path / "no.pub"))),
        "wait_timeout zero": ("gpu.ops.runpod_instance", dict(rp, wait_timeout=0)),
        "conflicting key options": ("gpu.ops.vast_instance", dict(vast, ssh_public_key="ssh-ed25519 AAAA x",
                                                                  ssh_public_key_file="/x.pub")),
        "conflicting offer options": ("gpu.ops.vast_instance", dict(vast, offer_id=4200000)),
        "gpu count above the maximum": ("gpu.ops.runpod_instance", dict(rp, gpu_count=64)),
        "stop what does not exist": ("gpu.ops.runpod_instance", {"name": name, "state": "stopped"}),
    }
    tasks = [{"name": k, mod: {a: v for a, v in args.items() if v is not None}, "ignore_errors": True}
             for k, (mod, args) in cases.items()]
    r = play(tasks)
    assert r.rc == 0, r
    msgs = {k: r[k].get("msg", "") for k in cases}
    assert all(r[k].get("failed") for k in cases), {k: v for k, v in msgs.items() if not r[k].get("failed")}

    expect = {
        "wrong runpod key": "RunPod API key rejected (HTTP 401",
        "wrong vast key": "Vast API key rejected (HTTP 401",
        "missing runpod key": "no RunPod API key: set runpod_api_key or the RUNPOD_API_KEY environment variable",
        "unknown gpu type": "unknown RunPod GPU type 'RTX 4909'; close matches: 'NVIDIA GeForce RTX 4090'",
        "ambiguous gpu type": "is ambiguous on RunPod",
        "unknown gpu model": "unknown GPU model 'H200' on runpod/vast; close matches:",
        "image missing": "image is required to create RunPod pod '%s'" % name,
        "price below every offer": "the cheapest match costs",
        "fleet price below every offer": "above max_price_per_hour 0.050",
        "world-readable private key": "accessible by group or others (mode 0644); ssh refuses such keys: run chmod 600",
        "missing private key": "ssh_private_key_file %s does not exist" % (tmp_path / "nokey"),
        "public key file missing": "ssh_public_key_file %s does not exist" % (tmp_path / "no.pub"),
        "wait_timeout zero": "wait_timeout must be greater than 0 seconds (got 0)",
        "conflicting key options": "parameters are mutually exclusive: ssh_public_key|ssh_public_key_file",
        "conflicting offer options": "parameters are mutually exclusive: offer_id|gpu",
        "gpu count above the maximum": "at most 8 GPUs (gpu_count=64)",
        "stop what does not exist": "does not exist; state=stopped does not create instances",
    }
    for k, needle in expect.items():
        assert needle in msgs[k], (k, msgs[k])
    assert "H100" in msgs["unknown gpu model"]
    # the API keys never show up, not even the wrong ones
    blob = repr(r.doc)
    for secret in (sim_env["RUNPOD_API_KEY"], sim_env["VAST_API_KEY"], "rpa_wrong_key_123456", "vast_wrong_key_123456"):
        assert secret not in blob
    assert recorder.creates() == []
    assert not live(sim, name)
