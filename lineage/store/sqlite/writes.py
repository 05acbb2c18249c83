"""Writes of the SQLite store: upserts (nodes, edges, claims where writers meet), rejected records,
checkpoints and provenance restores, each batch in one transaction.

Rows are applied in one statement from a JSON array on worker threads (see ``_apply``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import not_
from typing import Any, TypeVar

import orjson

from liubai.lineage.model import (
    EdgeKind,
    GraphBatch,
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
)
from liubai.lineage.store.searchtext import search_text
from liubai.lineage.store.sqlite.connection import SqliteConnections
from liubai.lineage.store.sqlite.rows import (
    _LINKS,
    _NODE_KINDS,
    _SLOT,
    SqliteRows,
    _bulk,
    _col,
    _Existing,
    _qmarks,
    prepare_rows,
)

__all__ = ["SqliteWrites"]

_T = TypeVar("_T")

_BULK_MIN_ROWS = 64  # below this, per-row statements hand the GIL over too rarely to matter

# table -> (key columns, columns read back) for ``SqliteStore._fetch``
_FETCHED = {
    "nodes": (("id",), ("id", "rid", "props", "placeholder", "trace", "audit", "kind", "writer", "owners")),
    "edges": (("src", "kind", "dst"), ("src", "kind", "dst", "props")),
}
_INSERT_NODES = _bulk("INSERT INTO nodes(rid, id, kind, props, placeholder, trace, audit, writer)", 8)
_CLEAR_LINKS = {
    column: (
        f"UPDATE nodes SET {column} = NULL FROM json_each(?) j WHERE nodes.rid = {_col(0)}",
        f"UPDATE nodes SET {column} = NULL WHERE rid = ?",
    )
    for column in _LINKS.values()
}
_UPDATE_NODES = (
    f"UPDATE nodes SET props = {_col(0)}, placeholder = {_col(1)}, writer = {_col(2)}, owners = {_col(3)} "
    f"FROM json_each(?) j WHERE nodes.rid = {_col(4)}",
    "UPDATE nodes SET props = ?, placeholder = ?, writer = ?, owners = ? WHERE rid = ?",
)
_PUT_CLAIMS = "INSERT OR REPLACE INTO claims(node, key, writer, value) VALUES (?, ?, ?, ?)"
_DROP_CLAIMS = "DELETE FROM claims WHERE node = ? AND key = ? AND writer = ?"
_INSERT_SEARCH = _bulk("INSERT INTO node_search(rowid, text)", 2)
# The index holds no texts, so a row leaves it by naming the very text it was indexed with.
_UNINDEX_SEARCH = _bulk("INSERT INTO node_search(rowid, text, node_search)", 2, "'delete'")
_INSERT_BARE_EDGES = _bulk("INSERT OR IGNORE INTO edges(src, kind, dst, props)", 3, "'{}'")
_INSERT_EDGES = _bulk("INSERT INTO edges(src, kind, dst, props)", 4)
_UPDATE_EDGES = (
    f"UPDATE edges SET props = {_col(0)} FROM json_each(?) j "
    f"WHERE edges.src = {_col(1)} AND edges.kind = {_col(2)} AND edges.dst = {_col(3)}",
    "UPDATE edges SET props = ? WHERE src = ? AND kind = ? AND dst = ?",
)
_INSERT_REJECTED = _bulk("INSERT OR IGNORE INTO rejected(source, location, reason, raw)", 4)
_PUT_CHECKPOINTS = _bulk("INSERT OR REPLACE INTO checkpoints(source, key, value)", 3)


@dataclass(slots=True)
class _Claims:
    """Claims a write keeps beside the facts and those that became facts, written with the batch."""

    put: list[tuple[str, str, str, str]]
    drop: list[tuple[str, str, str]]
    conflicts: int = 0


def _json_array(rows: Sequence[Any]) -> bytes | None:
    """``rows`` as one JSON array, or None when SQLite's JSON functions cannot carry them exactly: lone
    surrogates (file names that are not UTF-8) and NUL characters (SQLite's JSON text ends at one)."""
    try:
        payload = orjson.dumps(rows)
    except orjson.JSONEncodeError:
        return None
    return None if b"\\u0000" in payload else payload


def _beside_busy_threads() -> bool:
    """Whether a write here competes for the GIL with busy Python: the case on a worker thread (a
    background ingest writer beside its parser, an API worker beside other requests). The main thread's
    other threads, if any, are helpers such as a progress bar's refresher, which per-row statements bear."""
    return threading.current_thread() is not threading.main_thread()


def _apply(conn: sqlite3.Connection, statements: tuple[str, str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Apply a statement to every row; on a worker thread, with ONE ``sqlite3_step``.

    Each step releases and re-takes the GIL, so ``executemany`` (a step per row) makes a store write queue
    behind any busy Python thread, row after row, and beside a busy thread a write takes many times as long
    as alone. Unpacking the rows from one JSON array inside SQLite costs a little more per row (JSON
    parsing) but hands the GIL over once, so it is used on worker threads (the ingest writer thread, the
    API's workers). The main thread keeps ``executemany``: ``liubai ingest logs`` with its progress bar
    stores faster that way. Figures: docs/performance.md.
    """
    if not rows:
        return
    payload = _json_array(rows) if len(rows) >= _BULK_MIN_ROWS and _beside_busy_threads() else None
    if payload is None:
        conn.executemany(statements[1], rows)
    else:
        conn.execute(statements[0], (payload,))


class SqliteWrites(SqliteConnections):
    """Upserts and the other writes of ``SqliteStore``."""

    prepare_rows = staticmethod(prepare_rows)

    def upsert(self, batch: GraphBatch) -> UpsertResult:
        return self.upsert_rows(self.prepare_rows(batch), batch)

    def upsert_rows(self, rows: SqliteRows, batch: GraphBatch) -> UpsertResult:
        """Write ``rows`` (from ``prepare_rows``) with ``batch``'s rejected records and checkpoints; the
        batch's own nodes and edges are not looked at. What ``upsert`` does, in two halves."""
        result = UpsertResult()
        with self._write() as conn:
            if (
                batch.once is not None
                and conn.execute(
                    "SELECT 1 FROM checkpoints WHERE source = ? AND key = ?", batch.once
                ).fetchone()
            ):
                result.duplicate = True  # decided under the write lock: another process applied it
                return result
            existing = self._fetch_nodes(conn, rows.ids)
            claims = _Claims([], [])
            bare = self._write_nodes(conn, rows, existing, result, batch.writer, claims)
            if claims.put or claims.drop:
                conn.executemany(_DROP_CLAIMS, claims.drop)
                conn.executemany(_PUT_CLAIMS, claims.put)
            result.conflicts = claims.conflicts
            # An edge without properties has nothing to merge: insert-or-ignore, no read-back needed.
            before = conn.total_changes
            _apply(conn, _INSERT_BARE_EDGES, bare)
            result.edges_created += conn.total_changes - before
            self._write_edges_with_props(conn, rows.with_props, existing, result)
            before = conn.total_changes
            _apply(conn, _INSERT_REJECTED, [(r.source, r.location, r.reason, r.raw) for r in batch.rejected])
            result.rejected_added = conn.total_changes - before
            checkpoints = dict(batch.checkpoints)
            if batch.once is not None:
                checkpoints.setdefault(batch.once, ONCE_APPLIED)
            _apply(conn, _PUT_CHECKPOINTS, [(s, k, v) for (s, k), v in checkpoints.items()])
        return result

    @staticmethod
    def _write_nodes(
        conn: sqlite3.Connection,
        rows: SqliteRows,
        existing: dict[str, _Existing],
        result: UpsertResult,
        writer: str,
        claims: _Claims,
    ) -> list[tuple[str, str, str]]:
        """Insert the new nodes (with their links, owned by ``writer``) and merge into the existing ones;
        returns the bare edges to write: ``rows.bare`` plus the links an existing node's row does not
        already hold. Claims the merges keep or settle go to ``claims``."""
        next_rid = conn.execute("SELECT coalesce(max(rid), 0) + 1 FROM nodes").fetchone()[0]
        # The new nodes' rows are picked column by column (in C), not built node by node; most log lines
        # make only new nodes, and then the columns are taken whole.
        is_new = [node_id not in existing for node_id in rows.ids] if existing else None

        def new_only(column: list[_T]) -> list[_T]:
            return column if is_new is None else list(compress(column, is_new))

        ids, traces, audits = new_only(rows.ids), new_only(rows.traces), new_only(rows.audits)
        rids = range(next_rid, next_rid + len(ids))
        inserts = list(
            zip(
                rids,
                ids,
                new_only(rows.kinds),
                new_only(rows.props),
                new_only(rows.placeholders),
                traces,
                audits,
                repeat(writer, len(ids)),
                strict=True,
            )
        )
        search_new: list[tuple[int, str]] = list(zip(rids, new_only(rows.texts), strict=True))
        result.edges_created += 2 * len(ids) - traces.count(None) - audits.count(None)  # links on the rows
        bare = rows.bare
        updates: list[tuple[str, int, str | None, str | None, int]] = []
        search_gone: list[tuple[int, str]] = []
        if is_new is not None:
            bare = list(bare)
            for i in compress(range(len(rows.ids)), map(not_, is_new)):
                node_id, trace, audit = rows.ids[i], rows.traces[i], rows.audits[i]
                old = existing[node_id]
                rid, old_props, old_placeholder, old_trace, old_audit, kind, old_writer, old_owners = old
                if trace is not None and trace != old_trace:
                    bare.append((node_id, EdgeKind.IN_TRACE.value, trace))
                if audit is not None and audit != old_audit:
                    bare.append((node_id, EdgeKind.CARRIES.value, audit))
                placeholder = old_placeholder and rows.placeholders[i]
                new_writer, owners = old_writer, old_owners
                if old_writer == writer and not old_owners:  # one writer: the plain merge rule
                    merged = merge_props(old_props, loads_props(rows.props[i]))
                else:
                    m = merge_owned(
                        old_props,
                        old_writer,
                        old_owners,
                        old_placeholder,
                        loads_props(rows.props[i]),
                        writer,
                        rows.placeholders[i],
                    )
                    merged, new_writer, owners = m.props, m.writer, m.owners
                    claims.put.extend((node_id, c.key, c.writer, dumps_props({"v": c.value})) for c in m.put)
                    claims.drop.extend((node_id, key, w) for key, w in m.drop)
                    claims.conflicts += m.conflicts
                if (
                    merged != old_props
                    or placeholder != old_placeholder
                    or new_writer != old_writer
                    or owners != old_owners
                ):
                    updates.append(
                        (
                            dumps_props(merged),
                            int(placeholder),
                            new_writer,
                            dumps_props(owners) if owners else None,
                            rid,
                        )
                    )
                    text, old_text = search_text(node_id, kind, merged), search_text(node_id, kind, old_props)
                    if text != old_text:  # re-indexing costs a delete + insert
                        search_gone.append((rid, old_text))
                        search_new.append((rid, text))
        result.nodes_created, result.nodes_updated = len(inserts), len(updates)
        _apply(conn, _INSERT_NODES, inserts)
        _apply(conn, _UPDATE_NODES, updates)
        _apply(conn, _UNINDEX_SEARCH, search_gone)
        _apply(conn, _INSERT_SEARCH, search_new)
        return bare

    def _write_edges_with_props(
        self,
        conn: sqlite3.Connection,
        with_props: list[tuple[str, str, str, str]],
        existing: dict[str, _Existing],
        result: UpsertResult,
    ) -> None:
        if not with_props:
            return
        old_edges = self._fetch_edges(conn, [(src, kind, dst) for src, kind, dst, _ in with_props])
        inserts: list[tuple[str, str, str, str]] = []
        updates: list[tuple[str, str, str, str]] = []
        unlink: dict[str, list[tuple[int]]] = {}
        for src, kind, dst, props in with_props:
            prev = old_edges.get((src, kind, dst))
            if prev is not None:
                merged = merge_props(prev, loads_props(props))
                if merged != prev:
                    updates.append((dumps_props(merged), src, kind, dst))
                continue
            inserts.append((src, kind, dst, props))
            column = _LINKS.get(kind)
            old = existing.get(src) if column is not None else None
            if column is not None and old is not None and old[_SLOT[column]] == dst:
                unlink.setdefault(column, []).append((old[0],))  # the bare link on the row gains properties
                result.edges_updated += 1
            else:
                result.edges_created += 1
        result.edges_updated += len(updates)
        for column, rids in unlink.items():
            _apply(conn, _CLEAR_LINKS[column], rids)
        _apply(conn, _INSERT_EDGES, inserts)
        _apply(conn, _UPDATE_EDGES, updates)

    @staticmethod
    def _stage(conn: sqlite3.Connection, table: str, columns: str, rows: Iterable[tuple[str, ...]]) -> None:
        """Fill a per-connection temp table; joining against it beats long IN (...) lists."""
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({columns})")
        conn.execute(f"DELETE FROM {table}")
        width = columns.count(",") + 1
        conn.executemany(f"INSERT INTO {table} VALUES ({_qmarks(width)})", rows)

    def _fetch_nodes(self, conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, _Existing]:
        """id -> (rid, props, placeholder, trace link, audit link, kind, writer, owners) of the ids that exist."""
        rows = self._fetch(conn, "nodes", ids)
        return {
            node_id: (
                rid,
                loads_props(props),
                bool(ph),
                trace,
                audit,
                _NODE_KINDS[kind],
                writer,
                loads_props(owners),
            )
            for node_id, rid, props, ph, trace, audit, kind, writer, owners in rows
        }

    def _fetch_edges(
        self, conn: sqlite3.Connection, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        rows = self._fetch(conn, "edges", keys)
        return {(src, kind, dst): loads_props(props) for src, kind, dst, props in rows}

    def _fetch(self, conn: sqlite3.Connection, table: str, keys: Sequence[Any]) -> list[Sequence[Any]]:
        """The ``_FETCHED`` columns of the rows of ``table`` whose key equals one of ``keys`` (node ids, or
        (src, kind, dst) edge keys)."""
        key_columns, columns = _FETCHED[table]
        select = ", ".join(f"t.{c}" for c in columns)
        payload = _json_array(keys)
        if payload is not None:
            # One row of JSON back instead of a row (a GIL hand-off, see _apply) per match.
            on = " AND ".join(
                f"t.{c} = {_col(i) if len(key_columns) > 1 else 'j.value'}" for i, c in enumerate(key_columns)
            )
            found: list[Sequence[Any]] = orjson.loads(
                conn.execute(
                    f"SELECT json_group_array(json_array({select})) FROM json_each(?) j CROSS JOIN {table} t ON {on}",
                    (payload,),
                ).fetchone()[0]
            )
            return found
        stage = f"_stage_{table}"
        self._stage(
            conn,
            stage,
            ", ".join(f"{c} TEXT" for c in key_columns),
            keys if len(key_columns) > 1 else [(k,) for k in keys],
        )
        on = " AND ".join(f"t.{c} = s.{c}" for c in key_columns)
        return conn.execute(f"SELECT {select} FROM {stage} s CROSS JOIN {table} t ON {on}").fetchall()

    def restore_provenance(self, found: dict[str, Provenance]) -> None:
        with self._write() as conn:
            conn.executemany(
                "UPDATE nodes SET writer = ?, owners = ? WHERE id = ?",
                [(p.writer, dumps_props(p.owners) if p.owners else None, i) for i, p in found.items()],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO claims(node, key, writer, value) SELECT id, ?, ?, ? FROM nodes WHERE id = ?",
                [
                    (c.key, c.writer, dumps_props({"v": c.value}), i)
                    for i, p in found.items()
                    for c in p.claims
                ],
            )
