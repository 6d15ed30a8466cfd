"""The pipeline as an AWX job runs it: ansible-runner (AWX's engine, with suppress_env_files as AWX sets it), the
project's playbooks/pipeline.yml, the environment and files the credential types' injectors produce, and the extra
vars a survey launch passes. The run record lands on the "mounted volume" (runs_dir), the summary comes back as
set_stats artifacts, and no secret is anywhere in the runner's private data dir."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from awxtools import awx_launch_extra_vars, render_injectors

from gpuops.testing import REPO

pytestmark = pytest.mark.slow


def load(path: str) -> dict:
    return yaml.safe_load((REPO / path).read_text())


def test_pipeline_job_as_awx_runs_it(sim, tmp_path):
    ansible_runner = pytest.importorskip("ansible_runner")
    sys.path.insert(0, str(REPO / "tests" / "pipeline"))
    from pipetools import make_example_repo

    pdd = tmp_path / "pdd"
    env, extra_vars = {}, {}
    creds = [("awx/credential_types/runpod.yml", {"api_key": sim.env["RUNPOD_API_KEY"]}),
             ("awx/credential_types/vast.yml", {"api_key": sim.env["VAST_API_KEY"]}),
             ("awx/credential_types/ssh_key.yml", {"ssh_private_key": sim.key.read_text(),
                                                   "ssh_public_key": sim.pubkey})]
    for path, inputs in creds:
        cred_type = load(path)
        field_ids = {f["id"] for f in cred_type["inputs"]["fields"]}
        inputs = {k: v for k, v in inputs.items() if k in field_ids} or {sorted(field_ids)[0]: list(inputs.values())[0]}
        e, x, _files = render_injectors(cred_type, inputs, pdd)
        env.update(e)
        extra_vars.update(x)
    assert env.get("RUNPOD_API_KEY") == sim.env["RUNPOD_API_KEY"] and env.get("VAST_API_KEY") == sim.env["VAST_API_KEY"]
    # the simulator's endpoints stand in for the vendors' (an EE on the real clouds has none of these set)
    env.update({k: v for k, v in sim.env.items() if k.endswith("_URL") or k in ("VAST_SSH_USER", "GPUOPS_API_QUOTAS")})
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / "collections")
    env["PATH"] = str(Path(sys.executable).parent) + ":/usr/bin:/bin"  # the EE's ansible-playbook
    repo = make_example_repo(tmp_path / "charlm")
    runs_dir = tmp_path / "volume" / "runs"
    answers = {"run_id": "awx-" + tmp_path.name[-6:].lower().replace("_", "-"), "repo": str(repo),
               "nodes": 1, "gpu": "RTX 4090", "max_price_per_hour": "2", "command": "python3 train.py --steps 40",
               "runs_dir": str(runs_dir), "keep_on_failure": "false", "interruptible": "false"}
    survey = load("awx/surveys/pipeline.yml")
    job_vars = awx_launch_extra_vars(survey, answers, {"bootstrap": "true"})
    job_vars.update(extra_vars)  # credential extra_vars win, as in AWX
    r = ansible_runner.run(private_data_dir=str(pdd), project_dir=str(REPO), playbook="playbooks/pipeline.yml",
                           inventory=str(REPO / "inventories" / "sim" / "localhost.yml"), extravars=job_vars,
                           envvars=env, suppress_env_files=True, quiet=True)
    assert r.rc == 0, "\n".join(e.get("stdout", "") for e in r.events)[-4000:]
    run_dir = runs_dir / answers["run_id"]
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "succeeded" and rec["torn_down"] is True
    assert not [x for x in sim.client.ledger()["instances"]
                if x["name"].startswith(answers["run_id"] + "-") and x["state"] != "terminated"]
    stats = [e for e in r.events if e.get("event") == "playbook_on_stats"][-1]["event_data"]
    summary = stats["artifact_data"]["gpuops_summary"]
    assert summary["run_id"] == answers["run_id"] and summary["status"] == "succeeded"
    assert summary["run_dir"] == str(run_dir)
    secrets = [sim.env["RUNPOD_API_KEY"], sim.env["VAST_API_KEY"], sim.key.read_text().split("\n")[1]]
    checked = 0
    for path in list(pdd.rglob("*")) + list(run_dir.rglob("*")):
        # env/ holds the injected key files (as on AWX); artifacts/<ident>/command is ansible-runner's own record
        # of the process environment, written whatever the options (0600 in a 0700 dir AWX deletes after the job)
        if not path.is_file() or path.parent.name == "env" or path.name == "command":
            continue
        checked += 1
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"a secret is in {path}"
    assert checked > 20  # job events, stdout, the run record
    command = next(pdd.glob("artifacts/*/command"))
    assert command.stat().st_mode & 0o077 == 0
