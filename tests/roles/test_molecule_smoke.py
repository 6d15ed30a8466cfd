"""The molecule harness itself: converge + idempotence + verify on a simulator node."""


def test_molecule_runs_against_sim_nodes(make_nodes, run_molecule):
    nodes = make_nodes(1, "runpod")
    res = run_molecule("_sim_smoke", nodes)
    assert "idempotence" in res.stdout + res.stderr
