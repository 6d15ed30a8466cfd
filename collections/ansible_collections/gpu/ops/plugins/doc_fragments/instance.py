# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # SSH keys, waiting for SSH, failure handling and ownership labels of the modules that create instances.
    DOCUMENTATION = r"""
options:
  ssh_public_key:
    description:
      - OpenSSH public key to authorize on new instances (for example the content of C(~/.ssh/id_ed25519.pub)).
      - Mutually exclusive with O(ssh_public_key_file).
      - If neither is set, C(<ssh_private_key_file>.pub) is used.
    type: str
  ssh_public_key_file:
    description:
      - File holding the OpenSSH public key to authorize on new instances.
    type: path
  ssh_private_key_file:
    description:
      - Private key used to check that SSH login works (C(ssh ... true)) before the module returns.
      - Checked before anything is rented, the module fails if it is missing, unreadable or readable by group or others.
      - If not set, C(ssh) uses the agent and the default identities.
    type: path
  known_hosts_file:
    description:
      - known_hosts file the readiness probe trusts new host keys into (trust on first use), per run.
      - Entries for the address of an instance created or destroyed by the module are removed from it,
        because cloud addresses and ports are reused by other machines. Without this option a destroyed
        instance's entries are removed from the default files of its run (its C(run_id) label), of O(run_id) and
        C(~/.cache/gpuops/known_hosts), so O(state=absent) needs neither this option nor O(run_id) for that.
      - Defaults to C(~/.cache/gpuops/known_hosts-<run_id>), or C(~/.cache/gpuops/known_hosts) without O(run_id).
    type: path
  wait:
    description:
      - Wait until the instance is running and SSH login works.
      - The API is polled with backoff until it reports the instance running with an SSH endpoint, then the port is
        probed (TCP, SSH banner, then a real C(ssh ... true)). There is no fixed sleep.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for SSH. Must be greater than 0.
      - When an instance created by this task is not ready in time it is destroyed (unless O(keep_on_failure=true))
        and the module fails with the state it was stuck in and the last probe error.
    type: int
    default: 600
  pull_timeout:
    description:
      - Seconds the image may take to pull, on top of O(wait_timeout). While the provider reports the image pulling
        (RunPod RUNNING without a runtime, Vast C(loading) with the progress in C(status_msg)), that time does not
        count against O(wait_timeout), and a RUNNING pod without an SSH mapping is not taken for a host without a
        public IP.
      - A cold 16 GB image takes about 3 minutes; the default leaves room for slow registries.
    type: int
    default: 1800
  poll_interval:
    description:
      - Longest pause in seconds between two status polls while waiting. Polls start at 0.1 seconds and back off to
        this value, so SSH is found ready at most about this long after it comes up.
      - Several instances of one provider are refreshed with one list call per poll.
      - Raise it for long boots on accounts with tight rate limits.
    type: float
    default: 1.5
  keep_on_failure:
    description:
      - Keep instances this task created when it fails (SSH never ready, a later error), for debugging.
      - They still carry O(ttl) so a reaper can find them later.
    type: bool
    default: false
  run_id:
    description:
      - Run identifier written on new instances (label C(run_id)), so a reaper or the inventory plugin can find
        what one run created.
      - If not set, the value of the E(GPUOPS_RUN_ID) environment variable is used, then C(manual-<UTC timestamp>).
      - With O(state=absent), when set, only an instance labelled with this run is destroyed; one of the same name
        from another run is left alone (see RV(kept)).
    type: str
  owner:
    description:
      - Owner written on new instances (label C(owner)). Defaults to E(GPUOPS_OWNER) or the controller user.
      - With O(state=absent), when set, only an instance labelled with this owner is destroyed.
    type: str
  ttl:
    description:
      - Time to live of new instances, written as label C(expires_at) (UTC, ISO 8601) for the reaper; the module
        itself never deletes on expiry.
      - A duration such as C(90m), C(12h) or C(2d) (plain numbers are seconds).
    type: str
    default: 24h
notes:
  - "Ownership labels: RunPod has no labels, so C(run_id), C(owner) and C(expires_at) are set as the pod environment
    variables C(GPUOPS_RUN_ID), C(GPUOPS_OWNER) and C(GPUOPS_EXPIRES_AT) (returned by the list API). On Vast they are
    part of the instance label, C(<name>;run_id=<id>;owner=<owner>;expires_at=<time>), and also set as those
    environment variables."
  - Check mode is supported; in check mode nothing is created, started, stopped or destroyed, only read.
  - Progress of a long wait is logged to the controller's syslog/journal at every state change and returned in
    C(instance.wait.events); run the task with C(async)/C(poll) to see it is still alive while it waits.
"""
