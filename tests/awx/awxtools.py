"""Helpers of the AWX / execution environment / Galaxy tarball tests (fixtures are in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from gpuops.testing import REPO

BIN = Path(sys.executable).parent
COLL = REPO / "collections" / "ansible_collections" / "gpu" / "ops"
CACHE = REPO / ".cache" / "awx-tests"


def collection_version() -> str:
    return yaml.safe_load((COLL / "galaxy.yml").read_text())["version"]


def isolated_env(collections_path: Path | str, home: Path, extra: dict | None = None) -> dict:
    """An environment in which Ansible sees ONLY `collections_path`: no ANSIBLE_* from the caller, no
    ansible.cfg of the repository (it points collections_path at ./collections), no collections on sys.path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    cfg = home / "ansible.cfg"
    if not cfg.exists():
        cfg.write_text("[defaults]\n")
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "HOME": str(home),
        "ANSIBLE_CONFIG": str(cfg),
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(home / ".ansible-tmp"),
    })
    env.update(extra or {})
    return env


@dataclass
class InstalledCopy:
    collections_path: Path   # holds ansible_collections/gpu/ops, and nothing else
    workdir: Path            # outside the repository: no ./collections, no ansible.cfg next to it

    def env(self, extra: dict | None = None) -> dict:
        return isolated_env(self.collections_path, self.workdir, extra)

    def run(self, tool: str, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, timeout=timeout,
                              env=self.env(env), cwd=str(self.workdir))

    def run_playbook(self, name: str, *args: str, env: dict | None = None,
                     timeout: float = 600) -> subprocess.CompletedProcess:
        """`ansible-playbook gpu.ops.<name> ARGS` against the installed copy only."""
        return self.run("ansible-playbook", f"gpu.ops.{name}", *args, env=env, timeout=timeout)
