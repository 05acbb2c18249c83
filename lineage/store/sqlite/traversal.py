"""Traversal in the SQLite store: neighbours (paged), lineage (a breadth-first walk inside SQLite) and
shortest paths (a bidirectional search); each bounded so a hub cannot exhaust memory."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from liubai.lineage.model import (
    Direction,
    Edge,
    EdgeKind,
)
from liubai.lineage.store.base import (
    DEFAULT_LINEAGE_LIMIT,
    EDGES_PER_NODE,
    AnswerTooLarge,
    NeighborPage,
    Subgraph,
)
from liubai.lineage.store.common import (
    decode_cursor,
    encode_cursor,
    loads_props,
)
from liubai.lineage.store.sqlite.connection import reads
from liubai.lineage.store.sqlite.reads import SqliteReads
from liubai.lineage.store.sqlite.rows import _EDGE_KINDS, _chunks, _edge, _links, _qmarks

__all__ = ["EDGES_PER_NODE", "PATH_VISIT_LIMIT", "SqliteTraversal"]

# A path search holding more nodes than this (both sides' visited sets) stops with AnswerTooLarge.
PATH_VISIT_LIMIT = 200_000


class SqliteTraversal(SqliteReads):
    """``neighbors``, ``lineage`` and ``path`` of ``SqliteStore``."""

    @reads
    def neighbors(
        self,
        node_id: str,
        direction: Direction = Direction.BOTH,
        edge_kinds: Sequence[EdgeKind] | None = None,
        first: int = 100,
        after: str | None = None,
    ) -> NeighborPage:
        offset = decode_cursor(after)
        kinds = [k.value for k in (edge_kinds or list(EdgeKind))]
        parts, params = [], []
        if direction in (Direction.DOWNSTREAM, Direction.BOTH):
            parts.append(
                f"SELECT 0 AS d, kind, dst AS other, src, dst, props FROM edges WHERE src = ? AND kind IN ({_qmarks(len(kinds))})"
            )
            params += [node_id, *kinds]
            for kind, column in _links(kinds):
                parts.append(
                    f"SELECT 0, '{kind}', {column}, id, {column}, '{{}}' FROM nodes WHERE id = ? AND {column} IS NOT NULL"
                )
                params.append(node_id)
        if direction in (Direction.UPSTREAM, Direction.BOTH):
            parts.append(
                f"SELECT 1 AS d, kind, src AS other, src, dst, props FROM edges WHERE dst = ? AND kind IN ({_qmarks(len(kinds))})"
            )
            params += [node_id, *kinds]
            for kind, column in _links(kinds):
                parts.append(f"SELECT 1, '{kind}', id, id, {column}, '{{}}' FROM nodes WHERE {column} = ?")
                params.append(node_id)
        sql = " UNION ALL ".join(parts) + " ORDER BY d, kind, other LIMIT ? OFFSET ?"
        rows = self._conn().execute(sql, (*params, first + 1, offset)).fetchall()
        more = len(rows) > first
        rows = rows[:first]
        edges = [Edge(r[3], _EDGE_KINDS[r[1]], r[4], loads_props(r[5])) for r in rows]
        nodes = self.get_many([r[2] for r in rows])
        return NeighborPage(edges, nodes, encode_cursor(offset + first) if more else None)

    @reads
    def lineage(
        self,
        node_id: str,
        direction: Direction = Direction.DOWNSTREAM,
        depth: int = 2,
        edge_kinds: Sequence[EdgeKind] | None = None,
        limit: int = DEFAULT_LINEAGE_LIMIT,
    ) -> Subgraph:
        """Runs in one read transaction: every level sees the same snapshot, and the temp-table steps
        do not each pay for a transaction of their own."""
        conn = self._conn()
        with self._snapshot(conn):
            return self._lineage(conn, node_id, direction, max(0, depth), edge_kinds, limit)

    def _lineage(
        self,
        conn: sqlite3.Connection,
        node_id: str,
        direction: Direction,
        depth: int,
        edge_kinds: Sequence[EdgeKind] | None,
        limit: int,
    ) -> Subgraph:
        if conn.execute("SELECT 1 FROM nodes WHERE id = ?", (node_id,)).fetchone() is None:
            return Subgraph()
        kinds = list(edge_kinds) if edge_kinds else list(EdgeKind)
        along = [k.value for k in kinds if not k.flow_reversed]
        against = [k.value for k in kinds if k.flow_reversed]
        if direction is Direction.UPSTREAM:
            along, against = against, along
        elif direction is Direction.BOTH:
            along = against = [k.value for k in kinds]
        # Level-synchronous breadth-first walk inside SQLite: out-edges of kinds in `along` and in-edges of
        # kinds in `against` lead one hop further. Unlike a recursive CTE, which expands every (node, depth)
        # pair before any limit applies, this stops as soon as `limit` nodes are reached, so a hub (a shared
        # library every process reads) costs one index range scan instead of an explosion.
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _seen (id TEXT PRIMARY KEY, d INTEGER NOT NULL) WITHOUT ROWID"
        )
        conn.execute("DELETE FROM _seen")
        conn.execute("INSERT INTO _seen VALUES (?, 0)", (node_id,))
        steps: list[tuple[str, list[str]]] = []
        if along:
            steps.append(
                (
                    "INSERT OR IGNORE INTO _seen SELECT e.dst, ? FROM _seen w CROSS JOIN edges e ON e.src = w.id "
                    f"WHERE w.d = ? AND e.kind IN ({_qmarks(len(along))}) LIMIT ?",
                    along,
                )
            )
        if against:
            steps.append(
                (
                    "INSERT OR IGNORE INTO _seen SELECT e.src, ? FROM _seen w CROSS JOIN edges e INDEXED BY edges_dst "
                    f"ON e.dst = w.id WHERE w.d = ? AND e.kind IN ({_qmarks(len(against))}) LIMIT ?",
                    against,
                )
            )
        for _, column in _links(along):
            steps.append(
                (
                    f"INSERT OR IGNORE INTO _seen SELECT n.{column}, ? FROM _seen w CROSS JOIN nodes n ON n.id = w.id "
                    f"WHERE w.d = ? AND n.{column} IS NOT NULL LIMIT ?",
                    [],
                )
            )
        for _, column in _links(against):
            steps.append(
                (
                    f"INSERT OR IGNORE INTO _seen SELECT n.id, ? FROM _seen w CROSS JOIN nodes n INDEXED BY nodes_{column} "
                    f"ON n.{column} = w.id WHERE w.d = ? LIMIT ?",
                    [],
                )
            )
        seen, truncated = 1, False
        for level in range(1, depth + 1):
            grew = 0
            for sql, kinds_ in steps:
                room = limit + 1 - seen - grew
                if room <= 0:
                    break
                # LIMIT counts rows offered, duplicates included: offer generously, trim below
                grew += conn.execute(sql, (level, level - 1, *kinds_, room * 8 + 64)).rowcount
            seen += grew
            if seen > limit:
                truncated = True
                break
            if grew == 0:
                break
        if truncated:
            conn.execute(
                "DELETE FROM _seen WHERE id NOT IN (SELECT id FROM _seen ORDER BY d, id LIMIT ?)", (limit,)
            )
        rows = conn.execute(
            "SELECT n.id, n.kind, n.props, n.placeholder, s.d FROM _seen s CROSS JOIN nodes n ON n.id = s.id "
            "ORDER BY s.d, n.id"
        ).fetchall()
        kind_values = [k.value for k in kinds]
        # CROSS JOIN pins the small selection as the outer loop, which the planner otherwise guesses wrong
        edge_sql = [
            "SELECT e.src, e.kind, e.dst, e.props FROM _seen a CROSS JOIN edges e ON e.src = a.id "
            f"CROSS JOIN _seen b ON b.id = e.dst WHERE e.kind IN ({_qmarks(len(kind_values))})"
        ]
        for kind, column in _links(kind_values):
            edge_sql.append(
                f"SELECT n.id, '{kind}', n.{column}, '{{}}' FROM _seen a CROSS JOIN nodes n ON n.id = a.id "
                f"CROSS JOIN _seen b ON b.id = n.{column}"
            )
        max_edges = max(limit, DEFAULT_LINEAGE_LIMIT) * EDGES_PER_NODE
        edge_rows = conn.execute(
            " UNION ALL ".join(edge_sql) + " ORDER BY 1, 2, 3 LIMIT ?", (*kind_values, max_edges + 1)
        ).fetchall()
        if len(edge_rows) > max_edges:
            del edge_rows[max_edges:]
            truncated = True
        conn.execute("DELETE FROM _seen")
        return Subgraph(
            [self._node(r[:4]) for r in rows],
            [_edge(r) for r in edge_rows],
            {r[0]: r[4] for r in rows},
            truncated,
        )

    @reads
    def path(
        self, src: str, dst: str, max_length: int = 6, edge_kinds: Sequence[EdgeKind] | None = None
    ) -> Subgraph | None:
        """Bidirectional breadth-first search, one set-based query per frontier and side."""
        conn = self._conn()
        if len(self.get_many([src, dst])) < len({src, dst}):
            return None
        if src == dst:
            return Subgraph(self.get_many([src]), [], {src: 0})
        kinds = [k.value for k in (edge_kinds or list(EdgeKind))]
        links = _links(kinds)
        # parent maps: node -> (previous node, edge) toward the side's start
        prev_a: dict[str, tuple[str, Edge] | None] = {src: None}
        prev_b: dict[str, tuple[str, Edge] | None] = {dst: None}
        front_a, front_b = [src], [dst]
        length = 0
        meet: str | None = None
        while front_a and front_b and length < max_length and meet is None:
            grow_a = len(front_a) <= len(front_b)
            front, prev, other = (front_a, prev_a, prev_b) if grow_a else (front_b, prev_b, prev_a)
            nxt: list[str] = []
            for chunk in _chunks(front):
                q = _qmarks(len(chunk))
                kq = _qmarks(len(kinds))
                parts = [
                    f"SELECT src, kind, dst, props, src AS here, dst AS there FROM edges WHERE src IN ({q}) AND kind IN ({kq})",
                    f"SELECT src, kind, dst, props, dst, src FROM edges WHERE dst IN ({q}) AND kind IN ({kq})",
                ]
                params: list[str] = [*chunk, *kinds, *chunk, *kinds]
                for kind, column in links:
                    parts.append(
                        f"SELECT id, '{kind}', {column}, '{{}}', id, {column} FROM nodes WHERE id IN ({q}) "
                        f"AND {column} IS NOT NULL"
                    )
                    parts.append(
                        f"SELECT id, '{kind}', {column}, '{{}}', {column}, id FROM nodes WHERE {column} IN ({q})"
                    )
                    params += [*chunk, *chunk]
                # LIMIT bounds SQLite's sorter too; rows offered count duplicates, so offer generously
                offered = (PATH_VISIT_LIMIT - len(prev_a) - len(prev_b)) * 4 + 1024
                rows = conn.execute(
                    " UNION ALL ".join(parts) + " ORDER BY 5, 2, 6 LIMIT ?", (*params, offered)
                )
                for n, (s, k, d, props, here, there) in enumerate(rows, start=1):
                    if n == offered:
                        raise self._too_large(src, dst)
                    if there in prev:
                        continue
                    if len(prev_a) + len(prev_b) >= PATH_VISIT_LIMIT:
                        raise self._too_large(src, dst)
                    prev[there] = (here, Edge(s, _EDGE_KINDS[k], d, loads_props(props)))
                    nxt.append(there)
                    if there in other:
                        meet = there
                        break
                if meet is not None:
                    break
            length += 1
            if grow_a:
                front_a = nxt
            else:
                front_b = nxt
        if meet is None:
            return None
        order: list[str] = []
        edges: list[Edge] = []
        cur: str | None = meet
        while cur is not None:
            order.append(cur)
            step = prev_a[cur]
            if step is None:
                break
            edges.append(step[1])
            cur = step[0]
        order.reverse()
        edges.reverse()
        cur = meet
        while True:
            step = prev_b[cur]
            if step is None:
                break
            edges.append(step[1])
            cur = step[0]
            order.append(cur)
        if len(edges) > max_length:
            return None
        nodes = self.get_many(order)
        return Subgraph(nodes, edges, {n: i for i, n in enumerate(order)})

    @staticmethod
    def _too_large(src: str, dst: str) -> AnswerTooLarge:
        return AnswerTooLarge(
            f"a path from {src!r} to {dst!r} needs more than {PATH_VISIT_LIMIT:,} nodes searched; "
            "ask for a shorter maximum length"
        )
