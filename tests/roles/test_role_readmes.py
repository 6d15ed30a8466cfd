"""Every role of the collection has a README that names every variable of its argument specs (the collection
README promises it)."""

from __future__ import annotations

import pytest
import yaml

from gpuops.testing import REPO

ROLES = REPO / "collections" / "ansible_collections" / "gpu" / "ops" / "roles"


@pytest.mark.parametrize("role", sorted(p.name for p in ROLES.iterdir() if (p / "meta" / "argument_specs.yml").exists()))
def test_role_readme_names_every_variable(role):
    readme = ROLES / role / "README.md"
    assert readme.exists(), f"roles/{role} has no README.md"
    text = readme.read_text()
    assert text.startswith(f"# gpu.ops.{role}\n")
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    names = {opt for entry in specs.values() for opt in (entry.get("options") or {})}
    assert names, role
    missing = sorted(n for n in names if f"`{n}`" not in text)
    assert not missing, f"roles/{role}/README.md does not name {missing}"
