# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugin_utils/_job_action.py: attach commands, env redaction, durations."""

from __future__ import annotations

from ansible_collections.gpu.ops.plugins.module_utils._secret_env import REDACTED
from ansible_collections.gpu.ops.plugins.plugin_utils import _job_action as ja


def test_attach_command_over_ssh():
    assert ja.attach_command("bifrost-j1", host="203.0.113.7", port=40022, user="root") == (
        "ssh -t -p 40022 root@203.0.113.7 tmux attach -t bifrost-j1")
    assert ja.attach_command("bifrost-j1", host="h", port=22, user="me", key="/k/my key") == (
        "ssh -t -p 22 -i '/k/my key' me@h tmux attach -t bifrost-j1")
    assert ja.attach_command("bifrost-j1", host="h") == "ssh -t h tmux attach -t bifrost-j1"


def test_attach_command_local():
    assert ja.attach_command("bifrost-j1", local=True, host="ignored") == "tmux attach -t bifrost-j1"


def test_results_never_carry_env_values():
    res = {"job": {"env": {"HF_TOKEN": "hf_x", "RANK": "0"}, "job_id": "j"}, "env": {"A": "1"}}
    ja.hide_env_values(res)
    assert res == {"job": {"env": {"HF_TOKEN": REDACTED, "RANK": REDACTED}, "job_id": "j"}, "env": {"A": REDACTED}}
    assert ja.hide_env_values({"changed": False}) == {"changed": False}


def test_format_duration():
    assert ja.format_duration(None) == "-"
    assert ja.format_duration(3725) == "1:02:05"
