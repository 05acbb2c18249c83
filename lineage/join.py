"""Typed records in, graph batches out.

The join is where evidence from Git, the kernel and the log store meets: on the audit id (commit +
trace), on trace and span ids, and on the resource attributes that name what emitted a log line or span
(``join_resource``). Rules: a node referenced before its own record arrives is written as a
placeholder; a link is made only when one record names both of its ends; a record whose audit id does
not parse still lands, and the bad audit id becomes a rejected record with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from liubai.lineage.join_audit import add_audit, add_trace
from liubai.lineage.join_cluster import join_admission, join_cluster_object, join_pod
from liubai.lineage.join_node import (
    ACCESS_EDGE,
    join_container,
    join_container_opens,
    join_container_process,
)
from liubai.lineage.join_resource import add_resource
from liubai.lineage.join_span import join_span
from liubai.lineage.model import (
    EdgeKind,
    GraphBatch,
    NodeKind,
    Props,
    RejectedRecord,
    commit_node_id,
    container_file_node_id,
    file_node_id,
    log_node_id,
    process_node_id,
    repo_node_id,
    run_node_id,
    span_node_id,
    workload_node_id,
)
from liubai.lineage.records import (
    AdmissionRecord,
    ClusterObjectRecord,
    CommitRecord,
    ContainerOpensRecord,
    ContainerRecord,
    FileAccessRecord,
    LogRecord,
    ManifestObjectRecord,
    PodRecord,
    ProcessRecord,
    Record,
    RunRecord,
    SkippedRecord,
    SpanRecord,
)

__all__ = ["ACCESS_EDGE", "add_record", "join_records", "record_joiner"]


def join_records(records: Iterable[Record], batch: GraphBatch | None = None) -> GraphBatch:
    """Translate records into one batch (appending to ``batch`` when given)."""
    out = batch if batch is not None else GraphBatch()
    for record in records:
        add_record(out, record)
    return out


def add_record(batch: GraphBatch, record: Record) -> None:
    join = _JOIN_BY_TYPE.get(type(record))
    if join is None:  # a subclass of a record type: the first type it is an instance of
        join = next((j for t, j in _JOIN_BY_TYPE.items() if isinstance(record, t)), None)
        if join is None:
            raise TypeError(f"not a lineage record: {type(record).__name__}")
    join(batch, record)


def record_joiner(kind: type) -> Callable[[GraphBatch, Any], None]:
    """What ``add_record`` does with a record of exactly this type, for a caller that joins many of them
    (``add_record`` itself for any other type)."""
    return _JOIN_BY_TYPE.get(kind, add_record)


def _commit(batch: GraphBatch, c: CommitRecord) -> None:
    cid = commit_node_id(c.sha)
    batch.add_node(repo_node_id(c.repo), {"url": c.repo})
    batch.add_node(
        cid,
        {
            "sha": c.sha.lower(),
            "repo": c.repo,
            "author": c.author_name,
            "author_email": c.author_email,
            "authored_at": c.authored_at,
            "committer": c.committer_name,
            "committer_email": c.committer_email,
            "committed_at": c.committed_at,
            "subject": c.subject,
            "message": c.message or c.subject,
            "parents": list(c.parents),
            "changed_paths": len(c.changed_paths),
            "pr": c.pr,
            "signed": c.signed,
            "signature": c.signature,
            "branch": c.branch,
            "branches": list(c.branches) or None,
            "first_seen": c.committed_at,
            "last_seen": c.committed_at,
        },
    )
    batch.add_edge(repo_node_id(c.repo), EdgeKind.HAS_COMMIT, cid)
    for parent in c.parents:
        batch.add_node(commit_node_id(parent), {"sha": parent.lower()}, placeholder=True)
        batch.add_edge(cid, EdgeKind.PARENT, commit_node_id(parent))


def _manifest_object(batch: GraphBatch, m: ManifestObjectRecord) -> None:
    """The object a commit declares, and the DECLARES edge from the commit. The repository is a fact of
    the declaration (the edge), not of the object: without ``--cluster`` two repositories declaring one
    object share its node, and a ``repo`` on the node would be whichever repository was ingested last
    (a node's properties merge by "new values win")."""
    wid = workload_node_id(m.kind, m.namespace, m.name, m.cluster)
    cid = commit_node_id(m.commit)
    batch.add_node(
        wid,
        {
            "api_version": m.api_version,
            "kind": m.kind,
            "namespace": m.namespace,
            "name": m.name,
            "manifest_path": m.path,
            "generate_name": True if m.generate_name else None,
            "placeholders": list(m.placeholders) or None,
        },
    )
    batch.add_node(cid, {"sha": m.commit.lower()}, placeholder=True)
    # with_render is always written: re-reading the history in the other mode overwrites it (merge keeps
    # a value that is not written), and the declared view skips what the current mode did not write
    edge: dict[str, Any] = {
        "path": m.path,
        "deleted": m.deleted,
        "with_render": m.with_render,
        "repo": m.repo,
    }
    if m.rendered_by:
        edge["rendered_by"] = m.rendered_by
    batch.add_edge(cid, EdgeKind.DECLARES, wid, edge)
    for raw in m.audit_ids:
        audit = add_audit(batch, raw, f"git:{m.repo}", m.location)
        if audit is not None:
            batch.add_edge(audit.node_id, EdgeKind.ANNOTATES, wid, {"path": m.path})


def _log(batch: GraphBatch, r: LogRecord) -> None:
    """A log line joins its trace (named directly or by its audit id), the span it was written in, the
    audit record it carries, and what emitted it by its resource attributes (``join_resource``)."""
    lid = log_node_id(r.source, r.record_id)
    time = r.time
    props: Props = {
        "source": r.source,
        "time": time,
        "level": r.level,
        "service": r.service,
        "message": r.message,
        "trace_id": r.trace_id,
        "audit_id": r.audit_id,
        "attributes": r.attributes or None,
        "first_seen": time,
        "last_seen": time,
    }
    if r.resource:
        resource, own = add_resource(batch, r.resource, r.source, r.location or lid, time)
        props.update(own)
        batch.add_edge(resource, EdgeKind.EMITTED, lid)
    if r.span_id:
        props["span_id"] = r.span_id
        if r.trace_id:
            batch.add_edge(lid, EdgeKind.IN_SPAN, span_node_id(r.trace_id, r.span_id))
    batch.put_node(lid, NodeKind.LOG_EVENT, props)
    trace = add_trace(batch, r.trace_id, time) if r.trace_id else None
    if r.audit_id:
        audit = add_audit(batch, r.audit_id, r.source, r.location or lid, seen_at=time)
        if audit is not None:
            batch.add_edge(lid, EdgeKind.CARRIES, audit.node_id)
            if trace is None and audit.trace is not None:
                trace = audit.trace[0]  # the audit id's trace, which _audit just saw at this line's time
    if trace is not None:
        batch.add_edge(lid, EdgeKind.IN_TRACE, trace)


def _run(batch: GraphBatch, r: RunRecord) -> None:
    rid = run_node_id(r.host, r.root_pid, r.start_ns)
    batch.add_node(
        rid,
        {
            "host": r.host,
            "root_pid": r.root_pid,
            "start_ns": r.start_ns,
            "end_ns": r.end_ns,
            "command": list(r.command),
            "started_at": r.started_at,
            "ended_at": r.ended_at,
            "exit_code": r.exit_code,
            "commit": r.commit,
            "audit_id": r.audit_id,
            "trace_id": r.trace_id,
            "repo": r.repo,
            "repo_url": r.repo_url,
            "cwd": r.cwd,
            "lost_events": r.lost_events,
            "unresolved_opens": r.unresolved_opens,
            "lexical_paths": r.lexical_paths,
            "incomplete_processes": r.incomplete_processes,
            "unhashed_images": r.unhashed_images,
            "partial_argv": r.partial_argv,
            "still_running": r.still_running,
            "cut_at": r.cut_at,
            "first_seen": r.started_at,
            "last_seen": r.ended_at or r.started_at,
        },
    )
    if r.commit:
        batch.add_node(commit_node_id(r.commit), {"sha": r.commit.lower()}, placeholder=True)
        batch.add_edge(commit_node_id(r.commit), EdgeKind.TRIGGERED, rid)
    trace_id = r.trace_id
    if r.audit_id:
        audit = add_audit(batch, r.audit_id, f"run:{r.host}", rid, seen_at=r.started_at)
        if audit is not None:
            batch.add_edge(audit.node_id, EdgeKind.ANNOTATES, rid)
            trace_id = r.trace_id or audit.audit.trace
    if trace_id:
        batch.add_edge(rid, EdgeKind.IN_TRACE, add_trace(batch, trace_id, r.started_at))


def _process(batch: GraphBatch, p: ProcessRecord) -> None:
    pid_ = process_node_id(p.host, p.pid, p.start_ns)
    batch.add_node(
        pid_,
        {
            "host": p.host,
            "pid": p.pid,
            "ppid": p.ppid,
            "uid": p.uid,
            "comm": p.comm,
            "binary": p.binary,
            "binary_sha256": p.binary_sha256,
            "argv": list(p.argv),
            "cwd": p.cwd,
            "started_at": p.started_at,
            "ended_at": p.ended_at,
            "exit_code": p.exit_code,
            "exec_failed": p.exec_failed,
            "privilege_change": p.privilege_change,
            "hash_note": p.hash_note,
            "argv_status": p.argv_status,
            "execs": [dict(x) for x in p.execs],
            "euid": p.euid,
            "suid": p.suid,
            "cap_eff": p.cap_eff,
            "escalation": p.escalation,
            "privilege_drop": p.privilege_drop,
            "file_activity_incomplete": p.file_activity_incomplete,
            "first_seen": p.started_at,
            "last_seen": p.ended_at or p.started_at,
        }
        | _container_props(p),
    )
    if p.container_id is not None or p.pod_uid is not None:
        join_container_process(batch, p, pid_)
    else:
        batch.add_edge(run_node_id(p.host, p.run_pid, p.run_start_ns), EdgeKind.RAN, pid_)
    if p.ppid is not None and p.parent_start_ns is not None:
        parent = process_node_id(p.host, p.ppid, p.parent_start_ns)
        if parent != pid_:
            batch.add_node(parent, {"host": p.host, "pid": p.ppid}, placeholder=True)
            batch.add_edge(pid_, EdgeKind.CHILD_OF, parent)


def _container_props(p: ProcessRecord) -> dict[str, Any]:
    """The node agent's properties of a container's process (none for a traced run's)."""
    props: dict[str, Any] = {"container_id": p.container_id, "pod_uid": p.pod_uid, "audit_id": p.audit_id}
    if p.adopted:
        props["adopted"] = True
    return {k: v for k, v in props.items() if v is not None}


def _rejected(batch: GraphBatch, r: RejectedRecord) -> None:
    batch.rejected.append(r)


def _file_access(batch: GraphBatch, f: FileAccessRecord) -> None:
    """``Process -READ/WROTE/EXECUTED-> File``; a container's file is its own node (its path is the
    container's view), with the first and last time the node agent saw it opened."""
    if f.container_id is not None:
        fid = container_file_node_id(f.host, f.container_id, f.path)
        batch.add_node(fid, {"host": f.host, "path": f.path, "container_id": f.container_id})
    else:
        fid = file_node_id(f.host, f.path)
        batch.add_node(fid, {"host": f.host, "path": f.path})
    props: dict[str, Any] = {"count": f.count}
    optional = (
        ("flags", f.flags),
        ("sha256", f.sha256),
        ("certainty", f.certainty if f.certainty != "exact" else None),
        ("exec_ids", list(f.exec_ids) or None),
        ("via", f.via),
        ("first_seen", f.first_at),
        ("last_seen", f.last_at),
        ("hash_note", f.hash_note),
        ("hashed_at", f.hashed_at),
    )
    props.update((name, value) for name, value in optional if value is not None)
    batch.add_edge(process_node_id(f.host, f.pid, f.start_ns), ACCESS_EDGE[f.mode], fid, props)


_JOIN_BY_TYPE: dict[type, Callable[[GraphBatch, Any], None]] = {
    CommitRecord: _commit,
    ManifestObjectRecord: _manifest_object,
    LogRecord: _log,
    SpanRecord: join_span,
    RunRecord: _run,
    ProcessRecord: _process,
    FileAccessRecord: _file_access,
    ClusterObjectRecord: join_cluster_object,
    PodRecord: join_pod,
    AdmissionRecord: join_admission,
    ContainerRecord: join_container,
    ContainerOpensRecord: join_container_opens,
    RejectedRecord: _rejected,
    SkippedRecord: lambda batch, record: None,  # counted by the ingest summary, never stored
}
