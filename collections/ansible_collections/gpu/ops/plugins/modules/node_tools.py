#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_tools
short_description: Find or install what the gpu.ops steps need on a node (Python, git, tmux, tar)
version_added: 0.1.0
description:
  - Runs first on a node, before any other gpu.ops step. Container images are what the user chose, not friendly
    machines. C(pytorch/pytorch:*-runtime) has Python but no git or tmux, C(nvidia/cuda:*-runtime-*) has not even
    Python 3.
  - In one POSIX C(sh) round trip over the task's connection (no Python needed on the node), checks the tools the
    steps need (O(require)), installs the missing ones with the node's package manager (C(apt-get), C(dnf),
    C(microdnf), C(yum) or C(apk); as root, or with C(sudo -n)), and writes a marker with the versions found
    (C(~/.bifrost/node_tools.json)). A later run on the same node finds the marker and only checks that the tools
    are still there.
  - When a tool is missing and cannot be installed (no package manager, not root and no working C(sudo -n), or the
    install failed) the task fails with one message naming what is missing, what it is needed for, and how to fix
    the image.
  - Programs are looked up on the node's C(PATH) only.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  require:
    description:
      - Tools that must be on the node. C(python3) must be Python 3.9 or later (the node helpers).
    type: list
    elements: str
    choices: [git, python3, rsync, tar, tmux]
    default: [python3, git, tmux, tar]
  optional:
    description: Tools that are reported with their versions when present, and never installed.
    type: list
    elements: str
    choices: [git, python3, rsync, tar, tmux]
    default: [rsync]
  install:
    description:
      - Install missing required tools. With V(false) a missing tool fails the task with the command to install it
        (for machines that are not rented, such as home-lab nodes, where gpu.ops does not install packages).
    type: bool
    default: true
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Checks only; reports C(changed) when something would be installed.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - Honours C(become). The script runs as the become user, which then needs no C(sudo -n) of its own.
seealso:
  - module: gpu.ops.workspace_deploy
"""

EXAMPLES = r"""
- name: Make sure the node can run the gpu.ops steps
  gpu.ops.node_tools:

- name: On a home-lab node, check only and never install
  gpu.ops.node_tools:
    install: false
"""

RETURN = r"""
tools:
  description: Versions of the required and optional tools found on the node.
  returned: success
  type: dict
  sample: {"python3": "3.10.12", "git": "2.34.1", "tmux": "3.2a", "tar": "1.34"}
installed:
  description: Tools this task installed.
  returned: always
  type: list
  elements: str
  sample: [git, tmux]
missing:
  description: Required tools still missing (the task failed).
  returned: always
  type: list
  elements: str
cached:
  description: The marker of an earlier preparation was found and every tool is still there.
  returned: always
  type: bool
manager:
  description: The package manager found on the node (none when the image has none).
  returned: always
  type: str
  sample: apt-get
"""
