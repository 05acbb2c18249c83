"""Reads of the SQLite store: point reads, rejected records, provenance, checkpoints, counts, the
health probe and whole-store iteration (``liubai migrate``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from liubai.lineage.model import (
    Edge,
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
from liubai.lineage.store.sqlite.connection import SqliteConnections, reads, streams
from liubai.lineage.store.sqlite.rows import _EDGE_KINDS, _LINKS, _NODE_KINDS, _chunks, _edge, _qmarks

__all__ = ["SqliteReads"]


class SqliteReads(SqliteConnections):
    """Point reads and bookkeeping of ``SqliteStore``; the node row reader others share."""

    @staticmethod
    def _node(row: tuple[str, str, str, int]) -> Node:
        return Node(row[0], _NODE_KINDS[row[1]], loads_props(row[2]), bool(row[3]))

    @reads
    def get(self, node_id: str) -> Node | None:
        row = (
            self._conn()
            .execute("SELECT id, kind, props, placeholder FROM nodes WHERE id = ?", (node_id,))
            .fetchone()
        )
        return self._node(row) if row else None

    @reads
    def get_many(self, node_ids: Sequence[str]) -> list[Node]:
        found: dict[str, Node] = {}
        conn = self._conn()
        for chunk in _chunks(list(dict.fromkeys(node_ids))):
            for row in conn.execute(
                f"SELECT id, kind, props, placeholder FROM nodes WHERE id IN ({_qmarks(len(chunk))})",
                tuple(chunk),
            ):
                found[row[0]] = self._node(row)
        return [found[i] for i in dict.fromkeys(node_ids) if i in found]

    @reads
    def find_by_prefix(self, kind: NodeKind, key_prefix: str, limit: int = 10) -> list[Node]:
        lo = f"{kind.prefix}:{key_prefix}"
        hi = lo + "\U0010ffff"
        rows = self._conn().execute(
            "SELECT id, kind, props, placeholder FROM nodes WHERE id >= ? AND id < ? AND kind = ? ORDER BY id LIMIT ?",
            (lo, hi, kind.value, limit),
        )
        return [self._node(r) for r in rows]

    @reads
    def rejected(self, source: str | None = None, first: int = 100, after: str | None = None) -> RejectedPage:
        offset = decode_cursor(after)
        conn = self._conn()
        where, params = ("WHERE source = ?", (source,)) if source is not None else ("", ())
        total = conn.execute(f"SELECT count(*) FROM rejected {where}", params).fetchone()[0]
        rows = conn.execute(
            f"SELECT source, location, reason, raw FROM rejected {where} ORDER BY rid LIMIT ? OFFSET ?",
            (*params, first + 1, offset),
        ).fetchall()
        more = len(rows) > first
        records = [RejectedRecord(*r) for r in rows[:first]]
        return RejectedPage(records, encode_cursor(offset + first) if more else None, total)

    @reads
    def provenance(self, node_ids: Sequence[str]) -> dict[str, Provenance]:
        found: dict[str, Provenance] = {}
        conn = self._conn()
        for chunk in _chunks(list(dict.fromkeys(node_ids))):
            marks = _qmarks(len(chunk))
            for node_id, writer, owners in conn.execute(
                f"SELECT id, writer, owners FROM nodes WHERE id IN ({marks})", tuple(chunk)
            ):
                found[node_id] = Provenance(writer, loads_props(owners))
            for node_id, key, writer, value in conn.execute(
                f"SELECT node, key, writer, value FROM claims WHERE node IN ({marks}) ORDER BY node, key, writer",
                tuple(chunk),
            ):
                if node_id in found:
                    found[node_id].claims.append(Claim(key, writer, loads_props(value).get("v")))
        return found

    @reads
    def get_checkpoint(self, source: str, key: str) -> str | None:
        row = (
            self._conn()
            .execute("SELECT value FROM checkpoints WHERE source = ? AND key = ?", (source, key))
            .fetchone()
        )
        return row[0] if row else None

    @reads
    def checkpoints(self, source: str | None = None) -> dict[tuple[str, str], str]:
        where, params = ("WHERE source = ?", (source,)) if source is not None else ("", ())
        rows = self._conn().execute(f"SELECT source, key, value FROM checkpoints {where}", params)
        return {(s, k): v for s, k, v in rows}

    @reads
    def counts(self) -> dict[str, int]:
        conn = self._conn()
        out: dict[str, int] = {}
        for kind in NodeKind:  # id ranges: every id starts with "<prefix>:", and ";" sorts right after ":"
            lo, hi = f"{kind.prefix}:", f"{kind.prefix};"
            out[kind.value] = conn.execute(
                "SELECT count(*) FROM nodes WHERE id >= ? AND id < ?", (lo, hi)
            ).fetchone()[0]
        out["placeholders"] = conn.execute("SELECT count(*) FROM nodes WHERE placeholder = 1").fetchone()[0]
        out["edges"] = conn.execute("SELECT count(*) FROM edges").fetchone()[0] + sum(
            conn.execute(f"SELECT count(*) FROM nodes WHERE {column} IS NOT NULL").fetchone()[0]
            for column in _LINKS.values()
        )
        out["rejected"] = conn.execute("SELECT count(*) FROM rejected").fetchone()[0]
        return out

    @reads
    def probe(self) -> None:
        """Reads the schema and the first and last row of every table: pages a point read of one id may
        never touch, so a file damaged past its first pages fails here too. Cost is independent of size."""
        conn = self._conn()
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        for table, key in (
            ("nodes", "rid"),
            ("edges", "src"),
            ("rejected", "rid"),
            ("checkpoints", "source"),
        ):
            for order in ("ASC", "DESC"):
                conn.execute(f"SELECT * FROM {table} ORDER BY {key} {order} LIMIT 1").fetchall()

    @streams
    def iter_nodes(self, batch_size: int = 5000) -> Iterator[list[Node]]:
        conn = self._conn()
        last = ""
        while True:
            rows = conn.execute(
                "SELECT id, kind, props, placeholder FROM nodes WHERE id > ? ORDER BY id LIMIT ?",
                (last, batch_size),
            ).fetchall()
            if not rows:
                return
            yield [self._node(r) for r in rows]
            last = rows[-1][0]

    @streams
    def iter_edges(self, batch_size: int = 5000) -> Iterator[list[Edge]]:
        """The ``edges`` table in key order, then each kind of link kept on node rows in source-id order."""
        conn = self._conn()
        last: tuple[str, str, str] = ("", "", "")
        while True:
            rows = conn.execute(
                "SELECT src, kind, dst, props FROM edges WHERE (src, kind, dst) > (?, ?, ?) "
                "ORDER BY src, kind, dst LIMIT ?",
                (*last, batch_size),
            ).fetchall()
            if not rows:
                break
            yield [_edge(r) for r in rows]
            last = (rows[-1][0], rows[-1][1], rows[-1][2])
        for kind, column in _LINKS.items():
            edge_kind, after = _EDGE_KINDS[kind], ""
            while True:
                pairs = conn.execute(
                    f"SELECT id, {column} FROM nodes WHERE id > ? AND {column} IS NOT NULL ORDER BY id LIMIT ?",
                    (after, batch_size),
                ).fetchall()
                if not pairs:
                    break
                yield [Edge(src, edge_kind, dst, {}) for src, dst in pairs]
                after = pairs[-1][0]
