"""Traversal in the Neo4j store: neighbours (paged), lineage (one query per level, so a hub costs
a level, not every path through it) and shortest paths."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neo4j import ManagedTransaction

from liubai.lineage.model import (
    Direction,
    Edge,
    EdgeKind,
    Node,
    node_kind_of,
)
from liubai.lineage.store.base import (
    DEFAULT_LINEAGE_LIMIT,
    EDGES_PER_NODE,
    NeighborPage,
    Subgraph,
)
from liubai.lineage.store.common import (
    decode_cursor,
    encode_cursor,
)
from liubai.lineage.store.neo4j.props import from_neo4j
from liubai.lineage.store.neo4j.queries import (
    _EDGES_AMONG,
    _EXISTS,
    _GET_MANY,
    _NEIGHBORS,
    _STEP,
    _path_query,
)
from liubai.lineage.store.neo4j.reads import Neo4jReads
from liubai.lineage.store.neo4j.rows import _chunks, _node

__all__ = ["Neo4jTraversal"]

_MAX_PATH = 64


class Neo4jTraversal(Neo4jReads):
    """``neighbors``, ``lineage`` and ``path`` of ``Neo4jStore``."""

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
        recs = self._read(
            _NEIGHBORS[Direction(direction)], id=node_id, kinds=kinds, skip=offset, limit=first + 1
        )
        more = len(recs) > first
        recs = recs[:first]
        edges = [Edge(r["src"], EdgeKind(r["kind"]), r["dst"], from_neo4j(r["rprops"])) for r in recs]
        nodes: dict[str, Node] = {}
        for r in recs:
            nodes.setdefault(r["id"], _node(r))
        return NeighborPage(edges, list(nodes.values()), encode_cursor(offset + first) if more else None)

    def lineage(
        self,
        node_id: str,
        direction: Direction = Direction.DOWNSTREAM,
        depth: int = 2,
        edge_kinds: Sequence[EdgeKind] | None = None,
        limit: int = DEFAULT_LINEAGE_LIMIT,
    ) -> Subgraph:
        depth = max(0, depth)
        kinds = list(edge_kinds) if edge_kinds else list(EdgeKind)
        along = [k.value for k in kinds if not k.flow_reversed]
        against = [k.value for k in kinds if k.flow_reversed]
        if direction is Direction.UPSTREAM:
            along, against = against, along
        elif direction is Direction.BOTH:
            along = against = [k.value for k in kinds]
        all_kinds = [k.value for k in kinds]

        def work(tx: ManagedTransaction) -> tuple[dict[str, int], bool, list[Any], list[Any]]:
            if tx.run(_EXISTS, id=node_id).single(strict=True)["c"] == 0:
                return {}, False, [], []
            depths = {node_id: 0}
            frontier = [node_id]
            level = 0
            while frontier and level < depth and len(depths) <= limit:
                level += 1
                reached: set[str] = set()
                for chunk in _chunks(frontier):
                    # limit + 1 distinct ids hold at least enough new ones to know the answer is cut
                    rows = tx.run(_STEP, ids=list(chunk), along=along, against=against, room=limit + 1)
                    reached.update(r["id"] for r in rows)
                    if len(reached.difference(depths)) + len(depths) > limit:
                        break
                frontier = sorted(i for i in reached if i not in depths)
                for i in frontier:
                    depths[i] = level
            truncated = len(depths) > limit
            if truncated:
                keep = sorted(depths, key=lambda i: (depths[i], i))[:limit]
                depths = {i: depths[i] for i in keep}
            ids = list(depths)
            nodes = [rec for chunk in _chunks(ids) for rec in tx.run(_GET_MANY, ids=list(chunk))]
            max_edges = max(limit, DEFAULT_LINEAGE_LIMIT) * EDGES_PER_NODE
            edges = list(tx.run(_EDGES_AMONG, ids=ids, kinds=all_kinds, limit=max_edges + 1)) if ids else []
            if len(edges) > max_edges:
                del edges[max_edges:]
                truncated = True
            return depths, truncated, nodes, edges

        depths, truncated, node_recs, edge_recs = self._run_read(work)
        if not depths:
            return Subgraph()
        by_id = {r["id"]: _node(r) for r in node_recs}
        ordered = sorted(depths, key=lambda i: (depths[i], i))
        return Subgraph(
            [by_id[i] for i in ordered if i in by_id],
            [Edge(r["src"], EdgeKind(r["kind"]), r["dst"], from_neo4j(r["props"])) for r in edge_recs],
            depths,
            truncated,
        )

    def path(
        self, src: str, dst: str, max_length: int = 6, edge_kinds: Sequence[EdgeKind] | None = None
    ) -> Subgraph | None:
        if len(self.get_many([src, dst])) < len({src, dst}):
            return None
        if src == dst:
            return Subgraph(self.get_many([src]), [], {src: 0})
        if max_length < 1:
            return None
        query = _path_query(min(int(max_length), _MAX_PATH), edge_kinds is not None)
        kinds = [k.value for k in edge_kinds] if edge_kinds is not None else None
        recs = self._read(query, src=src, dst=dst, kinds=kinds)
        if not recs:
            return None
        order = [n[0] for n in recs[0]["nodes"]]
        nodes = [Node(i, node_kind_of(i), from_neo4j(p), bool(ph)) for i, p, ph in recs[0]["nodes"]]
        edges = [Edge(s, EdgeKind(k), d, from_neo4j(p)) for s, k, d, p in recs[0]["rels"]]
        return Subgraph(nodes, edges, {n: i for i, n in enumerate(order)})
