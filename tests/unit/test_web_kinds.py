"""The web UI's copy of the kind tables (web/js/kinds.js) equals the Python enums.

The UI lays the graph out along the flow declaration -> execution -> logs, so it keeps its own list of
node kinds and of the edge kinds stored against that flow. A kind added or flipped on the server but not
in the UI would be drawn backwards or as an unknown grey node; this test makes that a failure. The JS
tables are plain literals, so they are read as text, without a JS engine.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from liubai.lineage.model import EdgeKind, NodeKind

KINDS_JS = Path(__file__).resolve().parents[2] / "web" / "js" / "kinds.js"


def _literal(source: str, pattern: str, what: str) -> str:
    """The text of one literal in kinds.js; fails naming the table when its shape is not recognised."""
    match = re.search(pattern, source, re.DOTALL)
    if match is None:
        pytest.fail(f"{KINDS_JS}: cannot find {what} (pattern {pattern!r}); update this test with the table")
    return match.group(1)


def _strings(literal: str) -> list[str]:
    return re.findall(r'"([^"\\]*)"', literal)


def js_node_kinds(source: str) -> list[str]:
    body = _literal(source, r"export const KINDS = \[(.*?)\];", "the KINDS array")
    return re.findall(r'\bkind:\s*"([^"\\]*)"', body)


def js_flow_reversed(source: str) -> list[str]:
    return _strings(_literal(source, r"export const FLOW_REVERSED = new Set\(\[(.*?)\]\)", "FLOW_REVERSED"))


def test_ui_node_kinds_are_the_python_node_kinds() -> None:
    kinds = js_node_kinds(KINDS_JS.read_text(encoding="utf-8"))
    assert len(kinds) == len(set(kinds)), f"a kind is listed twice in {KINDS_JS}: {kinds}"
    assert set(kinds) == {k.value for k in NodeKind}


def test_ui_flow_reversed_edges_match_edgekind_flow_reversed_for_every_kind() -> None:
    reversed_in_ui = js_flow_reversed(KINDS_JS.read_text(encoding="utf-8"))
    assert len(reversed_in_ui) == len(set(reversed_in_ui)), reversed_in_ui
    unknown = set(reversed_in_ui) - {k.value for k in EdgeKind}
    assert not unknown, f"{KINDS_JS} names edge kinds the server does not have: {sorted(unknown)}"
    for kind in EdgeKind:
        assert (kind.value in reversed_in_ui) == kind.flow_reversed, (
            f"{kind.value}: server flow_reversed={kind.flow_reversed}, UI disagrees ({KINDS_JS})"
        )


def test_the_parsers_read_what_the_ui_would_read() -> None:
    """The readers above see a changed table; without this a regex that matches nothing would pass."""
    source = (
        'export const KINDS = [\n  { kind: "Repo", color: "#1" },\n  { kind: "Extra", color: "#2" },\n];\n'
        'export const FLOW_REVERSED = new Set(["PARENT", "WROTE"]);\n'
    )
    assert js_node_kinds(source) == ["Repo", "Extra"]
    assert js_flow_reversed(source) == ["PARENT", "WROTE"]
