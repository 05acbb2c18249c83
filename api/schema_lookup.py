"""Looking things up by name: the ``node``, ``commit`` and ``stats`` query fields."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from liubai.api.schema_context import with_store
from liubai.api.schema_types import GNode, Stats
from liubai.lineage.resolve import find_commit

__all__ = ["LookupQueries"]


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
