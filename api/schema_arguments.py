"""Checks of GraphQL arguments a resolver makes before any store call: ranges and kind names.

Each failure is an ``ApiError`` with code ``BAD_INPUT`` naming the argument, so a client can point at it.
"""

from __future__ import annotations

from collections.abc import Sequence

from liubai.api.errors import ApiError, ErrorCode
from liubai.lineage.model import EdgeKind, NodeKind
from liubai.lineage.text import clip

__all__ = ["bounded", "to_edge_kinds", "to_node_kinds"]


def bounded(name: str, value: int, low: int, high: int) -> int:
    """``value`` if ``low <= value <= high``; else a ``BAD_INPUT`` error naming ``name`` and the range."""
    if not low <= value <= high:
        raise ApiError(
            ErrorCode.BAD_INPUT, f"{name} must be between {low} and {high}, got {value}", argument=name
        )
    return value


def to_edge_kinds(names: Sequence[str] | None) -> list[EdgeKind] | None:
    if names is None:
        return None
    kinds: list[EdgeKind] = []
    for name in names:
        try:
            kinds.append(EdgeKind(name.strip().upper()))
        except ValueError:
            raise ApiError(
                ErrorCode.BAD_INPUT,
                f"unknown edge kind {clip(name)!r}; known: {', '.join(k.value for k in EdgeKind)}",
                argument="edgeKinds",
            ) from None
    if not kinds:
        raise ApiError(ErrorCode.BAD_INPUT, "edgeKinds is empty; leave it out to follow every kind")
    return kinds


_NODE_KINDS = {k.value.lower(): k for k in NodeKind} | {k.prefix: k for k in NodeKind}


def to_node_kinds(names: Sequence[str] | None) -> list[NodeKind] | None:
    if not names:
        return None
    out: list[NodeKind] = []
    for name in names:
        kind = _NODE_KINDS.get(name.strip().lower())
        if kind is None:
            raise ApiError(
                ErrorCode.BAD_INPUT,
                f"unknown node kind {clip(name)!r}; known: {', '.join(k.value for k in NodeKind)}",
                argument="kinds",
            )
        out.append(kind)
    return out
