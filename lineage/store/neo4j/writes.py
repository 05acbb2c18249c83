"""Writes of the Neo4j store: each batch is one managed transaction of ``UNWIND`` statements; existing
nodes are locked by their lookup so the merge done in Python cannot lose a concurrent update."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import neo4j
from neo4j import ManagedTransaction
from neo4j.exceptions import (
    ConstraintError,
    DriverError,
    Neo4jError,
)

from liubai.lineage.model import (
    Edge,
    EdgeKind,
    GraphBatch,
    Node,
    RejectedRecord,
    merge_props,
)
from liubai.lineage.provenance import Provenance, merge_owned
from liubai.lineage.store.base import (
    ONCE_APPLIED,
    UpsertResult,
)
from liubai.lineage.store.common import (
    dumps_props,
    loads_props,
    prepare_batch,
)
from liubai.lineage.store.neo4j.connection import Neo4jConnections, _unavailable
from liubai.lineage.store.neo4j.props import from_neo4j, time_keys, to_neo4j
from liubai.lineage.store.neo4j.queries import (
    _CHECKPOINT_SET,
    _CLAIMS_DROP,
    _CLAIMS_PUT,
    _COUNTER_BUMP,
    _EDGE_CREATE,
    _EDGE_MERGE,
    _EDGE_UPDATE,
    _NODE_CREATE,
    _NODE_LOOKUP,
    _NODE_UPDATE,
    _ONCE,
    _REJECTED_CREATE,
    _REJECTED_EXISTING,
    _RESTORE,
    ROWS_PER_STATEMENT,
)
from liubai.lineage.store.neo4j.rows import _chunks, _claim_key, _claim_row, _words

__all__ = ["Neo4jWrites"]

_CREATE_ATTEMPTS = 8
_CREATE_ROWS = 2000


class Neo4jWrites(Neo4jConnections):
    """Upserts, rejected records, checkpoints and provenance restores of ``Neo4jStore``."""

    def upsert(self, batch: GraphBatch) -> UpsertResult:
        nodes, keyed = prepare_batch(batch)
        edges = list(keyed.values())
        rejected: dict[str, RejectedRecord] = {}
        for r in batch.rejected:
            rejected.setdefault(json.dumps([r.source, r.location, r.reason], ensure_ascii=False), r)
        checkpoints = [
            {"key": json.dumps([s, k], ensure_ascii=False), "source": s, "name": k, "value": v}
            for (s, k), v in batch.checkpoints.items()
        ]
        if batch.once is not None and batch.once not in batch.checkpoints:
            src, name = batch.once
            checkpoints.append(
                {
                    "key": json.dumps([src, name], ensure_ascii=False),
                    "source": src,
                    "name": name,
                    "value": ONCE_APPLIED,
                }
            )

        once = json.dumps(list(batch.once), ensure_ascii=False) if batch.once is not None else None
        writer = batch.writer

        def work(tx: ManagedTransaction) -> UpsertResult:
            result = UpsertResult()
            if once is not None and not tx.run(_ONCE, key=once).single(strict=True)["created"]:
                result.duplicate = True
                return result
            refs = self._lock_existing(tx, nodes, result, writer)
            created = [n for n in nodes if n.id not in refs]
            creating = self._create_nodes(tx, created, writer)
            result.nodes_created += len(created)
            new_ids = {n.id for n in created}
            fresh: list[Edge] = []  # touching a new node: created outright
            known: list[Edge] = []  # between existing nodes: merged
            for e in edges:
                (fresh if e.src in new_ids or e.dst in new_ids else known).append(e)
            # Built while the server creates the nodes.
            kinds = [e.kind.value for e in fresh]
            props = [to_neo4j(e.props) for e in fresh]
            times = [time_keys(p) for p in props]
            for res, chunk in creating:
                rec = res.single(strict=True)
                for i, ref in zip(rec["at"], rec["refs"], strict=True):
                    refs[chunk[i].id] = ref
            for lo in range(0, len(fresh), ROWS_PER_STATEMENT):
                part = fresh[lo : lo + ROWS_PER_STATEMENT]
                tx.run(
                    _EDGE_CREATE,
                    src=[refs[e.src] for e in part],
                    dst=[refs[e.dst] for e in part],
                    kinds=kinds[lo : lo + ROWS_PER_STATEMENT],
                    props=props[lo : lo + ROWS_PER_STATEMENT],
                    times=times[lo : lo + ROWS_PER_STATEMENT],
                )
            result.edges_created += len(fresh)
            self._merge_edges(tx, known, refs, result)
            self._write_rejected(tx, rejected, result)
            if checkpoints:
                tx.run(_CHECKPOINT_SET, rows=checkpoints).consume()
            return result

        if not (nodes or edges or rejected or checkpoints or once):
            return UpsertResult()
        attempt = 0
        while True:
            try:
                with self._session() as s:
                    result: UpsertResult = s.execute_write(work)
                    return result
            except ConstraintError as exc:
                # A concurrent writer created one of our new ids first; the next attempt finds it.
                attempt += 1
                if attempt >= _CREATE_ATTEMPTS:
                    raise _unavailable(self._target, exc) from None
            except (Neo4jError, DriverError, OSError) as exc:
                raise _unavailable(self._target, exc) from None

    @staticmethod
    def _lock_existing(
        tx: ManagedTransaction, nodes: list[Node], result: UpsertResult, writer: str
    ) -> dict[str, str]:
        """Lock and merge the nodes that exist already (as ``writer``, keeping claims); returns their
        element ids."""
        results = [tx.run(_NODE_LOOKUP, ids=[n.id for n in chunk]) for chunk in _chunks(nodes)]
        by_id = {n.id: n for n in nodes}
        refs: dict[str, str] = {}
        updates: list[dict[str, Any]] = []
        put: list[dict[str, Any]] = []
        drop: list[dict[str, Any]] = []
        for res in results:
            for rec in res:
                new = by_id[rec["id"]]
                refs[new.id] = rec["ref"]
                old_props = from_neo4j(rec["props"])
                old_placeholder = bool(rec["placeholder"])
                old_writer: str | None = rec["writer"]
                old_owners: dict[str, str] = loads_props(rec["owners"])
                placeholder = old_placeholder and new.placeholder
                new_writer, owners = old_writer, old_owners
                if old_writer == writer and not old_owners:  # one writer: the plain merge rule
                    merged = merge_props(old_props, new.props)
                else:
                    m = merge_owned(
                        old_props, old_writer, old_owners, old_placeholder, new.props, writer, new.placeholder
                    )
                    merged, new_writer, owners = m.props, m.writer, m.owners
                    drop.extend({"key": _claim_key(new.id, k, w)} for k, w in m.drop)
                    put.extend(_claim_row(new.id, c) for c in m.put)
                    result.conflicts += m.conflicts
                if (
                    merged != old_props
                    or placeholder != old_placeholder
                    or new_writer != old_writer
                    or owners != old_owners
                ):
                    stored = to_neo4j(merged)
                    stored.update(
                        id=new.id,
                        search=_words(new.id, new.kind, merged),
                        _writer=new_writer,
                        _owners=dumps_props(owners) if owners else None,
                    )
                    updates.append(
                        {
                            "ref": rec["ref"],
                            "props": stored,
                            "times": time_keys(stored),
                            "placeholder": placeholder,
                        }
                    )
        result.nodes_updated += len(updates)
        for rows in _chunks(updates):
            tx.run(_NODE_UPDATE, rows=list(rows)).consume()
        for rows in _chunks(drop):
            tx.run(_CLAIMS_DROP, rows=list(rows)).consume()
        for rows in _chunks(put):
            tx.run(_CLAIMS_PUT, rows=list(rows)).consume()
        return refs

    @staticmethod
    def _create_nodes(
        tx: ManagedTransaction, nodes: list[Node], writer: str
    ) -> list[tuple[neo4j.Result, Sequence[Node]]]:
        """Send the CREATEs and return their pending results, so the caller can work meanwhile. Small
        statements: each one's rows are built while the server runs the one before."""
        pending = []
        for chunk in _chunks(nodes, _CREATE_ROWS):
            props = [to_neo4j(n.props) for n in chunk]
            res = tx.run(
                _NODE_CREATE,
                ids=[n.id for n in chunk],
                labels=[[n.kind.value, "Placeholder"] if n.placeholder else n.kind.value for n in chunk],
                props=props,
                times=[time_keys(p) for p in props],
                search=[_words(n.id, n.kind, n.props) for n in chunk],
                writer=writer,
            )
            pending.append((res, chunk))
        return pending

    @staticmethod
    def _merge_edges(
        tx: ManagedTransaction, edges: list[Edge], refs: dict[str, str], result: UpsertResult
    ) -> None:
        """Edges between two existing nodes: create the missing ones, merge properties into the rest."""
        by_kind: dict[EdgeKind, list[Edge]] = defaultdict(list)
        for e in edges:
            by_kind[e.kind].append(e)
        updates: list[dict[str, Any]] = []
        for kind, group in by_kind.items():
            for chunk in _chunks(group):
                rows = []
                for i, e in enumerate(chunk):
                    stored = to_neo4j(e.props)
                    rows.append(
                        {
                            "at": i,
                            "src": refs[e.src],
                            "dst": refs[e.dst],
                            "props": stored,
                            "times": time_keys(stored),
                        }
                    )
                existing = 0
                for rec in tx.run(_EDGE_MERGE[kind], rows=rows):
                    existing += 1
                    old = from_neo4j(rec["props"])
                    merged = merge_props(old, chunk[rec["at"]].props)
                    if merged != old:
                        stored = to_neo4j(merged)
                        updates.append({"ref": rec["ref"], "props": stored, "times": time_keys(stored)})
                result.edges_created += len(rows) - existing
        result.edges_updated += len(updates)
        for part in _chunks(updates):
            tx.run(_EDGE_UPDATE, rows=list(part)).consume()

    @staticmethod
    def _write_rejected(
        tx: ManagedTransaction, rejected: dict[str, RejectedRecord], result: UpsertResult
    ) -> None:
        if not rejected:
            return
        keys = list(rejected)
        present: set[str] = set()
        for chunk in _chunks(keys):
            present.update(rec["key"] for rec in tx.run(_REJECTED_EXISTING, keys=list(chunk)))
        new = [k for k in keys if k not in present]
        if not new:
            return
        top = tx.run(_COUNTER_BUMP, name="rejected", n=len(new)).single(strict=True)["value"]
        base = int(top) - len(new)
        rows = [
            {
                "key": k,
                "seq": base + i + 1,
                "source": rejected[k].source,
                "location": rejected[k].location,
                "reason": rejected[k].reason,
                "raw": rejected[k].raw,
            }
            for i, k in enumerate(new)
        ]
        for part in _chunks(rows):
            tx.run(_REJECTED_CREATE, rows=list(part)).consume()
        result.rejected_added += len(new)

    def restore_provenance(self, found: dict[str, Provenance]) -> None:
        rows = [
            {
                "id": i,
                "writer": p.writer,
                "owners": dumps_props(p.owners) if p.owners else None,
                "claims": [_claim_row(i, c) for c in p.claims],
            }
            for i, p in found.items()
        ]

        def work(tx: ManagedTransaction) -> None:
            for part in _chunks(rows):
                tx.run(_RESTORE, rows=list(part)).consume()

        try:
            with self._session() as s:
                s.execute_write(work)
        except (Neo4jError, DriverError, OSError) as exc:
            raise _unavailable(self._target, exc) from None
