"""One node Python floor: NODE_PYTHON_MIN in plugins/plugin_utils/_node_helper.py. Every statement of it - the
module and role docs, the helpers' docstrings, ansible-test's python_requires for modules and the test that runs
the helpers on the oldest Python - says the same version."""

from __future__ import annotations

import ast
import re

import yaml

from gpuops.testing import REPO

COLL = REPO / "collections" / "ansible_collections" / "gpu" / "ops"


def floor() -> str:
    tree = ast.parse((COLL / "plugins" / "plugin_utils" / "_node_helper.py").read_text())
    value = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                 and any(getattr(t, "id", None) == "NODE_PYTHON_MIN" for t in n.targets))
    return "%d.%d" % value


def test_every_statement_of_the_node_python_floor_agrees():
    want = floor()
    config = yaml.safe_load((COLL / "tests" / "config.yml").read_text())
    assert config["modules"]["python_requires"] == ">=" + want
    found = {}
    for path in list((COLL / "plugins").rglob("*.py")) + list((COLL / "roles").rglob("*.md")) + \
            list((COLL / "roles").rglob("argument_specs.yml")) + [COLL / "README.md"]:
        for match in re.finditer(r"Python (>= ?3\.\d+|3\.\d+ or later)", path.read_text()):
            found.setdefault(re.search(r"3\.\d+", match.group(1)).group(0), []).append(str(path.relative_to(COLL)))
    assert set(found) == {want}, found
    oldest = (REPO / "tests" / "roles" / "test_node_helpers_oldest_python.py").read_text()
    assert "(%s)" % want.replace(".", ", ") in oldest and "python%s" % want in oldest
