# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Key checks before money is spent, banner probes against real sockets, and the readiness loop."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading

import pytest

from ansible_collections.gpu.ops.plugins.module_utils import ssh as sshu
from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError, Instance

PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH3ryOjE0l8Qq9cJzQ8vQnYkJ8a6xg1oT1M8C4sOk2xE test@host"
PRIV = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def write(path, text, mode):
    path.write_text(text)
    os.chmod(str(path), mode)
    return str(path)


def test_private_key_checks(tmp_path):
    good = write(tmp_path / "id", PRIV, 0o600)
    assert sshu.check_private_key(good) == good
    with pytest.raises(ConfigError, match="does not exist"):
        sshu.check_private_key(str(tmp_path / "nope"))
    loose = write(tmp_path / "loose", PRIV, 0o644)
    with pytest.raises(ConfigError, match="accessible by group or others .mode 0644.*chmod 600"):
        sshu.check_private_key(loose)
    notkey = write(tmp_path / "notkey", "hello", 0o600)
    with pytest.raises(ConfigError, match="does not look like"):
        sshu.check_private_key(notkey)
    if os.getuid() != 0:  # root reads anything
        unreadable = write(tmp_path / "unreadable", PRIV, 0o000)
        with pytest.raises(ConfigError, match="not readable"):
            sshu.check_private_key(unreadable)


def keygen(path, passphrase, fmt=None):
    kind = ["-t", "rsa", "-b", "2048", "-m", fmt] if fmt else ["-t", "ed25519"]
    cmd = ["ssh-keygen", "-q"] + kind + ["-N", passphrase, "-C", "t", "-f", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return str(path)


@pytest.fixture
def agent(tmp_path, monkeypatch):
    """A real ssh-agent for this test (SSH_AUTH_SOCK points at it); ``agent.add(key, passphrase)``."""
    if not shutil.which("ssh-agent"):
        pytest.skip("ssh-agent is not installed")
    sock = str(tmp_path / "agent.sock")
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _i in range(200):
        if os.path.exists(sock):
            break
        threading.Event().wait(0.01)
    monkeypatch.setenv("SSH_AUTH_SOCK", sock)

    class Agent:
        def add(self, key, passphrase):
            askpass = tmp_path / "askpass.sh"
            askpass.write_text("#!/bin/sh\necho '%s'\n" % passphrase)
            os.chmod(str(askpass), 0o700)
            env = dict(os.environ, SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
            subprocess.run(["ssh-add", key], check=True, capture_output=True, env=env, stdin=subprocess.DEVNULL)
    yield Agent()
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


@pytest.mark.parametrize("fmt", [None, "PEM"])
def test_a_key_with_a_passphrase_and_no_agent_is_refused_before_renting(tmp_path, monkeypatch, fmt):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    locked = keygen(tmp_path / "locked", "s3cret", fmt)
    with pytest.raises(ConfigError, match="protected by a passphrase and no ssh-agent is running.*ssh-add"):
        sshu.check_private_key(locked)
    plain = keygen(tmp_path / "plain", "", fmt)
    assert sshu.check_private_key(plain) == plain


def test_a_key_with_a_passphrase_is_accepted_when_the_agent_holds_it(tmp_path, agent):
    locked = keygen(tmp_path / "locked", "s3cret")
    other = keygen(tmp_path / "other", "")
    agent.add(other, "")
    with pytest.raises(ConfigError, match="the ssh-agent at SSH_AUTH_SOCK does not hold it"):
        sshu.check_private_key(locked)
    agent.add(locked, "s3cret")
    assert sshu.check_private_key(locked) == locked
    pem = keygen(tmp_path / "pem", "s3cret", "PEM")  # PEM: the public key comes from the .pub file
    agent.add(pem, "s3cret")
    assert sshu.check_private_key(pem) == pem
    os.unlink(pem + ".pub")
    with pytest.raises(ConfigError, match="its public key is unknown"):
        sshu.check_private_key(pem)


def test_public_key_sources(tmp_path):
    assert sshu.load_public_key(public_key=PUB + "\n") == PUB
    pubfile = write(tmp_path / "k.pub", PUB + "\n", 0o644)
    assert sshu.load_public_key(public_key_file=pubfile) == PUB
    priv = write(tmp_path / "k", PRIV, 0o600)
    assert sshu.load_public_key(private_key_file=priv) == PUB
    with pytest.raises(ConfigError, match="ssh_public_key_file .* does not exist"):
        sshu.load_public_key(public_key_file=str(tmp_path / "missing.pub"))
    with pytest.raises(ConfigError, match="not an OpenSSH public key"):
        sshu.load_public_key(public_key="hello world")
    with pytest.raises(ConfigError, match="holds a private key"):
        sshu.load_public_key(public_key_file=priv)
    with pytest.raises(ConfigError, match="no SSH public key"):
        sshu.load_public_key()


class Listener:
    """A TCP server on loopback that answers every connection with ``greeting`` (or stays silent)."""

    def __init__(self, greeting=None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.greeting = greeting
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _addr = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.greeting:
                c.sendall(self.greeting)

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_banner_probe():
    good = Listener(b"SSH-2.0-OpenSSH_9.6\r\n")
    silent = Listener(None)
    try:
        assert sshu.probe_banner("127.0.0.1", good.port, 1.0) == (True, "SSH-2.0-OpenSSH_9.6")
        ok, why = sshu.probe_banner("127.0.0.1", silent.port, 0.3)
        assert not ok and "timed out" in why
        ok, why = sshu.probe_banner("127.0.0.1", free_port(), 0.3)
        assert not ok and "TCP connect failed" in why
    finally:
        good.close()
        silent.close()


class FakeCloud:
    """An instance whose API status follows a script, one entry per poll (the last repeats)."""

    def __init__(self, script):
        self.script = list(script)
        self.polls = 0

    def get(self, iid):
        self.polls += 1
        state = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if state is None:
            return None
        status, host, port = state
        return Instance(id=iid, name="n", provider="runpod", status=status, provider_status=status.upper(),
                        ssh_host=host, ssh_port=port, ssh_user="root")


def ssh_opts(runs, rc=0):
    def run(argv):
        runs.append(argv)
        return rc, "", "" if rc == 0 else "Permission denied (publickey)."
    return {"private_key": "/k", "known_hosts": "/kh", "check_login": True, "run": run}


def test_waiter_goes_from_pending_to_ssh_ready():
    srv = Listener(b"SSH-2.0-OpenSSH_9.6\r\n")
    try:
        cloud = FakeCloud([("pending", None, None), ("pending", None, None), ("running", "127.0.0.1", srv.port)])
        runs = []
        t = sshu.Target("k", cloud.get, Instance(id="i1", name="n", provider="runpod", status="pending"))
        sshu.Waiter(10, poll_interval=0.05, ssh=ssh_opts(runs)).wait([t])
        assert t.ready and t.ready_at and t.api_polls == 3 and t.probes == 1
        assert runs and runs[0][0] == "ssh" and "root@127.0.0.1" in runs[0] and "-i" in runs[0]
        assert "UserKnownHostsFile=/kh" in runs[0] and "StrictHostKeyChecking=accept-new" in runs[0]
        assert [e["event"] for e in t.events][-1] == "SSH ready"
    finally:
        srv.close()


def test_waiter_times_out_with_the_last_probe_error():
    silent = Listener(None)  # port mapped, TCP accepts, no SSH banner
    try:
        cloud = FakeCloud([("running", "127.0.0.1", silent.port)])
        t = sshu.Target("k", cloud.get, Instance(id="i1", name="n", provider="runpod", status="pending"))
        sshu.Waiter(1.0, poll_interval=0.2, ssh=ssh_opts([])).wait([t])
        assert not t.ready and t.fatal is None
        msg = sshu.describe_failure(t, 1)
        assert "not reachable over SSH within 1s" in msg and "stuck in state running (RUNNING)" in msg
        assert "timed out" in msg and str(silent.port) in msg
        assert t.api_polls <= 3  # the API is not hammered while SSH is the problem
    finally:
        silent.close()


def test_waiter_fails_fast_on_error_and_vanished_instances():
    t1 = sshu.Target("a", FakeCloud([("error", None, None)]).get, Instance(id="a", status="pending"))
    t2 = sshu.Target("b", FakeCloud([None]).get, Instance(id="b", status="pending"))
    w = sshu.Waiter(30, poll_interval=0.05, ssh=ssh_opts([]))
    w.wait([t1, t2])
    assert t1.fatal.startswith("the API reports it error") and t2.fatal.startswith("it no longer exists")
    assert "failed while waiting" in sshu.describe_failure(t1, 30)


def test_waiter_tolerates_stopped_only_within_the_grace():
    cloud = FakeCloud([("stopped", None, None)])
    t = sshu.Target("a", cloud.get, Instance(id="a", status="stopped"), stopped_grace=0.3)
    sshu.Waiter(5, poll_interval=0.05, ssh=ssh_opts([])).wait([t])
    assert t.fatal and "stopped" in t.fatal and cloud.polls > 1


def test_login_failure_is_reported():
    srv = Listener(b"SSH-2.0-OpenSSH_9.6\r\n")
    try:
        t = sshu.Target("a", FakeCloud([("running", "127.0.0.1", srv.port)]).get, Instance(id="a", status="pending"))
        sshu.Waiter(0.6, poll_interval=0.1, ssh=ssh_opts([], rc=255)).wait([t])
        assert not t.ready and "Permission denied (publickey)." in t.last_error
    finally:
        srv.close()


def test_many_instances_of_one_provider_are_refreshed_with_one_listing():
    srv = Listener(b"SSH-2.0-OpenSSH_9.6\r\n")
    try:
        rounds = {"n": 0}

        def lister():
            rounds["n"] += 1
            status = "running" if rounds["n"] >= 3 else "pending"
            return [Instance(id=i, name=i, provider="vast", status=status, ssh_user="root",
                             ssh_host="127.0.0.1" if status == "running" else None,
                             ssh_port=srv.port if status == "running" else None) for i in ("a", "b", "c")]

        def get(iid):
            raise AssertionError("no single GET while a listing serves every target")

        targets = [sshu.Target(i, get, Instance(id=i, status="pending"), lister=lister) for i in ("a", "b", "c")]
        w = sshu.Waiter(10, poll_interval=0.05, ssh=ssh_opts([]))
        w.wait(targets)
        assert all(t.ready for t in targets)
        assert w.api_calls == rounds["n"] == 3
    finally:
        srv.close()


class FakeClock:
    """Virtual time: sleeping advances it, so long deadlines are tested without waiting."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_a_rejected_key_fails_fast_instead_of_waiting_out_the_timeout():
    srv = Listener(b"SSH-2.0-OpenSSH_9.6\r\n")
    try:
        clock = FakeClock()
        t = sshu.Target("a", FakeCloud([("running", "127.0.0.1", srv.port)]).get, Instance(id="a", status="pending"))
        sshu.Waiter(600, poll_interval=1.5, ssh=ssh_opts([], rc=255), clock=clock, sleep=clock.sleep).wait([t])
        assert not t.ready and "keeps rejecting the login" in t.fatal
        assert 60 <= clock.now - 1000.0 < 70  # AUTH_GRACE, not the 600 s timeout
        assert "Permission denied (publickey)." in sshu.describe_failure(t, 600)
    finally:
        srv.close()


def test_a_pod_running_without_a_public_ssh_mapping_is_given_up_after_the_grace():
    # RunPod v2 has no supportPublicIp: a pod on a host without a public IP runs but never gets ssh.direct
    clock = FakeClock()
    t = sshu.Target("a", FakeCloud([("pending", None, None), ("running", None, None)]).get,
                    Instance(id="a", provider="runpod", status="pending"))
    w = sshu.Waiter(600, poll_interval=1.5, ssh=ssh_opts([]), clock=clock, sleep=clock.sleep, quotas=False)
    w.wait([t])
    assert not t.ready and t.category == "no_public_ssh" and "no public IP" in t.fatal
    assert sshu.NO_MAPPING_GRACE <= clock.now - 1000.0 < sshu.NO_MAPPING_GRACE + 5  # not the 600 s timeout
    assert sshu.wait_report(t)["category"] == "no_public_ssh"


def _polls_in_a_minute(provider, addr=None, quotas=True):
    clock = FakeClock()
    polls = []

    def get(iid):
        polls.append(clock.now)
        host, port = addr or (None, None)
        return Instance(id=iid, name="n", provider=provider, status="running" if addr else "pending",
                        ssh_host=host, ssh_port=port, ssh_user="root")
    t = sshu.Target("a", get, Instance(id="a", provider=provider, status="pending"))
    w = sshu.Waiter(60, poll_interval=1.5, ssh=ssh_opts([]), clock=clock, sleep=clock.sleep, quotas=quotas)
    w.wait([t])
    return polls, t


@pytest.mark.parametrize("provider,most", [("runpod", 32), ("vast", 7)])
def test_api_polls_keep_within_the_vendor_budget(provider, most):
    # RunPod: 60 requests/min per user (several waiting processes share it); Vast: one poll per ~10 s per instance
    polls, _t = _polls_in_a_minute(provider)
    assert 2 <= len(polls) <= most, polls
    if provider == "vast":
        assert min(b - a for a, b in zip(polls, polls[1:])) >= 10.0
    fast, _t = _polls_in_a_minute(provider, quotas=False)  # GPUOPS_API_QUOTAS=off: the module's poll_interval
    assert len(fast) > len(polls)


def test_once_the_address_is_known_probes_run_fast_and_the_api_is_rarely_asked():
    s = socket.socket()  # the port is mapped but sshd does not listen yet: connections are refused
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    polls, t = _polls_in_a_minute("runpod", addr=("127.0.0.1", port))
    assert t.probes >= 60 / sshu.PROBE_INTERVAL - 5  # about every PROBE_INTERVAL
    assert len(polls) <= 60 / sshu.Waiter.API_RECHECK + 1


class PullingCloud:
    """A pod that the API reports pulling for ``pull_s`` virtual seconds (RunPod: RUNNING without a runtime),
    then running with an address."""

    def __init__(self, clock, pull_s, addr):
        self.clock, self.until, self.addr = clock, clock.now + pull_s, addr

    def get(self, iid):
        pulling = self.clock.now < self.until
        host, port = (None, None) if pulling else self.addr
        return Instance(id=iid, name="n", provider="runpod", status="running", provider_status="RUNNING",
                        ssh_host=host, ssh_port=port, ssh_user="root", pulling=pulling,
                        status_message="pulling the image" if pulling else None)


def test_a_pull_longer_than_wait_timeout_is_waited_for_and_not_taken_for_a_missing_public_ip():
    srv = Listener(b"SSH-2.0-OpenSSH_9.6\r\n")
    try:
        clock = FakeClock()
        cloud = PullingCloud(clock, 200.0, ("127.0.0.1", srv.port))  # beyond NO_MAPPING_GRACE and wait_timeout
        t = sshu.Target("a", cloud.get, Instance(id="a", provider="runpod", status="pending"))
        sshu.Waiter(30, poll_interval=1.5, ssh=ssh_opts([]), clock=clock, sleep=clock.sleep, quotas=False).wait([t])
        assert t.ready and t.category is None, (t.fatal, t.last_error)
        events = [e["event"] for e in t.events]
        assert any(e.startswith("pulling the image") for e in events) and any("still pulling" in e for e in events)
        assert any(e.startswith("image pulled after 2") for e in events), events
        assert sshu.wait_report(t)["pull_seconds"] >= 199
    finally:
        srv.close()


def test_a_pull_past_pull_timeout_fails_naming_the_pull():
    clock = FakeClock()
    cloud = PullingCloud(clock, 10_000.0, ("127.0.0.1", 1))
    t = sshu.Target("a", cloud.get, Instance(id="a", provider="runpod", status="pending"))
    sshu.Waiter(30, poll_interval=1.5, ssh=ssh_opts([]), clock=clock, sleep=clock.sleep, quotas=False,
                pull_timeout=120).wait([t])
    assert not t.ready and "pulling for" in t.fatal and "pull_timeout (120s)" in t.fatal
    assert 120 <= clock.now - 1000.0 < 130


def test_without_a_pull_wait_timeout_still_bounds_the_wait():
    clock = FakeClock()
    t = sshu.Target("a", FakeCloud([("pending", None, None)]).get, Instance(id="a", provider="runpod",
                                                                            status="pending"))
    sshu.Waiter(30, poll_interval=1.5, ssh=ssh_opts([]), clock=clock, sleep=clock.sleep, quotas=False).wait([t])
    assert not t.ready and t.fatal is None and 30 <= clock.now - 1000.0 < 33
