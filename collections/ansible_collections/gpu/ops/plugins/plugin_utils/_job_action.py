# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side helpers for the gpu.ops job action plugins. PRIVATE to the collection, may change.

The actions check their arguments here, then do the node work in one call of the ``jobs`` node helper
(``_jobs_node.py`` over ``_node_helper``): arguments and ``env`` values go over stdin, so no value reaches a
command line, a module journal entry ("Invoked with") or the result. The node cannot know how the controller
reaches it (clouds map SSH to high ports on a public address), so the actions add ``attach_command`` from the
task's connection.
"""

from __future__ import annotations

import shlex

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.module_utils._secret_env import REDACTED
from ansible_collections.gpu.ops.plugins.plugin_utils._node_helper import HelperActionMixin

LOCAL_TRANSPORTS = ("local", "ansible.builtin.local")


def attach_command(session, host=None, port=None, user=None, key=None, local=False):
    """``ssh -t -p PORT [-i KEY] user@host tmux attach -t SESSION`` (or the bare tmux command on localhost)."""
    tmux = "tmux attach -t %s" % shlex.quote(session)
    if local or not host:
        return tmux
    argv = ["ssh", "-t"]
    if port:
        argv += ["-p", str(port)]
    if key:
        argv += ["-i", str(key)]
    argv.append("%s@%s" % (user, host) if user else str(host))
    return " ".join(shlex.quote(a) for a in argv) + " " + tmux


def format_duration(seconds):
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return "%d:%02d:%02d" % (seconds // 3600, seconds % 3600 // 60, seconds % 60)


class JobActionBase(HelperActionMixin, ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True

    def _conn_option(self, *names):
        for name in names:
            try:
                value = self._connection.get_option(name)
            except (KeyError, AttributeError, AnsibleError):
                continue
            if value not in (None, ""):
                return value
        return None

    def _target(self, task_vars):
        task_vars = task_vars or {}
        transport = getattr(self._connection, "transport", "") or ""
        if transport in LOCAL_TRANSPORTS:
            return {"local": True}
        pc = self._play_context
        return {
            "host": self._conn_option("host", "remote_addr") or getattr(pc, "remote_addr", None)
            or task_vars.get("ansible_host") or task_vars.get("inventory_hostname"),
            "port": self._conn_option("port") or getattr(pc, "port", None) or task_vars.get("ansible_port"),
            "user": self._conn_option("remote_user") or getattr(pc, "remote_user", None)
            or task_vars.get("ansible_user"),
            "key": self._conn_option("private_key_file") or getattr(pc, "private_key_file", None),
        }

    def _decorate(self, job, task_vars):
        """Add attach commands to a job dict returned by a node module."""
        if not isinstance(job, dict) or not job.get("session"):
            return job
        target = self._target(task_vars)
        job["attach_command"] = attach_command(job["session"], **target)
        boot = job.get("bootstrap")
        if isinstance(boot, dict) and boot.get("session") and boot.get("state") not in (None, "none"):
            boot["attach_command"] = attach_command(boot["session"], **target)
        return job

    def _run_helper(self, command, args, task_vars):
        """One call of the jobs helper on the node; the task fails with the helper's message."""
        return hide_env_values(self._node_call("jobs", command, args, task_vars))


def hide_env_values(result):
    """Belt and braces: a result never carries ``env`` values, only their names."""
    for holder in (result, result.get("job") if isinstance(result, dict) else None):
        if isinstance(holder, dict) and isinstance(holder.get("env"), dict):
            holder["env"] = dict((k, REDACTED) for k in holder["env"])
    return result
