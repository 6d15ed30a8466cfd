"""The gpu.ops collection's own code, imported by the CLI's fast paths (exec, sync, stop, logs -f, status).

The node helpers, the lifecycle and the collect/deploy logic live in the collection (``plugins/``), so the
playbooks and the CLI run the same code. From a checkout the collection beside this package is used (as
``gpuops.runner`` puts it first on ``ANSIBLE_COLLECTIONS_PATH``); an installed package finds the installed
collection on ``ANSIBLE_COLLECTIONS_PATH``, ``~/.ansible/collections``, ``/usr/share/ansible/collections`` or
site-packages. Importing it needs no Ansible run: ``ansible_collections`` is a namespace package.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

CHECKOUT_COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"


class CollectionNotFound(ImportError):
    pass


def _candidates() -> list[Path]:
    out = [CHECKOUT_COLLECTIONS]
    for var in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"):
        out += [Path(p).expanduser() for p in (os.environ.get(var) or "").split(os.pathsep) if p]
    out += [Path("~/.ansible/collections").expanduser(), Path("/usr/share/ansible/collections")]
    out += [Path(p) for p in sys.path if p.endswith("site-packages")]
    return out


def root() -> Path:
    """The directory that holds ``ansible_collections/gpu/ops``."""
    for cand in _candidates():
        if (cand / "ansible_collections" / "gpu" / "ops" / "plugins").is_dir():
            return cand
    raise CollectionNotFound("the gpu.ops collection was not found (install it: ansible-galaxy collection install "
                             "gpu-ops-*.tar.gz, or set ANSIBLE_COLLECTIONS_PATH)")


def module(name: str):
    """``module("module_utils.lifecycle")`` -> ``ansible_collections.gpu.ops.plugins.module_utils.lifecycle``."""
    base = str(root())
    if base not in sys.path:
        sys.path.insert(0, base)
    return importlib.import_module("ansible_collections.gpu.ops.plugins." + name)


def lifecycle():
    return module("module_utils.lifecycle")
