"""The join of OTLP spans: one Span node per span, in its trace, under its parent.

Every span is its own node (``span:<trace>:<span>``), not folded into per-operation aggregates: a span
costs the store what a log line costs, and the store holds every log line as a node already; folding
would save rows (``bench/span_join.py``, docs/performance.md) but lose what a Jaeger or Marquez user
asks of a trace — which call failed, under which parent, which log lines it wrote — and an aggregate's
count cannot be kept under the store's merge rule (a re-ingest must change nothing, while a trace whose
spans arrive in two batches must add up). The id is the span's own, so re-ingesting is idempotent.

``Span -IN_TRACE-> Trace``, ``Span -CHILD_OF-> parent Span`` (a parent not ingested yet is the store's
placeholder), a record-level audit id ``-CARRIES->`` its audit record, and its Resource ``-EMITTED->`` it,
linked to the Pod, Container, Workload and Commit the attributes name (``liubai.lineage.join_resource``). A span whose
status is ERROR is found from its trace like a log line of that trace (the audit view lists them).
"""

from __future__ import annotations

from liubai.lineage.join_audit import add_audit, add_trace
from liubai.lineage.join_resource import add_resource
from liubai.lineage.model import EdgeKind, GraphBatch, NodeKind, Props, span_node_id
from liubai.lineage.records import SpanRecord

__all__ = ["join_span"]


def join_span(batch: GraphBatch, s: SpanRecord) -> None:
    sid = span_node_id(s.trace_id, s.span_id)
    start = s.start
    props: Props = {
        "source": s.source,
        "trace_id": s.trace_id,
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "root": True if not s.parent_span_id else None,
        "name": s.name,
        "kind": s.kind,
        "service": s.service,
        "start": start,
        "end": s.end,
        "status": s.status,
        "status_message": s.status_message,
        "attributes": s.attributes or None,
        "audit_id": s.audit_id,
        "first_seen": start,
        "last_seen": s.end or start,
    }
    location = s.location or sid
    if s.resource:
        resource, own = add_resource(batch, s.resource, s.source, location, start)
        props.update(own)
        batch.add_edge(resource, EdgeKind.EMITTED, sid)
    batch.put_node(sid, NodeKind.SPAN, {k: v for k, v in props.items() if v is not None})
    batch.add_edge(sid, EdgeKind.IN_TRACE, add_trace(batch, s.trace_id, start))
    if s.parent_span_id:
        batch.add_edge(sid, EdgeKind.CHILD_OF, span_node_id(s.trace_id, s.parent_span_id))
    if s.audit_id:
        audit = add_audit(batch, s.audit_id, s.source, location, seen_at=start)
        if audit is not None:
            batch.add_edge(sid, EdgeKind.CARRIES, audit.node_id)
