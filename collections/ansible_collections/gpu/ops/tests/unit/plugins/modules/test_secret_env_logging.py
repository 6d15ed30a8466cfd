# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No value of a module's ``env`` reaches the system log: AnsibleModule logs "Invoked with ..." to journald (or
syslog) on the machine the module runs on. Here the journal is a recorder put where AnsibleModule looks for it,
so the test sees exactly what would be logged; the result must keep the names and not star out other values."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.gpu.ops.plugins.module_utils._secret_env import REDACTED, opaque_env, redact_env
from ansible_collections.gpu.ops.plugins.modules import gpu_instance, runpod_instance, vast_instance

SECRET = "hf_s3cr3t_value_that_must_not_be_logged"
ENV = {"HF_TOKEN": SECRET, "NODE_RANK": "0", "PYTHONUNBUFFERED": "1"}


class Journal(object):
    """Stands in for systemd.journal: AnsibleModule.log() calls send(MESSAGE=..., **fields)."""

    def __init__(self):
        self.records = []

    def send(self, **fields):
        self.records.append(fields)

    sendv = send

    def text(self):
        return json.dumps(self.records)


@pytest.fixture
def journal(monkeypatch):
    rec = Journal()
    monkeypatch.setattr(basic, "has_journal", True)
    monkeypatch.setattr(basic, "journal", rec, raising=False)
    return rec


def run(module, capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


CASES = {
    # no API key: the instance modules fail before any request, after AnsibleModule logged its arguments
    "runpod_instance": (runpod_instance, lambda tmp: {"name": "n1", "gpu_type": "RTX 4090", "image": "img",
                                                      "runpod_api_key": None}),
    "vast_instance": (vast_instance, lambda tmp: {"name": "n1", "gpu": ["RTX 4090"], "image": "img",
                                                  "vast_api_key": None}),
    "gpu_instance": (gpu_instance, lambda tmp: {"name_prefix": "n", "gpu": ["RTX 4090"], "image": "img",
                                                "runpod_api_key": None, "vast_api_key": None}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_env_values_never_reach_the_journal(name, journal, capsys, tmp_path, monkeypatch):
    """env as the action plugin hands it over (one no_log string)."""
    for var in ("RUNPOD_API_KEY", "VAST_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    module, make_args = CASES[name]
    args = opaque_env(dict(make_args(tmp_path), env=ENV))  # what the action plugin hands over
    res = run(module, capsys, args)
    logged = journal.text()
    assert "Invoked with" in logged, logged  # the recorder really is where AnsibleModule logs
    assert SECRET not in logged
    assert "env=NOT_LOGGING_PARAMETER" in logged
    out = json.dumps(redact_env(res))
    assert SECRET not in out
    # the values are not no_log one by one: a "0" or "1" elsewhere in the result is left alone
    assert "********" not in out
    invocation = (res.get("invocation") or {}).get("module_args")
    if invocation is not None:
        assert invocation["env"] == dict((k, REDACTED) for k in ENV)


@pytest.mark.parametrize("name", ["runpod_instance", "vast_instance"])
def test_env_given_as_a_dict_is_not_logged_either(name, journal, capsys, tmp_path, monkeypatch):
    """Without the action plugin (a dict, not the opaque string) the values are still kept out of the log."""
    for var in ("RUNPOD_API_KEY", "VAST_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    module, make_args = CASES[name]
    res = run(module, capsys, dict(make_args(tmp_path), env=ENV))
    assert SECRET not in journal.text() and "Invoked with" in journal.text()
    assert SECRET not in json.dumps(res)


def test_opaque_env_is_one_string_and_leaves_the_args_alone():
    args = {"env": {"B": "2", "A": "1"}, "job_id": "j"}
    out = opaque_env(args)
    assert out == {"env": '{"A": "1", "B": "2"}', "job_id": "j"}
    assert args["env"] == {"B": "2", "A": "1"}
    assert opaque_env({"env": {}}) == {"env": {}} and opaque_env(None) == {}
