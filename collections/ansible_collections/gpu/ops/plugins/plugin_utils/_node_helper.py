# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a versioned node helper over the task's connection. PRIVATE to the collection, may change.

A helper is one stdlib-only Python file from ``plugins/plugin_utils`` (``_<name>_node.py``), installed on
the node as ``~/.bifrost/bin/gpuops-<name>-<sha256 prefix>.py`` the first time it is needed (the name
changes with the content, so a new collection version installs its own copy). Each call is one command
over the existing connection (SSH ControlPersist): arguments and payload go over stdin, the answer is one
JSON line. That is a few hundred bytes per call, where a module call ships a ~160 kB AnsiballZ payload.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import zlib

from ansible.errors import AnsibleError

MISSING_RC = 86
HELPER_DIR = "~/.bifrost/bin"
# The oldest Python that node-side code (modules, the job runner, these helpers) supports: the one floor, which
# the docs, tests/config.yml and the oldest-Python test state too (tests/roles/test_node_python_floor.py).
NODE_PYTHON_MIN = (3, 9)
NODE_PYTHON_MIN_TEXT = "%d.%d" % NODE_PYTHON_MIN


class HelperFailed(AnsibleError):
    pass


def helper_source(name):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_%s_node.py" % name)
    with open(path, "rb") as fh:
        return fh.read()


def remote_python(action, task_vars):
    """The node's Python: ansible_python_interpreter or the discovered one, else python3."""
    interp = (task_vars or {}).get("ansible_python_interpreter")
    if interp and "{{" in str(interp):
        interp = action._templar.template(interp)
    if not interp or str(interp).startswith("auto"):
        facts = (task_vars or {}).get("ansible_facts") or {}
        interp = facts.get("discovered_interpreter_python") or "python3"
    return str(interp)


class NodeHelper(object):
    def __init__(self, action, task_vars, name):
        self.action = action
        self.name = name
        self.source = helper_source(name)
        digest = hashlib.sha256(self.source).hexdigest()[:12]
        self.remote = "%s/gpuops-%s-%s.py" % (HELPER_DIR, name, digest)
        self.python = remote_python(action, task_vars)
        self.installed = False

    def _exec(self, cmd, data):
        # in_data is never empty: it keeps ssh from allocating a tty (which would mix stderr into stdout)
        return self.action._low_level_execute_command(cmd, sudoable=True, in_data=data)

    def install(self):
        script = 'import sys,zlib;sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read()))'
        cmd = ('umask 077 && mkdir -p %s && f=%s && %s -c %s > "$f.tmp.$$" && mv -f "$f.tmp.$$" "$f"'
               % (HELPER_DIR, self.remote, shlex.quote(self.python), shlex.quote(script)))
        res = self._exec(cmd, zlib.compress(self.source, 9))
        if res["rc"] == 127:
            raise HelperFailed("%s not found on the node: gpu.ops node helpers need Python >= %s "
                               "(set ansible_python_interpreter)" % (self.python, NODE_PYTHON_MIN_TEXT))
        if res["rc"] != 0:
            raise HelperFailed("could not install %s on the node (rc %s): %s"
                               % (self.remote, res["rc"], (res.get("stderr") or res.get("stdout") or "").strip()))
        self.installed = True

    def run(self, command, args, payload=b""):
        """Run ``command`` with ``args`` (JSON) and ``payload`` on stdin; return the parsed JSON answer."""
        data = json.dumps(args).encode("utf-8") + b"\n" + payload
        cmd = 'f=%s; [ -f "$f" ] || exit %d; exec %s "$f" %s' % (self.remote, MISSING_RC, shlex.quote(self.python),
                                                                 shlex.quote(command))
        res = self._exec(cmd, data)
        if res["rc"] == MISSING_RC and not self.installed:
            self.install()
            res = self._exec(cmd, data)
        if res["rc"] == 127:
            raise HelperFailed("%s not found on the node: gpu.ops node helpers need Python >= %s "
                               "(set ansible_python_interpreter)" % (self.python, NODE_PYTHON_MIN_TEXT))
        lines = [ln for ln in (res.get("stdout") or "").splitlines() if ln.strip()]
        if res["rc"] != 0 or not lines:
            raise HelperFailed("node helper %s %s failed (rc %s): %s"
                               % (self.name, command, res["rc"],
                                  ((res.get("stderr") or "") + (res.get("stdout") or "")).strip()[-2000:]))
        try:
            return json.loads(lines[-1])
        except ValueError as exc:
            raise HelperFailed("node helper %s %s answered something that is not JSON: %s"
                               % (self.name, command, lines[-1][:500])) from exc


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
