# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node preparation's sh script, run for real in a directory of chosen programs (no Python on its PATH)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.gpu.ops.plugins.plugin_utils import _node_tools as tools

BASE = ("sh", "cat", "grep", "sed", "tr", "head", "tail", "mkdir", "printf", "env", "true", "tar", "ln")


def fake_bin(tmp_path, have, extra=None):
    """A PATH with the base programs, the ones in ``have`` (links to the real ones) and scripted ``extra``."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    for name in BASE + tuple(have):
        # python3: the interpreter running the tests (a pyenv shim would need pyenv on PATH)
        real = sys.executable if name == "python3" else shutil.which(name)
        if real and not (d / name).exists():
            os.symlink(real, d / name)
    for name, body in (extra or {}).items():
        (d / name).write_text("#!/bin/sh\n" + body)
        (d / name).chmod(0o755)
    return d


def run(tmp_path, path_dir, require=tools.DEFAULT_REQUIRE, install=True):
    env = {"PATH": str(path_dir), "HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir(exist_ok=True)
    cmd = tools.script(list(require), list(tools.DEFAULT_OPTIONAL), install)
    res = subprocess.run(["/bin/sh", "-c", cmd], env=env, capture_output=True, text=True, timeout=30, check=False)
    found = tools.parse(res.stdout)
    return tools.outcome(found, list(require), install), found, res


def test_everything_present_writes_the_marker_then_the_next_run_is_cached(tmp_path):
    d = fake_bin(tmp_path, ("python3", "git", "tmux"), {"id": "echo 1000\n"})
    out, _found, res = run(tmp_path, d)
    assert not out.get("failed") and not out["changed"] and not out["cached"], (out, res.stderr)
    assert set(out["tools"]) >= {"python3", "git", "tmux", "tar"}
    assert out["tools"]["python3"][0] == "3"
    again, _f, _r = run(tmp_path, d)
    assert again["cached"] and not again["changed"] and again["tools"] == out["tools"]


def test_missing_tools_are_installed_with_the_package_manager_as_root(tmp_path):
    log = tmp_path / "apt.log"
    d = fake_bin(tmp_path, ("python3",), {
        "id": "echo 0\n",
        # installs by linking the real programs, as a package manager would put them on PATH
        "apt-get": 'echo "$@" >> %s\ncase "$1" in install) for p in "$@"; do r=$(PATH=/usr/bin:/bin command -v "$p") '
                   '&& ln -sf "$r" "%s/$p"; done;; esac\n' % (log, tmp_path / "bin")})
    out, found, res = run(tmp_path, d)
    assert not out.get("failed"), (out, found, res.stderr)
    assert out["installed"] == ["git", "tmux"] and out["changed"] and out["manager"] == "apt-get"
    calls = log.read_text().splitlines()
    assert calls[0].startswith("update") and "install" in calls[1] and "git tmux" in calls[1]


def test_not_root_without_sudo_fails_with_the_reason_and_the_fix(tmp_path):
    d = fake_bin(tmp_path, ("python3",), {"id": "echo 1000\n", "apt-get": "exit 100\n"})
    out, _found, _res = run(tmp_path, d)
    assert out["failed"] and out["missing"] == ["git", "tmux"]
    assert "not root and sudo -n does not work" in out["msg"] and "Fix the image" in out["msg"]
    assert "git for deploying the repository" in out["msg"] and "tmux for running jobs" in out["msg"]


def test_sudo_n_is_used_when_not_root(tmp_path):
    log = tmp_path / "sudo.log"
    d = fake_bin(tmp_path, ("python3", "git"), {
        "id": "echo 1000\n",
        "sudo": 'printf "%%s\\n" "$*" >> %s\n[ "$2" = true ] && exit 0\nr=$(PATH=/usr/bin:/bin command -v tmux) && ln -sf "$r" '
                '"%s/tmux"\n' % (log, tmp_path / "bin"),
        "apt-get": "exit 0\n"})
    out, _found, _res = run(tmp_path, d)
    assert not out.get("failed") and out["installed"] == ["tmux"], out
    assert any(line.startswith("-n env DEBIAN_FRONTEND=noninteractive apt-get install") for line in
               log.read_text().splitlines())


def test_no_package_manager(tmp_path):
    d = fake_bin(tmp_path, (), {"id": "echo 0\n"})
    out, _found, _res = run(tmp_path, d)
    assert out["failed"] and set(out["missing"]) == {"python3", "git", "tmux"}
    assert "no package manager" in out["msg"] and "python3 for the node helpers" in out["msg"]


def test_check_only_never_installs_and_names_the_command(tmp_path):
    log = tmp_path / "apt.log"
    d = fake_bin(tmp_path, ("python3",), {"id": "echo 0\n", "apt-get": 'echo "$@" >> %s\n' % log})
    out, _found, _res = run(tmp_path, d, install=False)
    assert out["failed"] and "sudo apt-get install -y git tmux" in out["msg"]
    assert not log.exists()


def test_a_python_older_than_3_9_counts_as_missing(tmp_path):
    d = fake_bin(tmp_path, ("git", "tmux"), {"id": "echo 0\n", "python3": "exit 1\n"})
    out, _found, _res = run(tmp_path, d, install=False)
    assert out["failed"] and out["missing"] == ["python3"]


@pytest.mark.parametrize("stdout,expect", [("", {}), ("junk\nmissing=git\n", {"missing": "git"}),
                                           ('marker={"tools": {}}', {"marker": {"tools": {}}})])
def test_parse(stdout, expect):
    assert tools.parse(stdout) == expect
