"""The join's audit-id step, shared by every record type that carries an audit id or a trace id.

Audit ids repeat across thousands of log lines, so each distinct raw id is parsed and planned once; a
malformed one becomes a rejected record with the reason, and the record carrying it still lands.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from liubai.lineage.model import (
    AuditId,
    AuditIdError,
    EdgeKind,
    GraphBatch,
    Props,
    RejectedRecord,
    audit_node_id,
    commit_node_id,
    parse_audit_id,
    trace_node_id,
)

__all__ = ["AuditPlan", "add_audit", "add_trace"]


@dataclass(frozen=True, slots=True)
class AuditPlan:
    """What the join derives from one distinct raw audit id: the ids and fixed properties it writes."""

    audit: AuditId
    node_id: str
    props: Props  # shared by every line carrying this raw id: copied or merged, never changed
    commit: tuple[str, Props] | None  # node id and fixed props, shared the same way (``_fixed``)
    trace: tuple[str, Props] | None


def add_audit(
    batch: GraphBatch, raw: str, source: str, location: str, *, seen_at: str | None = None
) -> AuditPlan | None:
    """Add the audit record a raw audit id names (with its commit and trace); None if it is malformed."""
    plan = _audit_plan(raw)
    if isinstance(plan, str):
        batch.rejected.append(RejectedRecord(source, location, f"malformed audit id: {plan}", raw))
        return None
    _add_planned_audit(batch, plan, seen_at)
    return plan


@lru_cache(maxsize=65536)
def _audit_plan(raw: str) -> AuditPlan | str:
    """Audit ids repeat across thousands of log lines: plan each distinct one once (or keep its reason)."""
    try:
        return _plan_of(parse_audit_id(raw), raw)
    except AuditIdError as exc:
        return exc.reason


def _plan_of(audit: AuditId, raw: str) -> AuditPlan:
    props: Props = {"raw": raw, "canonical": audit.canonical, "commit": audit.commit, "trace": audit.trace}
    for key, value in audit.extra:
        props[f"x_{key}"] = value
    commit = _fixed(commit_node_id(audit.commit), "sha", audit.commit) if audit.commit else None
    trace = _fixed(trace_node_id(audit.trace), "trace_id", audit.trace) if audit.trace else None
    return AuditPlan(audit, audit_node_id(audit), props, commit, trace)


def _add_planned_audit(batch: GraphBatch, plan: AuditPlan, seen_at: str | None) -> None:
    node_id = plan.node_id
    repeat = batch.add_seen(node_id, plan.props, seen_at)
    # A repeat was added here before from this very plan, so its two edges are there already.
    if plan.commit is not None:
        commit_id, commit_props = plan.commit
        batch.add_seen(commit_id, commit_props, None, placeholder=True)
        if not repeat:
            batch.add_edge(node_id, EdgeKind.FOR_COMMIT, commit_id)
    if plan.trace is not None:
        trace_id, trace_props = plan.trace
        batch.add_seen(trace_id, trace_props, seen_at)
        if not repeat:
            batch.add_edge(node_id, EdgeKind.CORRELATES, trace_id)


@lru_cache(maxsize=8192)
def _fixed(node_id: str, key: str, value: str) -> tuple[str, Props]:
    """A trace's or commit's node id and its one fixed property, one dict shared by all the lines naming
    it, so that ``GraphBatch.add_seen`` recognises repeats."""
    return node_id, {key: value}


def add_trace(batch: GraphBatch, trace_id: str, seen_at: str | None) -> str:
    node_id, props = _fixed(trace_node_id(trace_id), "trace_id", trace_id)
    batch.add_seen(node_id, props, seen_at)
    return node_id
