"""Looking things up by name: the ``node``, ``commit``, ``stats`` and ``rejected`` query fields."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from liubai.api.schema_arguments import bounded
from liubai.api.schema_context import with_store
from liubai.api.schema_pages import page_after
from liubai.api.schema_types import (
    GNode,
    GRejectedRecord,
    RejectedRecordConnection,
    RejectedRecordEdge,
    Stats,
)
from liubai.lineage.batch import RejectedRecord
from liubai.lineage.resolve import find_commit
from liubai.lineage.store.base import LineageStore

__all__ = ["LookupQueries"]

MAX_REJECTED_PAGE = 500


def _rejected(
    store: LineageStore, source: str | None, first: int, after: str | None
) -> RejectedRecordConnection:
    total = 0

    def fetch(n: int, store_after: str | None) -> tuple[list[RejectedRecord], str | None]:
        nonlocal total
        page = store.rejected(source, first=n, after=store_after)
        total = page.total
        return page.records, page.end_cursor

    page = page_after(fetch, first, after, MAX_REJECTED_PAGE)
    edges = [
        RejectedRecordEdge(
            cursor=c, node=GRejectedRecord(source=r.source, location=r.location, reason=r.reason, raw=r.raw)
        )
        for c, r in page.items
    ]
    return RejectedRecordConnection(edges=edges, page_info=page.page_info, total_count=total)


@strawberry.type
class LookupQueries:
    """Query fields that name one node or count them all; one part of ``liubai.api.schema.Query``."""

    @strawberry.field(
        description="A node by id (`commit:<sha>`, `workload:Deployment/ns/name`, ...); null if absent."
    )
    async def node(self, info: Info, id: strawberry.ID) -> GNode | None:
        found = await with_store(info, lambda s: s.get(str(id)))
        return GNode.of(found) if found else None

    @strawberry.field(
        description="A commit by full sha or unique prefix (>= 4 hex chars); AMBIGUOUS if several match."
    )
    async def commit(self, info: Info, sha: str) -> GNode | None:
        found = await with_store(info, lambda s: find_commit(s, sha))
        return GNode.of(found) if found else None

    @strawberry.field(description="Node count per kind, plus edges, placeholders and rejected records.")
    async def stats(self, info: Info) -> Stats:
        return Stats(counts=JSON(await with_store(info, lambda s: s.counts())))

    @strawberry.field(
        description="Input that could not become graph facts (of every source, or of `source`), oldest first, "
        "with where it came from and why."
    )
    async def rejected(
        self, info: Info, source: str | None = None, first: int = 100, after: str | None = None
    ) -> RejectedRecordConnection:
        bounded("first", first, 1, MAX_REJECTED_PAGE)
        return await with_store(info, lambda s: _rejected(s, source, first, after))
