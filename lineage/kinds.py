"""Node and edge kinds: what a node is, how two nodes relate, and which way lineage reads an edge.

A node id names its kind by its prefix (``commit:<sha>``), so ``node_kind_of`` reads a kind off any id.
"""

from __future__ import annotations

from enum import StrEnum

from liubai.lineage.text import clip

__all__ = ["Direction", "EdgeKind", "NodeKind", "node_kind_of"]


class NodeKind(StrEnum):
    REPO = "Repo"
    COMMIT = "Commit"
    WORKLOAD = "Workload"
    AUDIT_RECORD = "AuditRecord"
    TRACE = "Trace"
    LOG_EVENT = "LogEvent"
    PIPELINE_RUN = "PipelineRun"
    PROCESS = "Process"
    FILE = "File"
    POD = "Pod"
    ADMISSION = "Admission"
    CONTAINER = "Container"
    SPAN = "Span"
    RESOURCE = "Resource"

    @property
    def prefix(self) -> str:
        return _PREFIX_BY_KIND[self]


_PREFIX_BY_KIND: dict[NodeKind, str] = {
    NodeKind.REPO: "repo",
    NodeKind.COMMIT: "commit",
    NodeKind.WORKLOAD: "workload",
    NodeKind.AUDIT_RECORD: "audit",
    NodeKind.TRACE: "trace",
    NodeKind.LOG_EVENT: "log",
    NodeKind.PIPELINE_RUN: "run",
    NodeKind.PROCESS: "proc",
    NodeKind.FILE: "file",
    NodeKind.POD: "pod",
    NodeKind.ADMISSION: "admission",
    NodeKind.CONTAINER: "container",
    NodeKind.SPAN: "span",
    NodeKind.RESOURCE: "resource",
}
_KIND_BY_PREFIX = {p: k for k, p in _PREFIX_BY_KIND.items()}


class EdgeKind(StrEnum):
    """Edges read actor -> action -> target (DESIGN.md section 3)."""

    HAS_COMMIT = "HAS_COMMIT"
    PARENT = "PARENT"
    DECLARES = "DECLARES"
    FOR_COMMIT = "FOR_COMMIT"
    ANNOTATES = "ANNOTATES"
    CORRELATES = "CORRELATES"
    IN_TRACE = "IN_TRACE"
    CARRIES = "CARRIES"
    TRIGGERED = "TRIGGERED"
    RAN = "RAN"
    CHILD_OF = "CHILD_OF"
    EXECUTED = "EXECUTED"
    READ = "READ"
    WROTE = "WROTE"
    INSTANCE_OF = "INSTANCE_OF"
    APPLIES = "APPLIES"
    ADMITTED = "ADMITTED"
    STAMPED = "STAMPED"
    IN_SPAN = "IN_SPAN"
    EMITTED = "EMITTED"

    @property
    def flow_reversed(self) -> bool:
        """True where the stored edge points against the flow declaration -> execution -> logs.

        ``LogEvent -IN_TRACE-> Trace`` is stored log-first, but the log line *follows from* the trace;
        lineage traversal walks such edges backwards so that "downstream of a commit" reaches its audit
        records, workloads, runs, processes, files, traces and log lines.
        """
        return self in _FLOW_REVERSED


_FLOW_REVERSED = frozenset(
    {
        EdgeKind.PARENT,
        EdgeKind.FOR_COMMIT,
        EdgeKind.IN_TRACE,
        EdgeKind.CARRIES,
        EdgeKind.CHILD_OF,
        EdgeKind.INSTANCE_OF,  # Pod -> its ReplicaSet -> its Deployment: the workload comes first
        EdgeKind.APPLIES,  # a Flux Kustomization / Argo CD Application -> the commit it applies
        EdgeKind.STAMPED,  # an admission -> the audit record it stamped on the object
        EdgeKind.IN_SPAN,  # a log line -> the span it was written in
    }
)


class Direction(StrEnum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    BOTH = "both"


def node_kind_of(node_id: str) -> NodeKind:
    """The kind named by a node id's prefix; ValueError for an id of no known kind."""
    prefix, sep, rest = node_id.partition(":")
    kind = _KIND_BY_PREFIX.get(prefix)
    if not sep or not rest or kind is None:
        raise ValueError(f"not a liubai node id (want '<kind>:<key>'): {clip(node_id)!r}")
    return kind
