"""The GraphQL schema the web UI and scripts query (strawberry; camelCase names).

Resolvers are thin: they turn arguments into one or a few store calls and build the answer objects
straight from what the store returned (a lineage answer is one ``Subgraph``, never a lookup per node).
Store calls block, so they run in the thread pool and the event loop stays free.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import strawberry
from strawberry.fastapi import BaseContext
from strawberry.scalars import JSON
from strawberry.tools import merge_types
from strawberry.types import Info

from liubai.api.errors import ApiError, ErrorCode, StructuredErrors
from liubai.api.limits import LimitSettings, graphql_extensions
from liubai.api.nodes import node_json, node_label, node_time
from liubai.api.schema_cluster import ClusterQuery
from liubai.lineage import model
from liubai.lineage.model import AuditIdError, EdgeKind, NodeKind, parse_audit_id
from liubai.lineage.provenance import Provenance
from liubai.lineage.resolve import find_commit, reference_id, resolve_reference
from liubai.lineage.store.base import InvalidCursor, LineageStore, Subgraph
from liubai.lineage.text import clip

__all__ = ["ApiContext", "schema"]

T = TypeVar("T")

MAX_DEPTH = 10
MAX_LINEAGE_LIMIT = 50_000
MAX_PAGE = 500
MAX_NEIGHBORS = 1_000
MAX_PATH = 12
AUDIT_LIST_LIMIT = 500
TRAIL_LIMIT = 5_000
# A trail follows one change through execution and logs; walking into sibling commits would drown it.
TRAIL_EDGE_KINDS = [k for k in EdgeKind if k not in (EdgeKind.PARENT, EdgeKind.HAS_COMMIT)]


class ApiContext(BaseContext):
    """Per-request context: how to reach the store (opened lazily, so a down store is an answer, not a crash)."""

    def __init__(self, store: Callable[[], LineageStore]) -> None:
        super().__init__()
        self.get_store = store


# Store calls block. A plain executor hop costs about half of anyio's ``run_in_threadpool`` per call, and
# a cancelled wait (query timeout) returns at once; the call itself stops at the same deadline
# (``liubai.lineage.store.deadline``), which the copied context carries into the thread.
_STORE_THREADS = ThreadPoolExecutor(max_workers=40, thread_name_prefix="liubai-store")


async def _with_store(info: Info, fn: Callable[[LineageStore], T]) -> T:
    ctx: ApiContext = info.context
    call = contextvars.copy_context().run  # the request id reaches log lines written in the thread
    return await asyncio.get_running_loop().run_in_executor(_STORE_THREADS, call, lambda: fn(ctx.get_store()))


# --------------------------------------------------------------------------- types


@strawberry.enum
class Direction(Enum):
    UPSTREAM = "UPSTREAM"
    DOWNSTREAM = "DOWNSTREAM"
    BOTH = "BOTH"

    @property
    def model(self) -> model.Direction:
        return model.Direction(self.value.lower())


@strawberry.type(
    name="Claim", description="A value `writer` gave for property `key` that is not the stored fact."
)
class GClaim:
    key: str
    writer: str
    value: JSON


@strawberry.type(name="KeyWriter", description="The writer of one property key.")
class GOwner:
    key: str
    writer: str


async def _provenance(info: Info, node_id: str) -> Provenance:
    found = await _with_store(info, lambda store: store.provenance([node_id]))
    return found.get(node_id) or Provenance()


# GraphQL enums of the model's kinds, each value named as the model spells it (``Commit``, ``DECLARES``), so
# answers read as they did when kinds were strings and the UI's kind tables still match them.
# Built from the model at run time, so mypy sees them as plain Enums.
if TYPE_CHECKING:
    GNodeKind = Enum
    GEdgeKind = Enum
else:
    GNodeKind = strawberry.enum(
        Enum("GNodeKind", {k.value: k.value for k in NodeKind}),
        name="NodeKind",
        description="What a node is.",
    )
    GEdgeKind = strawberry.enum(
        Enum("GEdgeKind", {k.value: k.value for k in EdgeKind}),
        name="EdgeKind",
        description="How two nodes relate.",
    )


@strawberry.type(
    name="Node", description="A lineage node; `label` is short text for people, `time` its main time."
)
class GNode:
    id: strawberry.ID
    kind: GNodeKind
    placeholder: bool
    label: str
    time: str | None
    properties: JSON

    @strawberry.field(
        description="Who wrote the node: the local collector (`git`, `logs`, ...) or `token:<name>` "
        "of the remote sender whose write created it; null for nodes written before writers were recorded."
    )
    async def writer(self, info: Info) -> str | None:
        return (await _provenance(info, str(self.id))).writer

    @strawberry.field(
        description="Property keys written by another writer than the node's own, with that writer."
    )
    async def owners(self, info: Info) -> list[GOwner]:
        found = await _provenance(info, str(self.id))
        return [GOwner(key=k, writer=w) for k, w in sorted(found.owners.items())]

    @strawberry.field(
        description="Values other writers gave that differ from the stored facts, kept beside them "
        "(never as facts)."
    )
    async def claims(self, info: Info) -> list[GClaim]:
        found = await _provenance(info, str(self.id))
        return [GClaim(key=c.key, writer=c.writer, value=c.value) for c in found.claims]

    @classmethod
    def of(cls, node: model.Node) -> GNode:
        return cls(
            id=strawberry.ID(node.id),
            kind=GNodeKind(node.kind.value),
            placeholder=node.placeholder,
            label=node_label(node),
            time=node_time(node),
            properties=JSON(node.props),
        )


@strawberry.type(name="Edge", description="A stored edge, read source -kind-> target.")
class GEdge:
    source: strawberry.ID
    target: strawberry.ID
    kind: GEdgeKind
    properties: JSON

    @classmethod
    def of(cls, edge: model.Edge) -> GEdge:
        return cls(
            source=strawberry.ID(edge.src),
            target=strawberry.ID(edge.dst),
            kind=GEdgeKind(edge.kind.value),
            properties=JSON(edge.props),
        )


def _edge_json(e: model.Edge) -> dict[str, Any]:
    return {"source": e.src, "target": e.dst, "kind": e.kind.value, "properties": e.props}


@strawberry.type(description="Nodes and edges of an answer; `depths` maps node id -> hops from the start.")
class Graph:
    """Resolved lazily from one store answer: only the fields a query selects are built."""

    sub: strawberry.Private[Subgraph]
    end_cursor: str | None = strawberry.field(
        default=None, description="neighbors only: pass as `after` for the next page; null on the last page."
    )

    @strawberry.field
    def nodes(self) -> list[GNode]:
        return [GNode.of(n) for n in self.sub.nodes]

    @strawberry.field
    def edges(self) -> list[GEdge]:
        return [GEdge.of(e) for e in self.sub.edges]

    @strawberry.field
    def depths(self) -> JSON:
        return JSON(dict(self.sub.depth))

    @strawberry.field
    def truncated(self) -> bool:
        return self.sub.truncated

    @strawberry.field(
        description="The whole answer as one JSON value {nodes, edges, depths, truncated} with the same field "
        "names as Node and Edge: for large graphs it skips per-field resolution (several times faster)."
    )
    def compact(self) -> JSON:
        return JSON(
            {
                "nodes": [node_json(n) for n in self.sub.nodes],
                "edges": [_edge_json(e) for e in self.sub.edges],
                "depths": self.sub.depth,
                "truncated": self.sub.truncated,
            }
        )

    @classmethod
    def of(cls, sub: Subgraph) -> Graph:
        return cls(sub=sub)


@strawberry.type
class NodeEdge:
    cursor: str
    node: GNode


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class NodeConnection:
    edges: list[NodeEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class AuditView:
    audit_id: str
    record: GNode | None
    commit: GNode | None
    workloads: list[GNode]
    trace: GNode | None
    runs: list[GNode]
    logs: list[GNode]


@strawberry.type
class TrailEntry:
    time: str | None
    node: GNode
    via: str | None


@strawberry.type
class Stats:
    counts: JSON


# --------------------------------------------------------------------------- argument checks


def _bounded(name: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ApiError(
            ErrorCode.BAD_INPUT, f"{name} must be between {low} and {high}, got {value}", argument=name
        )
    return value


def _edge_kinds(names: Sequence[str] | None) -> list[EdgeKind] | None:
    if names is None:
        return None
    kinds: list[EdgeKind] = []
    for name in names:
        try:
            kinds.append(EdgeKind(name.strip().upper()))
        except ValueError:
            raise ApiError(
                ErrorCode.BAD_INPUT,
                f"unknown edge kind {clip(name)!r}; known: {', '.join(k.value for k in EdgeKind)}",
                argument="edgeKinds",
            ) from None
    if not kinds:
        raise ApiError(ErrorCode.BAD_INPUT, "edgeKinds is empty; leave it out to follow every kind")
    return kinds


_NODE_KINDS = {k.value.lower(): k for k in NodeKind} | {k.prefix: k for k in NodeKind}


def _node_kinds(names: Sequence[str] | None) -> list[NodeKind] | None:
    if not names:
        return None
    out: list[NodeKind] = []
    for name in names:
        kind = _NODE_KINDS.get(name.strip().lower())
        if kind is None:
            raise ApiError(
                ErrorCode.BAD_INPUT,
                f"unknown node kind {clip(name)!r}; known: {', '.join(k.value for k in NodeKind)}",
                argument="kinds",
            )
        out.append(kind)
    return out


# --------------------------------------------------------------------------- search cursors
# An edge cursor is (store cursor a page started from, items to skip), so any edge can be resumed from
# while sequential paging stays on the store's own cursors.


def _encode_cursor(store_after: str | None, skip: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([store_after, skip]).encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[str | None, int]:
    if not cursor:
        return None, 0
    try:
        store_after, skip = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if (
            (store_after is None or isinstance(store_after, str))
            and isinstance(skip, int)
            and 0 <= skip <= MAX_PAGE
        ):
            return store_after, skip
    except (ValueError, TypeError, binascii.Error, RecursionError):
        pass
    raise ApiError(
        ErrorCode.BAD_INPUT,
        "invalid cursor; pass an endCursor or cursor from an earlier answer",
        argument="after",
    )


# --------------------------------------------------------------------------- work done in the pool


def _search(
    store: LineageStore, text: str, kinds: list[NodeKind] | None, first: int, after: str | None
) -> NodeConnection:
    store_after, skip = _decode_cursor(after)
    try:
        page = store.search(text, kinds, first=skip + first, after=store_after)
    except InvalidCursor:
        raise ApiError(
            ErrorCode.BAD_INPUT, "invalid cursor; pass an endCursor from an earlier answer", argument="after"
        ) from None
    edges: list[NodeEdge] = []
    for pos, node in enumerate(page.nodes[skip:], start=skip + 1):
        last_of_page = pos == len(page.nodes) and page.end_cursor is not None
        cursor = _encode_cursor(page.end_cursor, 0) if last_of_page else _encode_cursor(store_after, pos)
        edges.append(NodeEdge(cursor=cursor, node=GNode.of(node)))
    end = edges[-1].cursor if edges else None
    return NodeConnection(
        edges=edges,
        page_info=PageInfo(has_next_page=page.end_cursor is not None, end_cursor=end),
        total_count=page.total,
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


def _audit(store: LineageStore, raw: str) -> AuditView | None:
    try:
        parsed = parse_audit_id(raw)
    except AuditIdError as exc:
        raise ApiError(
            ErrorCode.BAD_AUDIT_ID, f"malformed audit id: {exc.reason}", reason=exc.reason, value=clip(raw)
        ) from None
    audit_id = model.audit_node_id(parsed)
    wanted = [audit_id]
    if parsed.commit:
        wanted.append(model.commit_node_id(parsed.commit))
    if parsed.trace:
        wanted.append(model.trace_node_id(parsed.trace))
    found = {n.id: n for n in store.get_many(wanted)}
    if not found:
        return None
    record = found.get(audit_id)
    commit = found.get(model.commit_node_id(parsed.commit)) if parsed.commit else None
    trace = found.get(model.trace_node_id(parsed.trace)) if parsed.trace else None

    def linked(
        node: model.Node | None, direction: model.Direction, kinds: list[EdgeKind]
    ) -> list[model.Node]:
        if node is None:
            return []
        return store.neighbors(node.id, direction, kinds, first=AUDIT_LIST_LIMIT).nodes

    annotated = linked(record, model.Direction.DOWNSTREAM, [EdgeKind.ANNOTATES])
    in_trace = linked(trace, model.Direction.UPSTREAM, [EdgeKind.IN_TRACE])
    runs = _unique(
        [n for n in annotated if n.kind is NodeKind.PIPELINE_RUN]
        + linked(commit, model.Direction.DOWNSTREAM, [EdgeKind.TRIGGERED])
        + [n for n in in_trace if n.kind is NodeKind.PIPELINE_RUN]
    )
    logs = _unique(
        linked(record, model.Direction.UPSTREAM, [EdgeKind.CARRIES])
        + [n for n in in_trace if n.kind is NodeKind.LOG_EVENT]
    )
    logs.sort(key=lambda n: (node_time(n) or "", n.id))
    return AuditView(
        audit_id=parsed.canonical,
        record=GNode.of(record) if record else None,
        commit=GNode.of(commit) if commit else None,
        workloads=[GNode.of(n) for n in annotated if n.kind is NodeKind.WORKLOAD],
        trace=GNode.of(trace) if trace else None,
        runs=[GNode.of(n) for n in runs],
        logs=[GNode.of(n) for n in logs[:AUDIT_LIST_LIMIT]],
    )


def _unique(nodes: Iterable[model.Node]) -> list[model.Node]:
    return list({n.id: n for n in nodes}.values())


def _trail_anchor(store: LineageStore, ref: str) -> model.Node:
    """The node a trail starts from; an audit id never stored falls back to its commit, then its trace."""
    node_id = reference_id(store, ref)
    node = store.get(node_id)
    if node is None and node_id.startswith("audit:"):
        parsed = parse_audit_id(node_id.removeprefix("audit:"))
        fallbacks = [
            model.commit_node_id(parsed.commit) if parsed.commit else None,
            model.trace_node_id(parsed.trace) if parsed.trace else None,
        ]
        node = next(iter(store.get_many([f for f in fallbacks if f])), None)
    if node is None:
        raise ApiError(
            ErrorCode.NOT_FOUND, f"no node {clip(node_id)!r} in the lineage store", id=clip(node_id)
        )
    return node


def _trail(store: LineageStore, ref: str, depth: int) -> list[TrailEntry]:
    anchor = _trail_anchor(store, ref)
    down = store.lineage(anchor.id, model.Direction.DOWNSTREAM, depth, TRAIL_EDGE_KINDS, TRAIL_LIMIT)
    up = store.lineage(anchor.id, model.Direction.UPSTREAM, depth, TRAIL_EDGE_KINDS, TRAIL_LIMIT)
    depths = dict(up.depth)
    for node_id, d in down.depth.items():
        depths[node_id] = min(d, depths.get(node_id, d))
    nodes = {n.id: n for n in [*up.nodes, *down.nodes]}
    via: dict[str, str] = {}
    for e in [*down.edges, *up.edges]:
        for here, there in ((e.dst, e.src), (e.src, e.dst)):
            if here not in via and here in depths and depths.get(there) == depths[here] - 1:
                via[here] = e.kind.value
    entries = [TrailEntry(time=node_time(n), node=GNode.of(n), via=via.get(n.id)) for n in nodes.values()]
    entries.sort(key=lambda t: (t.time is None, t.time or "", depths[str(t.node.id)], str(t.node.id)))
    return entries


# --------------------------------------------------------------------------- the query root


@strawberry.type
class Query:
    @strawberry.field(
        description="A node by id (`commit:<sha>`, `workload:Deployment/ns/name`, ...); null if absent."
    )
    async def node(self, info: Info, id: strawberry.ID) -> GNode | None:
        found = await _with_store(info, lambda s: s.get(str(id)))
        return GNode.of(found) if found else None

    @strawberry.field(
        description="A commit by full sha or unique prefix (>= 4 hex chars); AMBIGUOUS if several match."
    )
    async def commit(self, info: Info, sha: str) -> GNode | None:
        found = await _with_store(info, lambda s: find_commit(s, sha))
        return GNode.of(found) if found else None

    @strawberry.field(
        description="An audit id with its commit, workloads, trace, runs and logs; BAD_AUDIT_ID if malformed."
    )
    async def audit(self, info: Info, audit_id: str) -> AuditView | None:
        return await _with_store(info, lambda s: _audit(s, audit_id))

    @strawberry.field(
        description="What flows from (DOWNSTREAM) or into (UPSTREAM) a node, up to `depth` hops."
    )
    async def lineage(
        self,
        info: Info,
        from_: Annotated[strawberry.ID, strawberry.argument(name="from")],
        direction: Direction = Direction.DOWNSTREAM,
        depth: int = 2,
        edge_kinds: list[str] | None = None,
        limit: int = 10_000,
    ) -> Graph:
        _bounded("depth", depth, 0, MAX_DEPTH)
        _bounded("limit", limit, 1, MAX_LINEAGE_LIMIT)
        kinds = _edge_kinds(edge_kinds)

        def run(store: LineageStore) -> Graph:
            node_id = reference_id(store, str(from_))
            sub = store.lineage(node_id, direction.model, depth, kinds, limit)
            if not sub.nodes:
                raise ApiError(
                    ErrorCode.NOT_FOUND, f"no node {clip(node_id)!r} in the lineage store", id=clip(node_id)
                )
            return Graph.of(sub)

        return await _with_store(info, run)

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
        _bounded("maxLength", max_length, 1, MAX_PATH)

        def run(store: LineageStore) -> Graph | None:
            a, b = resolve_reference(store, str(from_)), resolve_reference(store, str(to))
            sub = store.path(a.id, b.id, max_length)
            return Graph.of(sub) if sub is not None else None

        return await _with_store(info, run)

    @strawberry.field(description="Full-text search over ids and key properties, as a cursor connection.")
    async def search(
        self,
        info: Info,
        text: str,
        kinds: list[str] | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> NodeConnection:
        if not text.strip():
            raise ApiError(ErrorCode.BAD_INPUT, "search text is empty", argument="text")
        _bounded("first", first, 1, MAX_PAGE)
        node_kinds = _node_kinds(kinds)
        return await _with_store(info, lambda s: _search(s, text, node_kinds, first, after))

    @strawberry.field(
        description="Edges touching a node (stored direction) one page at a time; see Graph.endCursor."
    )
    async def neighbors(
        self,
        info: Info,
        id: strawberry.ID,
        direction: Direction = Direction.BOTH,
        edge_kinds: list[str] | None = None,
        first: int = 100,
        after: str | None = None,
    ) -> Graph:
        _bounded("first", first, 1, MAX_NEIGHBORS)
        kinds = _edge_kinds(edge_kinds)
        return await _with_store(info, lambda s: _neighbors(s, str(id), direction, kinds, first, after))

    @strawberry.field(description="Everything linked to an audit id, commit or trace, ordered by time.")
    async def audit_trail(self, info: Info, id: strawberry.ID, depth: int = 6) -> list[TrailEntry]:
        _bounded("depth", depth, 1, MAX_DEPTH)
        return await _with_store(info, lambda s: _trail(s, str(id), depth))

    @strawberry.field(description="Node count per kind, plus edges, placeholders and rejected records.")
    async def stats(self, info: Info) -> Stats:
        return Stats(counts=JSON(await _with_store(info, lambda s: s.counts())))


class LineageSchema(strawberry.Schema):
    def process_errors(self, errors: list[Any], execution_context: Any = None) -> None:
        """Logging happens in ``StructuredErrors`` (unexpected errors only), not for every user mistake."""


def build_schema(limits: LimitSettings | None = None) -> strawberry.Schema:
    """The schema with guards against queries built to be expensive (depth, tokens, aliases, page size,
    time); settings from ``LIUBAI_QUERY_*`` (see ``liubai.api.limits``)."""
    return LineageSchema(
        query=merge_types("Query", (Query, ClusterQuery)),
        extensions=[*graphql_extensions(limits or LimitSettings()), StructuredErrors],
    )


schema = build_schema()
