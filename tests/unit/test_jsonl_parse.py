"""The fast JSON-lines parser must read every line exactly as ``json.loads`` does (record ids hash values)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from liubai.collector.logfile.exact_json import loads

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@given(_json)
def test_values_and_types_match_the_standard_parser(value: Any) -> None:
    line = json.dumps({"v": value}).encode()
    assert _same(loads(line), json.loads(line))


def test_what_orjson_reads_differently_or_refuses_still_parses_like_json_loads() -> None:
    for line in (
        b'{"n": 123456789012345678901234567890}',
        b'{"deep": [{"n": -98765432109876543210}]}',
        b'{"x": NaN, "y": Infinity}',
        b'{"s": "\\ud83d\\ude00"}',
        '{"u": "utf-16"}'.encode("utf-16"),
        b'{"a": 1, "a": 2}',
    ):
        assert _same(loads(line), json.loads(line)), line


def test_half_a_utf16_pair_stays_the_text_of_its_escape() -> None:
    """``json.loads`` makes ``\\ud800`` a lone surrogate, which UTF-8, record ids and stores refuse."""
    assert loads(b'{"s": "a\\ud800b", "\\udfff": ["\\ud800"]}') == {"s": "a\\ud800b", "\\udfff": ["\\ud800"]}
