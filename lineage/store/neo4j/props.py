"""Typed Neo4j properties from a lineage property map, and back, exactly.

A value Neo4j can hold is stored as itself, so Cypher can match and compare it (``{sha: $s}``,
``p.exit_code <> 0``): strings, 64-bit integers, finite floats, booleans and lists of one of those. Anything
else (maps, lists of maps, mixed lists, integers past 64 bits) is kept as JSON text under ``<name>_json``,
as are names the store uses itself (``id``, ``search``, ``props``, names starting with ``_`` or ending in
``_json``), so every name maps to one stored key and back. A property whose value is null (a collector
saying "unknown") is absent, as Cypher expects, and its name is listed in ``_nulls``.

Reading gives back exactly what the SQLite store gives: the map its JSON text would load to.

Times are Neo4j ``DATETIME`` values, so Cypher compares and subtracts them natively
(``c.committed_at > datetime('2026-01-01T00:00:00Z')``, ``duration.between(r.started_at, r.ended_at)``).
The conversion happens on the server, never in the Python driver, which converts each temporal value in
pure Python, slowly enough to slow batch writes several-fold (figures: docs/performance.md). A time goes out as the text every collector writes (``iso_utc``:
``2026-01-02T03:04:05.123456Z``) with its name listed beside the row (``time_keys``), and the statement
turns it into a ``DATETIME`` after setting the map. Only the names in ``TIME_KEYS`` holding exactly that
form are converted: free text that merely looks like a time under another name stays text. Reads format
those names back to the same text in Cypher (``queries.time_text``), six fractional digits and ``Z``, so
a value reads back exactly as written; a ``DATETIME`` under another name, written by someone else, is read
here into that same text form.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from neo4j.time import DateTime

from liubai.lineage.store.common import dumps_props, loads_props, loads_value

__all__ = ["JSON_SUFFIX", "STORE_KEYS", "TIME_KEYS", "from_neo4j", "is_iso_utc", "time_keys", "to_neo4j"]

JSON_SUFFIX = "_json"
# Node properties of the store's own, never a lineage property's stored key. ``props`` was the whole map
# as JSON text before properties were typed: a node still holding it is of the old layout.
NULLS = "_nulls"
STORE_KEYS = frozenset({"id", "search", "props", NULLS, "_writer", "_owners", "_lock", "_new"})
# The lineage joins' time properties (``lineage/join*.py``), stored as ``DATETIME``.
TIME_KEYS: tuple[str, ...] = (
    "authored_at",
    "committed_at",
    "created_at",
    "cut_at",
    "deleted_at",
    "end",
    "ended_at",
    "first_seen",
    "hashed_at",
    "last_seen",
    "observed_at",
    "start",
    "started_at",
    "time",
)
_ISO_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_PLAIN = frozenset({str, int, float, bool, list, dict, type(None)})
_SCALARS = frozenset({str, int, float, bool})


class _NotNative:
    """Marks a value Neo4j cannot hold as a property."""


_NOT_NATIVE = _NotNative()


def _dumps_value(value: Any) -> str:
    """One value as the JSON text ``dumps_props`` would write for it."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _scalar(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is bool:
        return value
    if kind is int:
        return value if _INT_MIN <= value <= _INT_MAX else _NOT_NATIVE
    if kind is float:
        return value if math.isfinite(value) else _NOT_NATIVE
    return _NOT_NATIVE


def _native(value: Any) -> Any:
    """The value as Neo4j stores it, or ``_NOT_NATIVE``."""
    kind = type(value)
    if kind is str:
        return value
    if kind is list:
        if not value:
            return value
        first = type(value[0])
        if any(type(v) is not first for v in value):
            return _NOT_NATIVE
        return value if all(_scalar(v) is not _NOT_NATIVE for v in value) else _NOT_NATIVE
    return _scalar(value)


_OWN_NAME: dict[str, bool] = {}  # names seen, each: may it be a stored key as it is


def _own_name(key: str) -> bool:
    own = _OWN_NAME.get(key)
    if own is None:
        own = (
            bool(key) and key not in STORE_KEYS and not key.startswith("_") and not key.endswith(JSON_SUFFIX)
        )
        if len(_OWN_NAME) < 65536:
            _OWN_NAME[key] = own
    return own


def to_neo4j(props: Mapping[str, Any]) -> dict[str, Any]:
    """The stored properties for a lineage property map."""
    if any(type(k) is not str for k in props):
        props = loads_props(dumps_props(dict(props)))
    out: dict[str, Any] = {}
    nulls: list[str] = []
    for key, value in props.items():
        kind = type(value)
        scalar = kind is str or kind is bool or (kind is int and _INT_MIN <= value <= _INT_MAX)
        if scalar and _own_name(key):
            out[key] = value  # the common case, first
            continue
        if (
            kind not in _PLAIN
            or (kind is float and not math.isfinite(value))
            or (kind is list and any(type(v) not in _SCALARS for v in value))
        ):
            value = loads_value(_dumps_value(value))  # what the JSON text reads back as (enums: values)
        if value is None:
            nulls.append(key)
            continue
        stored = _native(value)
        if stored is not _NOT_NATIVE and _own_name(key):
            out[key] = stored
        else:
            out[key + JSON_SUFFIX] = _dumps_value(value)
    if nulls:
        out[NULLS] = nulls
    return out


def is_iso_utc(value: object) -> bool:
    """Is ``value`` a real time in exactly the ``iso_utc`` form (so ``datetime()`` in Cypher takes it)?"""
    if type(value) is not str or not _ISO_UTC.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def time_keys(stored: Mapping[str, Any]) -> list[str]:
    """The stored keys whose text the write statement makes a ``DATETIME``."""
    return [k for k in TIME_KEYS if k in stored and is_iso_utc(stored[k])]


def _iso(value: DateTime) -> str:
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:"
        f"{value.second:02d}.{value.nanosecond // 1000:06d}Z"
    )


def from_neo4j(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """The lineage property map back from stored properties (store keys ignored), keys sorted as
    the JSON text of the other stores gives them."""
    if not stored:
        return {}
    out: dict[str, Any] = dict.fromkeys(stored.get(NULLS) or ())
    for key, value in stored.items():
        if key in STORE_KEYS or value is None:
            continue
        if key.endswith(JSON_SUFFIX):
            out[key[: -len(JSON_SUFFIX)]] = loads_value(value)
        elif isinstance(value, DateTime):
            out[key] = _iso(value)
        elif type(value) is list and value and isinstance(value[0], DateTime):
            out[key] = [_iso(v) for v in value]
        else:
            out[key] = value
    return dict(sorted(out.items()))
