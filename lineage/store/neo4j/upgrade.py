"""In-place upgrade of a Neo4j database from the old layouts to typed properties with ``DATETIME`` times
(``liubai.lineage.store.neo4j.props``): every node's and edge's properties as one JSON text in ``props``,
or typed properties with times as text.

Nodes go in id order, a batch of nodes and their out-edges per transaction, so an upgrade stopped
midway leaves whole batches done and running it again finishes it; a node or edge without ``props``
is already upgraded and left alone, as is a time that is already a ``DATETIME``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from neo4j import ManagedTransaction
from neo4j.exceptions import DriverError, Neo4jError

from liubai.lineage.store.common import loads_props
from liubai.lineage.store.neo4j import Neo4jStore
from liubai.lineage.store.neo4j.connection import _unavailable
from liubai.lineage.store.neo4j.props import TIME_KEYS, is_iso_utc, time_keys, to_neo4j
from liubai.lineage.store.neo4j.queries import _UPGRADE_EDGES, _UPGRADE_NODES, _UPGRADE_READ

__all__ = ["LayoutUpgrade", "upgrade_layout"]


@dataclass(slots=True)
class LayoutUpgrade:
    """What an upgrade did: nodes looked at, nodes and edges rewritten (whole maps or only their times)."""

    nodes_seen: int = 0
    nodes_upgraded: int = 0
    edges_upgraded: int = 0


def _row(ref: str, props: dict[str, Any]) -> dict[str, Any]:
    return {"ref": ref, "props": props, "times": time_keys(props)}


def _times_row(ref: str, texts: list[list[str]]) -> dict[str, Any] | None:
    """A typed node's or edge's time texts to make ``DATETIME``s; None when none is a real time."""
    props = {k: v for k, v in texts if is_iso_utc(v)}
    return _row(ref, props) if props else None


def upgrade_layout(
    url: str, batch_size: int = 5000, tick: Callable[[int], None] | None = None
) -> LayoutUpgrade:
    """Upgrade the database at ``url`` in place; ``tick`` hears how many nodes each batch looked at."""
    store = Neo4jStore.for_upgrade(url)
    report = LayoutUpgrade()
    after = ""

    def batch(tx: ManagedTransaction) -> tuple[int, str, int, int]:
        recs = list(tx.run(_UPGRADE_READ, after=after, limit=batch_size, keys=list(TIME_KEYS)))
        found = [
            _row(r["ref"], to_neo4j(loads_props(r["props"])))
            if r["props"]
            else _times_row(r["ref"], r["texts"])
            for r in recs
        ]
        found_edges: list[dict[str, Any] | None] = [
            _row(ref, to_neo4j(loads_props(text))) for r in recs for ref, text in r["rels"]
        ]
        found_edges += [_times_row(ref, texts) for r in recs for ref, texts in r["rel_texts"]]
        nodes = [n for n in found if n is not None]
        edges = [e for e in found_edges if e is not None]
        if nodes:
            tx.run(_UPGRADE_NODES, rows=nodes).consume()
        if edges:
            tx.run(_UPGRADE_EDGES, rows=edges).consume()
        return len(recs), (recs[-1]["id"] if recs else after), len(nodes), len(edges)

    try:
        while True:
            with store._session() as s:
                seen, after, nodes, edges = s.execute_write(batch)
            if not seen:
                break
            report.nodes_seen += seen
            report.nodes_upgraded += nodes
            report.edges_upgraded += edges
            if tick:
                tick(seen)
    except (Neo4jError, DriverError, OSError) as exc:
        raise _unavailable(store._target, exc) from None
    finally:
        store.close()
    return report
