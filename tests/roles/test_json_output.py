"""run_playbook(json_output=True): the harness's JSON document (gpuops_json stdout callback)."""

from __future__ import annotations

import json

from gpuops.testing import run_playbook

PLAY = """
- name: Shapes
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Ok with a loop
      ansible.builtin.debug:
        msg: "item {{ item }}"
      loop: [1, 2]
    - name: Skipped
      ansible.builtin.debug:
        msg: never
      when: false
    - name: Fails
      ansible.builtin.fail:
        msg: boom
"""


def test_json_document_has_every_task_and_host(tmp_path):
    pb = tmp_path / "pb.yml"
    pb.write_text(PLAY)
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                   "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n")
    proc = run_playbook(pb, inv, json_output=True)
    assert proc.returncode == 2, proc.stderr
    doc = json.loads(proc.stdout)
    tasks = {t["task"]["name"]: t["hosts"]["localhost"] for t in doc["plays"][0]["tasks"]}
    assert [r["msg"] for r in tasks["Ok with a loop"]["results"]] == ["item 1", "item 2"]
    assert tasks["Skipped"]["skipped"] is True
    assert tasks["Fails"]["failed"] is True and tasks["Fails"]["msg"] == "boom"
    assert doc["stats"]["localhost"]["failures"] == 1
    durations = [t["task"]["duration_s"] for t in doc["plays"][0]["tasks"]]
    assert all(isinstance(d, float) and d >= 0 for d in durations) and "_t0" not in doc["plays"][0]["tasks"][0]
