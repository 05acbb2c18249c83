"""The one assertion the log tests share: every line is linked to exactly its trace/commit, and no other."""

from __future__ import annotations

import json

from liubai.lineage.model import (
    EdgeKind,
    NodeKind,
    audit_node_id,
    commit_node_id,
    parse_audit_id,
    span_node_id,
    trace_node_id,
)
from liubai.lineage.store import LineageStore
from tests.logs.dataset import Line


def log_ids_by_message(store: LineageStore) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for page in store.iter_nodes():
        for n in page:
            if n.kind is NodeKind.LOG_EVENT:
                found.setdefault(str(n.props.get("message")), []).append(n.id)
    return found


def assert_exact_lineage(store: LineageStore, lines: list[Line], *, otlp_span: str | None = None) -> None:
    """Each line is one LogEvent whose edges are exactly those its ids name; audit records reach exactly
    the commit (and trace) they name. ``otlp_span``: the span id an OTLP export (``dataset.to_otlp``) gave
    the lines of a traceparent, each then in that span of its trace."""
    by_message = log_ids_by_message(store)
    assert sum(len(v) for v in by_message.values()) == len(lines), "a log line is missing or doubled"
    out = out_edges(store)
    for line in lines:
        ids = by_message.get(line.message)
        assert ids is not None and len(ids) == 1, f"{line.message}: {ids}"
        expected: set[tuple[EdgeKind, str]] = set()
        if line.trace:
            expected.add((EdgeKind.IN_TRACE, trace_node_id(line.trace)))
            if otlp_span is not None and line.kind == "trace" and "traceparent" in line.fields:
                expected.add((EdgeKind.IN_SPAN, span_node_id(line.trace, otlp_span)))
        if line.commit:
            raw = line.fields.get("x-gitops-audit-id") or line.fields["audit_id"]
            audit = parse_audit_id(raw)
            aid = audit_node_id(audit)
            expected.add((EdgeKind.CARRIES, aid))
            audit_edges = {(EdgeKind.FOR_COMMIT, commit_node_id(line.commit))}
            if audit.trace:
                audit_edges.add((EdgeKind.CORRELATES, trace_node_id(audit.trace)))
            assert out[aid] == audit_edges, f"{line.message}: audit {aid} links {out[aid]}"
        got = out.get(ids[0], set())
        assert got == expected, f"{line.message} ({line.kind}): linked {got}, expected {expected}"


def graph_of(store: LineageStore) -> tuple[set[tuple[str, str, str, bool]], set[tuple[str, str, str, str]]]:
    """Node and edge sets, with properties, for whole-graph equality."""
    nodes = {
        (n.id, n.kind.value, json.dumps(n.props, sort_keys=True, default=str), n.placeholder)
        for page in store.iter_nodes()
        for n in page
    }
    edges = {
        (e.src, e.kind.value, e.dst, json.dumps(e.props, sort_keys=True, default=str))
        for page in store.iter_edges()
        for e in page
    }
    return nodes, edges


def out_edges(store: LineageStore) -> dict[str, set[tuple[EdgeKind, str]]]:
    out: dict[str, set[tuple[EdgeKind, str]]] = {}
    for page in store.iter_edges():
        for e in page:
            out.setdefault(e.src, set()).add((e.kind, e.dst))
    return out
