"""The lineage graph's vocabulary: node and edge kinds, readable ids, the audit id, and graph batches.

Everything that crosses a stage boundary (collector -> join -> store -> API) is one of the types here,
so that every store and every front end agrees on what a node id or an audit id means.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.provenance import LOCAL_WRITER
from liubai.lineage.text import clip

__all__ = [
    "AUDIT_ID_ANNOTATION",
    "AUDIT_ID_ENV",
    "AuditId",
    "AuditIdError",
    "Direction",
    "Edge",
    "EdgeKind",
    "GraphBatch",
    "Node",
    "NodeKind",
    "RejectedRecord",
    "admission_node_id",
    "audit_node_id",
    "commit_node_id",
    "file_node_id",
    "log_node_id",
    "node_kind_of",
    "parse_audit_id",
    "parse_traceparent",
    "pod_node_id",
    "process_node_id",
    "repo_node_id",
    "run_node_id",
    "trace_node_id",
    "workload_node_id",
]

AUDIT_ID_ANNOTATION = "x-gitops-audit-id"
AUDIT_ID_ENV = "X_GITOPS_AUDIT_ID"


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


def run_node_id(host: str, root_pid: int, start_ns: int) -> str:
    return f"run:{host}:{root_pid}:{start_ns}"


def process_node_id(host: str, pid: int, start_ns: int) -> str:
    return f"proc:{host}:{pid}:{start_ns}"


def file_node_id(host: str, path: str) -> str:
    return f"file:{host}:{path}"


# --------------------------------------------------------------------------- audit id

COMMIT_KEYS = ("git-sha256", "git-sha1", "git")
_HEX_COMMIT = re.compile(r"[0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?")
_W3C_TRACE = re.compile(r"[0-9a-fA-F]{32}")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


class AuditIdError(LiubaiError, ValueError):
    """A malformed audit id; ``reason`` says what is wrong in words a user can act on."""

    code = ErrorCode.BAD_AUDIT_ID

    def __init__(self, raw: str, reason: str) -> None:
        super().__init__(f"malformed audit id {clip(raw)!r}: {reason}", reason=reason)
        self.raw = raw
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AuditId:
    """A parsed ``x-gitops-audit-id``: a commit, a trace, or both, plus any unknown parts kept as-is."""

    commit: str | None = None
    commit_key: str = "git-sha256"
    trace: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def canonical(self) -> str:
        parts: list[str] = []
        if self.commit is not None:
            parts.append(f"{self.commit_key}:{self.commit}")
        if self.trace is not None:
            parts.append(f"trace:{self.trace}")
        parts.extend(f"{k}:{v}" for k, v in self.extra)
        return "|".join(parts)

    def __str__(self) -> str:
        return self.canonical


def parse_audit_id(raw: str, *, strict: bool = True) -> AuditId:
    """Parse ``git-sha256:<hex>|trace:<id>[|k:v...]``; part order does not matter.

    Strict (the default) rejects anything ambiguous: empty parts, a part without ``key:value``,
    duplicate keys, two commit parts, a commit that is not 40/64 hex, whitespace inside a part, and an
    id that names neither a commit nor a trace. Non-strict parsing skips bad parts instead of failing
    but still needs a commit or a trace. Commits and W3C (32-hex) trace ids are lower-cased.
    """
    if not isinstance(raw, str):
        raise AuditIdError(repr(raw), f"expected a string, got {type(raw).__name__}")
    text = raw.strip()
    if not text:
        raise AuditIdError(raw, "empty value")
    commit: str | None = None
    commit_key = "git-sha256"
    trace: str | None = None
    extra: list[tuple[str, str]] = []
    seen: set[str] = set()

    for part in text.split("|"):
        try:
            key, value = _split_part(part)
            if key in seen:
                raise ValueError(f"duplicate key {clip(key)!r}")
            if key in COMMIT_KEYS:
                if commit is not None:
                    raise ValueError(f"two commit parts ({commit_key!r} and {clip(key)!r})")
                if not _HEX_COMMIT.fullmatch(value):
                    raise ValueError(f"{key} must be 40 or 64 hex characters, got {clip(value)!r}")
                commit, commit_key = value.lower(), key
            elif key == "trace":
                trace = value.lower() if _W3C_TRACE.fullmatch(value) else value
            else:
                extra.append((key, value))
            seen.add(key)
        except ValueError as exc:
            if strict:
                raise AuditIdError(raw, str(exc)) from None
    if commit is None and trace is None:
        raise AuditIdError(raw, "names neither a commit (git-sha256:/git-sha1:/git:) nor a trace (trace:)")
    return AuditId(commit=commit, commit_key=commit_key, trace=trace, extra=tuple(extra))


def _split_part(part: str) -> tuple[str, str]:
    if not part:
        raise ValueError("empty part (stray '|')")
    key, sep, value = part.partition(":")
    if not sep:
        raise ValueError(f"part {clip(part)!r} is not key:value")
    if not _KEY.fullmatch(key):
        raise ValueError(f"bad key {clip(key)!r}")
    if not value:
        raise ValueError(f"empty value for key {clip(key)!r}")
    if any(c.isspace() for c in value):
        raise ValueError(f"whitespace in value of {clip(key)!r}")
    return key.lower(), value


def parse_traceparent(value: str) -> str | None:
    """The trace id of a W3C ``traceparent`` header, or None if it is not one."""
    m = _TRACEPARENT.fullmatch(value.strip().lower())
    if m is None or m.group(1) == "ff" or set(m.group(2)) == {"0"}:
        return None
    return m.group(2)


# --------------------------------------------------------------------------- graph batches

Props = dict[str, Any]


@dataclass(slots=True)
class Node:
    """A graph node. ``placeholder`` marks a node known only because another record named it."""

    id: str
    kind: NodeKind
    props: Props = field(default_factory=dict)
    placeholder: bool = False

    @classmethod
    def of(cls, node_id: str, props: Mapping[str, Any] | None = None, *, placeholder: bool = False) -> Node:
        return cls(node_id, node_kind_of(node_id), dict(props or {}), placeholder)


@dataclass(slots=True)
class Edge:
    src: str
    kind: EdgeKind
    dst: str
    props: Props = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.src, self.kind.value, self.dst)


@dataclass(slots=True)
class RejectedRecord:
    """Input that could not become graph facts, kept with where it came from and why."""

    source: str
    location: str
    reason: str
    raw: str = ""


@dataclass(slots=True)
class GraphBatch:
    """One unit of store work: facts, rejects and the checkpoints they settle, applied atomically.

    A checkpoint only moves together with the data it covers, so a crash between pulling and storing
    re-reads rather than loses.

    ``writer`` is who writes the batch (``liubai.lineage.provenance``): the store records it on every fact it
    creates and keeps it from overwriting other writers' facts. ``once`` names a checkpoint that must not
    exist yet: the store checks it inside the write transaction and applies nothing (``duplicate``) if
    it does, so concurrent writers of one batch apply it exactly once.
    """

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    checkpoints: dict[tuple[str, str], str] = field(default_factory=dict)
    writer: str = LOCAL_WRITER
    once: tuple[str, str] | None = None
    _node_at: dict[str, Node] = field(default_factory=dict, repr=False, compare=False)
    _edge_at: dict[tuple[str, str, str], Edge] = field(default_factory=dict, repr=False, compare=False)
    # node id -> the shared ``fixed`` props last merged into it by ``add_seen`` (see there)
    _fixed_at: dict[str, Props] = field(default_factory=dict, repr=False, compare=False)

    def add_node(
        self, node_id: str, props: Mapping[str, Any] | None = None, *, placeholder: bool = False
    ) -> None:
        """Add a node, folding a repeat of an id added here before into it with the store's merge rule.

        Thousands of log lines name the same trace and audit record; folding them as they arrive keeps a
        batch the size of what it will store.
        """
        cur = self._node_at.get(node_id)
        if cur is None:
            self._append(Node.of(node_id, props, placeholder=placeholder))
            return
        if props:
            merge_into(cur.props, props)  # the batch made cur.props: no copy needed
            self._fixed_at.pop(node_id, None)  # no longer only what ``add_seen`` merged
        cur.placeholder = cur.placeholder and placeholder

    def put_node(self, node_id: str, kind: NodeKind, props: Props) -> None:
        """``add_node`` for the join's hot path: ``props`` is handed over (kept, not copied) and ``kind`` is
        the one ``node_id`` names (the caller built the id)."""
        if node_id in self._node_at:
            self.add_node(node_id, props)
            return
        self._append(Node(node_id, kind, props))

    def add_seen(self, node_id: str, fixed: Props, seen_at: str | None, *, placeholder: bool = False) -> bool:
        """``add_node(node_id, {**fixed, "first_seen": seen_at, "last_seen": seen_at}, ...)`` (no times when
        ``seen_at`` is empty), where ``fixed`` is a shared dict that nobody changes.

        When the last props merged into the node were this very ``fixed``, merging them again changes
        nothing, so a repeat only moves the seen range: the cheap path for the trace or audit record that
        thousands of lines name. True for such a repeat.
        """
        cur = self._node_at.get(node_id)
        if cur is None or self._fixed_at.get(node_id) is not fixed:
            props = dict(fixed)
            if seen_at:
                props["first_seen"] = props["last_seen"] = seen_at
            if cur is None:
                self._append(Node(node_id, node_kind_of(node_id), props, placeholder))
            else:
                merge_into(cur.props, props)
                cur.placeholder = cur.placeholder and placeholder
            self._fixed_at[node_id] = fixed
            return False
        cur.placeholder = cur.placeholder and placeholder
        if seen_at:  # merge_into's rule for the two seen keys, skipping the writes that change nothing
            props = cur.props
            first = props.get("first_seen")
            if first is None or seen_at < first:
                props["first_seen"] = seen_at
            last = props.get("last_seen")
            if last is None or seen_at > last:
                props["last_seen"] = seen_at
        return True

    def _append(self, node: Node) -> None:
        self._node_at[node.id] = node
        self.nodes.append(node)

    def add_edge(self, src: str, kind: EdgeKind, dst: str, props: Mapping[str, Any] | None = None) -> None:
        """Add an edge, folding a repeat of one added here before (same src, kind, dst) into it."""
        key = (src, kind, dst)
        cur = self._edge_at.get(key)
        if cur is None:
            edge = Edge(src, kind, dst, dict(props) if props else {})
            self._edge_at[key] = edge
            self.edges.append(edge)
        elif props:
            merge_into(cur.props, props)

    def extend(self, other: GraphBatch) -> None:
        """Append ``other``'s facts as they are, without folding repeats into this batch's (the store
        folds them when it writes)."""
        self.nodes.extend(other.nodes)
        self.edges.extend(other.edges)
        self.rejected.extend(other.rejected)
        self.checkpoints.update(other.checkpoints)

    @property
    def fact_count(self) -> int:
        return len(self.nodes) + len(self.edges)

    @property
    def folded(self) -> bool:
        """Whether every node and edge came through ``add_*`` (which fold repeats), so no node id and no
        edge key occurs twice and a store need not fold them again."""
        return len(self._node_at) == len(self.nodes) and len(self._edge_at) == len(self.edges)

    def __bool__(self) -> bool:
        return bool(self.nodes or self.edges or self.rejected or self.checkpoints)


def merge_props(old: Mapping[str, Any], new: Mapping[str, Any]) -> Props:
    """Merge rule every store applies: new non-null values win; ``first_seen`` keeps the minimum and
    ``last_seen`` the maximum, so replaying a batch changes nothing."""
    out = dict(old)
    merge_into(out, new)
    return out


def merge_into(target: dict[str, Any], new: Mapping[str, Any]) -> None:
    """``merge_props`` in place, for a property dict the caller owns (a batch folding repeats)."""
    for k, v in new.items():
        if v is None:
            continue
        if k == "first_seen" or k == "last_seen":
            cur = target.get(k)
            if cur is not None:
                v = min(cur, v) if k == "first_seen" else max(cur, v)
        target[k] = v


def dedupe_batch(nodes: Iterable[Node]) -> list[Node]:
    """Collapse repeated ids within one batch with the store's merge rule (placeholder only if all are).
    The caller's nodes are never changed: a repeat makes a new merged node."""
    merged: dict[str, Node] = {}
    for n in nodes:
        cur = merged.get(n.id)
        merged[n.id] = (
            n
            if cur is None
            else Node(n.id, n.kind, merge_props(cur.props, n.props), cur.placeholder and n.placeholder)
        )
    return list(merged.values())
