"""Full-text search in the Neo4j store: an exact id first, then the full-text index, read after it
caught up with the writes (it is eventually consistent)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neo4j import ManagedTransaction

from liubai.lineage.model import (
    NodeKind,
)
from liubai.lineage.store.base import (
    NodePage,
)
from liubai.lineage.store.common import (
    decode_cursor,
    encode_cursor,
)
from liubai.lineage.store.neo4j.queries import _SEARCH_EXACT, _SEARCH_PAGE, _SEARCH_REFRESH, _SEARCH_TOTAL
from liubai.lineage.store.neo4j.reads import Neo4jReads
from liubai.lineage.store.neo4j.rows import _lucene_query, _node

__all__ = ["Neo4jSearch"]


class Neo4jSearch(Neo4jReads):
    """``search`` of ``Neo4jStore``."""

    def search(
        self, text: str, kinds: Sequence[NodeKind] | None = None, first: int = 20, after: str | None = None
    ) -> NodePage:
        offset = decode_cursor(after)
        labels = [k.value for k in kinds] if kinds else None
        query = _lucene_query(text)

        def work(tx: ManagedTransaction) -> tuple[list[Any], list[Any], int]:
            exact = list(tx.run(_SEARCH_EXACT, id=text.strip(), labels=labels))
            if query is None:
                return exact, [], len(exact)
            tx.run(_SEARCH_REFRESH).consume()
            total = tx.run(_SEARCH_TOTAL, lucene=query, labels=labels).single(strict=True)["total"]
            ranked = list(
                tx.run(
                    _SEARCH_PAGE,
                    lucene=query,
                    labels=labels,
                    skip=max(0, offset - len(exact)),
                    limit=first + 1 + len(exact),
                )
            )
            return exact, ranked, int(total)

        exact, ranked, total = self._run_read(work)
        head = [_node(r) for r in exact]
        if query is None:
            return NodePage(head[offset : offset + first], None, len(head))
        exact_ids = {n.id for n in head}
        rest = [_node(r) for r in ranked if r["id"] not in exact_ids]
        combined = (head[offset:] if offset < len(head) else []) + rest
        more = len(combined) > first
        return NodePage(combined[:first], encode_cursor(offset + first) if more else None, total)
