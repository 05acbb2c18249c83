"""Helpers every store implementation shares: opaque page cursors, chunking, merging repeated edges."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from lineage.model import Edge, merge_props
from lineage.store.base import StoreError

__all__ = ["chunks", "decode_cursor", "dedupe_edges", "encode_cursor"]

T = TypeVar("T")


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    """The offset a cursor names; StoreError for anything a store did not hand out."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith("o:"):
            raise ValueError
        offset = int(text[2:])
        if offset < 0:
            raise ValueError
        return offset
    except (ValueError, UnicodeDecodeError):
        raise StoreError(f"invalid cursor {cursor!r}") from None


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
