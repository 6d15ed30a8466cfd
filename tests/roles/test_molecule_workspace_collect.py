"""Molecule scenarios for gpu.ops.workspace and gpu.ops.collect: converge, idempotence (a rerun changes
nothing and sends nothing), verify. One node each (the pytest suites cover both providers and many nodes)."""

from __future__ import annotations


def test_molecule_workspace(make_nodes, run_molecule):
    res = run_molecule("workspace", make_nodes(1, "vast"))
    out = res.stdout + res.stderr
    assert "idempotence" in out.lower() and "failed=0" in out


def test_molecule_collect(make_nodes, run_molecule):
    res = run_molecule("collect", make_nodes(1, "runpod"))
    out = res.stdout + res.stderr
    assert "idempotence" in out.lower() and "failed=0" in out
