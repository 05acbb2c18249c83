"""Reads of the Neo4j store: point reads, rejected records, provenance, checkpoints, counts and
whole-store iteration (``liubai migrate``)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from neo4j import ManagedTransaction

from liubai.lineage.model import (
    Edge,
    EdgeKind,
    Node,
    NodeKind,
    RejectedRecord,
)
from liubai.lineage.provenance import Claim, Provenance
from liubai.lineage.store.base import (
    RejectedPage,
)
from liubai.lineage.store.common import (
    decode_cursor,
    encode_cursor,
    loads_props,
)
from liubai.lineage.store.neo4j.connection import Neo4jConnections
from liubai.lineage.store.neo4j.props import from_neo4j
from liubai.lineage.store.neo4j.queries import (
    _CHECKPOINT_GET,
    _CHECKPOINTS,
    _COUNT_EDGES,
    _COUNT_LABEL,
    _FIND_BY_PREFIX,
    _GET,
    _GET_MANY,
    _ITER_EDGES,
    _ITER_NODES,
    _PROVENANCE,
    _REJECTED_PAGE,
    _REJECTED_TOTAL,
)
from liubai.lineage.store.neo4j.rows import _chunks, _claim_order, _node

__all__ = ["Neo4jReads"]


class Neo4jReads(Neo4jConnections):
    """Point reads and bookkeeping of ``Neo4jStore``."""

    def get(self, node_id: str) -> Node | None:
        recs = self._read(_GET, id=node_id)
        return _node(recs[0]) if recs else None

    def get_many(self, node_ids: Sequence[str]) -> list[Node]:
        wanted = list(dict.fromkeys(node_ids))
        found: dict[str, Node] = {}
        for chunk in _chunks(wanted):
            for rec in self._read(_GET_MANY, ids=list(chunk)):
                found[rec["id"]] = _node(rec)
        return [found[i] for i in wanted if i in found]

    def find_by_prefix(self, kind: NodeKind, key_prefix: str, limit: int = 10) -> list[Node]:
        recs = self._read(
            _FIND_BY_PREFIX, prefix=f"{kind.prefix}:{key_prefix}", label=kind.value, limit=limit
        )
        return [_node(r) for r in recs]

    def rejected(self, source: str | None = None, first: int = 100, after: str | None = None) -> RejectedPage:
        offset = decode_cursor(after)

        def work(tx: ManagedTransaction) -> tuple[int, list[Any]]:
            total = tx.run(_REJECTED_TOTAL, source=source).single(strict=True)["total"]
            rows = list(tx.run(_REJECTED_PAGE, source=source, skip=offset, limit=first + 1))
            return int(total), rows

        total, rows = self._run_read(work)
        more = len(rows) > first
        records = [RejectedRecord(r["source"], r["location"], r["reason"], r["raw"]) for r in rows[:first]]
        return RejectedPage(records, encode_cursor(offset + first) if more else None, total)

    def provenance(self, node_ids: Sequence[str]) -> dict[str, Provenance]:
        found: dict[str, Provenance] = {}
        for chunk in _chunks(list(dict.fromkeys(node_ids))):
            for rec in self._read(_PROVENANCE, ids=list(chunk)):
                claims = sorted(
                    (Claim(k, w, loads_props(v).get("v")) for k, w, v in rec["claims"]), key=_claim_order
                )
                found[rec["id"]] = Provenance(rec["writer"], loads_props(rec["owners"]), claims)
        return found

    def get_checkpoint(self, source: str, key: str) -> str | None:
        recs = self._read(_CHECKPOINT_GET, key=json.dumps([source, key], ensure_ascii=False))
        return str(recs[0]["value"]) if recs else None

    def checkpoints(self, source: str | None = None) -> dict[tuple[str, str], str]:
        return {(r["source"], r["name"]): r["value"] for r in self._read(_CHECKPOINTS, source=source)}

    def counts(self) -> dict[str, int]:
        def work(tx: ManagedTransaction) -> dict[str, int]:
            found = {label: int(tx.run(q).single(strict=True)["c"]) for label, q in _COUNT_LABEL.items()}
            found["edges"] = int(tx.run(_COUNT_EDGES).single(strict=True)["c"])
            return found

        found: dict[str, int] = self._run_read(work)
        out = {kind.value: found[kind.value] for kind in NodeKind}
        out["placeholders"] = found["Placeholder"]
        out["edges"] = found["edges"]
        out["rejected"] = found["Rejected"]
        return out

    def iter_nodes(self, batch_size: int = 5000) -> Iterator[list[Node]]:
        last = ""
        while True:
            recs = self._read(_ITER_NODES, after=last, limit=batch_size)
            if not recs:
                return
            yield [_node(r) for r in recs]
            last = recs[-1]["id"]

    def iter_edges(self, batch_size: int = 5000) -> Iterator[list[Edge]]:
        last = ""
        pending: list[Edge] = []
        while True:
            recs = self._read(_ITER_EDGES, after=last, limit=batch_size)
            if not recs:
                break
            for r in recs:
                out = sorted(r["out"], key=lambda t: (t[0], t[1]))
                pending.extend(Edge(r["src"], EdgeKind(k), d, from_neo4j(p)) for k, d, p in out)
            last = recs[-1]["src"]
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
        if pending:
            yield pending
