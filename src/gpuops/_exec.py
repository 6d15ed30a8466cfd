"""Launcher that ansible-runner starts instead of ansible-playbook: ``python -m gpuops._exec ARGS...``.

ansible-runner writes the whole process environment of the command it starts into
``<data dir>/artifacts/<ident>/command``, and ``envvars`` into ``<data dir>/env/envvars``. API keys must reach the
modules through the environment but never land in the data dir, so gpuops removes them from the environment it
gives ansible-runner and sends them through a named pipe instead (``GPUOPS_SECRETS_FIFO``, a FIFO in a private
0700 directory outside the data dir: the bytes never touch a disk). This launcher reads the pipe, puts the values
back into its environment and replaces itself with ansible-playbook (same pid, so the event stream, signals and
the exit status are ansible-playbook's own).
"""

from __future__ import annotations

import os
import shutil
import sys

from .secrets import read_secret_pipe


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    env = dict(os.environ)
    fifo = env.pop("GPUOPS_SECRETS_FIFO", None)
    if fifo:
        env.update(read_secret_pipe(fifo))
    exe = env.pop("GPUOPS_ANSIBLE_PLAYBOOK", None) or shutil.which("ansible-playbook", path=env.get("PATH"))
    if not exe:
        sys.stderr.write("gpuops: ansible-playbook not found on PATH (install ansible-core)\n")
        sys.exit(3)
    os.execve(exe, [exe, *args], env)


if __name__ == "__main__":
    main()
