"""Fixtures for the AWX / execution environment / Galaxy tarball tests.

Tools these tests need but the product does not (ansible-builder, the awx.awx collection) come from the package
registry ONCE into the git-ignored `.cache/awx-tests/` of the checkout and are reused by later runs; when the
registry cannot be reached the tests that need them skip and say so. Nothing here is fetched at product run time.

Fixtures:
  awx_collections   path to add to ANSIBLE_COLLECTIONS_PATH that holds awx.awx (from the `ansible` package on PyPI)
  ansible_builder   path of the ansible-builder executable in its own cached venv
  galaxy_tarball    the gpu.ops tarball built by `ansible-galaxy collection build` from this checkout
  installed_copy    the tarball installed with `ansible-galaxy collection install` into a temp collections path
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from awxtools import BIN, CACHE, COLL, InstalledCopy, collection_version, isolated_env

from gpuops.testing import REPO

AWX_COLLECTIONS = CACHE / "collections"
BUILDER_VENV = CACHE / "builder-venv"
# the versions these tests were written against; newer ones are fine, the checks read what is installed
# 13 and later no longer bundle awx.awx (checked: 14.5.0 has no ansible_collections/awx); 12.3.0 holds awx.awx 24.6.1
ANSIBLE_BUNDLE = "ansible>=11,<13"
BUNDLE_WHEELS = "ansible-1[12].*.whl"  # a cached newer wheel (no awx.awx) is not used
BUILDER = "ansible-builder>=3.1,<4"


@contextlib.contextmanager
def _cache_lock(name: str):
    """One xdist worker downloads, the others wait for it and then reuse the result."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pip(args: list[str], python: str = sys.executable, timeout: float = 900) -> subprocess.CompletedProcess:
    # short network timeouts: an unreachable registry should skip these tests in seconds, not stall them
    return subprocess.run([python, "-m", "pip", "--disable-pip-version-check", "--timeout", "30", "--retries", "2",
                           *args], capture_output=True, text=True, timeout=timeout)


def _skip_unreachable(what: str, proc: subprocess.CompletedProcess):
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    pytest.skip(f"{what}: the package registry is unreachable or refused ({' / '.join(tail)}); "
                f"these tests need it once, then reuse {CACHE.relative_to(REPO)}/")


@pytest.fixture(scope="session")
def awx_collections() -> Path:
    """awx.awx extracted from the `ansible` community package (it bundles the collection), no Galaxy needed."""
    target = AWX_COLLECTIONS / "ansible_collections" / "awx" / "awx"
    with _cache_lock("awx"):
        if not (target / "MANIFEST.json").is_file():
            downloads = CACHE / "downloads"
            wheels = sorted(downloads.glob(BUNDLE_WHEELS)) if downloads.is_dir() else []
            if not wheels:
                proc = _pip(["download", ANSIBLE_BUNDLE, "--no-deps", "--only-binary=:all:", "-d", str(downloads)])
                wheels = sorted(downloads.glob(BUNDLE_WHEELS))
                if proc.returncode != 0 or not wheels:
                    _skip_unreachable("awx.awx (pip download ansible)", proc)
            prefix = "ansible_collections/awx/awx/"
            tmp = AWX_COLLECTIONS.with_name("collections.partial")
            shutil.rmtree(tmp, ignore_errors=True)
            with zipfile.ZipFile(wheels[-1]) as zf:
                members = [n for n in zf.namelist() if n.startswith(prefix)]
                assert members, f"{wheels[-1].name} does not bundle awx.awx"
                zf.extractall(tmp, members)
            shutil.rmtree(AWX_COLLECTIONS, ignore_errors=True)
            tmp.rename(AWX_COLLECTIONS)
    return AWX_COLLECTIONS


@pytest.fixture(scope="session")
def ansible_builder() -> Path:
    """ansible-builder in its own venv: a test tool only, kept out of the product's dependencies."""
    exe = BUILDER_VENV / "bin" / "ansible-builder"
    stamp = BUILDER_VENV / ".installed"
    with _cache_lock("builder"):
        if not stamp.is_file():
            shutil.rmtree(BUILDER_VENV, ignore_errors=True)
            venv.EnvBuilder(with_pip=True).create(BUILDER_VENV)
            proc = _pip(["install", "-q", BUILDER], python=str(BUILDER_VENV / "bin" / "python"))
            if proc.returncode != 0 or not exe.is_file():
                shutil.rmtree(BUILDER_VENV, ignore_errors=True)
                _skip_unreachable("ansible-builder (pip install)", proc)
            stamp.touch()
    return exe


@pytest.fixture(scope="session")
def galaxy_tarball(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("galaxy-build")
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(COLL), "--output-path", str(out),
                           "--force"], capture_output=True, text=True, timeout=300,
                          env=isolated_env(out, out), cwd=str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tarball = out / f"gpu-ops-{collection_version()}.tar.gz"
    assert tarball.is_file(), f"{tarball.name} not built: {sorted(p.name for p in out.iterdir())}"
    return tarball


@pytest.fixture(scope="session")
def installed_copy(galaxy_tarball, tmp_path_factory) -> InstalledCopy:
    root = tmp_path_factory.mktemp("installed")
    coll_path, workdir = root / "collections", root / "work"
    workdir.mkdir()
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", str(galaxy_tarball), "-p",
                           str(coll_path)], capture_output=True, text=True, timeout=300,
                          env=isolated_env(coll_path, workdir), cwd=str(workdir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (coll_path / "ansible_collections" / "gpu" / "ops" / "MANIFEST.json").is_file(), proc.stdout
    return InstalledCopy(coll_path, workdir)
