"""JSON as the standard parser reads it, at orjson's speed: what orjson refuses or may have read as a float
from an integer past 64 bits is parsed again by ``json.loads``; nesting too deep is bad JSON, not a crash;
a lone UTF-16 surrogate (which no store can hold) is kept as its escape's text."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import orjson

from liubai.lineage.text import json_text

__all__ = ["TOO_DEEP", "loads", "std_loads", "storable"]

_INT64 = 2.0**63
_NOT_FLAT = frozenset({float, dict, list})  # value types ``_exact`` must look into
TOO_DEEP = "nested too deeply to parse"


def loads(line: bytes) -> Any:
    """orjson for speed, with the standard parser's exact result: what orjson refuses (NaN, lone
    surrogates, UTF-16) or may have read as a float from an integer past 64 bits is parsed again by
    ``json.loads``, so accepted lines, values and reject reasons are those of the standard parser."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return std_loads(line)
    if type(obj) is dict and _NOT_FLAT.isdisjoint(map(type, obj.values())):
        return obj  # no float anywhere: the common line, checked without a Python loop
    try:
        exact = _exact(obj)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
    return obj if exact else std_loads(line)


def std_loads(text: bytes | str) -> Any:
    """``json.loads``, with nesting too deep for it refused as bad JSON rather than crashing the reader, and
    a ``\\ud800``-style escape of half a UTF-16 pair kept as that escape's text: a lone surrogate is not
    text, and no store can hold it."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
    escaped = b"\\u" in text if isinstance(text, bytes) else "\\u" in text
    return storable(obj) if escaped else obj  # a surrogate can only come from an escape


def storable(obj: Any) -> Any:
    """``obj`` (parsed from JSON with a ``\\u`` escape in it) with each lone surrogate kept as its escape's
    text."""
    try:
        json.dumps(obj, ensure_ascii=False).encode()
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
    except UnicodeEncodeError:
        return _escape_surrogates(obj)
    return obj


def _escape_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return json_text(value)
    if isinstance(value, list):
        return [_escape_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_escape_surrogates(k): _escape_surrogates(v) for k, v in value.items()}
    return value


def _exact(value: Any) -> bool:
    """False if ``value`` holds a float big enough to have been an integer orjson could not keep."""
    kind = type(value)
    if kind is dict:
        items: Iterable[Any] = value.values()
    elif kind is list:
        items = value
    else:
        return kind is not float or abs(value) < _INT64
    for v in items:  # a plain loop: this runs on every line, mostly over flat objects
        kind = type(v)
        if kind is float:
            if abs(v) >= _INT64:
                return False
        elif (kind is dict or kind is list) and not _exact(v):
            return False
    return True
