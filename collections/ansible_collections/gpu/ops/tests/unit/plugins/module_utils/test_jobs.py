# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/_jobs.py and _job_runner.py: ids, env, bootstrap detection and hash, status reading (lost, never
inferred success), log tails, and the runner itself run as the installed script (no tmux needed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.gpu.ops.plugins.module_utils import _job_runner as runner
from ansible_collections.gpu.ops.plugins.module_utils import _jobs as jobs


# ------------------------------------------------------------------------------------------------ ids and env
@pytest.mark.parametrize("job_id", ["train-20260101-120000-0a1b2c3d", "a", "A_b-1"])
def test_valid_job_ids(job_id):
    assert jobs.validate_job_id(job_id) == job_id


@pytest.mark.parametrize("job_id", ["", "-x", "a.b", "a:b", "a b", "a/b", "x" * 129, None])
def test_invalid_job_ids_are_refused(job_id):
    with pytest.raises(jobs.JobError, match="invalid job_id"):
        jobs.validate_job_id(job_id)


def test_env_names_are_checked_and_values_stringified():
    assert jobs.validate_env({"A": 1, "B_2": None}) == {"A": "1", "B_2": ""}
    with pytest.raises(jobs.JobError, match="1BAD, BAD-NAME"):
        jobs.validate_env({"1BAD": "x", "BAD-NAME": "y", "OK": "z"})


def test_session_names():
    assert jobs.session_name("j-1") == "bifrost-j-1"
    assert jobs.bootstrap_session_name("j-1") == "bifrost-j-1-bootstrap"


# ------------------------------------------------------------------------------------------------ bootstrap plan
def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


PROJECT = '[project]\nname = "x"\nversion = "0"\n'
TOOL_ONLY = '[tool.ruff]\nline-length = 120\n'


@pytest.mark.parametrize("files,uv,kind,needle", [
    ({"uv.lock": "", "pyproject.toml": PROJECT}, "/opt/uv", "uv-sync", "/opt/uv sync --frozen"),
    ({"pyproject.toml": PROJECT}, "/opt/uv", "uv-sync", "/opt/uv sync ||"),
    ({"requirements.txt": "torch\n"}, "/opt/uv", "uv-pip", "/opt/uv pip install --python .venv/bin/python"),
    ({"pyproject.toml": PROJECT}, None, "pip-project", ".venv/bin/python -m pip install -e ."),
    ({"pyproject.toml": TOOL_ONLY, "requirements.txt": "torch\n"}, None, "pip-requirements",
     ".venv/bin/python -m pip install -r requirements.txt"),
    ({"pyproject.toml": TOOL_ONLY}, None, "none", ""),
    ({}, "/opt/uv", "none", ""),
])
def test_bootstrap_detection(tmp_path, files, uv, kind, needle):
    for name, text in files.items():
        write(str(tmp_path / name), text)
    plan = jobs.plan_bootstrap(str(tmp_path), uv=uv)
    assert plan["kind"] == kind
    assert needle in plan["script"]
    if kind.startswith("pip"):
        assert "python3 -m venv .venv" in plan["script"]
        assert plan["venv_python"] == str(tmp_path / ".venv" / "bin" / "python")


def test_generated_bootstrap_script_stops_at_the_first_failing_step(tmp_path):
    write(str(tmp_path / "requirements.txt"), "x\n")
    plan = jobs.plan_bootstrap(str(tmp_path), python="/nonexistent/python3")
    res = subprocess.run(["/bin/bash", "-c", plan["script"]], cwd=str(tmp_path), capture_output=True, text=True,
                         check=False)
    assert res.returncode == 127  # the venv step failed; pip never ran
    assert "+ [ -x .venv/bin/python ]" in res.stdout and "pip install" not in res.stdout


def test_bootstrap_hash_follows_dependency_files_and_settings(tmp_path):
    write(str(tmp_path / "requirements.txt"), "torch==2.13.0\n")
    write(str(tmp_path / "extra.cfg"), "a\n")
    base = jobs.plan_bootstrap(str(tmp_path))["hash"]
    assert jobs.plan_bootstrap(str(tmp_path))["hash"] == base
    write(str(tmp_path / "README.md"), "not a dependency file\n")
    assert jobs.plan_bootstrap(str(tmp_path))["hash"] == base
    assert jobs.plan_bootstrap(str(tmp_path), system_site_packages=True)["hash"] != base
    assert jobs.plan_bootstrap(str(tmp_path), hash_files=["extra.cfg"])["hash"] != base
    with_extra = jobs.plan_bootstrap(str(tmp_path), hash_files=["extra.cfg"])["hash"]
    write(str(tmp_path / "extra.cfg"), "b\n")
    assert jobs.plan_bootstrap(str(tmp_path), hash_files=["extra.cfg"])["hash"] != with_extra
    write(str(tmp_path / "requirements.txt"), "torch==2.13.1\n")
    assert jobs.plan_bootstrap(str(tmp_path))["hash"] != base
    custom = jobs.plan_bootstrap(str(tmp_path), command="make setup")
    assert custom["kind"] == "custom" and custom["script"] == "make setup\n" and custom["venv_python"] is None


def test_cache_file_is_per_workdir(tmp_path):
    paths = jobs.Paths(str(tmp_path / "root"))
    a, b = jobs.cache_file(paths, str(tmp_path / "a")), jobs.cache_file(paths, str(tmp_path / "b"))
    assert a != b and a.startswith(paths.cache)


# ------------------------------------------------------------------------------------------------ reading jobs
def make_job(root, job_id, status=None, exit_code=None, meta=True, **files):
    d = os.path.join(root, "jobs", job_id)
    os.makedirs(d, exist_ok=True)
    if meta:
        write(os.path.join(d, "metadata.json"), json.dumps({"job_id": job_id, "command": "x",
                                                            "created_at": "2026-01-01T00:00:00Z"}))
    if status is not None:
        write(os.path.join(d, "status"), status + "\n")
    if exit_code is not None:
        write(os.path.join(d, "exit_code"), "%s\n" % exit_code)
    for name, text in files.items():
        write(os.path.join(d, name), text)
    return d


@pytest.mark.parametrize("status,code,alive,expected,expected_code", [
    ("succeeded", 0, False, "succeeded", 0),
    ("failed", 1, False, "failed", 1),
    ("failed", 137, True, "failed", 137),
    ("killed", 143, False, "killed", 143),
    ("bootstrap_timeout", 124, False, "bootstrap_timeout", 124),
    ("running", None, True, "running", None),
    ("bootstrapping", None, True, "bootstrapping", None),
    ("running", None, False, "lost", None),
    ("starting", None, False, "lost", None),
    (None, None, True, "starting", None),
    ("garbage", None, True, "starting", None),
    ("garbage", None, False, "lost", None),
    ("succeeded", None, False, "failed", None),   # a missing exit code is never success
    ("succeeded", 3, False, "failed", 3),
])
def test_status_is_read_never_inferred(tmp_path, status, code, alive, expected, expected_code):
    d = make_job(str(tmp_path), "j1", status, code)
    job = jobs.read_job(d, {"bifrost-j1"} if alive else set())
    assert job["status"] == expected
    assert job["exit_code"] == expected_code
    assert job["final"] == (expected in runner.FINAL_STATUSES)
    if expected == "lost":
        assert "bifrost-j1" in job["lost_reason"]
    if expected == "failed" and status == "succeeded":
        assert job["warnings"]


def test_lost_reason_from_the_runner_and_its_crash(tmp_path):
    d = make_job(str(tmp_path), "j2", "running", lost_reason="tmux session hung up at T\n",
                 **{"runner.err": "Traceback...\nOSError: boom\n"})
    job = jobs.read_job(d, set())
    assert job["status"] == "lost"
    assert job["lost_reason"].startswith("tmux session hung up at T") and "OSError: boom" in job["lost_reason"]


def test_a_lost_job_is_recorded_as_lost_by_the_first_reader_that_finds_it(tmp_path):
    d = make_job(str(tmp_path), "j4", "running", **{"runner.err": "Traceback...\nOSError: boom"})
    assert jobs.read_job(d, set())["status"] == "lost"
    assert read(d, "status") == "running"  # a plain read (check mode) records nothing
    first = jobs.read_job(d, set(), persist=True)
    assert first["status"] == "lost" and read(d, "status") == "lost"
    assert read(d, "lost_reason").strip() == first["lost_reason"]
    again = jobs.read_job(d, set(), persist=True)
    assert again["status"] == "lost" and again["lost_reason"] == first["lost_reason"]
    assert again["lost_reason"].count("OSError: boom") == 1
    # what the runner recorded itself is kept; a final status is never overwritten
    d5 = make_job(str(tmp_path), "j5", "starting", lost_reason="tmux session hung up at T")
    jobs.read_job(d5, set(), persist=True)
    assert (read(d5, "status"), read(d5, "lost_reason")) == ("lost", "tmux session hung up at T")
    d6 = make_job(str(tmp_path), "j6", "failed", 1)
    assert jobs.read_job(d6, set(), persist=True)["status"] == "failed" and read(d6, "status") == "failed"


def test_wait_and_list_record_a_lost_job(tmp_path):
    paths = jobs.Paths(str(tmp_path))
    d = make_job(str(tmp_path), "lost-by-wait", "running")
    res = jobs.wait_job(paths, "lost-by-wait", timeout=5, persist=True)
    assert res["done"] and res["job"]["status"] == "lost" and read(d, "status") == "lost"
    d2 = make_job(str(tmp_path), "lost-by-list", "bootstrapping")
    assert [j["status"] for j in jobs.list_jobs(paths, persist=True)] == ["lost", "lost"]
    assert read(d2, "status") == "lost"


def test_a_bootstrap_only_dir_has_no_job_status(tmp_path):
    d = make_job(str(tmp_path), "j3", meta=False, **{"bootstrap.json": "{}", "bootstrap_done": '{"exit_code": 0}'})
    job = jobs.read_job(d, set())
    assert job["status"] is None and job["bootstrap"]["state"] == "done"
    paths = jobs.Paths(str(tmp_path))
    assert [j["job_id"] for j in jobs.list_jobs(paths)] == []


@pytest.mark.parametrize("files,sessions,state,code", [
    ({}, set(), "none", None),
    ({"bootstrap.json": "{}"}, {"bifrost-b-bootstrap"}, "running", None),
    ({"bootstrap.json": "{}"}, set(), "lost", None),
    ({"bootstrap.json": "{}", "bootstrap_done": '{"exit_code": 0}'}, set(), "done", 0),
    ({"bootstrap.json": "{}", "bootstrap_failed": '{"exit_code": 3, "reason": "exit"}'}, set(), "failed", 3),
    ({"bootstrap.json": "{}", "bootstrap_failed": '{"exit_code": 124, "reason": "timeout"}'}, set(), "timeout", 124),
    ({"bootstrap_failed": "not json"}, set(), "failed", None),
])
def test_bootstrap_state(tmp_path, files, sessions, state, code):
    d = make_job(str(tmp_path), "b", meta=False, **files)
    info = jobs.bootstrap_state(d, "b", sessions)
    assert (info["state"], info["exit_code"]) == (state, code)


def test_tail_and_last_line(tmp_path):
    log = str(tmp_path / "job.log")
    lines = ["line %d" % i for i in range(5000)]
    write(log, "\n".join(lines) + "\nepoch 1:  10%|#  \r\x1b[32mepoch 1:  50%|#####\x1b[0m \r\n")
    assert jobs.tail_lines(log, 3) == ["line 4998", "line 4999", "epoch 1:  50%|#####"]
    assert jobs.tail_lines(log, 0) == []
    assert jobs.tail_lines(str(tmp_path / "missing"), 5) == []
    assert runner.last_line("a\n\nb\r\n\n") == "b"
    assert runner.last_line("") == ""


def test_list_jobs_filters_and_orders(tmp_path):
    root = str(tmp_path)
    make_job(root, "b-job", "succeeded", 0)
    make_job(root, "a-job", "failed", 2)
    write(os.path.join(root, "jobs", "b-job", "metadata.json"),
          json.dumps({"name": "train", "created_at": "2026-01-02T00:00:00Z", "command": "x"}))
    write(os.path.join(root, "jobs", "not a job id", "status"), "running\n")
    found = jobs.list_jobs(jobs.Paths(root))
    assert [j["job_id"] for j in found] == ["a-job", "b-job"]
    assert [j["job_id"] for j in jobs.list_jobs(jobs.Paths(root), name="train")] == ["b-job"]


@pytest.mark.parametrize("code,expected", [(0, 0), (3, 3), (-9, 137), (-15, 143), (None, None)])
def test_exit_status(code, expected):
    assert runner.exit_status(code) == expected


# ------------------------------------------------------------------------------------------------ the runner itself
@pytest.fixture
def installed(tmp_path):
    """The runner started from its own file (on a node: from the installed jobs helper), plus a job dir factory."""
    paths = jobs.Paths(str(tmp_path / "bifrost"))
    assert paths.runner_argv == [sys.executable, os.path.abspath(runner.__file__)]

    def job(job_id, command, **spec):
        d = paths.job_dir(job_id)
        os.makedirs(d)
        write(os.path.join(d, "command.sh"), command + "\n")
        base = {"job_id": job_id, "workdir": str(tmp_path), "kill_grace": 2}
        write(os.path.join(d, "spec.json"), json.dumps(dict(base, **spec)))
        write(os.path.join(d, "status"), "starting\n")
        return d

    return paths, job


def run_runner(paths, mode, job_dir, env=None):
    return subprocess.Popen(paths.runner_argv + [mode, job_dir], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)


def read(d, name):
    with open(os.path.join(d, name)) as fh:
        return fh.read().strip()


@pytest.mark.parametrize("command,status,code", [
    ("echo ok", "succeeded", 0),
    ("echo no >&2; exit 3", "failed", 3),
    ("kill -9 $$", "failed", 137),
    ("unset PYTHONPATH; echo $PYTHONPATH; false | true", "succeeded", 0),  # no set -euo pipefail anywhere
])
def test_runner_records_the_real_exit(installed, command, status, code):
    paths, job = installed
    d = job("r-%d" % code, command)
    proc = run_runner(paths, "run", d)
    assert proc.wait(timeout=30) == (0 if status == "succeeded" else code)
    assert (read(d, "status"), int(read(d, "exit_code"))) == (status, code)
    for name in ("started_at", "ended_at", "pid", "child_pid"):
        assert read(d, name)
    assert "==== BIFROST JOB END" in read(d, "job.log")


def test_runner_env_file_is_read_then_deleted(installed):
    paths, job = installed
    d = job("env", 'echo "token=$HF_TOKEN job=$BIFROST_JOB_ID" > "$BIFROST_OUTPUTS/out"')
    os.makedirs(os.path.join(d, "outputs"))
    write(os.path.join(d, "env"), json.dumps({"HF_TOKEN": "hf_x"}))
    assert run_runner(paths, "run", d).wait(timeout=30) == 0
    assert read(d, "outputs/out") == "token=hf_x job=env"
    assert not os.path.exists(os.path.join(d, "env"))


def wait_file(path, timeout=15):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < end, "no %s" % path
        time.sleep(0.02)


def wait_for_log(d, text, timeout=15):
    end = time.monotonic() + timeout
    while text not in (runner.read_text(os.path.join(d, "job.log")) or ""):
        assert time.monotonic() < end, "no %r in the log" % text
        time.sleep(0.02)


def test_runner_on_term_stops_the_command_and_records_killed(installed):
    paths, job = installed
    d = job("term", "echo up; sleep 60")
    proc = run_runner(paths, "run", d)
    wait_file(os.path.join(d, "child_pid"))
    child = int(read(d, "child_pid"))
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)
    assert (read(d, "status"), read(d, "exit_code")) == ("killed", "143")
    assert not runner.group_alive(child)


def test_runner_on_hangup_stops_the_command_and_leaves_no_final_status(installed):
    paths, job = installed
    d = job("hup", "echo up; sleep 60")
    proc = run_runner(paths, "run", d)
    wait_file(os.path.join(d, "child_pid"))
    proc.send_signal(signal.SIGHUP)
    proc.wait(timeout=15)
    assert read(d, "status") == "running"  # the readers turn this into "lost" once the session is gone
    assert "hung up" in read(d, "lost_reason")
    assert jobs.read_job(d, set())["status"] == "lost"
    assert not runner.group_alive(int(read(d, "child_pid")))


def test_runner_kill_grace_then_sigkill_for_a_command_that_ignores_term(installed):
    paths, job = installed
    d = job("stubborn", "trap '' TERM; echo up; sleep 60", kill_grace=1)
    proc = run_runner(paths, "run", d)
    wait_for_log(d, "up")  # bash has installed its trap
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)
    assert (read(d, "status"), read(d, "exit_code")) == ("killed", "137")
    assert 0.9 < time.monotonic() - t0 < 8


def test_runner_stops_leftover_background_processes(installed):
    paths, job = installed
    d = job("bg", "sleep 60 & echo $! > bg.pid; echo done")
    assert run_runner(paths, "run", d).wait(timeout=30) == 0
    assert read(d, "status") == "succeeded"
    bg = int(read(os.path.dirname(paths.root), "bg.pid"))
    assert not runner.pid_alive(bg)


def bootstrap_dir(paths, job_id, script, **spec):
    d = paths.job_dir(job_id)
    os.makedirs(d)
    write(os.path.join(d, "bootstrap.sh"), script)
    base = {"job_id": job_id, "workdir": os.path.dirname(d), "timeout": 30, "kill_grace": 1}
    write(os.path.join(d, "bootstrap.json"), json.dumps(dict(base, **spec)))
    return d


def test_bootstrap_success_records_the_hash_then_the_flag(installed):
    paths = installed[0]
    cache = os.path.join(paths.cache, "bootstrap", "k.json")
    d = bootstrap_dir(paths, "bs-ok", "echo installing\n", cache_file=cache, hash="abc")
    assert run_runner(paths, "bootstrap", d).wait(timeout=30) == 0
    assert json.loads(read(d, "bootstrap_done"))["exit_code"] == 0
    assert json.loads(read(os.path.dirname(cache), "k.json"))["hash"] == "abc"
    assert "installing" in read(d, "bootstrap.log")


def test_bootstrap_failure_and_timeout_flags(installed):
    paths = installed[0]
    d = bootstrap_dir(paths, "bs-fail", "exit 4\n", cache_file=os.path.join(paths.cache, "x.json"))
    assert run_runner(paths, "bootstrap", d).wait(timeout=30) == 4
    assert json.loads(read(d, "bootstrap_failed"))["exit_code"] == 4
    assert not os.path.exists(os.path.join(paths.cache, "x.json"))
    d = bootstrap_dir(paths, "bs-slow", "echo start; sleep 60\n", timeout=1)
    t0 = time.monotonic()
    run_runner(paths, "bootstrap", d).wait(timeout=30)
    assert time.monotonic() - t0 < 10
    flag = json.loads(read(d, "bootstrap_failed"))
    assert (flag["exit_code"], flag["reason"]) == (124, "timeout")
    assert not runner.group_alive(int(read(d, "bootstrap_child_pid")))


def test_job_waiting_for_a_bootstrap_flag(installed):
    paths, job = installed
    d = job("wb", "echo ran", bootstrap_wait=True, bootstrap_session="bifrost-wb-bootstrap", bootstrap_timeout=30)
    write(os.path.join(d, "bootstrap_failed"), json.dumps({"exit_code": 124, "reason": "timeout"}))
    run_runner(paths, "run", d).wait(timeout=30)
    assert (read(d, "status"), read(d, "exit_code")) == ("bootstrap_timeout", "124")
    assert "ran" not in read(d, "job.log").replace("BIFROST", "")


def test_wait_job_returns_as_soon_as_the_status_is_final(tmp_path):
    make_job(str(tmp_path), "w1", "failed", 2, **{"job.log": "a\nb\n"})
    t0 = time.monotonic()
    res = jobs.wait_job(jobs.Paths(str(tmp_path)), "w1", timeout=20, log_lines=5)
    assert time.monotonic() - t0 < 5
    assert res["done"] and res["job"]["exit_code"] == 2 and res["job"]["log_tail"] == ["a", "b"]
    with pytest.raises(jobs.JobError, match="no job nope"):
        jobs.wait_job(jobs.Paths(str(tmp_path)), "nope", timeout=1)


def test_job_group_is_recognised_by_its_environment(tmp_path):
    env = dict(os.environ, BIFROST_JOB_DIR=str(tmp_path / "jobs" / "g1"))
    mine = subprocess.Popen(["sleep", "30"], env=env, start_new_session=True)
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert jobs._job_group_alive(mine.pid, str(tmp_path / "jobs" / "g1"))
        assert not jobs._job_group_alive(other.pid, str(tmp_path / "jobs" / "g1"))  # a reused pid is not ours
        assert not jobs._job_group_alive(mine.pid, str(tmp_path / "jobs" / "g2"))
    finally:
        for p in (mine, other):
            p.kill()
            p.wait()
    assert not jobs._job_group_alive(mine.pid, str(tmp_path / "jobs" / "g1"))


def test_killing_a_lost_job_stops_the_processes_its_dead_runner_left(installed, tmp_path, monkeypatch):
    monkeypatch.setenv("TMUX_TMPDIR", str(tmp_path))  # an empty tmux world: no session is alive
    paths, job = installed
    d = job("orphan", "echo up; sleep 60")
    proc = run_runner(paths, "run", d)
    wait_file(os.path.join(d, "child_pid"))
    child = int(read(d, "child_pid"))
    # the command's echo must be through before its reader dies (a write to the closed pipe would end it by
    # SIGPIPE: on a loaded machine the kill can come before the echo)
    wait_for_log(d, "up")
    proc.kill()  # the runner dies hard, its command (own process group) lives on
    proc.wait()
    assert runner.group_alive(child)
    assert jobs.read_job(d, set())["status"] == "lost"
    changed, info = jobs.kill_job(paths, "orphan", grace=2)
    assert changed and (info["status"], info["exit_code"]) == ("killed", 137)
    assert not runner.group_alive(child)
    assert jobs.kill_job(paths, "orphan", grace=2)[0] is False


# ------------------------------------------------------------------------------------------------ tmux server race
def _fake_tmux(tmp_path, monkeypatch, script):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tmux = bindir / "tmux"
    tmux.write_text("#!/bin/sh\n" + script)
    tmux.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ.get("PATH", "")))
    return tmp_path / "calls"


def test_new_session_retries_a_server_that_was_exiting(tmp_path, monkeypatch):
    # first call: the server we reached exits under us (its last session just ended); the retry succeeds
    calls = _fake_tmux(tmp_path, monkeypatch, 'echo x >> "%s"\n[ "$(wc -l < "%s")" -ge 2 ] && exit 0\n'
                       'echo "server exited unexpectedly" >&2; exit 1\n' % (tmp_path / "calls", tmp_path / "calls"))
    jobs.tmux_new_session("bifrost-x", str(tmp_path), ["true"])
    assert len(calls.read_text().splitlines()) == 2


def test_new_session_does_not_retry_other_errors(tmp_path, monkeypatch):
    calls = _fake_tmux(tmp_path, monkeypatch, 'echo x >> "%s"\necho "duplicate session: bifrost-x" >&2; exit 1\n'
                       % (tmp_path / "calls"))
    with pytest.raises(jobs.JobError, match="duplicate session"):
        jobs.tmux_new_session("bifrost-x", str(tmp_path), ["true"])
    assert len(calls.read_text().splitlines()) == 1


def test_new_session_gives_up_after_bounded_attempts(tmp_path, monkeypatch):
    calls = _fake_tmux(tmp_path, monkeypatch, 'echo x >> "%s"\necho "server exited unexpectedly" >&2; exit 1\n'
                       % (tmp_path / "calls"))
    with pytest.raises(jobs.JobError, match="server exited unexpectedly"):
        jobs.tmux_new_session("bifrost-x", str(tmp_path), ["true"], attempts=3)
    assert len(calls.read_text().splitlines()) == 3


def test_a_failed_start_leaves_no_phantom_job(tmp_path, monkeypatch):
    """tmux cannot make the session: the task fails, and no job is left that job_info would list (as lost) -
    neither for a fresh id nor next to the bootstrap of the same id (whose files stay)."""
    _fake_tmux(tmp_path, monkeypatch, 'case "$1" in new-session) echo "create window failed: fork failed" >&2;; '
               'esac\nexit 1\n')
    paths = jobs.Paths(str(tmp_path / "root"))
    ws = tmp_path / "ws"
    ws.mkdir()
    with pytest.raises(jobs.JobError, match="fork failed"):
        jobs.start_job(paths, "fresh", "echo hi", str(ws), {"HF_TOKEN": "hf_x"})
    assert not os.path.exists(paths.job_dir("fresh"))
    d = make_job(paths.root, "booted", meta=False, **{"bootstrap.json": "{}", "bootstrap_done": '{"exit_code": 0}'})
    with pytest.raises(jobs.JobError, match="fork failed"):
        jobs.start_job(paths, "booted", "echo hi", str(ws), {"HF_TOKEN": "hf_x"})
    assert sorted(os.listdir(d)) == ["bootstrap.json", "bootstrap_done"]
    assert jobs.list_jobs(paths) == []
