"""Helpers every store implementation shares: batch preparation, property JSON, opaque page cursors,
chunking."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import orjson

from liubai.lineage.model import Edge, GraphBatch, Node, dedupe_batch, merge_props, node_kind_of
from liubai.lineage.store.base import InvalidCursor

__all__ = [
    "chunks",
    "decode_cursor",
    "dedupe_edges",
    "dumps_props",
    "encode_cursor",
    "loads_props",
    "loads_value",
    "prepare_batch",
]

T = TypeVar("T")


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    """The offset a cursor names; ``InvalidCursor`` for anything a store did not hand out."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith("o:"):
            raise ValueError
        offset = int(text[2:])
        if not 0 <= offset < 2**63:  # SQLite and Neo4j integers are 64-bit
            raise ValueError
        return offset
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor(f"invalid cursor {cursor!r}") from None


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def dedupe_edges(edges: Iterable[Edge]) -> dict[tuple[str, str, str], Edge]:
    """One edge per (src, kind, dst) of a batch, properties merged with the store's rule. The caller's
    edges are never changed: a repeat makes a new merged edge."""
    merged: dict[tuple[str, str, str], Edge] = {}
    for e in edges:
        key = (e.src, e.kind.value, e.dst)
        cur = merged.get(key)
        merged[key] = e if cur is None else Edge(e.src, e.kind, e.dst, merge_props(cur.props, e.props))
    return merged


def prepare_batch(batch: GraphBatch) -> tuple[list[Node], dict[tuple[str, str, str], Edge]]:
    """What a store writes for a batch: each node and edge once (merged with the store's rule) and a
    placeholder for every edge end the batch does not describe. Nodes come in id order, so concurrent
    writers lock them in one global order. The batch's own nodes and edges are never changed."""
    if batch.folded:
        nodes = {n.id: n for n in batch.nodes}
        edges = {(e.src, e.kind.value, e.dst): e for e in batch.edges}
    else:
        nodes = {n.id: n for n in dedupe_batch(batch.nodes)}
        edges = dedupe_edges(batch.edges)
    for e in edges.values():
        for end in (e.src, e.dst):
            if end not in nodes:
                nodes[end] = Node(end, node_kind_of(end), {}, True)
    return [nodes[i] for i in sorted(nodes)], edges


def dumps_props(props: dict[str, Any]) -> str:
    """Properties as the JSON text every store keeps: sorted keys, compact. ``json`` only for what orjson
    refuses (non-string keys, integers past 64 bits)."""
    try:
        return orjson.dumps(props, option=orjson.OPT_SORT_KEYS, default=str).decode()
    except TypeError:
        return json.dumps(props, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# orjson reads an integer past 64 bits as a float (losing digits) and every other integer exactly, so a
# parse holds no float this large unless its text had such an integer (or a float literal, which ``json``
# reads the same): only then is the text read again by ``json``. Looking at the parsed floats costs less
# than any scan of the text (a digit-run regex took 3x orjson's parse) and has no false alarms on long
# digit runs inside strings (hashes, ids).
_INEXACT = float(2**63)


def _maybe_lossy(value: Any) -> bool:
    """Whether orjson's parse ``value`` holds a float of 2**63 or more in size, at any depth (a loop, not
    recursion: orjson reads 1024 levels)."""
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            items = v.values()
        elif t is list:
            items = v
        else:
            return t is float and not -_INEXACT < v < _INEXACT  # only ever the whole value
        for x in items:
            tx = type(x)
            if tx is float:
                if not -_INEXACT < x < _INEXACT:
                    return True
            elif tx is dict or tx is list:
                stack.append(x)
    return False


def loads_value(text: str) -> Any:
    """One JSON value back exactly: integers past 64 bits stay integers."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # e.g. an integer too large even for a double
    return json.loads(text) if _maybe_lossy(value) else value


def loads_props(text: str | None) -> dict[str, Any]:
    """Properties back from their JSON text (``{}`` for none)."""
    if not text:
        return {}
    value = loads_value(text)
    return value if isinstance(value, dict) else {}
