"""The lineage graph's vocabulary: node and edge kinds, readable ids, the audit id, and graph batches.

Everything that crosses a stage boundary (collector -> join -> store -> API) is one of the types named
here, so that every store and every front end agrees on what a node id or an audit id means. The node id
builders live here; kinds (``liubai.lineage.kinds``), the audit id (``liubai.lineage.audit_id``) and
batches (``liubai.lineage.batch``) live in their own modules and are re-exported, so one import serves.
"""

from __future__ import annotations

from liubai.lineage.audit_id import (
    AUDIT_ID_ANNOTATION,
    AUDIT_ID_ENV,
    COMMIT_KEYS,
    AuditId,
    AuditIdError,
    parse_audit_id,
    parse_traceparent,
)
from liubai.lineage.batch import (
    Edge,
    GraphBatch,
    Node,
    Props,
    RejectedRecord,
    dedupe_batch,
    merge_into,
    merge_props,
)
from liubai.lineage.kinds import Direction, EdgeKind, NodeKind, node_kind_of

__all__ = [
    "AUDIT_ID_ANNOTATION",
    "AUDIT_ID_ENV",
    "COMMIT_KEYS",
    "AuditId",
    "AuditIdError",
    "Direction",
    "Edge",
    "EdgeKind",
    "GraphBatch",
    "Node",
    "NodeKind",
    "Props",
    "RejectedRecord",
    "admission_node_id",
    "audit_node_id",
    "commit_node_id",
    "container_file_node_id",
    "container_node_id",
    "dedupe_batch",
    "file_node_id",
    "log_node_id",
    "merge_into",
    "merge_props",
    "node_kind_of",
    "parse_audit_id",
    "parse_traceparent",
    "pod_node_id",
    "process_node_id",
    "repo_node_id",
    "resource_node_id",
    "run_node_id",
    "span_node_id",
    "trace_node_id",
    "workload_node_id",
]


def repo_node_id(url_or_path: str) -> str:
    return f"repo:{url_or_path}"


def commit_node_id(sha: str) -> str:
    return f"commit:{sha.lower()}"


def workload_node_id(kind: str, namespace: str, name: str, cluster: str | None = None) -> str:
    """A Kubernetes object as Git declares it and a cluster runs it: one node for both.

    ``cluster`` names the cluster when the user named one (``--cluster``) so that objects of different
    clusters never merge; unnamed, the id is the one Git ingest writes, so live and declared objects meet.
    """
    key = f"{kind}/{namespace}/{name}"
    return f"workload:{cluster}:{key}" if cluster else f"workload:{key}"


def pod_node_id(uid: str) -> str:
    """A Pod by its uid: unique across clusters and restarts under one name, and all a node agent
    reading a cgroup path knows of it."""
    return f"pod:{uid}"


def admission_node_id(request_uid: str) -> str:
    """One admission decision, by the AdmissionReview request uid the API server gave it."""
    return f"admission:{request_uid}"


def audit_node_id(audit_id: AuditId) -> str:
    return f"audit:{audit_id.canonical}"


def trace_node_id(trace_id: str) -> str:
    return f"trace:{trace_id}"


def log_node_id(source: str, record_id: str) -> str:
    return f"log:{source}:{record_id}"


def resource_node_id(digest: str) -> str:
    """An OpenTelemetry resource (what emitted logs and spans) by a digest of its attribute set: the same
    attributes from any exporter or shipper are one node, and a changed set (a new revision) a new one."""
    return f"resource:{digest}"


def span_node_id(trace_id: str, span_id: str) -> str:
    """A span by its trace and its own id: OTLP makes a span id unique only within its trace, and the
    pair is what a log line written in the span carries, so it links without a lookup."""
    return f"span:{trace_id.lower()}:{span_id.lower()}"


def run_node_id(host: str, root_pid: int, start_ns: int) -> str:
    return f"run:{host}:{root_pid}:{start_ns}"


def process_node_id(host: str, pid: int, start_ns: int) -> str:
    return f"proc:{host}:{pid}:{start_ns}"


def file_node_id(host: str, path: str) -> str:
    return f"file:{host}:{path}"


def container_node_id(container_id: str) -> str:
    """A container by its runtime id (64 hex for containerd, CRI-O and Docker): what the kubelet reports
    in a Pod's status (without its ``containerd://`` scheme) and what a node agent reads off a cgroup."""
    return f"container:{container_id}"


def container_file_node_id(host: str, container_id: str, path: str) -> str:
    """A file as one container sees it: its ``/etc/passwd`` is neither the host's nor another
    container's, so the container is part of the id (``file:<host>:<path>`` stays the host's file)."""
    return f"file:{host}:container/{container_id}:{path}"
