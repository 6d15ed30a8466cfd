"""The Galaxy tarball: what `ansible-galaxy collection build` ships, and that the installed copy works on its own."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile

import pytest
import yaml
from awxtools import BIN, COLL, collection_version, isolated_env

from gpuops.testing import REPO


def _members(tarball) -> list[str]:
    with tarfile.open(tarball) as tf:
        return tf.getnames()


def test_tarball_name_and_content(galaxy_tarball):
    assert galaxy_tarball.name == f"gpu-ops-{collection_version()}.tar.gz"
    names = _members(galaxy_tarball)
    # what must be there: metadata, docs, every plugin and role of the checkout
    for required in ("MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml", "CHANGELOG.rst",
                     "plugins/modules/job.py", "plugins/inventory/cloud.py", "roles/collect/tasks/main.yml"):
        assert required in names, f"{required} missing from {galaxy_tarball.name}"
    shipped_modules = {n for n in names if re.fullmatch(r"plugins/modules/\w+\.py", n)}
    on_disk = {f"plugins/modules/{p.name}" for p in (COLL / "plugins" / "modules").glob("*.py")}
    assert shipped_modules == on_disk


def test_tarball_has_no_tests_caches_or_outputs(galaxy_tarball):
    names = _members(galaxy_tarball)
    bad = [n for n in names
           if n == "tests" or n.startswith("tests/")                        # tests, tests/output among them
           or "__pycache__" in n.split("/") or n.endswith((".pyc", ".pyo"))
           or any(part in {".cache", ".pytest_cache", ".ansible", "benchmarks", "output"} for part in n.split("/"))
           or n.endswith(".tar.gz")]
    assert not bad, f"{galaxy_tarball.name} ships files it should not: {bad[:20]}"


def test_build_ignore_covers_what_the_checkout_can_hold():
    ignore = set(yaml.safe_load((COLL / "galaxy.yml").read_text())["build_ignore"])
    # a test run leaves tests/output and __pycache__ inside the collection; make sure both stay out
    assert {"tests", "*.tar.gz", ".cache", "__pycache__", "*.pyc"} <= ignore


def test_requires_ansible_is_what_the_makefile_tests():
    runtime = yaml.safe_load((COLL / "meta" / "runtime.yml").read_text())
    makefile = (COLL.parents[3] / "Makefile").read_text()
    tested = sorted({tuple(map(int, v.split("."))) for v in re.findall(r"ansible-core>=(\d+\.\d+),", makefile)})
    assert tested, "the Makefile no longer names the ansible-core versions it tests"
    lowest = "%d.%d" % tested[0]
    assert runtime["requires_ansible"] == f">={lowest}.0", (
        f"meta/runtime.yml claims {runtime['requires_ansible']} but the lowest ansible-core tested is {lowest}")


def test_ansible_doc_from_the_installed_copy_only(installed_copy):
    res = installed_copy.run("ansible-doc", "-j", "gpu.ops.job")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)["gpu.ops.job"]["doc"]
    assert doc["filename"].startswith(str(installed_copy.collections_path)), doc["filename"]
    assert {"name", "command"} <= set(doc["options"])
    # nothing else is visible: the repository's copy is not on the path
    listing = installed_copy.run("ansible-galaxy", "collection", "list", "gpu.ops", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    assert list(json.loads(listing.stdout)) == [str(installed_copy.collections_path / "ansible_collections")]


def test_roles_and_inventory_plugin_resolve_from_the_installed_copy(installed_copy):
    res = installed_copy.run("ansible-doc", "-t", "inventory", "-j", "gpu.ops.cloud")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["gpu.ops.cloud"]["doc"]["filename"].startswith(
        str(installed_copy.collections_path))
    play = installed_copy.workdir / "uses_role.yml"
    play.write_text(yaml.safe_dump([{"name": "Role from the tarball", "hosts": "localhost", "gather_facts": False,
                                     "roles": [{"role": "gpu.ops.collect"}]}]))
    res = installed_copy.run("ansible-playbook", "-i", "localhost,", str(play), "--syntax-check")
    assert res.returncode == 0, res.stdout + res.stderr


def test_pipeline_playbook_from_the_installed_copy(installed_copy):
    """`ansible-playbook gpu.ops.pipeline` resolves from the tarball alone. To run it for real on the simulator,
    pass the simulator's env and an inventory file written into installed_copy.workdir, e.g.
    installed_copy.run_playbook("pipeline", "-i", str(inv), "-e", "@run.yml", env=sim.env)."""
    if not (COLL / "playbooks" / "pipeline.yml").is_file():
        pytest.skip("pipeline playbook not in this tree")
    res = installed_copy.run_playbook("pipeline", "-i", "localhost,", "--syntax-check")
    assert res.returncode == 0, res.stdout + res.stderr


def test_requirements_git_source_installs(tmp_path):
    """collections/requirements.yml's git source, pointed at this checkout instead of GitHub (same subdirectory
    syntax, version = the committed HEAD): ansible-galaxy clones it, finds the collection in its subdirectory and
    builds it with build_ignore, as AWX's project sync does."""
    req = yaml.safe_load((REPO / "collections" / "requirements.yml").read_text())
    (entry,) = [c for c in req["collections"] if "gpu/ops" in c["name"]]
    assert entry["type"] == "git" and entry["name"].endswith("#/collections/ansible_collections/gpu/ops")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    local = {**entry, "name": "git+file://" + str(REPO) + "#" + entry["name"].split("#", 1)[1],
             "version": head.stdout.strip()}
    (tmp_path / "requirements.yml").write_text(yaml.safe_dump({"collections": [local]}))
    dest = tmp_path / "collections"
    res = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "-r", "requirements.yml", "-p",
                          str(dest)], capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                         env=isolated_env(dest, tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    installed = dest / "ansible_collections" / "gpu" / "ops"
    assert (installed / "MANIFEST.json").is_file() and not (installed / "tests").exists()


@pytest.mark.slow
def test_pipeline_runs_one_node_from_the_installed_copy(installed_copy, sim, tmp_path):
    """What a Galaxy user has is all it takes: the tarball's pipeline rents a node on the simulator, trains the
    example, collects, tears down; the record names the installed collection's version."""
    import sys

    sys.path.insert(0, str(REPO / "tests" / "pipeline"))
    from pipetools import make_example_repo

    repo = make_example_repo(tmp_path / "charlm")
    spec = {"repo": str(repo), "gpu": ["RTX 4090"], "max_price_per_hour": 2.0, "bootstrap": "true",
            "command": "python3 train.py --steps 50", "ssh_private_key_file": str(sim.key),
            "runs_dir": str(tmp_path / "runs"), "run_id": "galaxy-" + tmp_path.name[-6:].lower().replace("_", "-")}
    (installed_copy.workdir / "run.yml").write_text(yaml.safe_dump(spec))
    res = installed_copy.run_playbook("pipeline", "-e", "@run.yml", env=sim.env)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    run_dir = tmp_path / "runs" / spec["run_id"]
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "succeeded" and rec["torn_down"]
    prov = json.loads((run_dir / "provenance.json").read_text())
    assert prov["collection_version"] == collection_version()
    assert not [r for r in sim.client.ledger()["instances"]
                if r["name"].startswith(spec["run_id"] + "-") and r["state"] != "terminated"]
