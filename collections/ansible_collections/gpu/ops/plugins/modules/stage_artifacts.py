#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stage_artifacts
short_description: Stage models and datasets on a node from a manifest, verified by SHA-256
version_added: 0.1.0
description:
  - Brings every artifact of O(manifest) into a content-addressed cache on the node (default C(~/.bifrost/cache),
    one file per SHA-256) and links it into the workspace (O(link_dir)/C(dest)).
  - "Sources: an C(http://) or C(https://) URL, downloaded by the node; a file on the controller (a path; relative
    paths are searched like M(ansible.builtin.copy) does, in the role's or playbook's C(files/)), uploaded over the
    task's connection; or a file already on the node (C(remote_src: true))."
  - The whole manifest is checked on the controller before any node is contacted (required fields, unknown keys,
    duplicate names and destinations, SHA-256 format, URL schemes, that local files exist).
  - A file already in the cache and verified is not fetched again. Verification hashes the file and records its size,
    mtime and inode; later runs hash again only when those changed (O(verify=changed)) or always (O(verify=always)).
  - Downloads go to a temporary name, are hashed while they stream, and become the cached file only by an atomic
    rename after the hash matched, so an interrupted download never counts as done. Connection errors, short
    bodies and HTTP 408/425/429/5xx are retried O(retries) times with exponential backoff.
  - A download whose hash does not match is fetched once more; when it still does not match, the task fails naming
    the artifact, the source and both hashes. A cached file that no longer matches its hash is fetched again.
  - One writer at a time per node (a lock file in the cache, waited on with backoff up to O(lock_timeout)).
  - The controller side validates, plans with one call of the gpu.ops node helper on the node
    (C(~/.bifrost/bin/gpuops-artifacts-<hash>.pyz), installed once per collection version, one SSH round trip with
    the arguments on stdin, no module payload, Python 3.9 or later on the node, C(become) honoured), uploads
    controller files when the node needs them, then stages with a second call. When everything is already
    in place the first call is the only one and the task reports no change.
author:
  - gpu.ops maintainers (@gpu-ops)
options:
  manifest:
    description:
      - The artifacts. Each entry is a mapping with the keys below; other keys are an error.
      - C(name) (required) unique name, letters, digits, C(.), C(_), C(-).
      - C(src) (required) URL (C(http)/C(https)), controller file path, or node file path with C(remote_src).
      - C(sha256) (required) 64 hex digits (a C(sha256:) prefix is accepted).
      - C(dest) link path, relative to O(link_dir) (or absolute). Default the file name at the end of C(src).
      - C(size) expected size in bytes (optional), used to check free space before a download.
      - C(remote_src) (default V(false)) C(src) is an absolute path on the node.
    type: list
    elements: dict
    required: true
  cache_dir:
    description: The cache on the node.
    type: path
    default: ~/.bifrost/cache
  link_dir:
    description:
      - Directory the relative C(dest) paths are linked into; it must exist (deploy the workspace first).
        Subdirectories of C(dest) are created.
    type: path
    default: ~/.bifrost/workspace
  link_type:
    description:
      - V(symlink) links to the cache file. V(hardlink) makes the link the same file (cache and O(link_dir) must be on
        one filesystem); it survives cache pruning and suits tools that refuse symlinks.
    type: str
    choices: [symlink, hardlink]
    default: symlink
  verify:
    description:
      - V(changed) hashes a cached file again only when its size, mtime or inode changed since it was verified.
      - V(always) hashes every cached file on every run (catches corruption that keeps size and mtime).
    type: str
    choices: [changed, always]
    default: changed
  force:
    description: Replace a regular file at a C(dest) with the link (a directory is never replaced).
    type: bool
    default: false
  timeout:
    description: Socket timeout in seconds for each HTTP request.
    type: int
    default: 60
  retries:
    description: Retries of a download after a connection error, a short body or HTTP 408/425/429/5xx.
    type: int
    default: 3
  validate_certs:
    description: Verify HTTPS certificates.
    type: bool
    default: true
  lock_timeout:
    description: Seconds to wait for another run that holds the cache lock on the node.
    type: int
    default: 600
  uploads:
    description:
      - Set by the action plugin, not by users. Maps an artifact name to the file on the node that holds its
        uploaded controller-side copy.
    type: dict
    default: {}
notes:
  - Needs Python 3.9 or later on the node, nothing outside the standard library.
  - Run it after the workspace is deployed (M(gpu.ops.workspace_deploy)); links are untracked files in the checkout,
    so add their paths to C(.gitignore) (or to the deploy's C(clean_exclude)) if the deploy cleans untracked files.
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Hashes what it needs to know, reports what would be fetched, uploaded and linked, writes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
"""

EXAMPLES = r"""
- name: Stage a model and a dataset into the workspace
  gpu.ops.stage_artifacts:
    manifest:
      - name: tinyllama
        src: https://models.example.org/tinyllama-1.1b-chat.Q4_K_M.gguf
        sha256: 9fecc3b3cd76bba89d504f29b616eedf7da85b96540e490ca5824d3f7d2776a0
        dest: models/tinyllama.gguf
        size: 668788096
      - name: tokenizer
        src: files/tokenizer.json        # on the controller
        sha256: 2f1c4f3e0f0d5a7c9d3b9e2c0c1f7a4a6a3c0e5e1b2d4f6a8c0e2f4a6b8d0e2f
        dest: models/tokenizer.json

- name: Catalog kept in a YAML file next to the playbook
  gpu.ops.stage_artifacts:
    manifest: "{{ lookup('ansible.builtin.file', 'artifacts.yml') | from_yaml }}"
"""

RETURN = r"""
artifacts:
  description: One entry per manifest entry, in manifest order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Artifact name.
      type: str
    sha256:
      description: Expected (and, once staged, actual) SHA-256.
      type: str
    src:
      description: Source as given.
      type: str
    size:
      description: Size in bytes of the cached file, when known.
      type: int
    cache_path:
      description: The cached file on the node.
      type: str
    dest:
      description: The link on the node.
      type: str
    cache:
      description:
        - V(hit) already cached and verified; V(fetched) downloaded; V(refetched) the cached file did not match its hash
          and was fetched again; V(uploaded) copied from the controller; V(copied) from a node path; V(missing) in check
          mode, would be fetched; V(failed).
      type: str
    link:
      description: V(ok), V(created), V(updated), or V(none) when the artifact failed.
      type: str
    hashed:
      description: Whether the file was hashed during this run (a verify or a fetch).
      type: bool
    bytes:
      description: Bytes downloaded or copied during this run.
      type: int
    attempts:
      description: Downloads made (a retry after an error or a hash mismatch counts).
      type: int
    seconds:
      description: Time spent on this artifact.
      type: float
    corrupt_sha256:
      description: Hash of the cached file that no longer matched (then fetched again).
      type: str
    error:
      description: Why the artifact failed.
      type: str
cache_dir:
  description: Cache directory on the node (expanded).
  returned: always
  type: str
link_dir:
  description: Link directory on the node (expanded).
  returned: always
  type: str
needs_upload:
  description: Names of controller-side artifacts the node does not have (the action plugin uploads these).
  returned: always
  type: list
  elements: str
uploaded:
  description: Names of artifacts uploaded from the controller during this run (set by the action plugin).
  returned: always
  type: list
  elements: str
"""
