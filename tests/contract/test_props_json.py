"""Property JSON read back exactly, and the SQLite store's search texts made without reading it back."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from liubai.lineage.model import GraphBatch, Node, NodeKind
from liubai.lineage.store.common import dumps_props, loads_props, loads_value
from liubai.lineage.store.searchtext import SEARCH_PROPS, search_text
from liubai.lineage.store.sqlite import prepare_rows

BIG = 2**64 + 1

# JSON texts orjson alone would read wrongly (integers past 64 bits), beside ones it reads rightly though
# they hold long digit runs or large numbers.
TEXTS = [
    json.dumps(BIG),
    json.dumps(-(2**63) - 1),
    json.dumps({"n": BIG}),
    json.dumps({"a": "x", "deep": {"list": [1, "y", [None, {"n": -(2**70)}]]}}),
    json.dumps([0.5, 2**64]),
    json.dumps({"commit": "0" * 40, "id": "log:app-" + "1" * 25, "at": 1767225600123456789}),
    json.dumps({"max": 2**64 - 1, "min": -(2**63), "float": 1e19, "neg": -1.5e300}),
    "[" * 500 + str(BIG) + "]" * 500,
    '{"n": 123456789012345678901234567890, "x" : [ 1 , 2 ] }',
    "1e400",  # past a double: orjson refuses it, ``json`` reads infinity
]


@pytest.mark.parametrize("text", TEXTS)
def test_loads_value_reads_every_number_as_json_does(text: str) -> None:
    # repr, not ==: 2**64 == float(2**64), yet the float has lost the integer's exactness elsewhere
    assert repr(loads_value(text)) == repr(json.loads(text))


def test_loads_props_keeps_integers_past_64_bits_written_by_dumps_props() -> None:
    props = {"big": BIG, "list": [2**80, {"neg": -(2**70)}], "sha": "1" * 40}
    back = loads_props(dumps_props(props))
    assert back == props and type(back["big"]) is int and type(back["list"][0]) is int


# Values a JSON round trip keeps and values it changes (their str() differs from what reads back).
SEARCHED_VALUES: list[Any] = [
    "plain words",
    "\ud800 lone surrogate",
    7,
    BIG,
    True,
    None,
    ["a", 1, False, None],
    1.5,
    1e16,
    math.nan,
    math.inf,
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    [datetime(2026, 1, 2, 3, 4, 5)],
    ["a", ["nested"]],
    ("a", "tuple"),
    {"a": "map"},
    NodeKind.COMMIT,
    Decimal("1.10"),
    {"a", "set"},
]


@pytest.mark.parametrize("kind", list(SEARCH_PROPS))
def test_sqlite_search_texts_are_what_a_reindex_makes_of_the_stored_json(kind: NodeKind) -> None:
    """A re-index reads each node's JSON and indexes its ``search_text``; the texts written with the
    node must be the same, or a later re-index or update would leave stale words behind."""
    keys = SEARCH_PROPS[kind]
    nodes = [
        Node(f"{kind.value}:n{i}", kind, {key: value for key in keys} | {"other": value})
        for i, value in enumerate(SEARCHED_VALUES)
    ]
    rows = prepare_rows(GraphBatch(nodes=nodes))
    reindexed = [
        search_text(node_id, kind, loads_props(props))
        for node_id, props in zip(rows.ids, rows.props, strict=True)
    ]
    assert rows.texts == reindexed
    assert any("plain words" in text for text in rows.texts)  # the searched keys were filled
