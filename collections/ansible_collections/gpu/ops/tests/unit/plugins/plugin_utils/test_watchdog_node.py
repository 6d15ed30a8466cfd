# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the watchdog node helper: its decisions, its view of jobs, its clock and credentials, and the
action plugin's date and duration parsing. The daemon end to end runs against the simulator (tests/watchdog)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.gpu.ops.plugins.action.node_watchdog import ActionModule, epoch, seconds
from ansible_collections.gpu.ops.plugins.module_utils.runpod import RunPodProvider
from ansible_collections.gpu.ops.plugins.module_utils.vast import VastProvider
from ansible_collections.gpu.ops.plugins.plugin_utils import _watchdog_node as wd

CFG = {"provider": "vast", "started_at": 1000.0}


@pytest.mark.parametrize("cfg,t,last,reason", [
    ({"expires_at": 2000.0}, 1999.0, 1999.0, None),
    ({"expires_at": 2000.0}, 2000.0, 1999.0, "expired"),
    ({"idle_timeout": 600}, 1599.0, 1000.0, None),
    ({"idle_timeout": 600}, 1600.0, 1000.0, "idle"),
    ({"price_per_hour": 3.6, "max_cost": 1.0}, 1999.0, 1999.0, None),  # $0.999
    ({"price_per_hour": 3.6, "max_cost": 1.0}, 2000.0, 1999.0, "budget"),
    ({"price_per_hour": 3.6}, 10 ** 9, 10 ** 9, None),  # no budget set
    ({"expires_at": 2000.0, "idle_timeout": 60}, 2500.0, 1000.0, "expired"),  # expiry is named first
])
def test_decide(cfg, t, last, reason):
    got, details = wd.decide(dict(CFG, **cfg), t, last)
    assert got == reason, details


def test_budget_details_show_the_spend():
    _reason, details = wd.decide(dict(CFG, price_per_hour=2.0, max_cost=5.0), 1000.0 + 1800, 1000.0)
    assert details["spent_usd"] == 1.0


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The helper's paths under a scratch home (the helper reads ~/.bifrost)."""
    root = tmp_path / ".bifrost"
    for name, value in {"ROOT": root, "JOBS": root / "jobs", "WD_DIR": root / "watchdog",
                        "HEARTBEAT": root / "heartbeat", "LOG": root / "watchdog" / "watchdog.log"}.items():
        monkeypatch.setattr(wd, name, str(value))
    return root


def _job(root, name, status, pid=None, bootstrap_pid=None, bootstrap_done=True):
    d = root / "jobs" / name
    d.mkdir(parents=True)
    if status:
        (d / "status").write_text(status + "\n")
    if pid:
        (d / "pid").write_text("%d\n" % pid)
    if bootstrap_pid:
        (d / "bootstrap.pid").write_text("%d\n" % bootstrap_pid)
    if bootstrap_done:
        (d / "bootstrap_done").write_text("{}\n")


def test_jobs_active_only_with_a_live_runner(home):
    _job(home, "a-running", "running", pid=os.getpid())
    _job(home, "b-lost", "running", pid=2 ** 22 + 7)  # no such process: the runner died, the job is not running
    _job(home, "c-done", "succeeded", pid=os.getpid())
    _job(home, "d-bootstrapping", None, bootstrap_pid=os.getpid(), bootstrap_done=False)
    assert wd.jobs() == [("a-running", str(home / "jobs" / "a-running"), True),
                         ("b-lost", str(home / "jobs" / "b-lost"), False),
                         ("c-done", str(home / "jobs" / "c-done"), False),
                         ("d-bootstrapping", str(home / "jobs" / "d-bootstrapping"), True)]


def test_clock_offset_file(tmp_path, monkeypatch):
    offset = tmp_path / "clock"
    offset.write_text("3600.5\n")
    monkeypatch.setenv("GPUOPS_CLOCK_OFFSET_FILE", str(offset))
    assert abs(wd.now() - (wd.time.time() + 3600.5)) < 5
    monkeypatch.delenv("GPUOPS_CLOCK_OFFSET_FILE")
    assert abs(wd.now() - wd.time.time()) < 5


def test_credentials_are_the_instance_key_never_the_account_key(monkeypatch):
    for var in ("CONTAINER_API_KEY", "CONTAINER_ID", "VAST_API_URL", "RUNPOD_POD_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VAST_API_KEY", "account-key")  # the user's key is not what the watchdog uses
    monkeypatch.setenv("RUNPOD_API_KEY", "pod-key")
    monkeypatch.setattr(wd, "_proc1_env", lambda: {})
    vast, runpod = VastProvider.instance_credential, RunPodProvider.instance_credential  # as the controller sends them
    key, iid, url, why = wd.credential(vast)
    assert key is None and "CONTAINER_API_KEY" in why and url == "https://console.vast.ai"
    assert wd.credential(runpod)[0] is None  # a key without the pod id is not enough
    monkeypatch.setattr(wd, "_proc1_env", lambda: {"CONTAINER_API_KEY": "k", "CONTAINER_ID": "42"})
    assert wd.credential(vast) == ("k", "42", "https://console.vast.ai", "/proc/1/environ")
    assert wd.credential(wd.recipe_of({"provider": "vast"}))[0] is None  # no recipe sent: nothing to destroy with


def test_the_controller_sends_the_providers_self_destroy_recipe():
    args = {"state": "present", "provider": "vast", "instance_id": "42", "run_id": None, "expires_at": None,
            "idle_timeout": 1800, "max_cost": None, "price_per_hour": None, "started_at": None, "interval": 15.0,
            "stop_grace": 30.0}
    command, payload = ActionModule._payload(args)
    assert command == "arm" and wd.recipe_of(payload) == VastProvider.instance_credential


@pytest.mark.parametrize("value,want", [
    (1796130000, 1796130000.0), ("1796130000", 1796130000.0), ("2026-12-01T18:00:00Z", 1796148000.0),
    ("2026-12-01T19:00:00+01:00", 1796148000.0), ("2026-12-01T18:00:00", 1796148000.0), ("", None), (None, None),
])
def test_epoch(value, want):
    assert epoch(value, "expires_at") == want


@pytest.mark.parametrize("value,want", [(90, 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1.5d", 129600.0),
                                        (0, None), ("0", None), ("", None)])
def test_seconds(value, want):
    assert seconds(value, "idle_timeout") == want


@pytest.mark.parametrize("bad", [("expires_at", "tomorrow"), ("idle_timeout", "soon")])
def test_bad_times_fail_with_the_option_name(bad):
    args = {"state": "present", "provider": "vast", "instance_id": None, "run_id": None, "expires_at": None,
            "idle_timeout": 1800, "max_cost": None, "price_per_hour": None, "started_at": None, "interval": 15.0,
            "stop_grace": 30.0}
    args[bad[0]] = bad[1]
    with pytest.raises(ValueError, match=bad[0]):
        ActionModule._payload(args)


def test_budget_needs_a_price():
    args = {"state": "present", "provider": "runpod", "instance_id": None, "run_id": None, "expires_at": None,
            "idle_timeout": 0, "max_cost": 5.0, "price_per_hour": None, "started_at": None, "interval": 15.0,
            "stop_grace": 30.0}
    with pytest.raises(ValueError, match="price_per_hour"):
        ActionModule._payload(args)
