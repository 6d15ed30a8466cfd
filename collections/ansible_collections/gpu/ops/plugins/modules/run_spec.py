#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: run_spec
short_description: The run spec of gpu.ops playbooks - check it before anything is rented
version_added: 0.2.0
description:
  - A run is one YAML file of variables (C(ansible-playbook gpu.ops.pipeline -e @run.yml)); this page documents
    every key. The keys are plain play variables, so they also come from an AWX survey or ansible-runner's
    extravars; a value set on this task wins over a variable of the same name.
  - The check runs on the controller and calls no provider API. It fails with every problem found, one per line,
    before any money is spent - an empty command, fewer than one node, an unknown target, a repository that is not
    a git repository (or is dirty with O(dirty=fail)), an SSH private key that is missing, unreadable, readable by
    group or others or not a key, no API key for the providers, a C(secret_env) name that is not set.
  - A new run gets a C(run_id) (C({name}-{YYYYmmdd-HHMMSS}-{4 hex})), its C(expires_at) (now + O(ttl)) and its job id.
    A O(run_id) whose record exists continues that run - its saved spec fills the keys not given, so
    C(ansible-playbook gpu.ops.teardown -e run_id=ID) is enough.
  - The pipeline's own offer check (an offer at or below O(max_price_per_hour), else the cheapest there is) follows
    in the playbook, still before anything is rented.
  - "A key among the extra variables that is not a spec key (nor a playbook switch such as C(teardown_status), nor an
    C(ansible_*), C(awx_*), C(tower_*) or your own C(x_*) variable) is a typo and fails the check, naming the nearest
    key (C(unknown run spec key 'comand' (did you mean 'command'?)))."
  - It also asks the run's lifecycle (C(docs/lifecycle.md)) whether O(lifecycle_command) may act on the run in its state. A
    command with nothing to do returns C(noop=true) and its message (for example C(down) of a torn-down run), a
    command the state does not allow fails with why (for example C(deploy) of a torn-down run), and nothing is
    created or changed either way.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  lifecycle_command:
    description:
      - What the playbook does to the run, for the lifecycle check; the step playbooks set it (it is an option of
        this task, not a key of the run spec). V(launch) or V(up) of
        a run id that was torn down starts it again (a fresh start and expiry, the next job id).
    type: str
    default: launch
    choices: [launch, up, deploy, health, train, exec, stop, status, logs, ssh, sync, down]
  run_id:
    description: Id of the run (lower-case letters, digits, C(-)); generated when absent. Names the nodes and the record.
    type: str
  name:
    description: Short name used in a generated O(run_id). Defaults to the repository's directory name.
    type: str
  repo:
    description: The local git repository to deploy (its HEAD). Defaults to the controller's working directory.
    type: path
  target:
    description:
      - V(cloud) rents nodes (RunPod, Vast.ai) and destroys them at the end.
      - V(homelab) uses the hosts of the inventory group O(homelab_group) as they are; nothing is provisioned or torn
        down, everything else is the same.
      - V(ssh) uses the machines of O(ssh_hosts), without an inventory file (C(gpuops up --ssh user@host)).
      - Machines that are not rented give each run its own workspace, C(~/.bifrost/workspaces/<run_id>), removed at
        teardown once the results are home; a rented node keeps C(~/.bifrost/workspace).
    type: str
    default: cloud
    choices: [cloud, homelab, ssh]
  ssh_hosts:
    description:
      - O(target=ssh) - the nodes as C(user@host[:port]) (C([v6addr]:port) for IPv6), in rank order. Each is checked
        before anything starts (an SSH server answers, the login with O(ssh_private_key_file) works); one that fails
        is refused, naming it.
    type: list
    elements: str
    default: []
  homelab_group:
    description: Inventory group of the home-lab nodes (O(target=homelab)).
    type: str
    default: gpu_nodes
  nodes:
    description: Number of nodes. More than one gets the multi-node env (C(MASTER_ADDR), C(NODE_RANK), C(WORLD_SIZE) ...).
    type: int
    default: 1
  gpu:
    description: GPU models to accept, in any provider's spelling (C(RTX 4090), C(4090), C(H100)). Required for V(cloud).
    type: list
    elements: str
    default: []
  gpu_count:
    description: GPUs per node.
    type: int
    default: 1
  providers:
    description: Providers to rent from. Default every provider whose API key is set (C(RUNPOD_API_KEY), C(VAST_API_KEY)).
    type: list
    elements: str
    default: []
  max_price_per_hour:
    description: Price ceiling per node in USD per hour. The plan names the cheapest offer when nothing is under it.
    type: float
  interruptible:
    description: Rent interruptible (spot, bid) capacity.
    type: bool
    default: false
  image:
    description:
      - Container image of the nodes. Any reasonable image works. It does not need sshd, git, tmux or even Python.
      - On providers that run the image's own entrypoint (RunPod), images other than the provider's templates get a
        start command that installs and starts sshd with the run's key; Vast's ssh launch mode brings SSH itself.
      - Before anything else on a node, the C(gpu.ops.node_tools) step installs what the steps need (python3, git,
        tmux, tar) with the image's package manager, once per node; an image without a package manager, or whose user
        is not root and has no C(sudo -n) fails that node with a message naming what is missing.
    type: str
    default: pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime
  images:
    description: "Per-provider image overriding O(image), for example C({runpod: runpod/pytorch:2.4.0, vast: vastai/pytorch})."
    type: dict
    default: {}
  cuda:
    description:
      - Lowest CUDA version the image needs (for example C("12.4")). Hosts whose driver supports less are never
        rented. It is sent as each provider's filter (RunPod C(minCudaVersion), Vast C(cuda_max_good)).
      - When not given, it is derived from well-known image tags (C(...-cuda12.4-...), C(cuda-12.4.1),
        C(nvidia/cuda:12.4.1-...)), the highest of O(image) and O(images); an image whose tag names no CUDA adds no
        filter. The plan line says which CUDA the chosen host offers.
    type: str
  pull_timeout:
    description:
      - Seconds a node's image may take to pull, on top of O(wait_timeout), which then counts from when the container
        is up. While the provider reports the image pulling, the wait goes on and the progress is shown.
    type: int
    default: 1800
  disk_gb:
    description: Container disk per node in GB.
    type: int
    default: 20
  bootstrap:
    description:
      - Command that prepares the job's environment in the workspace (in tmux, with a deadline), for example
        C(pip install -r requirements.txt).
      - Empty detects it as M(gpu.ops.job_bootstrap) does (C(uv.lock), C(pyproject.toml), C(requirements.txt)); it is
        skipped on a rerun when the dependency files did not change.
    type: str
    default: ""
  bootstrap_timeout:
    description: Seconds the bootstrap may take.
    type: int
    default: 600
  dependency_files:
    description:
      - More files (relative to O(workdir)) whose content decides whether the bootstrap runs again for a new job;
        C(uv.lock), C(pyproject.toml), C(requirements.txt) and C(.python-version) always count, and so does the
        bootstrap command itself.
    type: list
    elements: str
    default: []
  command:
    description:
      - The job, run in the workspace in tmux after the bootstrap (required). Its environment has O(env), the values of
        O(secret_env), C(GPUOPS_OUTPUTS) (results to collect), C(GPUOPS_CHECKPOINT_DIR) (checkpoints) and, with several
        nodes, the torchrun variables.
    type: str
  workdir:
    description:
      - Directory of the repository (relative to its top) where the bootstrap and the job run, for a project in a
        subdirectory of a larger repository. The whole repository is deployed either way.
    type: str
    default: ""
  job_name:
    description: Name of the job (the job id is C(<job_name>-<run_id>)).
    type: str
    default: train
  job_timeout:
    description: Seconds the job may run before the run fails and is torn down.
    type: int
    default: 86400
  env:
    description: Environment variables of the job. Recorded in C(run.json); put secrets in O(secret_env).
    type: dict
    default: {}
  secret_env:
    description:
      - Names of controller environment variables whose values the job gets (for example C(HF_TOKEN)). The values are
        never written anywhere (not in the record, the logs or a command line); a name that is not set fails the check.
    type: list
    elements: str
    default: []
  outputs:
    description: Paths in the workspace to collect besides the job directory (which holds C(GPUOPS_OUTPUTS)).
    type: list
    elements: str
    default: []
  artifacts:
    description: Models or data sets to stage on the nodes (the manifest of M(gpu.ops.stage_artifacts)).
    type: list
    elements: dict
    default: []
  dirty:
    description: What to do with uncommitted changes in O(repo) (see the C(gpu.ops.workspace) role).
    type: str
    default: warn
    choices: [warn, ship, fail, ignore]
  keep_on_failure:
    description: Keep the instances of a failed run for debugging (they keep their C(expires_at) for the reaper).
    type: bool
    default: false
  ttl:
    description: Time to live of the nodes (label C(expires_at)), for example C(6h). The watchdog and the reaper destroy them after it.
    type: str
    default: 24h
  max_cost:
    description: Budget in USD for the run. Training stops when the run's cost reaches it; results are collected and the
      run ends C(budget_exceeded). Each node's watchdog enforces its share plus 5 minutes of its price as the backstop
      when the controller is gone (later than the controller, so results are collected first).
    type: float
  idle_timeout:
    description: Seconds without a controller heartbeat, while no job runs, after which a node's watchdog destroys it.
    type: int
    default: 1800
  health_replacements:
    description: How many times unhealthy nodes are destroyed and replaced before the run fails (at most 3).
    type: int
    default: 1
  health_min_score:
    description: Lowest health score (0-100) a node may have (see the C(gpu.ops.node_health) role).
    type: int
    default: 80
  wait_timeout:
    description: Seconds a new node may take until SSH login works.
    type: int
    default: 600
  max_attempts:
    description: Most create calls the run makes for its nodes, failed ones included (each failed one is destroyed).
    type: int
    default: 10
  ssh_private_key_file:
    description: SSH private key for the nodes (its C(.pub) is put on them). Checked before anything is rented.
    type: path
    default: ~/.ssh/id_ed25519
  ssh_public_key_file:
    description: The public key to put on the nodes, when it is not O(ssh_private_key_file) plus C(.pub) (on AWX the
      key file has no C(.pub) beside it; the gpu.ops node SSH credential type sets both).
    type: path
  runs_dir:
    description: Where run records go, relative to the controller's working directory (on AWX, a mounted volume).
    type: path
    default: runs
  owner:
    description: Owner label of the nodes. Defaults to E(GPUOPS_OWNER) or the controller user.
    type: str
  progress_interval:
    description: Seconds between two progress lines while waiting.
    type: int
    default: 30
  detach:
    description:
      - Return once the job runs; the run is C(detached) and its nodes keep running. C(gpuops status RUN_ID) sees the
        job end (the run is then C(ready) with the job's outcome), C(gpuops logs RUN_ID -f) follows it, and
        C(gpuops down RUN_ID) (or gpu.ops.teardown) collects the results and destroys the nodes.
    type: bool
    default: false
  on_preemption:
    description:
      - What a preempted (or lost) node does to the run. V(resume) destroys it, rents a replacement under the same
        name through the usual failover, prepares it (deploy, bootstrap, health gate), puts every node on the newest
        complete checkpoint synced home and restarts the job with the same command on every rank; only the lost
        nodes are replaced. V(fail) ends the run with status C(preempted) (results synced so far are kept).
      - Default V(resume) for O(interruptible) runs, V(fail) otherwise.
      - "Checkpoints: the job gets C(GPUOPS_CHECKPOINT_DIR) (C(~/.bifrost/checkpoints/<run_id>) on the node, outside
        the job directory) and writes C(step-<N>/) directories there with the marker file C(COMPLETE) written last;
        a directory without it is never used. The job resumes from the newest complete one at start (as
        C(examples/train/train.py) does). A node preempted before the first checkpoint restarts from scratch."
    type: str
    choices: [resume, fail]
  max_recoveries:
    description:
      - Preemption recoveries allowed; the next preemption ends the run with status C(preempted).
      - Restarts of both kinds (recoveries and O(max_restarts_on_errors)) are at most 3 in all.
    type: int
    default: 2
  max_restarts_on_errors:
    description:
      - Restarts of a job that failed by itself (its node still runs), from its last complete checkpoint; after
        the last one the run ends with the job's own status. A value above 0 makes the run managed (checkpoint
        sync and watching) even on on-demand nodes.
    type: int
    default: 0
  checkpoint_sync_interval:
    description:
      - Seconds between checkpoint syncs of a managed run (O(interruptible) or O(max_restarts_on_errors) > 0). Each
        sync brings new or changed files of C(GPUOPS_CHECKPOINT_DIR) home to C(<run_dir>/checkpoints/<host>/steps/)
        (sha256-verified, only what changed) and the job directory (logs, metrics) to C(<run_dir>/<host>/).
    type: int
    default: 30
  preemption_detect_s:
    description:
      - Seconds the provider API is asked about a node whose SSH stopped answering; a node the provider reports
        stopped, terminated or gone is preempted at once, one it still reports running counts as lost after this.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: No diff.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller only.
seealso:
  - module: gpu.ops.run_record
  - module: gpu.ops.gpu_instance
"""

EXAMPLES = r"""
# run.yml - ansible-playbook gpu.ops.pipeline -e @run.yml
# name: charlm
# gpu: [RTX 4090]
# max_price_per_hour: 0.70
# command: python3 train.py --steps 400
# secret_env: [HF_TOKEN]

- name: Check the run spec from the play's variables
  gpu.ops.run_spec:
  register: checked

- name: Check a spec given on the task
  gpu.ops.run_spec:
    command: python3 train.py
    gpu: [RTX 4090]
    nodes: 2
"""

RETURN = r"""
spec:
  description: The run spec with every default, absolute paths, C(run_id), C(started_at), C(expires_at), C(run_dir)
    and C(job_id).
  returned: success
  type: dict
problems:
  description: Every problem found, one line each.
  returned: failure
  type: list
  elements: str
"""
