# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node side of the gpu.ops helper channel (see ``plugins/plugin_utils/_node_helper.py``). PRIVATE, may change.

Standard library only, Python >= 3.9: it runs on the node inside a helper's zip application.
Protocol: stdin starts with one JSON line (the arguments; secrets travel here, never on a command line); the
answer is one JSON line on stdout. A failure the user should read is ``{"failed": true, "msg": ...}`` with exit
code 0; a crash is a traceback on stderr and a non-zero exit code.
"""

from __future__ import annotations

import json
import sys


class NodeError(Exception):
    """A problem to report to the user as a task failure."""


def serve(commands, argv=None, stdin=None, stdout=None, errors=(NodeError,)):
    """Run ``commands[argv[0]](args)`` with the arguments read from stdin and write its answer."""
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    header = (stdin or sys.stdin.buffer).readline()
    handler = commands.get(command)
    try:
        args = json.loads(header.decode("utf-8") if header else "{}")
        if handler is None:
            raise NodeError("unknown command %r (known: %s)" % (command, ", ".join(sorted(commands))))
        result = handler(args)
    except errors as exc:
        result = {"failed": True, "msg": str(exc)}
    out = stdout or sys.stdout
    out.write(json.dumps(result) + "\n")
    out.flush()
    return 0
