"""Typed records that collectors emit and ``liubai.lineage.join`` turns into graph batches.

Records carry raw evidence as the source saw it (an audit id is still a string here); all
interpretation that can fail happens in the join, where a failure becomes a ``RejectedRecord``.
Times are ISO 8601 UTC strings (``2026-01-02T03:04:05.123456Z``), which sort as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from liubai.lineage.model import RejectedRecord

__all__ = [
    "AdmissionRecord",
    "ClusterObjectRecord",
    "CommitRecord",
    "ContainerOpensRecord",
    "ContainerRecord",
    "ContainerStatus",
    "FileAccessRecord",
    "LogRecord",
    "ManifestObjectRecord",
    "PodRecord",
    "ProcessRecord",
    "Record",
    "RejectedRecord",
    "RunRecord",
    "SkippedRecord",
    "SpanRecord",
    "iso_utc",
]


def iso_utc(ts: float | int | datetime) -> str:
    """Seconds since the epoch (or an aware datetime) as the ISO form used in every time property."""
    dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(float(ts), UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class CommitRecord:
    repo: str
    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    authored_at: str
    committer_name: str
    committer_email: str
    committed_at: str
    subject: str
    message: str = ""
    changed_paths: tuple[str, ...] = ()
    pr: int | None = None
    # signed: True only for a signature verified good; None when it was not checked
    signed: bool | None = False
    # none, unverified (carries one, not checked), or a verification result (good, bad, cannot-check, ...)
    signature: str = "none"
    branch: str | None = None
    branches: tuple[str, ...] = ()  # the refs read that contain the commit (heads, remotes, tags)


@dataclass(slots=True)
class ManifestObjectRecord:
    """One Kubernetes object declared by a manifest file as of one commit."""

    repo: str
    commit: str
    path: str
    api_version: str
    kind: str
    namespace: str
    name: str
    audit_ids: tuple[str, ...] = ()
    document_index: int = 0
    deleted: bool = False
    cluster: str | None = None
    generate_name: bool = False  # ``name`` is a generateName prefix and a "*": one object per create
    placeholders: tuple[str, ...] = ()  # ``${var}`` left in name or namespace, filled in at deploy time
    rendered_by: str | None = None  # the deployer whose render declares it (Kustomization/ns/name)
    with_render: bool = False  # read by an ingest that rendered deployers (``ingest git --render``)

    @property
    def location(self) -> str:
        return f"{self.commit[:12]}:{self.path}#{self.document_index}"


@dataclass(slots=True)
class SkippedRecord:
    """Input that is no evidence at all (a Helm Chart.yaml, a JSON patch, a tool's config beside the
    manifests): nothing joins it and nothing is stored; ingest summaries count it."""

    source: str
    location: str
    reason: str


@dataclass(slots=True)
class LogRecord:
    """One log line. ``record_id`` is stable for the same line re-read (cursor or content hash)."""

    source: str
    record_id: str
    time: str | None = None
    level: str | None = None
    service: str | None = None
    message: str = ""
    trace_id: str | None = None
    audit_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    location: str = ""
    # who emitted it, under OpenTelemetry semantic-convention keys (``k8s.pod.uid``, ``service.version``,
    # ...): OTLP resource attributes, or a log shipper's tags mapped to those keys (SLS Logtail's
    # ``__tag__:_pod_uid_``). The join links the record through them; they are not part of its content id.
    resource: dict[str, str] = field(default_factory=dict)
    span_id: str | None = None  # the span it was written in (16 lower-case hex), with ``trace_id``


@dataclass(slots=True)
class SpanRecord:
    """One span of an OTLP trace. Times are ISO UTC; ``kind`` and ``status`` are the OTLP enum names
    without their prefix (``SERVER``, ``ERROR``)."""

    source: str
    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    name: str = ""
    kind: str = "UNSPECIFIED"
    service: str | None = None
    start: str | None = None
    end: str | None = None
    status: str = "UNSET"
    status_message: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, str] = field(default_factory=dict)
    audit_id: str | None = None
    location: str = ""


@dataclass(slots=True)
class RunRecord:
    """A traced pipeline run: the root command and what it ran for."""

    host: str
    root_pid: int
    start_ns: int
    command: tuple[str, ...]
    started_at: str
    ended_at: str | None = None
    end_ns: int | None = None
    exit_code: int | None = None
    commit: str | None = None
    audit_id: str | None = None
    trace_id: str | None = None
    repo: str | None = None
    repo_url: str | None = None  # the URI of the repository's remote
    cwd: str | None = None
    lost_events: int = 0
    unresolved_opens: int = 0  # opens whose path could not be known (stored under "<unresolved ...>")
    lexical_paths: int = 0  # opens whose path is known only lexically (``..`` the kernel was not asked)
    incomplete_processes: int = 0  # processes whose file activity was partly invisible (io_uring)
    unhashed_images: int = 0  # execs whose image could not be hashed for sure
    partial_argv: int = 0  # execs whose argv is truncated or unreadable
    still_running: int = 0  # processes alive when tracing stopped: their later activity was cut
    cut_at: str | None = None  # when tracing stopped with processes still running


@dataclass(slots=True)
class ProcessRecord:
    host: str
    pid: int
    start_ns: int
    run_pid: int
    run_start_ns: int
    ppid: int | None = None
    parent_start_ns: int | None = None
    uid: int | None = None
    parent_uid: int | None = None
    comm: str = ""
    binary: str | None = None
    binary_sha256: str | None = None
    argv: tuple[str, ...] = ()
    cwd: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    exit_code: int | None = None
    exec_failed: bool = False
    hash_note: str | None = None  # why ``binary_sha256`` is None
    argv_status: str = "complete"  # "complete", "truncated", "unreadable" or "unknown"
    execs: tuple[dict[str, Any], ...] = ()  # every exec of the process, in order (ids 1, 2, ...)
    euid: int | None = None
    suid: int | None = None
    cap_eff: int | None = None
    escalation: bool = False  # the effective identity or capabilities rose during the process
    privilege_drop: bool = False  # they fell (and never rose)
    file_activity_incomplete: str | None = None  # why some file activity was invisible ("io_uring")
    # a process of a pod container (node agent): no run, ``run_pid`` and ``run_start_ns`` are 0
    container_id: str | None = None
    pod_uid: str | None = None
    container_top: bool = False  # its parent is outside the container: ``Pod -RAN->`` it
    adopted: bool = False  # already running when the agent started: known from /proc, not from its exec
    audit_id: str | None = None  # X_GITOPS_AUDIT_ID of its environment at exec, as read (parsed in the join)

    @property
    def privilege_change(self) -> bool:
        return self.uid is not None and self.parent_uid is not None and self.uid != self.parent_uid


@dataclass(slots=True)
class FileAccessRecord:
    """Opens of one path by one process in one mode (``read``, ``write`` or ``exec``), aggregated."""

    host: str
    pid: int
    start_ns: int
    path: str
    mode: str
    count: int = 1
    flags: int | None = None
    sha256: str | None = None  # exec: the image's; write: the file's as the run left it (its last close)
    certainty: str = "exact"  # how surely ``path`` is known: liubai.ebpf.paths names and ranks them
    exec_ids: tuple[int, ...] = ()  # which images of the process (0: the one inherited at fork) did it
    via: str | None = None  # how an exec was known when no execve showed it ("ld.so": the loader ran it)
    container_id: str | None = None  # the path is as this container sees it (a container-scoped file)
    first_at: str | None = None  # the first and last open seen (node agent)
    last_at: str | None = None
    hash_note: str | None = None  # a write without ``sha256``: why the run left no digest of the file
    hashed_at: str | None = None  # when ``sha256`` of a written file was taken (its last close)


@dataclass(slots=True)
class ClusterObjectRecord:
    """A live Kubernetes object as the cluster collector read it (a workload, a ReplicaSet, or a GitOps
    controller object: a Flux Kustomization / HelmRelease / GitRepository or an Argo CD Application).

    ``owner_kind``/``owner_name``: the controlling owner reference (a ReplicaSet's Deployment).
    ``revision``: for a ReplicaSet its rollout revision; for a GitOps object the commit it applies as the
    controller reports it (``main@sha1:<sha>``, a bare sha), kept verbatim; ``commit`` is the sha parsed
    from it, None when none can be read from it.
    """

    cluster: str | None
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    observed_at: str
    resource_version: str = ""
    generation: int | None = None
    audit_id: str | None = None
    owner_kind: str | None = None
    owner_name: str | None = None
    revision: str | None = None
    commit: str | None = None
    source_url: str | None = None
    source_path: str | None = None
    replicas: int | None = None
    ready_replicas: int | None = None
    images: tuple[str, ...] = ()
    deleted: bool = False

    @property
    def location(self) -> str:
        return f"k8s:{self.cluster or ''}/{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    """One container of a Pod: ``image_id`` is the digest the runtime pulled (``sha256:…``), and
    ``container_id`` the runtime's id (``containerd://…``) once it started, both as the kubelet reports."""

    name: str
    image: str
    image_id: str | None = None
    container_id: str | None = None
    ready: bool = False
    restart_count: int = 0


@dataclass(slots=True)
class PodRecord:
    """A live Pod: linked to its controlling owner and to the audit id its template stamped on it."""

    cluster: str | None
    namespace: str
    name: str
    uid: str
    observed_at: str
    node_name: str | None = None
    phase: str | None = None
    owner_kind: str | None = None
    owner_name: str | None = None
    audit_id: str | None = None
    created_at: str | None = None
    containers: tuple[ContainerStatus, ...] = ()
    deleted: bool = False

    @property
    def location(self) -> str:
        return f"k8s:{self.cluster or ''}/Pod/{self.namespace}/{self.name}"


@dataclass(slots=True)
class AdmissionRecord:
    """One decision of the audit webhook: who applied what, and which audit id the object left with.

    ``decision``: ``patched`` (stamped), ``kept`` (a valid id was there), ``refused`` (malformed id
    refused), ``passed`` (malformed id let through with a warning) or ``skipped`` (a kind or object the
    webhook does not stamp). ``commit_source`` says where the commit came from (``existing``,
    ``argocd``, ``flux-kustomization``, ``flux-helmrelease``, ``annotation``) or None when none was known.
    """

    request_uid: str
    cluster: str | None
    time: str
    username: str
    operation: str
    kind: str
    namespace: str
    name: str
    decision: str
    audit_id: str | None = None
    commit_source: str | None = None
    trace_source: str | None = None
    reason: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def location(self) -> str:
        return f"admission:{self.request_uid}"


@dataclass(slots=True)
class ContainerRecord:
    """A pod container on one node as the node agent sees it, with what its caps folded.

    Counters are totals over the container's life as the agent's journal kept them, so an upsert of a
    later window's record replaces an earlier one. ``gaps`` lists the times the agent was not watching
    (``{"from": iso, "to": iso}``): what happened then is unknown, not absent.
    """

    host: str
    container_id: str
    runtime: str
    cgroup: str
    pod_uid: str | None
    first_seen: str
    last_seen: str
    qos: str | None = None
    namespace: str | None = None
    running: int = 0  # its processes alive at the end of the window (0: none the agent knows of)
    processes: int = 0  # processes seen
    folded_processes: int = 0  # over the per-window process cap: counted, not recorded one by one
    folded_opens: int = 0  # opens of paths over the per-window distinct-path cap
    excluded_opens: int = 0  # opens under an excluded path prefix (/proc, /sys, /dev by default)
    excluded: str | None = None  # why none of its processes are recorded (a namespace filter)
    excluded_events: int = 0  # events of its processes left out for that reason
    runtime_setup_processes: int = 0  # the runtime's own processes (runc:[…], crun) setting it up
    runtime_setup_events: int = 0  # their events, left out: not the workload's (collector/node_runtime.py)
    gaps: tuple[dict[str, str], ...] = ()

    @property
    def location(self) -> str:
        return f"node:{self.host}/container/{self.container_id}"


@dataclass(slots=True)
class ContainerOpensRecord:
    """Opens of one path in one mode inside one container during one window, counted per exec image.

    ``counts``: this window's opens by image; ``totals``: by image over the container's life, this window
    included (what the graph keeps, so a later window's record replaces an earlier one on upsert).
    """

    host: str
    container_id: str
    path: str
    mode: str
    window_start: str
    window_end: str
    counts: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    first_at: str | None = None
    last_at: str | None = None


Record = (
    CommitRecord
    | ManifestObjectRecord
    | SkippedRecord
    | LogRecord
    | SpanRecord
    | RunRecord
    | ProcessRecord
    | FileAccessRecord
    | ClusterObjectRecord
    | PodRecord
    | AdmissionRecord
    | ContainerRecord
    | ContainerOpensRecord
    | RejectedRecord
)
