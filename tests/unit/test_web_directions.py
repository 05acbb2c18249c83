"""The web UI's "auto" direction table (web/js/directions.js) equals the one ``liubai lineage`` uses.

A root opened without a direction walks the way its kind says; the UI and the CLI must say the same, or
one link shows a commit's lineage in the browser and another in the terminal. The JS table is a plain
literal, read as text without a JS engine.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from liubai.lineage.directions import AUTO_DIRECTIONS
from liubai.lineage.model import NodeKind

DIRECTIONS_JS = Path(__file__).resolve().parents[2] / "web" / "js" / "directions.js"


def js_auto_directions(source: str) -> dict[str, list[str]]:
    match = re.search(r"export const AUTO_DIRECTIONS = \{(.*?)\};", source, re.DOTALL)
    if match is None:
        pytest.fail(f"{DIRECTIONS_JS}: cannot find AUTO_DIRECTIONS; update this test with the table")
    rows = re.findall(r"^\s*(\w+): \[([^\]]*)\],?\s*$", match.group(1), re.MULTILINE)
    return {kind: re.findall(r'"([A-Z]+)"', ways) for kind, ways in rows}


def test_ui_auto_directions_are_the_cli_auto_directions_for_every_kind() -> None:
    table = js_auto_directions(DIRECTIONS_JS.read_text(encoding="utf-8"))
    assert set(table) == {k.value for k in NodeKind}, f"{DIRECTIONS_JS} lists other kinds than NodeKind"
    for kind in NodeKind:
        python = [d.name for d in AUTO_DIRECTIONS[kind]]
        assert table[kind.value] == python, f"{kind.value}: CLI walks {python}, UI {table[kind.value]}"


def test_the_reader_sees_a_changed_table() -> None:
    source = 'export const AUTO_DIRECTIONS = {\n  Repo: ["DOWNSTREAM"],\n  Extra: ["UPSTREAM", "DOWNSTREAM"],\n};\n'
    assert js_auto_directions(source) == {"Repo": ["DOWNSTREAM"], "Extra": ["UPSTREAM", "DOWNSTREAM"]}
