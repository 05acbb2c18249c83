"""The GraphQL object types answers are built from: nodes, edges, graphs, pages, audit views.

Each is built straight from what the store returned; the few fields that need another store call (a node's
writer, owners and claims) resolve lazily, only when a query selects them.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from liubai.api.nodes import node_json, node_label, node_time
from liubai.api.schema_context import with_store
from liubai.api.schema_nodes import kind_types
from liubai.api.schema_pages import PageInfo
from liubai.lineage import model
from liubai.lineage.model import EdgeKind, NodeKind
from liubai.lineage.provenance import Provenance
from liubai.lineage.store.base import Subgraph

__all__ = [
    "AuditView",
    "Direction",
    "GEdge",
    "GEdgeKind",
    "GNode",
    "GNodeKind",
    "GRejectedRecord",
    "Graph",
    "NeighborConnection",
    "NeighborEdge",
    "NodeConnection",
    "NodeEdge",
    "PageInfo",
    "RejectedRecordConnection",
    "RejectedRecordEdge",
    "Stats",
    "TrailEntry",
    "node_types",
]


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
    found = await with_store(info, lambda store: store.provenance([node_id]))
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


@strawberry.interface(
    name="Node",
    description="A lineage node; `label` is short text for people, `time` its main time. Each kind is its "
    "own type with typed fields (`... on Commit { sha }`); every property, typed or not, is in `properties`.",
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
        """The node as the object type of its kind."""
        made: GNode = _KIND_TYPES[node.kind](
            id=strawberry.ID(node.id),
            kind=GNodeKind(node.kind.value),
            placeholder=node.placeholder,
            label=node_label(node),
            time=node_time(node),
            properties=JSON(node.props),
        )
        return made


_KIND_DOCS: dict[NodeKind, str] = {
    NodeKind.REPO: "A Git repository.",
    NodeKind.COMMIT: "A Git commit; a placeholder until its own record is ingested.",
    NodeKind.WORKLOAD: "A Kubernetes object: declared in Git, seen live in a cluster, or both.",
    NodeKind.AUDIT_RECORD: "An audit id (commit and trace) as stamped on objects, runs and log lines.",
    NodeKind.TRACE: "A W3C trace.",
    NodeKind.LOG_EVENT: "One log line.",
    NodeKind.PIPELINE_RUN: "A traced command (a CI job step, a deploy).",
    NodeKind.PROCESS: "One process seen by the tracer or node agent.",
    NodeKind.FILE: "A file a process read, wrote or executed.",
    NodeKind.POD: "A Kubernetes Pod as the cluster reported it.",
    NodeKind.ADMISSION: "One admission webhook decision.",
    NodeKind.CONTAINER: "A container as the kubelet and the node agent saw it.",
    NodeKind.SPAN: "An OpenTelemetry span.",
    NodeKind.RESOURCE: "An OpenTelemetry resource: what emitted logs and spans.",
}
_KIND_TYPES = kind_types(GNode, lambda kind: _KIND_DOCS[kind])


def node_types() -> list[type]:
    """Every kind's object type, for the schema's ``types`` (so each is in it, even if no answer names it)."""
    return list(_KIND_TYPES.values())


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
        default=None,
        description="neighbors only: pass as `after` for the next page; null on the last page.",
        deprecation_reason="Page with `neighborConnection`: a cursor per edge and a complete `pageInfo`.",
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


@strawberry.type(description="A node of a page and the cursor to resume after it.")
class NodeEdge:
    cursor: str
    node: GNode


@strawberry.type(description="One page of nodes (Relay cursor connection).")
class NodeConnection:
    edges: list[NodeEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Matches in all pages.")


@strawberry.type(description="A neighbour of a node, the stored edge joining them, and its cursor.")
class NeighborEdge:
    cursor: str
    node: GNode = strawberry.field(
        description="The node at the other end of `link` (the node itself for a loop)."
    )
    link: GEdge = strawberry.field(description="The stored edge, in its stored direction.")


@strawberry.type(description="One page of the edges touching a node (Relay cursor connection).")
class NeighborConnection:
    edges: list[NeighborEdge]
    page_info: PageInfo


@strawberry.type(name="RejectedRecord", description="Input that could not become graph facts, kept with why.")
class GRejectedRecord:
    source: str = strawberry.field(description="The collector or source name it came from.")
    location: str = strawberry.field(description="Where in the source (file:line, object, offset).")
    reason: str = strawberry.field(description="Why it was rejected.")
    raw: str = strawberry.field(description="The input as read (may be clipped).")


@strawberry.type(description="A rejected record of a page and the cursor to resume after it.")
class RejectedRecordEdge:
    cursor: str
    node: GRejectedRecord


@strawberry.type(description="One page of rejected records, oldest first (Relay cursor connection).")
class RejectedRecordConnection:
    edges: list[RejectedRecordEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Rejected records in all pages.")


@strawberry.type
class AuditView:
    audit_id: str
    record: GNode | None
    commit: GNode | None
    workloads: list[GNode]
    pods: list[GNode] = strawberry.field(description="Pods that carry the audit id, as the cluster reported.")
    admissions: list[GNode] = strawberry.field(
        description="Admission decisions that stamped or kept the id (who applied what, when), oldest first."
    )
    trace: GNode | None
    runs: list[GNode]
    logs: list[GNode]
    error_spans: list[GNode] = strawberry.field(
        description="Spans with status ERROR in the trace or carrying the id, oldest first."
    )
    resources: list[GNode] = strawberry.field(
        description="Telemetry resources (what emitted logs and spans) whose attributes carry the id."
    )


@strawberry.type
class TrailEntry:
    time: str | None
    node: GNode
    via: str | None


@strawberry.type
class Stats:
    counts: JSON
