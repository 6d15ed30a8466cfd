#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: workspace_deploy
short_description: Deploy a local git repository to a node as git bundles, sending only what the node lacks
version_added: "0.1.0"
description:
  - Ships a commit of a git repository on the controller to a checkout on the node (default C(~/.bifrost/workspace))
    as a git bundle over the task's connection. No git server, no credentials on the node, only SSH.
  - When the node already has a commit the controller knows (an earlier deploy), only the missing commits are sent
    (a bundle of C(<node HEAD>..<commit>)). When the node already has the wanted state, nothing is sent and the task
    reports C(changed=false).
  - The node checks out the commit with C(git checkout -f) (like C(fetch) + C(reset --hard)), updates submodules
    from bundles of their own, optionally cleans untracked files, verifies that C(HEAD) and the work tree are what
    was sent, and records the deploy in C(.git/gpuops/deployed.json).
  - Uncommitted and untracked (not ignored) changes are reported as a warning by default. With O(dirty=ship) they
    are snapshotted without touching the local repository (a throw-away index and object directory) and laid over
    the commit on the node; C(HEAD) stays the commit, the changes show as staged, and their binary diff is recorded
    by sha256.
  - The node logic runs as a small versioned helper (C(~/.bifrost/bin/gpuops-workspace-<hash>.py)), installed on
    first use; it needs C(git) and Python >= 3.9 on the node. Each step is one command over the existing connection.
  - This is an action plugin; it runs on the controller and needs C(git) there too.
author:
  - gpu.ops contributors (@gpu-ops)
options:
  src:
    description:
      - Path inside the local git repository to deploy. The repository's top level is used.
      - Defaults to the playbook's directory.
    type: path
  dest:
    description:
      - Checkout directory on the node. C(~) is the remote user's home.
      - It must be a git checkout made by this module, or absent, or empty.
    type: str
    default: ~/.bifrost/workspace
  version:
    description:
      - Commit, branch or tag to deploy. Uncommitted changes can only be shipped with the default V(HEAD).
    type: str
    default: HEAD
  dirty:
    description:
      - What to do when the local work tree has uncommitted or untracked (not ignored) changes.
      - V(warn) deploys the commit and warns, listing the changes.
      - V(ship) deploys the commit plus the changes (recorded by the sha256 of their binary diff).
      - V(fail) fails before anything is sent. V(ignore) deploys the commit without looking.
    type: str
    choices: [warn, ship, fail, ignore]
    default: warn
  submodules:
    description:
      - Deploy submodules (recursively) at the commits the deployed tree records, each from its own bundle.
      - The submodules must be initialized on the controller.
    type: bool
    default: true
  clean:
    description:
      - Remove untracked files and directories in the checkout on the node (C(git clean -fd)).
    type: bool
    default: false
  clean_ignored:
    description:
      - With O(clean), also remove ignored files (C(git clean -x)), for example build outputs or a virtualenv.
    type: bool
    default: false
  clean_exclude:
    description:
      - Patterns (gitignore syntax) that O(clean) keeps, for example V(outputs/) or V(checkpoints/).
    type: list
    elements: str
    default: []
  state:
    description:
      - V(present) deploys. V(absent) removes the workspace at O(dest), only when this module deployed it (it holds
        C(.git/gpuops/deployed.json)); anything else there is refused and left alone.
    type: str
    default: present
    choices: [present, absent]
attributes:
  check_mode:
    support: full
    description: Probes the node (read-only) and reports whether a deploy would change it; nothing is sent.
  diff_mode:
    support: full
    description: Shows the node's commit and tree before and after.
  platform:
    support: full
    platforms: posix
    description: Needs a POSIX shell, git (workspace) and Python >= 3.9 on the node.
notes:
  - Bundles are cached on the controller under C(<git dir>/gpuops/bundles) for a day, so forks deploying the same
    range to many nodes build it once.
  - Runs as the connection user; a bundle above 256 MiB is copied as a file first, the rest go over stdin.
seealso:
  - name: gpu.ops.workspace role
    description: The role wrapping this action, with role-prefixed variables and provenance facts.
    link: https://github.com/gpu-ops/gpu.ops/blob/main/collections/ansible_collections/gpu/ops/roles/workspace/README.md
"""

EXAMPLES = r"""
- name: Deploy the playbook's project to every GPU node
  gpu.ops.workspace_deploy:
    dest: ~/.bifrost/workspace

- name: Deploy a tag of another checkout, with local edits, and clean stale files except outputs
  gpu.ops.workspace_deploy:
    src: /home/me/src/trainer
    version: HEAD
    dirty: ship
    clean: true
    clean_exclude: [outputs/, checkpoints/]
  register: deployed
"""

RETURN = r"""
commit:
  description: The commit checked out on the node (equal to the local one; the task fails otherwise).
  returned: success
  type: str
  sample: 3f1c2a9e6d0b4c1f8e7a6b5c4d3e2f1a0b9c8d7e
before:
  description: The node's commit before this task, null on a first deploy.
  returned: success
  type: str
branch:
  description: The local branch deployed (the node's checkout gets a branch of the same name), null if detached.
  returned: success
  type: str
dest:
  description: Absolute path of the checkout on the node.
  returned: success
  type: str
  sample: /root/.bifrost/workspace
bundle_bytes:
  description: Bytes of git bundles sent (0 when the node was up to date).
  returned: success
  type: int
bundles:
  description: The bundles sent, per repository (V(.) is the workspace, else the submodule path).
  returned: when something was sent
  type: list
  elements: dict
reasons:
  description: Why the node was updated (empty when it was up to date).
  returned: success
  type: list
  elements: str
dirty:
  description: Whether the local work tree had uncommitted or untracked changes.
  returned: success
  type: bool
dirty_changes:
  description: The local changes (C(status) as in C(git diff --name-status), C(path)), at most 200.
  returned: success
  type: list
  elements: dict
  sample: [{"status": "M", "path": "train.py"}, {"status": "A", "path": "notes.txt"}]
dirty_submodules:
  description: Submodules with uncommitted changes of their own (deployed at their HEAD commit only).
  returned: success
  type: list
  elements: str
dirty_shipped:
  description: Whether those changes were deployed (O(dirty=ship)).
  returned: success
  type: bool
dirty_diff_sha256:
  description: sha256 of the binary diff of the local changes against the commit (null when clean).
  returned: success
  type: str
remote_url:
  description: URL of the branch's remote (or origin), credentials removed.
  returned: success
  type: str
submodules:
  description: Submodules deployed, with their commits.
  returned: success
  type: list
  elements: dict
clean_pending:
  description: Untracked paths that O(clean) removes (or would remove, in check mode).
  returned: success
  type: list
  elements: str
provenance:
  description: Everything above in one dict, as recorded on the node in C(.git/gpuops/deployed.json).
  returned: success
  type: dict
timings:
  description: Seconds per step on the controller (local, probe, bundle, apply, total).
  returned: success
  type: dict
"""
