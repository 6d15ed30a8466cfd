#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: collect_results
short_description: Copy a job's directory and declared outputs from a node to the controller, sha256-verified and resumable
version_added: "0.1.0"
description:
  - Copies the job directory C(~/.bifrost/jobs/<job_id>) (logs, status, exit code, metadata, outputs) and any declared
    paths from the node into O(dest) on the controller.
  - On the node, one command lists the regular files and writes a sha256 manifest (C(sha256sum) format, paths as laid
    out in O(dest)); hashes are cached per job by size, mtime, ctime and inode, so a rerun hashes only what changed.
  - The controller fetches only the files it does not already hold verified, over one stream per source. That is
    C(rsync) through the task's SSH connection (its ControlPath, so no new handshake) when both sides have rsync, else
    one tar stream produced by the node helper. Connections other than ssh fall back to one fetch per file.
  - The first collect into a destination starts copying whole source directories while the node builds the
    manifest, and hashes each file as soon as it has arrived, so verification costs little more than the copy.
  - Every received file is hashed and compared with the manifest. A mismatch is re-hashed on the node (without the
    cache) and fetched again, up to O(verify_retries) times. A file whose content kept changing on the node (a
    running job's log) is reported in RV(changing) with a warning and left unverified, so the next collect fetches
    it again. A file that stayed the same on the node but still does not verify here is a failure (see
    O(on_mismatch)).
  - O(dest)/C(manifest.sha256) is the manifest (check it with C(sha256sum -c manifest.sha256) in O(dest)) and
    O(dest)/C(collect.json) records the verified files, the job's status (V(lost) when its session is gone without
    a final status; then also recorded on the node) and what was missing or skipped. A job's env files are never
    copied.
  - C(collect.json) is also the controller's cache - a file recorded there with the same sha256, size and
    modification time as it has now is taken as verified without hashing it again (O(verify=changed)). A copy
    changed in place that keeps its size and mtime is therefore not noticed; O(verify=always) hashes every file
    here on every run.
  - Works on failed jobs and on jobs that never started; missing sources are warnings unless marked required.
  - This is an action plugin; the node side is a small versioned helper (C(~/.bifrost/bin/gpuops-collect-<hash>.py)) that
    needs Python >= 3.9 on the node.
  - C(become) is honoured - the helper runs through the connection's become plugin, and the rsync/tar streams run
    their node side under C(sudo -n) the way M(ansible.posix.synchronize) does. Other become methods, or sudo that
    asks for a password, are refused with a message, as is O(transfer=fetch) under become.
author:
  - gpu.ops contributors (@gpu-ops)
options:
  dest:
    description:
      - Directory on the controller that receives the files, usually C(runs/<run_id>/<inventory_hostname>).
      - The job directory's content lands at its top; each entry of O(paths) under its own C(dest).
    type: path
    required: true
  job_id:
    description:
      - Job whose directory O(jobs_dir)/O(job_id) is collected. Omit to collect only O(paths).
    type: str
  jobs_dir:
    description: Directory of the job directories on the node.
    type: str
    default: ~/.bifrost/jobs
  paths:
    description:
      - More files or directories to collect. Each entry is a path, or a dict with C(src) (the path on the node),
        C(dest) (where it lands under O(dest); default the basename of C(src)) and C(required) (fail when it is
        missing; default V(false)).
      - Relative C(src) paths are relative to O(base_dir).
    type: list
    elements: raw
    default: []
  base_dir:
    description: Directory on the node that relative O(paths) start from.
    type: str
    default: ~/.bifrost/workspace
  exclude:
    description: Glob patterns (matched against the path inside each source and against the file name) to leave out.
    type: list
    elements: str
    default: []
  transfer:
    description:
      - How the bytes travel. V(auto) picks V(rsync) when the connection is ssh and both sides have rsync, V(tar)
        for ssh without rsync, and V(fetch) (one transfer per file) for other connections.
    type: str
    choices: [auto, rsync, tar, fetch]
    default: auto
  compress:
    description: Compress the rsync stream (C(rsync -z)); worth it for logs over slow links, not for checkpoints.
    type: bool
    default: false
  verify_retries:
    description: How many times files whose checksum does not match the manifest are re-hashed and fetched again.
    type: int
    default: 2
  verify:
    description:
      - V(changed) hashes a file already in O(dest) only when its size or mtime differ from what C(collect.json)
        recorded when it was verified; V(always) hashes every file in O(dest) (fetching again what does not match).
    type: str
    choices: [changed, always]
    default: changed
  on_mismatch:
    description:
      - What to do when files that did not change on the node still do not match after the retries (the copy on
        the controller is wrong). V(fail) fails the task (verified files are kept and a rerun fetches only the
        others); V(warn) keeps what arrived and warns. Files still being written on the node only warn.
    type: str
    choices: [fail, warn]
    default: fail
attributes:
  check_mode:
    support: full
    description: Builds the manifest without writing it and reports which files would be fetched.
  diff_mode:
    support: none
    description: Not supported; RV(to_fetch_count) and the files listed say what a run would copy.
  platform:
    support: full
    platforms: posix
    description: Needs a POSIX shell, git (workspace) and Python >= 3.9 on the node.
notes:
  - Symlinks and special files are not copied; they are listed in RV(skipped_files).
  - C(manifest.sha256) and C(collect.json) at the top of the job directory are skipped (those names are written here).
seealso:
  - name: gpu.ops.collect role
    description: The role wrapping this action (runs/<run_id>/<host>/ layout, role-prefixed variables).
    link: https://github.com/gpu-ops/gpu.ops/blob/main/collections/ansible_collections/gpu/ops/roles/collect/README.md
"""

EXAMPLES = r"""
- name: Bring a job's logs, status and outputs home, plus the checkpoints it wrote in the workspace
  gpu.ops.collect_results:
    dest: "runs/{{ run_id }}/{{ inventory_hostname }}"
    job_id: "{{ job_id }}"
    paths:
      - checkpoints
      - src: /var/log/nvidia-installer.log
        dest: system/nvidia-installer.log
    exclude: ["*.tmp"]
  register: collected
"""

RETURN = r"""
dest:
  description: Absolute path of the destination directory on the controller.
  returned: always
  type: str
files:
  description: Number of files in the manifest.
  returned: success
  type: int
bytes:
  description: Total size of the files in the manifest.
  returned: success
  type: int
fetched:
  description: Files copied by this task (0 on a rerun with nothing new).
  returned: success
  type: int
fetched_bytes:
  description: Bytes copied by this task.
  returned: success
  type: int
to_fetch_count:
  description: Files that were not yet on the controller, verified, when the task started.
  returned: success
  type: int
transfer:
  description: The transfer used (rsync, tar or fetch).
  returned: success
  type: str
job:
  description: The job directory on the node, whether it exists, and its C(status) and C(exit_code) files.
  returned: when job_id is set
  type: dict
missing:
  description: Sources that do not exist on the node.
  returned: success
  type: list
  elements: str
skipped_files:
  description: Files not copied, with the reason (symlink, unreadable, not a regular file, reserved name).
  returned: success
  type: list
  elements: dict
mismatched:
  description: Files that did not change on the node whose copy here still differed after the retries (path,
    expected, got).
  returned: success
  type: list
  elements: dict
changing:
  description: Files that kept changing on the node while being copied; their copies here are not verified.
  returned: success and not check mode
  type: list
  elements: str
manifest:
  description: Path of C(manifest.sha256) on the controller.
  returned: success and not check mode
  type: str
manifest_sha256:
  description: sha256 of the manifest built on the node.
  returned: success
  type: str
node_manifest:
  description: Path of the manifest written on the node.
  returned: success and not check mode
  type: str
timings:
  description: Seconds per step (manifest, early_copy on a first collect, local_check, transfer_verify, total).
  returned: success
  type: dict
"""
