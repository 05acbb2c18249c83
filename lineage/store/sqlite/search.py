"""Full-text search in the SQLite store: an FTS5 index over ids and key properties; user text becomes
quoted prefix tokens, never query syntax."""

from __future__ import annotations

import re
from collections.abc import Sequence

from liubai.lineage.model import (
    Node,
    NodeKind,
)
from liubai.lineage.store.base import (
    NodePage,
)
from liubai.lineage.store.common import (
    decode_cursor,
    encode_cursor,
)
from liubai.lineage.store.sqlite.connection import reads
from liubai.lineage.store.sqlite.reads import SqliteReads
from liubai.lineage.store.sqlite.rows import _qmarks

__all__ = ["SqliteSearch"]

_TOKEN = re.compile(r"\w+", re.UNICODE)


def _fts_query(text: str) -> str | None:
    """User text -> an FTS5 query of quoted prefix tokens, so no character of it is query syntax."""
    tokens = _TOKEN.findall(text)
    if not tokens:
        return None
    return " ".join(f'"{t}"*' for t in tokens[:16])


class SqliteSearch(SqliteReads):
    """``search`` of ``SqliteStore``: an exact id first, then ranked matches."""

    @reads
    def search(
        self, text: str, kinds: Sequence[NodeKind] | None = None, first: int = 20, after: str | None = None
    ) -> NodePage:
        offset = decode_cursor(after)
        conn = self._conn()
        kind_values = [k.value for k in kinds] if kinds else None
        kind_sql = f" AND n.kind IN ({_qmarks(len(kind_values))})" if kind_values else ""
        exact = conn.execute(
            "SELECT id, kind, props, placeholder FROM nodes n WHERE id = ?" + kind_sql,
            (text.strip(), *(kind_values or [])),
        ).fetchall()
        query = _fts_query(text)
        if query is None:
            hits: list[Node] = [self._node(r) for r in exact]
            return NodePage(hits[offset : offset + first], None, len(hits))
        params = (query, *(kind_values or []))
        total = conn.execute(
            "SELECT count(*) FROM node_search s JOIN nodes n ON n.rid = s.rowid WHERE node_search MATCH ?"
            + kind_sql,
            params,
        ).fetchone()[0]
        exact_ids = {r[0] for r in exact}
        head = [self._node(r) for r in exact]
        rows = conn.execute(
            "SELECT n.id, n.kind, n.props, n.placeholder FROM node_search s JOIN nodes n ON n.rid = s.rowid "
            "WHERE node_search MATCH ?" + kind_sql + " ORDER BY n.placeholder, s.rank, n.id LIMIT ? OFFSET ?",
            (*params, first + 1 + len(head), max(0, offset - len(head))),
        ).fetchall()
        ranked = [self._node(r) for r in rows if r[0] not in exact_ids]
        combined = (head[offset:] if offset < len(head) else []) + ranked
        more = len(combined) > first
        return NodePage(combined[:first], encode_cursor(offset + first) if more else None, total)
