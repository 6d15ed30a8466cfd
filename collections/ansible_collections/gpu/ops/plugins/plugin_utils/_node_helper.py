# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a versioned node helper over the task's connection: the one channel for node work. PRIVATE, may change.

A helper is stdlib-only Python. A small one is one file from ``plugins/plugin_utils`` (``_<name>_node.py``);
one that needs the node-side libraries in ``plugins/module_utils`` (jobs, health, artifacts) is a zip
application: ``__main__.py`` is ``_<name>_node.py`` and the libraries sit under their usual package path, so the
same imports work on the controller, in unit tests and on the node. Either is installed on the node as
``~/.bifrost/bin/gpuops-<name>-<sha256 prefix>.py[z]`` the first time it is needed (the name changes with the
content, so a new collection version installs its own copy). Each call is one command over the existing
connection (SSH ControlPersist): arguments, secrets and payload go over stdin (never the command line, never a
log), the answer is one JSON line. That is a few hundred bytes per call, where a module call ships a ~160 kB
AnsiballZ payload, and the node's journal sees no "Invoked with" line.

``become`` is honoured: every command goes through the connection's become plugin (``sudoable``), so the helper
is installed and run as the become user. The rsync/tar streams that bypass the connection use
:func:`stream_become_prefix`, which honours passwordless ``sudo`` and refuses anything else with a clear message.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shlex
import zipfile
import zlib

from ansible.errors import AnsibleConnectionFailure, AnsibleError

MISSING_RC = 86
SSH_FAILED_RC = 255  # ssh's own failure (the connection dropped), never a helper's exit code
HELPER_DIR = "~/.bifrost/bin"
# The oldest Python that node-side code (modules, the job runner, these helpers) supports: the one floor, which
# the docs, tests/config.yml and the oldest-Python test state too (tests/roles/test_node_python_floor.py).
NODE_PYTHON_MIN = (3, 9)
NODE_PYTHON_MIN_TEXT = "%d.%d" % NODE_PYTHON_MIN


class HelperFailed(AnsibleError):
    pass


# Helpers shipped as a zip application, and the node-side libraries (module_utils) each one carries.
BUNDLES = {
    "jobs": ("_job_runner", "_jobs", "_node_protocol"),
    "health": ("node_health", "_node_protocol"),
    "artifacts": ("artifacts", "_node_protocol"),
}
PACKAGE = ("ansible_collections", "gpu", "ops", "plugins", "module_utils")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed, so the same sources give the same bytes and the same name


def _plugins_dir():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


def _zip_entry(zf, name, data):
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


@functools.lru_cache(maxsize=None)
def helper_source(name):
    """(bytes, file suffix) of helper ``name``: the file itself, or the zip application of a bundle."""
    entry = _read(os.path.join(_plugins_dir(), "plugin_utils", "_%s_node.py" % name))
    if name not in BUNDLES:
        return entry, ".py"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        _zip_entry(zf, "__main__.py", entry)
        for depth in range(1, len(PACKAGE) + 1):
            _zip_entry(zf, "/".join(PACKAGE[:depth]) + "/__init__.py", b"")
        for lib in sorted(BUNDLES[name]):
            _zip_entry(zf, "/".join(PACKAGE) + "/%s.py" % lib,
                       _read(os.path.join(_plugins_dir(), "module_utils", "%s.py" % lib)))
    return buf.getvalue(), ".pyz"


def remote_python(action, task_vars):
    """The node's Python: ansible_python_interpreter or the discovered one, else python3."""
    interp = (task_vars or {}).get("ansible_python_interpreter")
    if interp and "{{" in str(interp):
        interp = action._templar.template(interp)
    if not interp or str(interp).startswith("auto"):
        facts = (task_vars or {}).get("ansible_facts") or {}
        interp = facts.get("discovered_interpreter_python") or "python3"
    return str(interp)


class ActionTransport(object):
    """How a helper reaches the node from an action plugin: the task's connection (its become plugin, its
    ``environment:``, its ssh ControlPath for streams)."""

    def __init__(self, action, task_vars):
        self.action = action
        self.connection = action._connection
        self.python = remote_python(action, task_vars)
        self.env_prefix = action._compute_environment_string()
        self.name = getattr(self.connection, "transport", "") or ""

    def execute(self, cmd, data, sudoable=True):
        """{rc, stdout, stderr} of ``cmd`` with ``data`` on stdin, as the become user when there is one."""
        return self.action._low_level_execute_command(cmd, sudoable=sudoable, in_data=data)

    def is_ssh(self):
        return self.name.endswith("ssh")

    def ssh_argv(self):
        return ssh_command(self.connection)

    def host(self):
        return ssh_host(self.connection)

    def become(self):
        return getattr(self.connection, "become", None)

    def stream_become(self, what):
        return stream_become(self.connection, what)

    def fetch_file(self, src, dest):
        self.connection.fetch_file(src, dest)

    def put_file(self, src, dest):
        self.connection.put_file(src, dest)


class SshTransport(object):
    """How a helper reaches the node without Ansible (the gpuops CLI's fast path: exec, sync, logs, status): plain
    ssh with the run's key, its known_hosts and a shared ControlMaster, so a warm node costs one round trip."""

    name = "ssh"

    def __init__(self, ssh_argv, host, python="python3", env=None):
        self._argv = list(ssh_argv)
        self._host = host
        self.python = python
        self.env_prefix = " ".join("%s=%s" % (k, shlex.quote(str(v))) for k, v in sorted((env or {}).items()))

    def execute(self, cmd, data, sudoable=True):
        import subprocess

        proc = subprocess.run(self._argv + [self._host, cmd], input=data, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False)
        return {"rc": proc.returncode, "stdout": proc.stdout.decode("utf-8", "replace"),
                "stderr": proc.stderr.decode("utf-8", "replace")}

    def is_ssh(self):
        return True

    def ssh_argv(self):
        return list(self._argv)

    def host(self):
        return self._host

    def become(self):
        return None

    def stream_become(self, what):
        return []

    def fetch_file(self, src, dest):
        raise HelperFailed("fetch needs an Ansible connection; over plain ssh use transfer rsync or tar (%s)" % src)

    def put_file(self, src, dest):
        """A large file streamed from disk (``cat`` on the node: the same connection, no scp/sftp needed)."""
        import subprocess

        with open(src, "rb") as fh:
            proc = subprocess.run(self._argv + [self._host, "cat > %s" % shlex.quote(dest)], stdin=fh,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if proc.returncode != 0:
            raise HelperFailed("could not copy %s to the node (rc %d): %s" % (
                src, proc.returncode, proc.stderr.decode("utf-8", "replace").strip()[-500:]))


class NodeHelper(object):
    """Helper ``name`` on the node behind ``transport`` (:class:`ActionTransport` or :class:`SshTransport`)."""

    def __init__(self, transport, name):
        self.transport = transport
        self.name = name
        self.source, suffix = helper_source(name)
        digest = hashlib.sha256(self.source).hexdigest()[:12]
        self.remote = "%s/gpuops-%s-%s%s" % (HELPER_DIR, name, digest, suffix)
        self.python = transport.python
        # the task's `environment:` applies to the helper's Python as it does to a module
        env = transport.env_prefix
        self.interpreter = ("env %s %s" % (env, shlex.quote(self.python))) if env else shlex.quote(self.python)
        self.installed = False

    @classmethod
    def for_action(cls, action, task_vars, name):
        return cls(ActionTransport(action, task_vars), name)

    def _exec(self, cmd, data):
        # in_data is never empty: it keeps ssh from allocating a tty (which would mix stderr into stdout)
        res = self.transport.execute(cmd, data)
        if res.get("rc") == SSH_FAILED_RC and self.transport.is_ssh():
            raise AnsibleConnectionFailure("the connection to the node dropped during gpu.ops helper %s: %s"
                                           % (self.name, (res.get("stderr") or "").strip()[-500:]))
        return res

    def install(self):
        script = 'import sys,zlib;sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read()))'
        cmd = ('umask 077 && mkdir -p %s && f=%s && %s -c %s > "$f.tmp.$$" && mv -f "$f.tmp.$$" "$f"'
               % (HELPER_DIR, self.remote, self.interpreter, shlex.quote(script)))
        res = self._exec(cmd, zlib.compress(self.source, 9))
        if res["rc"] == 127:
            raise HelperFailed("%s not found on the node: gpu.ops node helpers need Python >= %s "
                               "(set ansible_python_interpreter)" % (self.python, NODE_PYTHON_MIN_TEXT))
        if res["rc"] != 0:
            raise HelperFailed("could not install %s on the node (rc %s): %s"
                               % (self.remote, res["rc"], (res.get("stderr") or res.get("stdout") or "").strip()))
        self.installed = True

    def command_line(self, command):
        """The node command that runs the installed helper's ``command`` (exit MISSING_RC when not installed)."""
        return 'f=%s; [ -f "$f" ] || exit %d; exec %s "$f" %s' % (self.remote, MISSING_RC, self.interpreter,
                                                                  shlex.quote(command))

    def run(self, command, args, payload=b""):
        """Run ``command`` with ``args`` (JSON) and ``payload`` on stdin; return the parsed JSON answer."""
        data = json.dumps(args).encode("utf-8") + b"\n" + payload
        cmd = self.command_line(command)
        res = self._exec(cmd, data)
        if res["rc"] == MISSING_RC and not self.installed:
            self.install()
            res = self._exec(cmd, data)
        return self.answer(command, res["rc"], res.get("stdout") or "", res.get("stderr") or "")

    def answer(self, command, rc, stdout, stderr):
        """The helper's answer (its last JSON line), or HelperFailed saying why there is none."""
        if rc == 127:
            raise HelperFailed("%s not found on the node: gpu.ops node helpers need Python >= %s "
                               "(set ansible_python_interpreter)" % (self.python, NODE_PYTHON_MIN_TEXT))
        lines = [ln for ln in stdout.splitlines() if ln.strip()]
        if rc != 0 or not lines:
            raise HelperFailed("node helper %s %s failed (rc %s): %s"
                               % (self.name, command, rc, (stderr + stdout).strip()[-2000:]))
        try:
            return json.loads(lines[-1])
        except ValueError as exc:
            raise HelperFailed("node helper %s %s answered something that is not JSON: %s"
                               % (self.name, command, lines[-1][:500])) from exc

    def stream_argv(self, command, what):
        """argv of an ssh that runs the (installed) helper's ``command`` beside the connection, on its ControlPath,
        for streams too large to hold in memory; as the become user (see :func:`stream_become`). None when the
        connection is not ssh."""
        ssh = self.transport.ssh_argv()
        if not ssh:
            return None
        remote = 'f=%s; exec %s "$f" %s' % (self.remote, self.interpreter, shlex.quote(command))
        sudo = self.transport.stream_become(what)
        if sudo:  # "~" in the helper's path is the become user's home, where it was installed
            remote = "%s sh -c %s" % (" ".join(sudo), shlex.quote(remote))
        return ssh + [self.transport.host(), remote]


class HelperActionMixin(object):
    """For action plugins whose node work is a node helper: one NodeHelper per helper and task, the task's check
    mode handed on, and a helper that cannot be installed or run failing the task with its message."""

    def _node_helper(self, name, task_vars):
        helpers = self.__dict__.setdefault("_gpuops_helpers", {})
        if name not in helpers:
            helpers[name] = NodeHelper.for_action(self, task_vars, name)
        return helpers[name]

    def _node_call(self, name, command, args, task_vars, check=False):
        """``command`` of helper ``name`` with ``args`` (plus ``check_mode``: the task's, or ``check``)."""
        try:
            return self._node_helper(name, task_vars).run(
                command, dict(args, check_mode=bool(check or self._task.check_mode)))
        except HelperFailed as exc:
            return {"failed": True, "msg": str(exc)}


# ---------------------------------------------------------------------------------------------- streams

def ssh_command(connection):
    """The ssh command line (list of str, without the host) that the task's connection uses, ControlPath
    included, so rsync/tar streams ride the same multiplexed connection. None when not an ssh connection."""
    if getattr(connection, "transport", "") not in ("ssh", "ansible.builtin.ssh") or \
            not hasattr(connection, "_build_command"):
        return None
    try:
        exe = connection.get_option("ssh_executable") or "ssh"
        argv = connection._build_command(exe, "ssh")
    except Exception:  # pylint: disable=broad-exception-caught
        return None
    out = [a.decode("utf-8", "surrogateescape") if isinstance(a, bytes) else str(a) for a in argv]
    # ansible quotes some -o values for its own shell-less exec; ssh accepts them as they are
    return out


def ssh_host(connection):
    host = connection.get_option("host") or getattr(connection, "host", None)
    return str(host)


def stream_become(connection, what):
    """The argv prefix that runs a stream's node side as the become user: [] without become.

    rsync and tar streams run their own ssh next to the connection, so its become plugin never wraps them. They get
    ``sudo`` the way ansible.posix.synchronize does it (``--rsync-path="sudo rsync"``): passwordless sudo only,
    since a stream has no channel for a password prompt. Anything else is refused with what to do instead.
    """
    become = getattr(connection, "become", None)
    if become is None:
        return []
    method = str(getattr(become, "name", "") or "").rsplit(".", 1)[-1]
    if method != "sudo":
        raise HelperFailed("%s cannot honour become_method=%s (its stream runs outside the connection); use "
                           "become_method=sudo with passwordless sudo, or run it without become" % (what, method))
    if become.get_option("become_pass"):  # expect_prompt() only knows once a command was built
        raise HelperFailed("%s cannot answer a sudo password prompt (its stream runs outside the connection); "
                           "allow passwordless sudo for this user, or run it without become" % what)
    user = become.get_option("become_user") or "root"
    return ["sudo", "-n", "-H", "-u", str(user)]
