"""Walking the graph: the ``lineage``, ``path``, ``neighbors`` and ``search`` query fields.

Resolvers are thin: they check arguments, then make one or a few store calls in the pool and build the
answer straight from what the store returned (a lineage answer is one ``Subgraph``, never a lookup per
node). Search pages and neighbour connections carry per-item cursors (``liubai.api.schema_pages``), so a
client may resume after any edge.
"""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from liubai.api.errors import ApiError, ErrorCode
from liubai.api.schema_arguments import bounded, to_edge_kinds, to_node_kinds
from liubai.api.schema_context import with_store
from liubai.api.schema_pages import page_after
from liubai.api.schema_types import (
    Direction,
    GEdge,
    GEdgeKind,
    GNode,
    GNodeKind,
    Graph,
    NeighborConnection,
    NeighborEdge,
    NodeConnection,
    NodeEdge,
)
from liubai.lineage.model import Edge, EdgeKind, Node, NodeKind
from liubai.lineage.resolve import reference_id, resolve_reference
from liubai.lineage.store.base import InvalidCursor, LineageStore, Subgraph
from liubai.lineage.text import clip

__all__ = ["GraphQueries"]

MAX_DEPTH = 10
MAX_LINEAGE_LIMIT = 50_000
MAX_PAGE = 500
MAX_NEIGHBORS = 1_000
MAX_PATH = 12


# --------------------------------------------------------------------------- work done in the pool


def _search(
    store: LineageStore, text: str, kinds: list[NodeKind] | None, first: int, after: str | None
) -> NodeConnection:
    total = 0

    def fetch(n: int, store_after: str | None) -> tuple[list[Node], str | None]:
        nonlocal total
        page = store.search(text, kinds, first=n, after=store_after)
        total = page.total
        return page.nodes, page.end_cursor

    page = page_after(fetch, first, after, MAX_PAGE)
    return NodeConnection(
        edges=[NodeEdge(cursor=c, node=GNode.of(n)) for c, n in page.items],
        page_info=page.page_info,
        total_count=total,
    )


def _neighbor_links(
    store: LineageStore,
    ref: str,
    direction: Direction,
    kinds: list[EdgeKind] | None,
    first: int,
    after: str | None,
) -> NeighborConnection:
    center = resolve_reference(store, ref)

    def fetch(n: int, store_after: str | None) -> tuple[list[tuple[Edge, Node]], str | None]:
        got = store.neighbors(center.id, direction.model, kinds, first=n, after=store_after)
        nodes = {center.id: center} | {x.id: x for x in got.nodes}
        links = []
        for e in got.edges:
            other = nodes.get(e.dst if e.src == center.id else e.src)
            if other is not None:
                links.append((e, other))
        return links, got.end_cursor

    page = page_after(fetch, first, after, MAX_NEIGHBORS)
    return NeighborConnection(
        edges=[NeighborEdge(cursor=c, node=GNode.of(n), link=GEdge.of(e)) for c, (e, n) in page.items],
        page_info=page.page_info,
    )


def _neighbors(
    store: LineageStore,
    ref: str,
    direction: Direction,
    kinds: list[EdgeKind] | None,
    first: int,
    after: str | None,
) -> Graph:
    center = resolve_reference(store, ref)
    try:
        page = store.neighbors(center.id, direction.model, kinds, first=first, after=after)
    except InvalidCursor:
        raise ApiError(
            ErrorCode.BAD_INPUT, "invalid cursor; pass the endCursor of an earlier answer", argument="after"
        ) from None
    nodes = {center.id: center} | {n.id: n for n in page.nodes}
    sub = Subgraph(
        list(nodes.values()),
        page.edges,
        {i: 0 if i == center.id else 1 for i in nodes},
        page.end_cursor is not None,
    )
    return Graph(sub=sub, end_cursor=page.end_cursor)


# --------------------------------------------------------------------------- the fields


@strawberry.type
class GraphQueries:
    """Query fields that walk edges or search nodes; one part of ``liubai.api.schema.Query``."""

    @strawberry.field(
        description="What flows from (DOWNSTREAM) or into (UPSTREAM) a node, up to `depth` hops."
    )
    async def lineage(
        self,
        info: Info,
        from_: Annotated[strawberry.ID, strawberry.argument(name="from")],
        direction: Direction = Direction.DOWNSTREAM,
        depth: int = 2,
        edge_kinds: list[GEdgeKind] | None = None,
        limit: int = 10_000,
    ) -> Graph:
        bounded("depth", depth, 0, MAX_DEPTH)
        bounded("limit", limit, 1, MAX_LINEAGE_LIMIT)
        kinds = to_edge_kinds(edge_kinds)

        def run(store: LineageStore) -> Graph:
            node_id = reference_id(store, str(from_))
            sub = store.lineage(node_id, direction.model, depth, kinds, limit)
            if not sub.nodes:
                raise ApiError(
                    ErrorCode.NOT_FOUND, f"no node {clip(node_id)!r} in the lineage store", id=clip(node_id)
                )
            return Graph.of(sub)

        return await with_store(info, run)

    @strawberry.field(
        description="A shortest path between two nodes (edge direction ignored), in path order; null if none."
    )
    async def path(
        self,
        info: Info,
        from_: Annotated[strawberry.ID, strawberry.argument(name="from")],
        to: strawberry.ID,
        max_length: int = 8,
    ) -> Graph | None:
        bounded("maxLength", max_length, 1, MAX_PATH)

        def run(store: LineageStore) -> Graph | None:
            a, b = resolve_reference(store, str(from_)), resolve_reference(store, str(to))
            sub = store.path(a.id, b.id, max_length)
            return Graph.of(sub) if sub is not None else None

        return await with_store(info, run)

    @strawberry.field(description="Full-text search over ids and key properties, as a cursor connection.")
    async def search(
        self,
        info: Info,
        text: str,
        kinds: list[GNodeKind] | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> NodeConnection:
        if not text.strip():
            raise ApiError(ErrorCode.BAD_INPUT, "search text is empty", argument="text")
        bounded("first", first, 1, MAX_PAGE)
        wanted = to_node_kinds(kinds)
        return await with_store(info, lambda s: _search(s, text, wanted, first, after))

    @strawberry.field(
        description="Edges touching a node (stored direction) one page at a time; see Graph.endCursor."
    )
    async def neighbors(
        self,
        info: Info,
        id: strawberry.ID,
        direction: Direction = Direction.BOTH,
        edge_kinds: list[GEdgeKind] | None = None,
        first: int = 100,
        after: str | None = None,
    ) -> Graph:
        bounded("first", first, 1, MAX_NEIGHBORS)
        kinds = to_edge_kinds(edge_kinds)
        return await with_store(info, lambda s: _neighbors(s, str(id), direction, kinds, first, after))

    @strawberry.field(
        description="Edges touching a node (stored direction) as a cursor connection: each edge gives the "
        "neighbour, the stored edge and a cursor to resume after it."
    )
    async def neighbor_connection(
        self,
        info: Info,
        id: strawberry.ID,
        direction: Direction = Direction.BOTH,
        edge_kinds: list[GEdgeKind] | None = None,
        first: int = 100,
        after: str | None = None,
    ) -> NeighborConnection:
        bounded("first", first, 1, MAX_NEIGHBORS)
        kinds = to_edge_kinds(edge_kinds)
        return await with_store(info, lambda s: _neighbor_links(s, str(id), direction, kinds, first, after))
