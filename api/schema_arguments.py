"""Checks of GraphQL arguments a resolver makes before any store call: ranges and kind lists.

Each failure is an ``ApiError`` with code ``BAD_INPUT`` naming the argument, so a client can point at it.
Kind names themselves need no check here: the arguments are the ``NodeKind`` / ``EdgeKind`` enums, which
GraphQL validation enforces (a wrong name fails with the valid ones listed, see ``liubai.api.errors``).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from liubai.api.errors import ApiError, ErrorCode
from liubai.lineage.model import EdgeKind, NodeKind

__all__ = ["bounded", "to_edge_kinds", "to_node_kinds"]


def bounded(name: str, value: int, low: int, high: int) -> int:
    """``value`` if ``low <= value <= high``; else a ``BAD_INPUT`` error naming ``name`` and the range."""
    if not low <= value <= high:
        raise ApiError(
            ErrorCode.BAD_INPUT, f"{name} must be between {low} and {high}, got {value}", argument=name
        )
    return value


def to_edge_kinds(kinds: Sequence[Enum] | None) -> list[EdgeKind] | None:
    """The model's edge kinds for an ``edgeKinds`` argument; absent follows every kind, empty is a mistake."""
    if kinds is None:
        return None
    if not kinds:
        raise ApiError(
            ErrorCode.BAD_INPUT, "edgeKinds is empty; leave it out to follow every kind", argument="edgeKinds"
        )
    return [EdgeKind(k.value) for k in kinds]


def to_node_kinds(kinds: Sequence[Enum] | None) -> list[NodeKind] | None:
    """The model's node kinds for a ``kinds`` argument; absent or empty means every kind."""
    return [NodeKind(k.value) for k in kinds] if kinds else None
