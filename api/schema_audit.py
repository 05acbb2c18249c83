"""Following one change: the ``audit`` and ``auditTrail`` query fields.

``audit`` gathers what an audit id joins (its record, commit, workloads, trace, runs, logs, failed spans and
the telemetry resources stamped with it) from a
handful of neighbour calls; ``auditTrail`` walks both ways from an audit id, commit or trace and orders what
it meets by time, saying for each node the edge it was reached by.
"""

from __future__ import annotations

from collections.abc import Iterable

import strawberry
from strawberry.types import Info

from liubai.api.errors import ApiError, ErrorCode
from liubai.api.nodes import node_time
from liubai.api.schema_arguments import bounded
from liubai.api.schema_context import with_store
from liubai.api.schema_types import AuditView, GNode, TrailEntry
from liubai.lineage import model
from liubai.lineage.model import AuditIdError, EdgeKind, NodeKind, parse_audit_id
from liubai.lineage.resolve import reference_id
from liubai.lineage.store.base import LineageStore
from liubai.lineage.text import clip

__all__ = ["AuditQueries"]

MAX_TRAIL_DEPTH = 10
AUDIT_LIST_LIMIT = 500
TRAIL_LIMIT = 5_000
# A trail follows one change through execution and logs; walking into sibling commits would drown it.
TRAIL_EDGE_KINDS = [k for k in EdgeKind if k not in (EdgeKind.PARENT, EdgeKind.HAS_COMMIT)]


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
    carriers = linked(record, model.Direction.UPSTREAM, [EdgeKind.CARRIES])
    logs = _unique(n for n in [*carriers, *in_trace] if n.kind is NodeKind.LOG_EVENT)
    logs.sort(key=lambda n: (node_time(n) or "", n.id))
    error_spans = _unique(
        n for n in [*carriers, *in_trace] if n.kind is NodeKind.SPAN and n.props.get("status") == "ERROR"
    )
    error_spans.sort(key=lambda n: (node_time(n) or "", n.id))
    admissions = linked(record, model.Direction.UPSTREAM, [EdgeKind.STAMPED])
    admissions.sort(key=lambda n: (node_time(n) or "", n.id))
    return AuditView(
        audit_id=parsed.canonical,
        record=GNode.of(record) if record else None,
        commit=GNode.of(commit) if commit else None,
        workloads=[GNode.of(n) for n in annotated if n.kind is NodeKind.WORKLOAD],
        pods=[GNode.of(n) for n in annotated if n.kind is NodeKind.POD],
        admissions=[GNode.of(n) for n in admissions],
        trace=GNode.of(trace) if trace else None,
        runs=[GNode.of(n) for n in runs],
        logs=[GNode.of(n) for n in logs[:AUDIT_LIST_LIMIT]],
        error_spans=[GNode.of(n) for n in error_spans[:AUDIT_LIST_LIMIT]],
        resources=[GNode.of(n) for n in carriers if n.kind is NodeKind.RESOURCE],
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


@strawberry.type
class AuditQueries:
    """Query fields that follow one audit id, commit or trace; one part of ``liubai.api.schema.Query``."""

    @strawberry.field(
        description="An audit id with its commit, workloads, Pods, admissions, trace, runs, logs, failed spans "
        "and telemetry resources; "
        "BAD_AUDIT_ID if malformed."
    )
    async def audit(self, info: Info, audit_id: str) -> AuditView | None:
        return await with_store(info, lambda s: _audit(s, audit_id))

    @strawberry.field(description="Everything linked to an audit id, commit or trace, ordered by time.")
    async def audit_trail(self, info: Info, id: strawberry.ID, depth: int = 6) -> list[TrailEntry]:
        bounded("depth", depth, 1, MAX_TRAIL_DEPTH)
        return await with_store(info, lambda s: _trail(s, str(id), depth))
