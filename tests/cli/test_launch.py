"""`gpuops launch` end to end with a small playbook of ours in place of the pipeline (--playbook): the spec
file and -e values reach the playbook, progress lines are printed, and the exit code follows the run record."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from clitools import gpuops

PLAYS = [{"name": "preflight", "hosts": "localhost", "gather_facts": False, "tasks": [
    {"name": "spec valid", "ansible.builtin.assert": {"that": ["nodes | int >= 1"]}}]},
    {"name": "provision", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "offers", "gpu.ops.gpu_offer_info": {"gpu": ["{{ gpu }}"], "limit": 1}, "register": "found"},
        {"name": "run dir", "ansible.builtin.file": {"path": "{{ runs_dir }}/{{ run_id }}", "state": "directory",
                                                     "mode": "0700"}},
        {"name": "record", "ansible.builtin.copy": {
            "dest": "{{ runs_dir }}/{{ run_id }}/run.json", "mode": "0600",
            "content": "{{ {'run_id': run_id, 'status': final_status, 'torn_down': true, 'instances': [],"
                       " 'steps': {}, 'nodes': nodes} | to_json }}"}},
        {"name": "summary", "ansible.builtin.set_stats": {"data": {"gpuops_summary": {
            "run_id": "{{ run_id }}", "status": "{{ final_status }}", "summary": "run {{ run_id }}: {{ final_status }}",
            "run_dir": "{{ runs_dir }}/{{ run_id }}"}}}}]}]


@pytest.fixture
def launch(sim_env, tmp_path):
    pb = tmp_path / "fake_pipeline.yml"
    pb.write_text(yaml.safe_dump(PLAYS, sort_keys=False))
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    spec = tmp_path / "run.yml"
    spec.write_text(yaml.safe_dump({"name": "fake", "gpu": "RTX 4090", "nodes": 1, "final_status": "succeeded"}))

    def run(*extra):
        return gpuops("launch", spec, "--playbook", pb, "-e", f"runs_dir={tmp_path / 'runs'}", *extra,
                      env=dict(sim_env, ANSIBLE_INVENTORY=str(inv)), cwd=tmp_path)
    return run


def test_launch_succeeded(launch, tmp_path):
    proc = launch("-e", "nodes=2")
    assert proc.returncode == 0, proc.stderr
    assert "▶ preflight" in proc.stderr and "✓ provision" in proc.stderr  # plain progress lines (not a TTY)
    run_id = proc.stdout.strip().split()[1].rstrip(":")
    assert run_id.startswith("fake-")  # generated: {name}-{YYYYmmdd-HHMMSS}-{4 hex}
    record = json.loads((tmp_path / "runs" / run_id / "run.json").read_text())
    assert record["nodes"] == 2 and record["status"] == "succeeded"
    # ansible-playbook ran in the caller's directory (for ./runs and relative paths) without writing into it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake_pipeline.yml", "inv.yml", "run.yml", "runs"]


@pytest.mark.parametrize("status,code", [("failed", 1), ("preempted", 1), ("running", 3)])
def test_launch_exit_code_follows_the_record(launch, status, code):
    proc = launch("-e", f"final_status={status}", "-e", "run_id=fixed-1", "--json")
    assert proc.returncode == code, proc.stderr
    res = json.loads(proc.stdout)
    assert res["status"] == status and res["run_id"] == "fixed-1" and res["exit_code"] == code


def test_launch_validation_failure_is_bad_input(launch):
    proc = launch("-e", "nodes=0")
    assert proc.returncode == 2, proc.stderr
    assert "✗ [localhost] spec valid failed" in proc.stderr
