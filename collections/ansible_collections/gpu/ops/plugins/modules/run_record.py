#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: run_record
short_description: Write the run record of a gpu.ops run on the controller
version_added: 0.2.0
description:
  - Keeps C(<runs_dir>/<run_id>/) up to date for the C(gpu.ops.pipeline) playbooks, the guardian, the CLI and AWX.
  - C(run.json) holds the status (C(running), C(succeeded), C(failed), C(budget_exceeded), C(preempted),
    C(cancelled)), C(torn_down), the exit code, the inputs without secret values (C(secret_env) keeps names only),
    the instances with provider, id, GPU, price and SSH address, and the wall time of every step.
  - At the end (O(state=finish)) it also writes C(cost.json) (price x billed seconds per instance, and the provider's
    billed amount when known), C(provenance.json) (commit, branch, dirty diff hash, remote, image, GPU models,
    Ansible and collection versions), C(metrics.jsonl) (every node's metrics merged, each line with its C(host)),
    C(loss.png) (when matplotlib is installed on the controller) and C(summary.json), and returns the one-screen
    summary.
  - Every write is a locked read-modify-write and an atomic rename (files 0600), so the guardian and a playbook never
    lose each other's changes. The run's C(state) and C(status) are written only through the lifecycle
    (C(plugins/module_utils/lifecycle.py), C(docs/lifecycle.md)); a decided status is never rewritten.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  state:
    description:
      - V(init) starts the record (a rerun with the same C(run_id) keeps what was rented and timed so far).
      - V(update) merges O(instances), O(destroyed), O(steps), O(marks), O(fields) and O(torn_down).
      - V(outcome) only works out how the run ended from O(failure), O(jobs), O(collected), O(status) and
        O(message), and whether its instances are kept; it writes nothing.
      - V(finish) is V(update) plus the final O(status) and every derived file.
    type: str
    required: true
    choices: [init, update, outcome, finish]
  spec:
    description: The normalized run spec from M(gpu.ops.run_spec).
    type: dict
    required: true
  instances:
    description: Instances as M(gpu.ops.gpu_instance) returns them; merged by provider and id.
    type: list
    elements: dict
    default: []
  destroyed:
    description: Ids of instances that were destroyed (their C(destroyed_at) is set now).
    type: list
    elements: str
    default: []
  destroyed_at:
    description:
      - Per id of O(destroyed), when its delete call returned (epoch seconds; C(destroyed_at) of M(gpu.ops.gpu_instance));
        the record's C(destroyed_at) is stamped then instead of now.
    type: dict
    default: {}
  steps:
    description: Seconds per step to add to the record.
    type: dict
    default: {}
  node_tools:
    description: Per host, the result of C(gpu.ops.node_tools) (tools and versions, what was installed); merged into
      the record's C(node_tools) over earlier rounds.
    type: dict
    default: {}
  play_marks:
    description:
      - The name of a variable of the play's hosts holding their step marks (C(run_prepare_marks),
        C(run_train_marks), C(run_marks)). O(marks) and O(node_tools) are then read from it and from
        C(node_tools_result) on every host of the play (one task, run once, at the end of a node play).
    type: str
  marks:
    description:
      - Per node, times (epoch seconds) in order, C({start, deploy, bootstrap, ...}); each step lasts from the previous
        mark to its own and the slowest node counts.
    type: list
    elements: dict
    default: []
  fields:
    description: Other top-level keys of C(run.json) to set.
    type: dict
    default: {}
  status:
    description: How the run ended (V(finish)), or the status to use instead of working it out (V(outcome)).
    type: str
    choices: [succeeded, failed, budget_exceeded, preempted, cancelled, ended, running]
  exit_code:
    description: The job's exit code, when it ended with one.
    type: int
  message:
    description: Why the run ended as it did (one line).
    type: str
  failure:
    description: V(outcome) - C({step, msg}) of a step that failed the run.
    type: dict
  jobs:
    description: V(outcome) - per node C({status, exit_code, msg, budget_exceeded, attach}).
    type: list
    elements: dict
    default: []
  collected:
    description: V(outcome) - per node what collect found (C(job) holds the job's status).
    type: list
    elements: dict
    default: []
  hosts:
    description: V(finish) - the hosts whose collected results are under the run directory (for the metrics).
    type: list
    elements: str
    default: []
  provenance:
    description: V(finish) - the workspace role's provenance of the deployed code.
    type: dict
    default: {}
  billed:
    description: V(finish) - what the providers billed, C({provider, id, billed_usd, reason}) per instance.
    type: list
    elements: dict
    default: []
  torn_down:
    description: V(finish) - V(false) when the teardown could not destroy everything (the run stays C(tearing_down)).
    type: bool
  to:
    description:
      - Move the run to this lifecycle state (C(docs/lifecycle.md)); a step the lifecycle does not allow fails the
        task. Transient states record the running ansible-playbook as their owner.
    type: str
    choices: [planned, provisioning, ready, running, detached, kept, tearing_down, torn_down]
  command:
    description: What the playbook is doing (V(launch), V(up), V(train), V(down) ...), recorded with the state.
    type: str
    default: launch
  job:
    description: V(update) - a job that starts, C({job_id, kind, command, commit ...}), appended to the run's jobs.
    type: dict
  job_hosts:
    description: How the current job ended on each node (host name to its run_job fact).
    type: dict
    default: {}
  nodes:
    description: V(update) - the home-lab or ssh hosts of the run with their connection details (the record's C(hosts)).
    type: list
    elements: dict
    default: []
  ending:
    description:
      - V(outcome) - V(pipeline) for the pipeline's own end (a failure may keep the nodes with C(keep_on_failure), a
        detached job runs on); V(down) for a teardown by hand or by the guardian (nothing is kept, and an outcome the
        run already decided is never rewritten).
    type: str
    default: pipeline
    choices: [pipeline, down]
  final_state:
    description: V(finish) - the state the run ends in.
    type: str
    choices: [torn_down, kept, detached, tearing_down]
attributes:
  check_mode:
    support: full
    description: Writes nothing in check mode (V(outcome) works as usual).
  diff_mode:
    support: none
    description: No diff.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller only.
seealso:
  - module: gpu.ops.run_spec
"""

EXAMPLES = r"""
- name: Write the record, cost, provenance, metrics and plot
  gpu.ops.run_record:
    state: finish
    spec: "{{ run_spec }}"
    status: succeeded
    hosts: "{{ groups['gpuops_nodes'] }}"
  register: run_final

- name: Show the summary
  ansible.builtin.debug:
    msg: "{{ run_final.summary_lines }}"
"""

RETURN = r"""
record:
  description: The content of C(run.json) after the change.
  returned: state is not outcome
  type: dict
budget_seconds_left:
  description: Seconds until the running instances spend C(max_cost) at their prices (null without a budget).
  returned: state is update
  type: int
status:
  description: How the run ended.
  returned: state is outcome
  type: str
  sample: succeeded
keep:
  description: Whether the instances are kept (C(keep_on_failure) on a failed run, or a detached run).
  returned: state is outcome
  type: bool
cost:
  description: The content of C(cost.json).
  returned: state is finish
  type: dict
summary:
  description: The summary (also in C(summary.json)); C(summary) inside it is the printable text.
  returned: state is finish
  type: dict
summary_lines:
  description: The summary, one line per item.
  returned: state is finish
  type: list
  elements: str
plot:
  description: Path of C(loss.png), or null.
  returned: state is finish
  type: str
"""
