# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the ``env`` option of gpu.ops modules (job, job_bootstrap and the instance modules) keeps its values out
of every log. PRIVATE to the collection, may change without notice. Standard library only.

AnsibleModule logs its arguments ("Invoked with ...") to syslog/journald on the machine it runs on before the
module's code runs; only ``no_log`` options are left out. So ``env`` is ``no_log``. A ``no_log`` dict would make
Ansible star out every occurrence of every value in the whole result (a NODE_RANK of "0" would wreck every
number), so each of these modules has an action plugin that hands ``env`` over as one JSON string
(:func:`opaque_env`): the type check turns it back into a dict, but the only no_log value Ansible records is
that string, which never appears in any output. The module then replaces the values by :data:`REDACTED` in its
parameters (:func:`hide_env`), so the result's ``invocation`` shows the names only.
"""

from __future__ import annotations

import json

# What Ansible itself shows for a no_log value; the one placeholder gpu.ops uses for hidden values.
REDACTED = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def env_option():
    """The argument spec entry of every ``env`` option that may hold secrets."""
    return dict(type="dict", default={}, no_log=True)


def opaque_env(args):
    """Module args with ``env`` as one JSON string (controller side, in the action plugins). Returns a copy."""
    args = dict(args or {})
    env = args.get("env")
    if isinstance(env, dict) and env:
        args["env"] = json.dumps(env, sort_keys=True)
    return args


def hide_env(params):
    """Take ``env`` out of a module's params, leaving only its names; return the values (a dict)."""
    env = dict(params.get("env") or {})
    params["env"] = dict((k, REDACTED) for k in env)
    return env


def redact_env(result):
    """Replace the values of ``env`` in a module result's invocation (names stay visible)."""
    module_args = (result.get("invocation") or {}).get("module_args") if isinstance(result, dict) else None
    if isinstance(module_args, dict):
        env = module_args.get("env")
        if isinstance(env, dict):
            module_args["env"] = dict((k, REDACTED) for k in env)
        elif env:
            module_args["env"] = REDACTED
    return result
