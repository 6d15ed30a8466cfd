"""gpu.ops.tmux_job / gpu.ops.job* on simulator nodes: exit codes 0/1/137, the failure message, progress, kill,
lost sessions, id reuse, secrets kept out of ps and Ansible output, serve mode and check mode."""

from __future__ import annotations

import hashlib
import json
import re
import shlex

from gpuops.testing import run_playbook
from jobs_helpers import PLAYBOOKS, free_port, job_file, pid_alive, play, wait_for, workspace

JOB_FILES = {"job.log", "status", "exit_code", "started_at", "ended_at", "pid", "metadata.json"}


def test_exit_codes_progress_failure_message_and_listing(runpod_node, sim, tmp_path):
    workspace(runpod_node)
    host = runpod_node.name
    p = play(sim, [runpod_node], tmp_path, "jobs_exit_codes.yml", {"jobs_prefix": "ec"})
    assert p.rc == 0, p.failures()  # the failing job is rescued in the playbook

    def final(job_id):
        return p.task(f"Wait for job {job_id}", host)

    ok, one, k9 = final("ec-ok"), final("ec-one"), final("ec-k9")
    assert (ok["job"]["status"], ok["job"]["exit_code"]) == ("succeeded", 0) and not ok.get("failed")
    assert (one["job"]["status"], one["job"]["exit_code"]) == ("failed", 1)
    assert (k9["job"]["status"], k9["job"]["exit_code"]) == ("failed", 137)
    assert ok["job"]["log_tail"][-1].startswith("==== BIFROST JOB END") and "step 3 of 3" in ok["job"]["log_tail"]
    # the files the protocol promises, with what the job really did
    listing = runpod_node.ssh("ls ~/.bifrost/jobs/ec-one/").stdout.split()
    assert JOB_FILES <= set(listing)
    assert job_file(runpod_node, "ec-one", "exit_code").strip() == "1"
    assert job_file(runpod_node, "ec-k9", "status").strip() == "failed"
    # a failure fails the role with the exit code and the log tail
    seven = final("ec-seven")
    assert seven["failed"] and seven["job"]["exit_code"] == 7
    assert "exit code 7" in seven["msg"] and "Traceback - ValueError - bad batch" in seven["msg"]
    # progress lines: alive, how long, the last log line (on stderr, so JSON output stays valid)
    assert re.search(rf"\[{re.escape(host)}\] ec-ok: running \d+:\d\d:\d\d, waited \d+:\d\d:\d\d \| step \d of 3",
                     p.proc.stderr), p.proc.stderr[-2000:]
    jobs = {j["job_id"]: j for j in p.task("List the jobs", host)["jobs"]}
    assert {k: jobs[k]["status"] for k in ("ec-ok", "ec-one", "ec-k9", "ec-seven")} == {
        "ec-ok": "succeeded", "ec-one": "failed", "ec-k9": "failed", "ec-seven": "failed"}
    assert jobs["ec-one"]["attach_command"] == (
        f"ssh -t -p {runpod_node.port} -i {runpod_node.key} {runpod_node.user}@{runpod_node.host} "
        "tmux attach -t bifrost-ec-one")


def test_kill_lost_and_no_session_reuse(runpod_node, sim, tmp_path):
    workspace(runpod_node)
    start = [
        {"id": "kl-kill", "command": "echo started; sleep 300"},
        {"id": "kl-stubborn", "command": "trap '' TERM; echo ignoring TERM; sleep 300", "kill_grace": 1},
        {"id": "kl-lost", "command": "echo started; sleep 300"},
    ]
    play(sim, [runpod_node], tmp_path, "jobs_start.yml", {"jobs_start": start}).ok()
    for job in start:
        wait_for(lambda j=job: "sleep" in (job_file(runpod_node, j["id"], "job.log") or "") or
                 "started" in (job_file(runpod_node, j["id"], "job.log") or "") or
                 "ignoring" in (job_file(runpod_node, j["id"], "job.log") or ""), what=f"{job['id']} running")
    host = runpod_node.name
    pid = int(job_file(runpod_node, "kl-kill", "pid"))
    child = {j: job_file(runpod_node, j, "child_pid") for j in ("kl-kill", "kl-stubborn", "kl-lost")}
    p = play(sim, [runpod_node], tmp_path, "jobs_control.yml", {
        "jobs_actions": ["reuse", "kill", "kill_tmux_server", "info"], "jobs_id": "kl-kill",
        "jobs_ids": ["kl-kill", "kl-stubborn"]})
    # an existing id is never taken over: the start fails (the running job was untouched until the kill)
    res = p.task("Start a job whose id exists", host)
    assert res["failed"] and "already exists" in res["msg"]
    assert "started" in job_file(runpod_node, "kl-kill", "job.log") and "different" not in job_file(
        runpod_node, "kl-kill", "command.sh")
    kills = [t[host] for t in p.tasks("Kill job kl-kill")]
    assert [k["changed"] for k in kills] == [True, False]  # the second kill finds nothing to do
    assert (kills[0]["job"]["status"], kills[0]["job"]["exit_code"]) == ("killed", 143)
    stubborn = p.tasks("Kill job kl-stubborn")[0][host]["job"]
    assert (stubborn["status"], stubborn["exit_code"]) == ("killed", 137)  # SIGKILL after the grace period
    for j in ("kl-kill", "kl-stubborn"):
        assert not pid_alive(runpod_node, child[j]), f"{j}: command still running"
        assert not pid_alive(runpod_node, job_file(runpod_node, j, "pid"))
    assert not pid_alive(runpod_node, pid)
    # the tmux server died under a running job: no final status was written, so it is lost, not running
    p2 = play(sim, [runpod_node], tmp_path, "jobs_control.yml", {"jobs_actions": ["info"], "jobs_id": "kl-lost"}).ok()
    job = p2.task("Read the job", host)["job"]
    assert job["status"] == "lost" and job["exit_code"] is None and not job["final"]
    assert "hung up" in job["lost_reason"]
    # the first look that found it lost recorded it: the job's own record no longer says running
    assert job_file(runpod_node, "kl-lost", "status").strip() == "lost"
    assert "hung up" in job_file(runpod_node, "kl-lost", "lost_reason")
    wait_for(lambda: not pid_alive(runpod_node, child["kl-lost"]), what="the lost job's command to stop")


def fake_journald(node) -> dict:
    """A stand-in for the systemd journal on the node: AnsibleModule logs its invocation to ``systemd.journal``
    when that imports and ``systemd.daemon.booted()``; this one appends each record to a file."""
    home = node.ssh("echo $HOME").stdout.strip()
    pkg, log = f"{home}/fake-journald", f"{home}/journal.jsonl"
    journal_py = ("import json\n"
                  "def send(**fields):\n"
                  f"    with open({log!r}, 'a') as fh:\n"
                  "        fh.write(json.dumps(fields, default=str) + '\\n')\n"
                  "sendv = send\n")
    node.ssh(f"mkdir -p {pkg}/systemd && : > {pkg}/systemd/__init__.py && : > {log} && "
             f"printf 'def booted():\\n    return True\\n' > {pkg}/systemd/daemon.py && "
             f"printf %s {shlex.quote(journal_py)} > {pkg}/systemd/journal.py")
    return {"pythonpath": pkg, "log": log}


def test_secret_env_stays_out_of_ps_files_and_ansible_output(runpod_node, sim, tmp_path):
    workspace(runpod_node)
    secret = "hf_" + hashlib.sha256(tmp_path.name.encode()).hexdigest()[:30]
    command = ('python3 -c "import os,hashlib;print(hashlib.sha256(os.environ[\'HF_TOKEN\'].encode()).hexdigest())" '
               '> "$BIFROST_OUTPUTS/token.sha256"; until [ -f "$BIFROST_JOB_DIR/go" ]; do sleep 0.1; done')
    journal = fake_journald(runpod_node)
    inv = sim.inventory([runpod_node], tmp_path / "inventory.yml")
    proc = run_playbook(PLAYBOOKS / "jobs_start.yml", inv,
                        {"jobs_start": [{"id": "sec", "command": command, "env": {"HF_TOKEN": secret}}],
                         "jobs_module_env": {"PYTHONPATH": journal["pythonpath"]}},
                        args=["-vvv"], env={"ANSIBLE_INJECT_INVOCATION": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "HF_TOKEN" in proc.stdout  # the name is shown (env_names), never the value
    assert secret not in proc.stdout + proc.stderr
    # what Ansible logged on the node: the playbook's own module call (ping, proving the capture works and that
    # it saw the same environment), nothing from gpu.ops.job (its helper is no module), and never the value
    logged = runpod_node.ssh(f"cat {journal['log']}").stdout
    assert "ansible-ansible.builtin.ping Invoked with" in logged, logged[-2000:]
    assert "gpu.ops.job" not in logged and "HF_TOKEN" not in logged, logged[-2000:]
    assert secret not in logged
    wait_for(lambda: job_file(runpod_node, "sec", "outputs/token.sha256"), what="the job to read its token")
    # while the job runs: not in any process's command line, not in any file under ~/.bifrost
    ps = runpod_node.ssh("ps -eo args; cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '").stdout
    assert "sleep 0.1" in ps or "until" in ps or "bash" in ps
    assert secret not in ps
    assert runpod_node.ssh(f"grep -rl {secret} ~/.bifrost", check=False).stdout == ""
    assert job_file(runpod_node, "sec", "env") is None  # the 0600 env file was deleted once read
    assert job_file(runpod_node, "sec", "outputs/token.sha256").strip() == hashlib.sha256(secret.encode()).hexdigest()
    runpod_node.ssh("touch ~/.bifrost/jobs/sec/go")
    p = play(sim, [runpod_node], tmp_path, "jobs_control.yml", {"jobs_actions": ["wait"], "jobs_id": "sec"}).ok()
    assert p.task("Wait for the job", runpod_node.name)["job"]["status"] == "succeeded"
    assert secret not in p.proc.stdout + p.proc.stderr


def test_serve_mode_ready_deadline_and_early_exit(runpod_node, sim, tmp_path):
    workspace(runpod_node)
    port, unused = free_port(), free_port()
    p = play(sim, [runpod_node], tmp_path, "jobs_serve.yml",
             {"jobs_prefix": "sv", "jobs_port": port, "jobs_unused_port": unused})
    assert p.rc == 0, p.failures()
    host = runpod_node.name
    ready = p.task("Wait for job sv-srv", host)
    assert ready["ready"] and ready["job"]["status"] == "running" and not ready.get("failed")
    assert f"127.0.0.1:{port}/v1/models answered HTTP 200" in ready["msg"]
    never = p.task("Wait for job sv-never", host)
    assert never["failed"] and not never["ready"] and never["job"]["status"] == "running"
    assert re.search(r"not ready after \d+s: .*127\.0\.0\.1:%d" % unused, never["msg"]), never["msg"]
    assert "keeps running" in never["msg"]
    assert 3 <= never["elapsed"] < 15
    crash = p.task("Wait for job sv-crash", host)
    assert crash["failed"] and crash["job"]["exit_code"] == 5
    assert "before" in crash["msg"] and "CUDA out of memory" in crash["msg"]
    kills = {t[host]["job"]["job_id"]: t[host]["job"] for t in p.tasks("Kill job sv-")}
    assert {k: v["status"] for k, v in kills.items()} == {"sv-srv": "killed", "sv-never": "killed"}


def test_check_mode_changes_nothing(runpod_node, sim, tmp_path):
    workspace(runpod_node)
    p = play(sim, [runpod_node], tmp_path, "jobs_roles.yml", {
        "bootstrap_job_id": "chk", "bootstrap_command": "touch ~/bootstrapped", "tmux_job_command": "touch ~/ran"},
        args=["--check"]).ok()
    host = runpod_node.name
    assert p.task("Start the bootstrap of chk", host)["changed"]
    assert p.task("Start job chk", host)["changed"]
    assert p.task("Wait for job chk", host).get("skipped")
    assert runpod_node.ssh("ls -a ~/.bifrost/jobs ~/bootstrapped ~/ran", check=False).returncode != 0
    assert json.loads(json.dumps(p.doc["stats"]))[host]["failures"] == 0
