# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.checkpoint_push (documentation: plugins/modules/checkpoint_push.py).

One call of the collect node helper looks at the node (and prunes); the files it lacks go as one tar stream: over
the task's SSH connection (the same ControlPath, streamed, never held in memory), or through the helper's stdin on
other connections.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import subprocess
import tarfile
import time

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.plugin_utils._node_helper import (
    HelperFailed,
    NodeHelper,
    ssh_command,
    ssh_host,
    stream_become,
)

ARGUMENT_SPEC = {
    "dest": {"type": "str", "required": True},
    "src": {"type": "path"},
    "prune": {"type": "bool", "default": False},
}
CHUNK = 1 << 20


def local_files(src):
    """{path relative to src: (full path, sha256, size)} of the regular files under the checkpoint ``src``."""
    out = {}
    for dirpath, _dirs, files in os.walk(src):
        for name in files:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                h = hashlib.sha256()
                with open(full, "rb") as fh:
                    for chunk in iter(lambda f=fh: f.read(CHUNK), b""):
                        h.update(chunk)
                out[os.path.relpath(full, src)] = (full, h.hexdigest(), os.path.getsize(full))
    return out


def write_tar(out, files, names):
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in names:
            info = tar.gettarinfo(files[rel][0], arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(files[rel][0], "rb") as fh:
                tar.addfile(info, fh)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        started = time.monotonic()
        _valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        src = args["src"]
        if src and not os.path.isdir(src):
            return dict(result, failed=True, msg="checkpoint %s does not exist on the controller" % src)
        files = local_files(src) if src else {}
        keep = os.path.basename(src.rstrip("/")) if src else ""
        helper = NodeHelper(self, task_vars, "collect")
        try:
            node = helper.run("ckpt_prepare", {"dest": args["dest"], "keep": keep, "prune": args["prune"],
                                               "check_mode": bool(self._task.check_mode)})
            if node.get("failed"):
                return dict(result, **node)
            send = sorted(rel for rel, f in files.items() if node["have"].get(rel) != f[1])
            stale = sorted(set(node["have"]) - set(files))
            if (send or stale) and not self._task.check_mode:
                got = self._send(helper, args["dest"], keep, files, send)
                if got.get("failed"):
                    return dict(result, **got)
        except HelperFailed as exc:
            return dict(result, failed=True, msg=str(exc))
        return dict(result, changed=bool(node["pruned"] or send or stale), dir=node["dir"], pruned=node["pruned"],
                    sent=send, bytes=sum(files[rel][2] for rel in send),
                    seconds=round(time.monotonic() - started, 3),
                    msg="%s: %d file(s) sent, %d checkpoint(s) removed" % (keep or "no checkpoint", len(send),
                                                                           len(node["pruned"])))

    def _send(self, helper, dest, keep, files, names):
        header = json.dumps({"dest": dest, "name": keep,
                             "files": dict((rel, f[1]) for rel, f in files.items())}).encode("utf-8") + b"\n"
        ssh = ssh_command(self._connection)
        if not ssh:  # other connections: the (small) stream through the helper's stdin
            buf = io.BytesIO()
            write_tar(buf, files, names)
            return helper.run("ckpt_receive", json.loads(header), buf.getvalue())
        remote = 'f=%s; exec %s "$f" ckpt_receive' % (helper.remote, helper.interpreter)
        sudo = stream_become(self._connection, "checkpoint_push")
        if sudo:  # "~" in the helper's path is the become user's home, where it was installed
            remote = "%s sh -c %s" % (" ".join(sudo), shlex.quote(remote))
        proc = subprocess.Popen(ssh + [ssh_host(self._connection), remote], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            proc.stdin.write(header)
            write_tar(proc.stdin, files, names)
        except BrokenPipeError:
            pass  # the node side ended early; its answer below says why
        out, err = proc.communicate()  # closes stdin: the end of the stream
        lines = [ln for ln in out.decode("utf-8", "replace").splitlines() if ln.strip()]
        if proc.returncode != 0 or not lines:
            raise HelperFailed("sending checkpoint %s failed (rc %s): %s"
                               % (keep, proc.returncode, err.decode("utf-8", "replace").strip()[-1500:]))
        return json.loads(lines[-1])
