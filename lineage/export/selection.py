"""What to export: a selector names a start node, a walk and a time window bound the slice."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.export.facts import ExportError, FactSource
from liubai.lineage.model import (
    Direction,
    Edge,
    Node,
    NodeKind,
    node_kind_of,
)
from liubai.lineage.provenance import Provenance
from liubai.lineage.records import iso_utc
from liubai.lineage.resolve import reference_id
from liubai.lineage.store.base import LineageStore, StoreError, Subgraph
from liubai.lineage.text import clip

__all__ = [
    "BATCH",
    "MAX_DEPTH",
    "MAX_LIMIT",
    "Selection",
    "Selector",
    "StoreSource",
    "SubgraphSource",
    "parse_time_bound",
    "resolve_start",
    "select",
]

BATCH = 5000
# A walk's bounds, as the HTTP export has them: a store cannot take an unbounded number, a user cannot
# read an unbounded walk; --all exports everything without a walk.
MAX_DEPTH = 50
MAX_LIMIT = 1_000_000


class Selector(StrEnum):
    NODE = "node"
    AUDIT_ID = "audit_id"
    COMMIT = "commit"
    TRACE = "trace"
    RUN = "run"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Selection:
    """What to export: a start node named by one selector, how far to walk, and a time window."""

    selector: Selector
    value: str | None = None
    depth: int = 3
    direction: Direction = Direction.BOTH
    since: str | None = None
    until: str | None = None
    limit: int = 100_000

    def to_dict(self, start: str | None) -> dict[str, Any]:
        """The query as recorded in a bundle, so a reader knows what the slice is a slice of."""
        out: dict[str, Any] = {"selector": self.selector.value, "value": self.value, "start": start}
        if self.selector is not Selector.ALL:
            out.update(depth=self.depth, direction=self.direction.value, limit=self.limit)
        out.update(since=self.since, until=self.until)
        return out


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_COMMIT = re.compile(r"[0-9a-f]{4,64}")


def parse_time_bound(text: str, what: str = "time") -> str:
    """An ISO 8601 date or date-time (no zone = UTC) as the stored time form, which compares as text."""
    raw = text.strip()
    try:
        if _DATE_ONLY.fullmatch(raw):
            dt = datetime.fromisoformat(raw).replace(tzinfo=UTC)
        else:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith(("Z", "z")) else raw)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
    except ValueError:
        raise ExportError(
            f"{what}: {clip(text)!r} is not an ISO 8601 date or time (e.g. 2026-01-31T12:00:00Z)"
        ) from None
    return iso_utc(dt)


def resolve_start(store: LineageStore, selection: Selection) -> str | None:
    """The node id a selector names, read by ``liubai.lineage.resolve`` as the selector's kind of node;
    ExportError (code NOT_FOUND) if it names nothing in the store (None for ``all``)."""
    sel, value = selection.selector, (selection.value or "").strip()
    if sel is Selector.ALL:
        return None
    if not value:
        raise ExportError(f"--{sel.value.replace('_', '-')} needs a value")
    if sel is Selector.NODE:
        try:
            node_kind_of(value)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
        ref = value
    elif sel is Selector.COMMIT:
        if not _COMMIT.fullmatch(value.lower().removeprefix("commit:")):
            raise ExportError(f"commit {clip(value)!r} is not a hex commit id (4 to 64 hex characters)")
        ref = value if value.lower().startswith("commit:") else f"commit:{value}"
    else:
        prefix = {Selector.AUDIT_ID: "audit:", Selector.TRACE: "trace:", Selector.RUN: "run:"}[sel]
        ref = value if value.startswith(prefix) else prefix + value  # run: as lineage.slsa.run_id_of
    try:
        node_id = reference_id(store, ref)
    except StoreError:
        raise
    except LiubaiError as exc:
        raise ExportError(exc.message, code=exc.code, **exc.detail) from None
    if store.get(node_id) is None:
        raise ExportError(
            f"no {sel.value.replace('_', ' ')} {clip(value)!r} in the store (looked for node {clip(node_id)!r})",
            code=ErrorCode.NOT_FOUND,
        )
    return node_id


@dataclass(slots=True)
class _Window:
    since: str | None
    until: str | None

    @property
    def active(self) -> bool:
        return self.since is not None or self.until is not None

    def admits(self, node: Node) -> bool:
        """A node is in the window if its seen span overlaps it; nodes with no time (files, repos) always are."""
        p = node.props
        first = p.get("first_seen") or p.get("time") or p.get("started_at") or p.get("committed_at")
        last = p.get("last_seen") or p.get("ended_at") or first
        if not isinstance(first, str):
            return True
        last = last if isinstance(last, str) else first
        return (self.until is None or first <= self.until) and (self.since is None or last >= self.since)


@dataclass(slots=True)
class SubgraphSource:
    """A traversal answer (already bounded by the selection's limit), in id order."""

    nodes: list[Node]
    edges: list[Edge]
    start: str | None
    truncated: bool = False
    store: LineageStore | None = None

    def provenance(self, nodes: Sequence[Node]) -> dict[str, Provenance]:
        return self.store.provenance([n.id for n in nodes]) if self.store is not None and nodes else {}

    def total(self) -> int | None:
        return len(self.nodes) + len(self.edges)

    def node_batches(self) -> Iterator[list[Node]]:
        for i in range(0, len(self.nodes), BATCH):
            yield self.nodes[i : i + BATCH]

    def edge_batches(self) -> Iterator[list[Edge]]:
        for i in range(0, len(self.edges), BATCH):
            yield self.edges[i : i + BATCH]


@dataclass(slots=True)
class StoreSource:
    """The whole store, streamed batch by batch so memory does not grow with the store.

    There is no snapshot across batches: facts ingested during the export may or may not appear.
    """

    store: LineageStore
    window: _Window
    start: str | None = None
    truncated: bool = False

    def provenance(self, nodes: Sequence[Node]) -> dict[str, Provenance]:
        return self.store.provenance([n.id for n in nodes]) if nodes else {}

    def total(self) -> int | None:
        counts = self.store.counts()
        return sum(counts.get(k.value, 0) for k in NodeKind) + counts.get("edges", 0)

    def node_batches(self) -> Iterator[list[Node]]:
        for batch in self.store.iter_nodes(BATCH):
            yield [n for n in batch if self.window.admits(n)] if self.window.active else batch

    def edge_batches(self) -> Iterator[list[Edge]]:
        for batch in self.store.iter_edges(BATCH):
            if not self.window.active:
                yield batch
                continue
            ends = self.store.get_many(list({e.src for e in batch} | {e.dst for e in batch}))
            kept = {n.id for n in ends if self.window.admits(n)}
            yield [e for e in batch if e.src in kept and e.dst in kept]


def select(store: LineageStore, selection: Selection) -> FactSource:
    """The facts a selection names: a lineage walk from its start node, or the whole store for ``all``."""
    window = _Window(selection.since, selection.until)
    if selection.since and selection.until and selection.since > selection.until:
        raise ExportError(f"--since {selection.since} is after --until {selection.until}")
    if not 0 <= selection.depth <= MAX_DEPTH:
        raise ExportError(f"--depth must be 0 to {MAX_DEPTH}, got {selection.depth}")
    if not 1 <= selection.limit <= MAX_LIMIT:
        raise ExportError(f"--limit must be 1 to {MAX_LIMIT}, got {selection.limit}")
    start = resolve_start(store, selection)
    if start is None:
        return StoreSource(store, window)
    sub: Subgraph = store.lineage(start, selection.direction, selection.depth, limit=selection.limit)
    nodes = sorted((n for n in sub.nodes if not window.active or window.admits(n)), key=lambda n: n.id)
    kept = {n.id for n in nodes}
    edges = sorted((e for e in sub.edges if e.src in kept and e.dst in kept), key=lambda e: e.key)
    return SubgraphSource(nodes, edges, start, sub.truncated, store)


# --------------------------------------------------------------------------- writers
