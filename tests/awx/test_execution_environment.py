"""execution-environment.yml: `ansible-builder create` (offline, no container build) and the build context it writes.

Building the image needs podman or docker and the network; what can be checked without them is checked here:
the context holds the gpu.ops tarball of this checkout, the galaxy step of the Containerfile installs it from
there (run here with the same command and work dir), and the Python and system dependencies cover what the
collection imports and runs.
"""

from __future__ import annotations

import ast
import hashlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from awxtools import BIN, COLL, collection_version, isolated_env

from gpuops.testing import REPO

EE_FILE = REPO / "execution-environment.yml"
# imports ansible-core itself brings (its own dependencies)
CORE_DEPS = {"jinja2", "yaml", "cryptography", "packaging", "resolvelib", "markupsafe"}


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def context(ansible_builder, galaxy_tarball, tmp_path_factory):
    """`ansible-builder create` on a copy of the repository's EE file, with dist/ holding this checkout's tarball."""
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(EE_FILE, work / "execution-environment.yml")
    (work / "dist").mkdir()
    shutil.copy(galaxy_tarball, work / "dist" / galaxy_tarball.name)
    proc = subprocess.run([str(ansible_builder), "create", "-f", "execution-environment.yml", "-c", "context"],
                          capture_output=True, text=True, timeout=300, cwd=str(work))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work / "context"


def _containerfile(context) -> str:
    files = [context / n for n in ("Containerfile", "Dockerfile") if (context / n).is_file()]
    assert files, f"no Containerfile in {sorted(p.name for p in context.iterdir())}"
    return files[0].read_text()


def test_context_ships_this_checkouts_tarball(context, galaxy_tarball):
    shipped = context / "_build" / "collections" / galaxy_tarball.name
    assert shipped.is_file()
    assert _sha256(shipped) == _sha256(galaxy_tarball)
    reqs = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert reqs["collections"] == [{"name": f"collections/gpu-ops-{collection_version()}.tar.gz", "type": "file"}]


def test_galaxy_stage_installs_gpu_ops_from_the_context(context, tmp_path):
    text = _containerfile(context)
    # the galaxy stage copies _build to /build and installs requirements.yml from there ...
    assert "COPY _build /build" in text and "WORKDIR /build" in text
    install = re.search(r"ansible-galaxy collection install .*-r requirements\.yml", text)
    assert install, "the Containerfile no longer installs the galaxy requirements"
    # ... so run that install here, from the same work dir: the relative tarball path must resolve offline
    dest = tmp_path / "usr-share-ansible-collections"
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "-r", "requirements.yml",
                           "--collections-path", str(dest)], capture_output=True, text=True, timeout=300,
                          cwd=str(context / "_build"), env=isolated_env(dest, tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = dest / "ansible_collections" / "gpu" / "ops" / "MANIFEST.json"
    assert manifest.is_file(), proc.stdout
    assert not (dest / "ansible_collections" / "gpu" / "ops" / "tests").exists()


def test_containerfile_pins_what_is_tested(context):
    text = _containerfile(context)
    assert 'EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in text
    assert 'PYCMD="/usr/bin/python3.12"' in text  # ansible-core 2.21 needs Python >= 3.12
    refs = re.search(r'ANSIBLE_INSTALL_REFS="([^"]+)"', text).group(1)
    core = re.search(r"ansible-core>=(\d+\.\d+),<(\d+\.\d+)", refs)
    assert core, refs
    runtime = yaml.safe_load((COLL / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == f">={core.group(1)}.0", "EE and meta/runtime.yml disagree"
    assert "ansible-runner" in refs


def _third_party_imports() -> set[str]:
    names = set()
    for path in (COLL / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in {"ansible", "ansible_collections"}}


def test_python_requirements_cover_what_the_plugins_import(context):
    reqs = (context / "_build" / "requirements.txt").read_text()
    wanted = {re.split(r"[<>=\[ ;]", line.strip())[0].lower() for line in reqs.splitlines()
              if line.strip() and not line.startswith("#")}
    missing = _third_party_imports() - CORE_DEPS - wanted
    assert "requests" in wanted
    assert not missing, f"gpu.ops plugins import {sorted(missing)} but the EE does not install them"
    # the collection's own EE metadata (read by anyone's ansible-builder) asks for the same packages
    own = (COLL / "meta" / "ee-requirements.txt").read_text()
    assert wanted <= {re.split(r"[<>= ]", x)[0].lower() for x in own.splitlines()
                                   if x.strip() and not x.startswith("#")}


def test_system_packages_for_the_controller_not_the_nodes(context):
    bindep = (context / "_build" / "bindep.txt").read_text()
    packages = {line.split()[0] for line in bindep.splitlines() if line.strip() and not line.startswith("#")}
    assert {"openssh-clients", "rsync", "git-core"} <= packages      # rpm base image
    assert {"openssh-client", "git"} <= packages                     # dpkg names, for a Debian base
    assert "tmux" not in packages  # only the GPU nodes run tmux


def test_collection_ee_metadata_introspects(ansible_builder, installed_copy):
    """`ansible-builder introspect` (what the builder stage runs) finds gpu.ops's own EE dependencies."""
    proc = subprocess.run([str(ansible_builder), "introspect", str(installed_copy.collections_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = yaml.safe_load(proc.stdout.split("\n", 1)[1])
    assert any(x.startswith("requests") and "gpu.ops" in x for x in data["python"]), data
    system = " ".join(data["system"])
    for pkg in ("openssh-clients", "rsync", "git-core"):
        assert pkg in system, data
