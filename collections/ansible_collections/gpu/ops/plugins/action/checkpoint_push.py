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

import io
import json
import os
import subprocess
import tarfile
import time

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.plugin_utils._collect_node import tree_hashes
from ansible_collections.gpu.ops.plugins.plugin_utils._node_helper import HelperActionMixin, HelperFailed

ARGUMENT_SPEC = {
    "dest": {"type": "str", "required": True},
    "src": {"type": "path"},
    "prune": {"type": "bool", "default": False},
}


def write_tar(out, src, names):
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in names:
            info = tar.gettarinfo(os.path.join(src, rel), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(os.path.join(src, rel), "rb") as fh:
                tar.addfile(info, fh)


class ActionModule(HelperActionMixin, ActionBase):
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
        files = tree_hashes(src) if src else {}  # {path relative to src: sha256}
        keep = os.path.basename(src.rstrip("/")) if src else ""
        look = {"dest": args["dest"], "keep": keep, "prune": args["prune"]}
        node = self._node_call("collect", "ckpt_prepare", look, task_vars)
        if node.get("failed"):
            return dict(result, **node)
        send = sorted(rel for rel, sha in files.items() if node["have"].get(rel) != sha)
        stale = sorted(set(node["have"]) - set(files))
        if (send or stale) and not self._task.check_mode:
            try:
                got = self._send(self._node_helper("collect", task_vars), args["dest"], src, keep, files, send)
            except HelperFailed as exc:
                got = {"failed": True, "msg": str(exc)}
            if got.get("failed"):
                return dict(result, **got)
        return dict(result, changed=bool(node["pruned"] or send or stale), dir=node["dir"], pruned=node["pruned"],
                    sent=send, bytes=sum(os.path.getsize(os.path.join(src, rel)) for rel in send),
                    seconds=round(time.monotonic() - started, 3),
                    msg="%s: %d file(s) sent, %d checkpoint(s) removed" % (keep or "no checkpoint", len(send),
                                                                           len(node["pruned"])))

    def _send(self, helper, dest, src, keep, files, names):
        args = {"dest": dest, "name": keep, "files": files}
        argv = helper.stream_argv("ckpt_receive", "checkpoint_push")
        if argv is None:  # other connections: the (small) stream through the helper's stdin
            buf = io.BytesIO()
            write_tar(buf, src, names)
            return helper.run("ckpt_receive", args, buf.getvalue())
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            proc.stdin.write(json.dumps(args).encode("utf-8") + b"\n")
            write_tar(proc.stdin, src, names)
        except BrokenPipeError:
            pass  # the node side ended early; its answer below says why
        out, err = proc.communicate()  # closes stdin: the end of the stream
        return helper.answer("ckpt_receive", proc.returncode, out.decode("utf-8", "replace"),
                             err.decode("utf-8", "replace"))
