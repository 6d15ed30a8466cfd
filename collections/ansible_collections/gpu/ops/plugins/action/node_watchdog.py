# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.node_watchdog (documentation: plugins/modules/node_watchdog.py).

One command over the task's connection per call (the node helper ``_watchdog_node.py``); times are turned into
epoch seconds here so the node never parses dates.
"""

from __future__ import annotations

import datetime
import re

from ansible.plugins.action import ActionBase

from ansible_collections.gpu.ops.plugins.module_utils import registry
from ansible_collections.gpu.ops.plugins.plugin_utils._node_helper import HelperFailed, NodeHelper

ARGUMENT_SPEC = {
    "state": {"type": "str", "default": "present", "choices": ["present", "heartbeat", "absent", "status"]},
    "provider": {"type": "str"},  # choices: the registry's providers (argument_spec())
    "instance_id": {"type": "str"},
    "run_id": {"type": "str"},
    "expires_at": {"type": "raw"},
    "idle_timeout": {"type": "raw", "default": 1800},
    "max_cost": {"type": "float"},
    "price_per_hour": {"type": "float"},
    "started_at": {"type": "raw"},
    "interval": {"type": "float", "default": 15.0},
    "stop_grace": {"type": "float", "default": 30.0},
}


def argument_spec():
    spec = dict(ARGUMENT_SPEC)
    spec["provider"] = dict(ARGUMENT_SPEC["provider"], choices=registry.names())
    return spec


DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def epoch(value, name):
    """Epoch seconds from a number or an ISO 8601 date (a date without a zone is UTC); None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("%s: %r is neither epoch seconds nor an ISO 8601 date (2026-12-01T18:00:00Z)"
                         % (name, value)) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


def seconds(value, name):
    """Seconds from a number or a string such as 90, 30m, 2h; 0 or empty disables."""
    if value is None or value == "":
        return None
    match = DURATION_RE.match(str(value))
    if not match:
        raise ValueError("%s: %r is not a duration (seconds, or a number with s, m, h or d)" % (name, value))
    return float(match.group(1)) * UNITS[match.group(2)] or None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=argument_spec())
        try:
            command, payload = self._payload(args)
        except ValueError as exc:
            return dict(result, failed=True, msg=str(exc))
        payload["_check_mode"] = bool(self._task.check_mode)
        try:
            answer = NodeHelper.for_action(self, task_vars, "watchdog").run(command, payload)
        except HelperFailed as exc:
            return dict(result, failed=True, msg=str(exc))
        result.update(answer)
        if "credential" in answer and not answer.get("failed") and not answer["credential"]:
            result.setdefault("warnings", []).append(
                "%s gave this node no instance key (%s): the watchdog cannot destroy it; the reaper "
                "(gpu.ops.reap) is the only backstop" % (args["provider"], answer.get("credential_source")))
        return result

    @staticmethod
    def _payload(args):
        state = args["state"]
        if state == "heartbeat" and args["provider"]:
            return "heartbeat", ActionModule._settings(args)  # to re-arm a node that lost its settings
        if state != "present":
            return {"heartbeat": "heartbeat", "absent": "disarm", "status": "status"}[state], {}
        if not args["provider"]:
            raise ValueError("provider is required with state=present (%s)" % " or ".join(registry.names()))
        return "arm", ActionModule._settings(args)

    @staticmethod
    def _settings(args):
        payload = {
            "provider": args["provider"], "destroy": registry.get(args["provider"]).instance_credential,
            "instance_id": args["instance_id"], "run_id": args["run_id"],
            "expires_at": epoch(args["expires_at"], "expires_at"),
            "idle_timeout": seconds(args["idle_timeout"], "idle_timeout"),
            "started_at": epoch(args["started_at"], "started_at"),
            "max_cost": args["max_cost"] or None, "price_per_hour": args["price_per_hour"] or None,
            "interval": args["interval"], "stop_grace": args["stop_grace"],
        }
        if payload["max_cost"] and not payload["price_per_hour"]:
            raise ValueError("max_cost needs price_per_hour (the instance's price) to know when it is spent")
        if args["interval"] <= 0:
            raise ValueError("interval must be positive")
        return payload
