# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugin_utils/_node_helper.py: the helper bundles are reproducible zip applications that run on a bare Python
(no Ansible, no site-packages) and speak the one-JSON-line protocol, secrets on stdin only."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.gpu.ops.plugins.plugin_utils import _node_helper as nh


@pytest.mark.parametrize("name", sorted(nh.BUNDLES))
def test_bundles_are_reproducible_zip_applications(name):
    nh.helper_source.cache_clear()
    first, suffix = nh.helper_source(name)
    nh.helper_source.cache_clear()
    again, dummy = nh.helper_source(name)
    assert suffix == ".pyz" and first == again  # same sources, same bytes, same installed name
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert "__main__.py" in names
    for lib in nh.BUNDLES[name]:
        assert "ansible_collections/gpu/ops/plugins/module_utils/%s.py" % lib in names
    assert len(first) < 80000  # a few tens of kB once per collection version, not 200 kB per call


def test_single_file_helpers_stay_plain_files():
    source, suffix = nh.helper_source("workspace")
    assert suffix == ".py" and source.startswith(b"# -*- coding")


@pytest.fixture
def bundle(tmp_path):
    def write(name):
        path = tmp_path / ("gpuops-%s-%s.pyz" % (name, hashlib.sha256(nh.helper_source(name)[0]).hexdigest()[:12]))
        path.write_bytes(nh.helper_source(name)[0])
        return str(path)
    return write


def call(path, command, args, env=None):
    """As the controller runs it: a bare, isolated Python (-I: no user site, -S: no site-packages, so no Ansible)."""
    res = subprocess.run([sys.executable, "-I", "-S", path, command], input=json.dumps(args).encode() + b"\n",
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False, env=env)
    assert res.returncode == 0, res.stderr.decode()
    return json.loads(res.stdout.decode().splitlines()[-1])


def test_jobs_helper_runs_without_ansible_and_reports_failures_as_json(bundle, tmp_path):
    path = bundle("jobs")
    res = call(path, "info", {"job_id": "nope", "root": str(tmp_path / "root")})
    assert res["failed"] and "no job nope on this node" in res["msg"]
    res = call(path, "info", {"root": str(tmp_path / "root")})
    assert res == {"changed": False, "jobs": []}
    res = call(path, "frobnicate", {})
    assert res["failed"] and "unknown command 'frobnicate'" in res["msg"]
    bad = call(path, "start", {"job_id": "a.b", "command": "true", "workdir": str(tmp_path), "env": {},
                               "bootstrap": "skip", "bootstrap_timeout": 600, "kill_grace": 10,
                               "shell": "/bin/bash", "root": str(tmp_path / "root")})
    assert bad["failed"] and "invalid job_id 'a.b'" in bad["msg"]


def test_jobs_helper_starts_the_runner_from_itself_and_env_stays_off_argv(bundle, tmp_path):
    if not any(os.access(os.path.join(d, "tmux"), os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep)):
        pytest.skip("tmux is not installed here")
    path = bundle("jobs")
    root = str(tmp_path / "root")
    secret = "s3cr3t-" + tmp_path.name
    env = dict(os.environ, TMUX_TMPDIR=str(tmp_path))  # a tmux server of this test's own
    (tmp_path / "expected").write_text(secret)
    started = call(path, "start", {
        "job_id": "j1", "command": 'test "$TOKEN" = "$(cat expected)" && echo token-ok', "workdir": str(tmp_path),
        "env": {"TOKEN": secret}, "bootstrap": "skip", "bootstrap_timeout": 600, "kill_grace": 10,
        "shell": "/bin/bash", "root": root}, env=env)
    assert started["changed"] and "TOKEN" in started["job"]["env_names"], started
    assert secret not in json.dumps(started)
    done = call(path, "wait", {"job_id": "j1", "state": "finished", "timeout": 30, "root": root}, env=env)
    assert done["done"] and done["job"]["status"] == "succeeded", done
    assert "token-ok" in done["job"]["last_line"]
    with open(os.path.join(root, "jobs", "j1", "job.log")) as fh:
        assert secret not in fh.read()


class _Conn(object):
    def __init__(self, become):
        self.become = become


def _become(name, **options):
    from ansible.plugins.loader import become_loader

    plugin = become_loader.get(name)
    plugin.set_options(direct=options)
    return plugin


def test_streams_get_passwordless_sudo_as_the_become_user():
    assert nh.stream_become(_Conn(None), "collect") == []
    assert nh.stream_become(_Conn(_become("sudo", become_user="trainer")), "collect") == [
        "sudo", "-n", "-H", "-u", "trainer"]


@pytest.mark.parametrize("name,options,needle", [
    ("sudo", {"become_pass": "pw"}, "cannot answer a sudo password prompt"),
    ("su", {}, "cannot honour become_method=su"),
])
def test_streams_refuse_become_they_cannot_honour(name, options, needle):
    with pytest.raises(nh.HelperFailed) as exc:
        nh.stream_become(_Conn(_become(name, **options)), "collect_results (rsync)")
    assert needle in str(exc.value) and "collect_results (rsync)" in str(exc.value)
