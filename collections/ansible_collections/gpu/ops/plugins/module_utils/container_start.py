# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The start command that gives any reasonable image SSH with our key.

PRIVATE to the collection: the API may change between releases.

Providers that run the image's own entrypoint (RunPod) give SSH only with images that start sshd themselves.
For every other image the container is started with this command instead (the vendor's documented fix, as
SkyPilot and dstack do): write ``$PUBLIC_KEY`` into ``~/.ssh/authorized_keys``, install openssh-server with
the image's package manager when sshd is missing, start sshd, and keep the container alive. POSIX sh only:
the image may have no bash and no Python. Programs are found on PATH, never by absolute path.
"""

from __future__ import annotations

import shlex

# one statement per entry; joined with "; " into one line (a start command is one string)
SSHD_SCRIPT = (
    'k="${PUBLIC_KEY:-}"',
    'mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"',
    'if [ -n "$k" ]; then printf "%s\\n" "$k" >> "$HOME/.ssh/authorized_keys"; '
    'chmod 600 "$HOME/.ssh/authorized_keys"; fi',
    'export DEBIAN_FRONTEND=noninteractive',
    'if command -v sshd >/dev/null 2>&1; then :; '
    'elif command -v apt-get >/dev/null 2>&1; then apt-get update -qq && '
    'apt-get install -y -qq --no-install-recommends openssh-server; '
    'elif command -v dnf >/dev/null 2>&1; then dnf install -y -q openssh-server; '
    'elif command -v microdnf >/dev/null 2>&1; then microdnf install -y openssh-server; '
    'elif command -v yum >/dev/null 2>&1; then yum install -y -q openssh-server; '
    'elif command -v apk >/dev/null 2>&1; then apk add --no-cache -q openssh; '
    'else echo "gpu.ops: no sshd and no package manager to install it" >&2; fi',
    'mkdir -p /run/sshd 2>/dev/null',
    'command -v ssh-keygen >/dev/null 2>&1 && ssh-keygen -A >/dev/null 2>&1',
    's="$(command -v sshd)" && "$s" && echo "gpu.ops: sshd started"',
    'while :; do sleep 3600; done',
)


def sshd_start_command():
    """The container's start command (one string, as RunPod's ``args``/``dockerArgs`` take it)."""
    return "sh -c %s" % shlex.quote("; ".join(SSHD_SCRIPT))
