# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SSH keys and readiness: key checks before money is spent, and waiting until SSH really works.

PRIVATE to the collection: the API may change between releases.

Readiness is: the API reports the instance running with a direct SSH endpoint, then a TCP connect,
an ``SSH-`` banner and a real ``ssh ... true`` with the user's key and a per-run known_hosts file.
Polls start at 0.1 s and back off (x1.5) to ``poll_interval``; there is no fixed sleep anywhere.
Several instances are waited for together in one loop, so N nodes take as long as the slowest.

Commands (``ssh``, ``ssh-keygen``) run through an injected ``run(argv) -> (rc, stdout, stderr)``,
``AnsibleModule.run_command`` in modules.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import socket
import stat
import struct
import time

from ansible_collections.gpu.ops.plugins.module_utils import registry
from ansible_collections.gpu.ops.plugins.module_utils.http_client import quotas_enabled
from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError

PUBKEY_RE = re.compile(r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)"
                       r"@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$")
MAX_KEY_BYTES = 64 * 1024
_NOTHING = object()


# ---------------------------------------------------------------------------- keys
def check_private_key(path):
    """Raise ConfigError unless ``path`` is a private key ssh will use (exists, readable, 0600-ish, sane)."""
    path = os.path.expanduser(str(path))
    if not os.path.exists(path):
        raise ConfigError("ssh_private_key_file %s does not exist" % path)
    if not os.path.isfile(path):
        raise ConfigError("ssh_private_key_file %s is not a regular file" % path)
    st = os.stat(path)
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise ConfigError("ssh_private_key_file %s is accessible by group or others (mode %04o); ssh refuses such "
                          "keys: run chmod 600 %s" % (path, mode, path))
    try:
        with open(path, "rb") as fh:
            head = fh.read(MAX_KEY_BYTES + 1)
    except OSError as e:
        raise ConfigError("ssh_private_key_file %s is not readable: %s" % (path, e.strerror)) from None
    if len(head) > MAX_KEY_BYTES:
        raise ConfigError("ssh_private_key_file %s is larger than %d bytes; that is not an SSH private key" % (
            path, MAX_KEY_BYTES))
    if b"PRIVATE KEY-----" not in head:
        raise ConfigError("ssh_private_key_file %s does not look like a PEM/OpenSSH private key" % path)
    check_key_unlocked(path, head)
    return path


# ---------------------------------------------------------------------------- passphrases and the agent
OPENSSH_MAGIC = b"openssh-key-v1\x00"


def _ssh_string(buf, pos):
    """(bytes, next position) of one SSH wire-format string at ``pos``; ValueError when truncated."""
    if pos + 4 > len(buf):
        raise ValueError("truncated")
    n = struct.unpack(">I", buf[pos:pos + 4])[0]
    if pos + 4 + n > len(buf):
        raise ValueError("truncated")
    return buf[pos + 4:pos + 4 + n], pos + 4 + n


def private_key_info(head):
    """(encrypted, public key blob or None) from the text of a private key file.

    OpenSSH keys carry their cipher name and public key in clear; PEM keys say ``Proc-Type: 4,ENCRYPTED``
    or are PKCS#8 ``ENCRYPTED PRIVATE KEY`` blocks (their public key is only in the .pub file)."""
    text = head.decode("ascii", "replace")
    if "BEGIN OPENSSH PRIVATE KEY" in text:
        body = text.split("-----BEGIN OPENSSH PRIVATE KEY-----", 1)[1].split("-----END", 1)[0]
        try:
            raw = base64.b64decode("".join(body.split()))
            if not raw.startswith(OPENSSH_MAGIC):
                return False, None
            cipher, pos = _ssh_string(raw, len(OPENSSH_MAGIC))
            _kdf, pos = _ssh_string(raw, pos)
            _kdfopts, pos = _ssh_string(raw, pos)
            pos += 4  # number of keys
            blob, pos = _ssh_string(raw, pos)
        except (ValueError, TypeError, binascii.Error):
            return False, None
        return cipher != b"none", blob
    encrypted = "ENCRYPTED PRIVATE KEY" in text or "Proc-Type: 4,ENCRYPTED" in text
    return encrypted, None


def agent_key_blobs(sock_path=None, timeout=2.0):
    """Public key blobs the ssh-agent at ``SSH_AUTH_SOCK`` holds (as ``ssh-add -L`` lists them); [] without
    an agent. Speaks the agent protocol (REQUEST_IDENTITIES) directly, so no ``ssh-add`` is needed."""
    sock_path = sock_path or os.environ.get("SSH_AUTH_SOCK")
    if not sock_path or not hasattr(socket, "AF_UNIX"):
        return []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(sock_path)
            s.sendall(struct.pack(">IB", 1, 11))  # SSH2_AGENTC_REQUEST_IDENTITIES
            head = _recv_exact(s, 4)
            msg = _recv_exact(s, struct.unpack(">I", head)[0])
    except (OSError, ValueError, struct.error):
        return []
    if not msg or msg[0] != 12:  # SSH2_AGENT_IDENTITIES_ANSWER
        return []
    blobs = []
    try:
        count = struct.unpack(">I", msg[1:5])[0]
        pos = 5
        for _i in range(count):
            blob, pos = _ssh_string(msg, pos)
            _comment, pos = _ssh_string(msg, pos)
            blobs.append(blob)
    except (ValueError, struct.error):
        pass
    return blobs


def _recv_exact(s, n):
    if n > 1 << 20:
        raise ValueError("agent answer too large")
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ValueError("agent closed the connection")
        data += chunk
    return data


def public_key_blob(line):
    """The binary blob of an OpenSSH public key line, or None."""
    parts = str(line or "").split()
    if len(parts) < 2:
        return None
    try:
        return base64.b64decode(parts[1])
    except (ValueError, binascii.Error):
        return None


def check_key_unlocked(path, head):
    """Refuse a passphrase-protected key no agent offers: ssh runs with BatchMode, so it could never log in,
    and every instance rented for it would be paid for and destroyed again."""
    encrypted, blob = private_key_info(head)
    if not encrypted:
        return
    if blob is None and os.path.isfile(path + ".pub"):
        try:
            with open(path + ".pub") as fh:
                blob = public_key_blob(fh.read(MAX_KEY_BYTES))
        except OSError:
            blob = None
    held = agent_key_blobs()
    if blob is not None and blob in held:
        return
    if not os.environ.get("SSH_AUTH_SOCK"):
        why = "no ssh-agent is running (SSH_AUTH_SOCK is not set)"
    elif blob is None:
        why = "its public key is unknown (no %s.pub next to it), so the agent's keys cannot be matched" % path
    else:
        why = "the ssh-agent at SSH_AUTH_SOCK does not hold it"
    raise ConfigError("ssh_private_key_file %s is protected by a passphrase and %s; nothing was rented. Run "
                      "ssh-add %s (or use a key without a passphrase) and try again" % (path, why, path))


def validate_public_key(key, source="ssh_public_key"):
    key = (key or "").strip()
    if "\n" in key:
        lines = [k.strip() for k in key.splitlines() if k.strip()]
        for k in lines:
            validate_public_key(k, source)
        return "\n".join(lines)
    if not PUBKEY_RE.match(key):
        raise ConfigError("%s is not an OpenSSH public key (expected 'ssh-ed25519 AAAA... comment', got %r)" % (
            source, key[:40] + ("..." if len(key) > 40 else "")))
    return key


def load_public_key(public_key=None, public_key_file=None, private_key_file=None):
    """The public key to inject: the option, else the file, else ``<private key>.pub``; ConfigError if none."""
    if public_key:
        return validate_public_key(public_key, "ssh_public_key")
    if public_key_file:
        path = os.path.expanduser(str(public_key_file))
        if not os.path.isfile(path):
            raise ConfigError("ssh_public_key_file %s does not exist" % path)
        try:
            with open(path) as fh:
                text = fh.read(MAX_KEY_BYTES + 1)
        except OSError as e:
            raise ConfigError("ssh_public_key_file %s is not readable: %s" % (path, e.strerror)) from None
        if "PRIVATE KEY" in text:
            raise ConfigError("ssh_public_key_file %s holds a private key; give the .pub file" % path)
        return validate_public_key(text, "ssh_public_key_file %s" % path)
    if private_key_file:
        pub = os.path.expanduser(str(private_key_file)) + ".pub"
        if os.path.isfile(pub):
            return load_public_key(public_key_file=pub)
        raise ConfigError("no public key: %s does not exist; set ssh_public_key or ssh_public_key_file" % pub)
    raise ConfigError("no SSH public key to put on the instance: set ssh_public_key, ssh_public_key_file or "
                      "ssh_private_key_file (with its .pub next to it)")


# ---------------------------------------------------------------------------- known_hosts
def host_pattern(host, port):
    return host if int(port) == 22 else "[%s]:%s" % (host, port)


def forget_host(known_hosts, host, port, run):
    """Remove the entries for host:port (a new instance on a reused address has a new host key)."""
    if not known_hosts or not host or not port:
        return
    path = os.path.expanduser(known_hosts)
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return
    run(["ssh-keygen", "-R", host_pattern(host, port), "-f", path])
    try:
        os.unlink(path + ".old")
    except OSError:
        pass


def ensure_known_hosts(path):
    path = os.path.expanduser(path)
    d = os.path.dirname(path)
    if d and not os.path.isdir(d):
        os.makedirs(d, mode=0o700, exist_ok=True)
    return path


def ssh_common_args(known_hosts, private_key=None):
    args = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=%s" % known_hosts,
            "-o", "LogLevel=ERROR"]
    if private_key:
        args += ["-o", "IdentitiesOnly=yes"]
    return args


# ---------------------------------------------------------------------------- probes
def probe_banner(host, port, timeout):
    """(True, banner) once the port answers with an SSH banner, else (False, reason)."""
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.settimeout(timeout)
            data = b""
            while b"\n" not in data and len(data) < 256:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
    except socket.timeout:
        return False, "TCP connect or banner read timed out after %.1fs" % timeout
    except OSError as e:
        return False, "TCP connect failed: %s" % (e.strerror or e)
    if data.startswith(b"SSH-"):
        return True, data.split(b"\n")[0].decode("ascii", "replace").strip()
    if not data:
        return False, "port accepts connections but sends no SSH banner"
    return False, "port answered with something other than an SSH banner: %r" % data[:40]


def probe_ssh(host, port, user, private_key, known_hosts, timeout, run):
    """Run ``ssh ... true``; (True, "") on success, else (False, the last line of ssh's stderr).

    ConnectTimeout bounds the connect and the banner exchange, ServerAlive* a server that stalls after."""
    cmd = ["ssh", "-p", str(port), "-o", "ConnectTimeout=%d" % max(1, int(timeout)), "-o", "ControlMaster=no",
           "-o", "ControlPath=none", "-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=2"]
    cmd += ssh_common_args(known_hosts, private_key)
    if private_key:
        cmd += ["-i", private_key]
    cmd += ["%s@%s" % (user, host) if user else host, "true"]
    try:
        rc, _out, err = run(cmd)
    except OSError as e:
        return False, "cannot run ssh: %s" % e
    if rc == 0:
        return True, ""
    lines = [ln for ln in (err or "").strip().splitlines() if ln.strip()]
    return False, "ssh true failed (rc %d): %s" % (rc, lines[-1] if lines else "no error output")


# ---------------------------------------------------------------------------- waiting
class Target:
    """One instance being waited for."""

    def __init__(self, key, get, instance, stopped_grace=0.0, label=None, lister=None):
        self.key = key
        self.get = get  # instance_id -> Instance | None
        self.lister = lister  # () -> [Instance]: one call refreshes every target of the same provider
        self.prefetched = _NOTHING
        self.instance = instance
        self.label = label or "%s instance %s (%s)" % (instance.provider, instance.name, instance.id)
        self.stopped_grace = stopped_grace
        self.done = False
        self.ready = False
        self.fatal = None
        self.category = None  # why it failed, for callers that act on it (no_public_ssh)
        self.last_error = "the API has not reported it running yet"
        self.api_polls = 0
        self.probes = 0
        self.next_at = 0.0
        self.api_next = 0.0  # API polls and SSH probes run on separate clocks: probes cost no API quota
        self.api_delay = None
        self.probe_delay = 0.05
        self.last_api = None
        self.mapped_at = None
        self.unmapped_since = None
        self.denied_since = None
        self.ready_at = None
        self.events = []
        self.pulled = 0.0  # seconds the provider reported the image pulling (not counted against wait_timeout)
        self.pull_since = None
        self.pull_note_at = None


# Seconds between API polls of one instance (first poll, then the steady interval), within the vendors'
# budgets: each provider declares its pacing (``Provider.api_poll``, for example one poll per ~10 s per
# instance). Many instances of one provider share one listing per poll.
# With GPUOPS_API_QUOTAS=off (simulators) the module's poll_interval alone applies.
PROBE_INTERVAL = 0.5  # TCP/SSH probes once an address is known: no API call, so they may be quick
NO_MAPPING_GRACE = 60.0  # RUNNING without a direct SSH mapping for this long: the host has no public IP
DEFAULT_PULL_TIMEOUT = 1800  # a cold 16 GB image takes ~3 minutes; dstack allows 20 min, SkyPilot 30
PULL_NOTE_INTERVAL = 15.0  # a progress line while pulling at most this often


def api_poll_schedule(provider, poll_interval, quotas=True):
    """(first delay, steady interval) of API polls for one instance of ``provider``."""
    pacing = registry.api_poll(provider) if quotas else None
    first, steady = pacing or (0.1, poll_interval)
    return min(first, max(steady, poll_interval)), max(steady, poll_interval)


class Waiter:
    """Waits for several instances at once: API status, then TCP + banner + ``ssh true``.

    ``ssh`` is a dict(private_key, known_hosts, run, user_override, check_login) or None to stop at the API.
    API polls follow :func:`api_poll_schedule`; once an address is known, readiness is found by probing
    it directly every :data:`PROBE_INTERVAL` at most, and the API is re-read only every ``API_RECHECK``.
    """

    API_RECHECK = 5.0  # while the port is mapped but SSH is not up yet, re-read the API this often
    AUTH_GRACE = 60.0  # sshd answers but rejects the key: images may write authorized_keys late, not this late

    def __init__(self, timeout, poll_interval=1.5, ssh=None, log=None, clock=None, sleep=None, quotas=None,
                 pull_timeout=None):
        self.timeout = float(timeout)
        # the image pull has its own budget: time the provider reports it pulling extends the wait
        self.pull_timeout = float(DEFAULT_PULL_TIMEOUT if pull_timeout is None else pull_timeout)
        self.poll_interval = max(0.1, float(poll_interval))
        self.ssh = ssh
        self.log = log or (lambda msg: None)
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.quotas = quotas_enabled() if quotas is None else quotas
        self.api_calls = 0  # listings made for batches (single polls are counted per target)
        # a pod that runs without a mapping gets a grace, shorter for short waits (but never a hair trigger)
        self.mapping_grace = min(NO_MAPPING_GRACE, max(10.0, self.timeout / 3.0))

    def _event(self, t, what):
        t.events.append({"t": round(self.clock() - self.start, 3), "event": what})
        self.log("%s: %s" % (t.label, what))

    def _schedule_api(self, t, now):
        first, steady = api_poll_schedule(t.instance.provider, self.poll_interval, self.quotas)
        if t.instance.status == "running" and t.instance.ssh_ready_address:
            t.api_next = now + max(self.API_RECHECK, steady)  # probes carry the wait now
            return
        t.api_delay = first if t.api_delay is None else min(t.api_delay * 1.5, steady)
        t.api_next = now + t.api_delay

    def _api(self, t, now):
        inst, t.prefetched = t.prefetched, _NOTHING
        if inst is _NOTHING or inst is None:  # not batched, or not in the listing (yet): ask for it alone
            inst = t.get(t.instance.id)
        t.api_polls += 1
        t.last_api = now
        if inst is None:
            t.fatal = "it no longer exists (destroyed or never scheduled)"
            return False
        if inst.status != t.instance.status or inst.ssh_ready_address != t.instance.ssh_ready_address:
            self._event(t, "API status %s (%s)%s" % (inst.status, inst.provider_status,
                                                     " ssh %s:%s" % inst.ssh_ready_address
                                                     if inst.ssh_ready_address else ""))
        t.instance = inst
        self._schedule_api(t, self.clock())
        if self._pull_state(t, inst, now):
            return False
        if inst.status in ("error", "terminated"):
            t.fatal = "the API reports it %s (%s)%s" % (inst.status, inst.provider_status,
                                                        ": %s" % inst.status_message if inst.status_message else "")
            return False
        if inst.status == "stopped" and now - self.start >= t.stopped_grace:
            t.fatal = "the API reports it stopped (%s)%s" % (
                inst.provider_status, ": %s" % inst.status_message if inst.status_message else "")
            return False
        return True

    def _pull_state(self, t, inst, now):
        """Follow the image pull; True (fatal) when it outlasts pull_timeout."""
        if inst.pulling and t.pull_since is None:
            t.pull_since = now
            t.pull_note_at = now
            self._event(t, "pulling the image%s" % (": %s" % inst.status_message if inst.status_message else ""))
        elif not inst.pulling and t.pull_since is not None:
            t.pulled += now - t.pull_since
            t.pull_since = None
            self._event(t, "image pulled after %ds" % int(t.pulled))
        elif inst.pulling and now - t.pull_note_at >= PULL_NOTE_INTERVAL:
            t.pull_note_at = now
            self._event(t, "still pulling the image (%ds)%s" % (
                int(self._pull_seconds(t, now)), ": %s" % inst.status_message if inst.status_message else ""))
        if inst.pulling and self._pull_seconds(t, now) > self.pull_timeout:
            t.fatal = "its image has been pulling for %ds, past pull_timeout (%ds)" % (
                int(self._pull_seconds(t, now)), int(self.pull_timeout))
            return True
        return False

    @staticmethod
    def _pull_seconds(t, now):
        return t.pulled + (now - t.pull_since if t.pull_since is not None else 0.0)

    def deadline(self, t, now):
        """When waiting for ``t`` ends: wait_timeout, plus the time its image was reported pulling."""
        return self.start + self.timeout + min(self._pull_seconds(t, now), self.pull_timeout)

    @staticmethod
    def _needs_api(t, now):
        return t.last_api is None or now >= t.api_next

    def _prefetch(self, due, now):
        """One listing per provider for every due target that needs fresh API state (N nodes, 1 call)."""
        groups = {}
        for t in due:
            if t.lister is not None and self._needs_api(t, now):
                groups.setdefault(t.lister, []).append(t)
        for lister, group in groups.items():
            if len(group) < 2:
                continue
            by_id = {str(i.id): i for i in lister()}
            self.api_calls += 1
            for t in group:
                t.prefetched = by_id.get(str(t.instance.id))

    def _unmapped(self, t, now):
        """Running without an SSH endpoint: give up after the grace (a host without a public IP). A pod that
        is RUNNING while its image pulls has no mapping yet: that is not a missing public IP."""
        if t.instance.status != "running" or t.instance.pulling:
            t.unmapped_since = None
            return
        if t.unmapped_since is None:
            t.unmapped_since = now
        if now - t.unmapped_since >= self.mapping_grace:
            t.category = "no_public_ssh"
            t.fatal = ("it has been running for %ds without a direct (public) SSH port mapping: its host has no "
                       "public IP, and the %s proxy cannot carry Ansible" % (
                           int(now - t.unmapped_since), t.instance.provider))
            t.done = True

    def _step(self, t, now):
        if self._needs_api(t, now) and not self._api(t, now):
            t.done = True
            return
        addr = t.instance.ssh_ready_address if t.instance.status == "running" else None
        if addr is None:
            t.last_error = "API status %s (%s), no SSH endpoint yet" % (t.instance.status, t.instance.provider_status)
            self._unmapped(t, now)
            t.next_at = t.api_next
            return
        if t.mapped_at is None:
            t.mapped_at = now
            t.probe_delay = 0.05  # the port was just mapped: sshd is probably about to answer
        if self.ssh is None:
            t.done = t.ready = True
            return
        self._probe(t, addr, now)
        t.next_at = min(self.clock() + t.probe_delay, t.api_next)
        t.probe_delay = min(t.probe_delay * 1.5, PROBE_INTERVAL, self.poll_interval)

    def _probe(self, t, addr, now):
        host, port = addr
        remaining = max(0.5, self.deadline(t, now) - now)
        t.probes += 1
        ok, info = probe_banner(host, port, min(2.0, remaining))
        if not ok:
            t.last_error = "%s:%s %s" % (host, port, info)
            return
        if self.ssh.get("check_login", True):
            user = self.ssh.get("user_override") or t.instance.ssh_user
            ok, err = probe_ssh(host, port, user, self.ssh.get("private_key"), self.ssh["known_hosts"],
                                min(10.0, remaining), self.ssh["run"])
            if not ok:
                t.last_error = "%s@%s:%s %s" % (user, host, port, err)
                if "permission denied" in err.lower():
                    t.denied_since = now if t.denied_since is None else t.denied_since
                    if now - t.denied_since >= min(self.AUTH_GRACE, max(10.0, self.timeout / 3.0)):
                        t.fatal = ("sshd answers but keeps rejecting the login for %ds; check ssh_private_key_file "
                                   "and the public key put on the instance" % int(now - t.denied_since))
                        t.done = True
                return
        t.done = t.ready = True

    def wait(self, targets):
        """Return when every target is ready or failed or the deadline passed; targets carry the outcome."""
        self.start = self.clock()
        self.end = self.start + self.timeout
        for t in targets:
            t.next_at = self.start
            if self.quotas and registry.api_poll(t.instance.provider):
                # the instance was just read (created or listed): that read is the first poll of its quota
                t.last_api = self.start
                self._schedule_api(t, self.start)
            self._event(t, "waiting (timeout %ss)" % int(self.timeout))
        while True:
            now = self.clock()
            pending = [t for t in targets if not t.done]
            if not pending:
                break
            self._prefetch([t for t in pending if t.next_at <= now], now)
            for t in pending:
                if t.next_at <= now:
                    self._step(t, now)
                    now = self.clock()
                    if t.done:
                        if t.ready:
                            t.ready_at = time.time()
                            self._event(t, "SSH ready")
                        else:
                            self._event(t, "failed: %s" % t.fatal)
            now = self.clock()
            for t in [t for t in targets if not t.done and now >= self.deadline(t, now)]:
                t.done = True
                t.fatal = None
                self._event(t, "timed out: %s" % t.last_error)
            pending = [t for t in targets if not t.done]
            if not pending:
                break
            nxt = min(min(t.next_at, self.deadline(t, now)) for t in pending)
            self.sleep(max(0.0, nxt - now))
        return targets


def describe_failure(t, timeout):
    inst = t.instance
    state = "%s (%s)%s" % (inst.status, inst.provider_status, ", its image still pulling" if inst.pulling else "")
    if t.fatal:
        return "%s failed while waiting for SSH: %s; last probe: %s" % (t.label, t.fatal, t.last_error)
    return "%s was not reachable over SSH within %ss: stuck in state %s; last probe error: %s" % (
        t.label, int(timeout), state, t.last_error)


def wait_report(t):
    return {"ready": t.ready, "category": t.category, "api_polls": t.api_polls, "ssh_probes": t.probes,
            "pull_seconds": round(t.pulled, 1),
            "ready_at": t.ready_at, "events": t.events, "last_error": None if t.ready else t.last_error}
