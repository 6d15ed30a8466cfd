"""docs/lifecycle.md shows the command x state table the code enforces (module_utils/lifecycle.py)."""

from __future__ import annotations

from gpuops._collection import lifecycle
from gpuops.testing import REPO


def test_the_documented_table_is_the_enforced_one():
    doc = (REPO / "docs" / "lifecycle.md").read_text()
    begin, end = "<!-- lifecycle-table:begin -->\n", "<!-- lifecycle-table:end -->"
    assert begin in doc and end in doc
    shown = doc.split(begin, 1)[1].split(end, 1)[0]
    assert shown == lifecycle().table_markdown(), "regenerate the table in docs/lifecycle.md from lifecycle.py"


def test_every_state_of_the_code_is_documented():
    doc = (REPO / "docs" / "lifecycle.md").read_text()
    for state in lifecycle().STATES:
        assert f"| `{state}` |" in doc, state
