"""What every export writer shares: the facts a selection yields, and how one fact is written out."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.model import Edge, Node
from liubai.lineage.provenance import Provenance

__all__ = ["ExportError", "FactSource", "Progress", "edge_dict", "node_dict", "node_dicts", "tick"]

Progress = Callable[[int], None]


class ExportError(LiubaiError, ValueError):
    """A selection or bundle a user asked for cannot be produced; the message says why and what to change.
    ``code`` is NOT_FOUND when the selection names nothing in the store."""

    code = ErrorCode.BAD_INPUT


class FactSource(Protocol):
    """Facts to write, pulled in batches; may be iterated more than once (GraphML needs a pre-pass)."""

    start: str | None
    truncated: bool

    def total(self) -> int | None:
        """An upper bound of the facts to come, for progress display."""
        ...

    def node_batches(self) -> Iterator[list[Node]]: ...

    def edge_batches(self) -> Iterator[list[Edge]]: ...

    def provenance(self, nodes: Sequence[Node]) -> dict[str, Provenance]:
        """Who wrote each of ``nodes`` (from the store the facts come from)."""
        ...


def node_dict(n: Node, prov: Provenance | None = None) -> dict[str, Any]:
    """A node as exports write it; with ``prov``, its writer and, where there are any, the keys other
    writers added and the claims kept beside its facts."""
    out: dict[str, Any] = {"id": n.id, "kind": n.kind.value, "placeholder": n.placeholder, "props": n.props}
    if prov is not None:
        out["writer"] = prov.writer
        if prov.owners:
            out["owners"] = prov.owners
        if prov.claims:
            out["claims"] = [{"key": c.key, "writer": c.writer, "value": c.value} for c in prov.claims]
    return out


def node_dicts(source: FactSource, nodes: Sequence[Node]) -> list[dict[str, Any]]:
    found = source.provenance(nodes)
    return [node_dict(n, found.get(n.id)) for n in nodes]


def edge_dict(e: Edge) -> dict[str, Any]:
    return {"src": e.src, "kind": e.kind.value, "dst": e.dst, "props": e.props}


def tick(progress: Progress | None, n: int) -> None:
    if progress is not None and n:
        progress(n)
