"""runpod_instance and vast_instance through ansible-playbook against the simulator: check mode, create,
idempotent rerun, stop, start, destroy, absent again; SSH really works (Ansible logs in with the
connection facts the module returns); the ledger shows nothing left behind."""

from __future__ import annotations

import pytest

from provtools import ledger_rows, live


def lifecycle_tasks(module, name, create_args, ssh_vars, full=True):
    base = dict(name=name, **ssh_vars)
    tasks = [
        {"name": "create (check mode)", module: dict(base, **create_args), "check_mode": True, "register": "r"},
        {"name": "create", module: dict(base, wait_timeout=60, **create_args), "register": "created"},
        {"name": "create again", module: dict(base, **create_args)},
        {"name": "reach it", "ansible.builtin.add_host": {
            "name": "node", "groups": "nodes",
            "ansible_host": "{{ created.instance.connection.ansible_host }}",
            "ansible_port": "{{ created.instance.connection.ansible_port }}",
            "ansible_user": "{{ created.instance.connection.ansible_user }}",
            "ansible_ssh_private_key_file": "{{ created.instance.connection.ansible_ssh_private_key_file }}",
            "ansible_ssh_common_args": "{{ created.instance.connection.ansible_ssh_common_args }}"}},
        {"name": "run on it", "ansible.builtin.raw": "echo up-$(whoami)", "delegate_to": "node",
         "changed_when": False},
        {"name": "stop (check mode)", module: dict(base, state="stopped"), "check_mode": True},
        {"name": "stop", module: dict(base, state="stopped")},
        {"name": "stop again", module: dict(base, state="stopped")},
        {"name": "start", module: dict(base, state="started")},
        {"name": "destroy as another run", module: dict(base, state="absent", run_id="other-run")},
        {"name": "destroy (check mode)", module: dict(base, state="absent"), "check_mode": True},
        {"name": "destroy", module: dict(base, state="absent")},
        {"name": "destroy again", module: dict(base, state="absent")},
    ]
    if not full:  # check mode of stop/destroy and stop-again are provider-neutral code: covered once
        tasks = [t for t in tasks if t["name"] not in ("stop (check mode)", "destroy (check mode)", "stop again")]
    return tasks


CASES = {
    "runpod": ("gpu.ops.runpod_instance", {"gpu_type": "RTX 4090", "image": "runpod/pytorch:2.4.0-py3.11-cuda12.4.1",
                                            "run_id": "lc-run", "owner": "tester", "ttl": "2h"}),
    "vast": ("gpu.ops.vast_instance", {"gpu": ["4090"], "max_price_per_hour": 1.0, "image": "vastai/base-image:cuda-12.4",
                                        "run_id": "lc-run", "owner": "tester", "ttl": "2h"}),
}


@pytest.mark.parametrize("provider", ["runpod", "vast"])
def test_lifecycle(play, sim, ssh_vars, uid, cleanup, recorder, provider):
    module, create_args = CASES[provider]
    name = "lc-%s-%s" % (provider[:2], uid)
    cleanup(name)
    full = provider == "runpod"
    r = play(lifecycle_tasks(module, name, create_args, ssh_vars, full=full))
    assert r.rc == 0, r

    check = r["create (check mode)"]
    assert check["changed"] is True and check["instance"] is None and "would create" in check["msg"]

    created = r["create"]
    inst = created["instance"]
    assert created["changed"] is True and created["created"] is True
    assert inst["status"] == "running" and inst["provider"] == provider and inst["name"] == name
    assert inst["gpu_model"] == "RTX 4090" and inst["ssh_port"] and inst["ssh_host"].startswith("127.")
    assert inst["labels"]["run_id"] == "lc-run" and inst["labels"]["owner"] == "tester"
    assert inst["labels"]["expires_at"].endswith("Z")
    assert inst["wait"]["ready"] is True and inst["wait"]["events"][-1]["event"] == "SSH ready"

    again = r["create again"]
    assert again["changed"] is False and again["instance"]["id"] == inst["id"]
    assert "up-" in r["run on it"]["stdout"]

    assert r["stop"]["changed"] is True and r["stop"]["instance"]["status"] == "stopped"
    if full:
        assert r["stop (check mode)"]["changed"] is True
        assert r["stop again"]["changed"] is False
    # the same name labelled for another run is not this task's to destroy
    other = r["destroy as another run"]
    assert other["changed"] is False and other["destroyed"] == [] and other["instance"] is None
    assert other["kept"] == [{"id": inst["id"], "name": name, "run_id": "lc-run", "owner": "tester"}]
    started = r["start"]
    assert started["changed"] is True and started["instance"]["status"] == "running"
    assert started["instance"]["id"] == inst["id"] and started["instance"]["wait"]["ready"] is True

    if full:
        assert r["destroy (check mode)"]["changed"] is True
    assert r["destroy"]["changed"] is True and r["destroy"]["destroyed"] == [inst["id"]]
    assert r["destroy again"]["changed"] is False

    # exactly one instance was ever created (check mode created nothing), and it is gone
    assert len(recorder.creates()) == 1
    rows = ledger_rows(sim, name)
    assert [row["state"] for row in rows] == ["terminated"]
    assert not live(sim, name)
