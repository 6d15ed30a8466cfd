# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.run_guard (documentation: plugins/modules/run_guard.py). Controller only.

The task runs in a worker forked from ansible-playbook, so the worker's parent is the process to watch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.module_utils import lifecycle
from ansible_collections.gpu.ops.plugins.plugin_utils import _guardian

ARGUMENT_SPEC = {
    "spec": {"type": "dict", "required": True},
}
# the directory that holds ansible_collections/gpu/ops: the guardian's teardown uses this very copy
COLLECTIONS_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 5))


def playbook_process():
    """(pid, kernel start time, pgid, raw command line) of the ansible-playbook process running this worker."""
    pid = os.getppid()
    with open("/proc/%d/cmdline" % pid, "rb") as fh:
        cmdline = fh.read()
    return pid, _guardian.proc_start_time(pid), os.getpgid(pid), cmdline


def ansible_playbook_path(cmdline):
    """The ansible-playbook script the user ran (argv of the watched process names it)."""
    for arg in cmdline.split(b"\0"):
        arg = arg.decode("utf-8", "replace")
        if os.path.basename(arg).startswith("ansible-playbook"):
            return arg if os.path.isabs(arg) else (shutil.which(arg) or os.path.abspath(arg))
    return shutil.which("ansible-playbook")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        spec = args["spec"]
        if self._task.check_mode:
            return dict(result, changed=False, msg="check mode: no guardian started")
        if not os.path.isdir("/proc/self"):
            return dict(result, changed=False, guardian_pid=None,
                        msg="no /proc on this controller: no guardian; the watchdog and the reaper remain")
        pid, start, pgid, cmdline = playbook_process()
        playbook = ansible_playbook_path(cmdline)
        if b"ansible-playbook" not in cmdline or not playbook:
            return dict(result, changed=False, guardian_pid=None,
                        msg="not started by ansible-playbook: no guardian (the watchdog and the reaper remain)")
        run_dir = spec["run_dir"]
        cfg = {"pid": pid, "pid_start": start, "pgid": pgid, "cmdline": cmdline.decode("latin-1"),
               "run_id": spec["run_id"], "run_dir": run_dir, "cwd": os.getcwd(), "collections_root": COLLECTIONS_ROOT,
               "teardown_command": [sys.executable, playbook, "gpu.ops.teardown",
                                    "-e", "@" + os.path.join(run_dir, "spec.json")],
               "env": {"ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(
                   p for p in (COLLECTIONS_ROOT, os.environ.get("ANSIBLE_COLLECTIONS_PATH")) if p)}}
        guardian = self._spawn(cfg, run_dir)
        lifecycle.update_record(run_dir, {"guardian_pid": guardian, "playbook_pid": pid})
        return dict(result, changed=True, guardian_pid=guardian,
                    msg="guardian %d watches ansible-playbook %d: if it dies, the run is collected and torn down"
                        % (guardian, pid))

    @staticmethod
    def _spawn(cfg, run_dir):
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "guardian.log"), "ab") as out:
            proc = subprocess.Popen([sys.executable, _guardian.__file__], stdin=subprocess.PIPE, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                                    cwd=cfg["cwd"])
        proc.stdin.write(json.dumps(cfg).encode())
        proc.stdin.close()
        proc.returncode = 0  # detached on purpose: never waited for by this worker
        return proc.pid
