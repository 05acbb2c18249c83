"""The join of what a cluster runs and of what its admission webhook decided.

A live object meets the object Git declared on the same Workload node (``workload_node_id``: kind,
namespace, name and the user-named cluster). A Pod is its own node, ``Pod -INSTANCE_OF->`` its
controlling owner (a ReplicaSet, itself ``-INSTANCE_OF->`` its Deployment); the audit id stamped on an
object or Pod ``-ANNOTATES->`` it. The owner is also an ``owner`` property (``Kind/name``), so a reader
that lists running objects (drift) tells top-level ones from owned ones without an edge query per object. A Flux or Argo CD object ``-APPLIES->`` the commit it reports. An
admission decision ``-ADMITTED->`` the object and ``-STAMPED->`` the audit record it left on it.
"""

from __future__ import annotations

from liubai.lineage.join_audit import add_audit
from liubai.lineage.join_node import join_pod_containers
from liubai.lineage.model import (
    EdgeKind,
    GraphBatch,
    Props,
    admission_node_id,
    commit_node_id,
    pod_node_id,
    workload_node_id,
)
from liubai.lineage.records import AdmissionRecord, ClusterObjectRecord, PodRecord

__all__ = ["join_admission", "join_cluster_object", "join_pod"]


def _seen(props: Props, at: str) -> Props:
    props["first_seen"] = at
    props["last_seen"] = at
    return props


def join_cluster_object(batch: GraphBatch, o: ClusterObjectRecord) -> None:
    wid = workload_node_id(o.kind, o.namespace, o.name, o.cluster)
    props: Props = {
        "api_version": o.api_version,
        "kind": o.kind,
        "namespace": o.namespace,
        "name": o.name,
        "cluster": o.cluster,
        "live": not o.deleted,
        "uid": o.uid,
        "resource_version": o.resource_version or None,
        "generation": o.generation,
        "live_audit_id": o.audit_id,
        "revision": o.revision,
        "applied_commit": o.commit,
        "source_url": o.source_url,
        "source_path": o.source_path,
        "replicas": o.replicas,
        "ready_replicas": o.ready_replicas,
        "images": list(o.images) or None,
        "owner": f"{o.owner_kind}/{o.owner_name}" if o.owner_kind and o.owner_name else None,
        "deleted_at": o.observed_at if o.deleted else None,
    }
    batch.add_node(wid, _seen({k: v for k, v in props.items() if v is not None}, o.observed_at))
    if o.owner_kind and o.owner_name:
        owner = workload_node_id(o.owner_kind, o.namespace, o.owner_name, o.cluster)
        batch.add_node(
            owner, {"kind": o.owner_kind, "namespace": o.namespace, "name": o.owner_name}, placeholder=True
        )
        batch.add_edge(wid, EdgeKind.INSTANCE_OF, owner, {"revision": o.revision} if o.revision else None)
    if o.commit:
        cid = commit_node_id(o.commit)
        batch.add_node(cid, {"sha": o.commit.lower()}, placeholder=True)
        batch.add_edge(wid, EdgeKind.APPLIES, cid, {"revision": o.revision})
    if o.audit_id:
        audit = add_audit(batch, o.audit_id, o.location, o.location, seen_at=o.observed_at)
        if audit is not None:
            batch.add_edge(audit.node_id, EdgeKind.ANNOTATES, wid, {"live": True})


def join_pod(batch: GraphBatch, p: PodRecord) -> None:
    pid = pod_node_id(p.uid)
    props: Props = {
        "uid": p.uid,
        "namespace": p.namespace,
        "name": p.name,
        "cluster": p.cluster,
        "node_name": p.node_name,
        "phase": "Deleted" if p.deleted else p.phase,
        "audit_id": p.audit_id,
        "created_at": p.created_at,
        "deleted_at": p.observed_at if p.deleted else None,
        "containers": [c.name for c in p.containers] or None,
        "images": [c.image for c in p.containers] or None,
        "image_ids": [c.image_id for c in p.containers if c.image_id] or None,
        "container_ids": [c.container_id for c in p.containers if c.container_id] or None,
        "restarts": sum(c.restart_count for c in p.containers) if p.containers else None,
        "owner": f"{p.owner_kind}/{p.owner_name}" if p.owner_kind and p.owner_name else None,
    }
    batch.add_node(pid, _seen({k: v for k, v in props.items() if v is not None}, p.observed_at))
    if p.owner_kind and p.owner_name:
        owner = workload_node_id(p.owner_kind, p.namespace, p.owner_name, p.cluster)
        batch.add_node(
            owner, {"kind": p.owner_kind, "namespace": p.namespace, "name": p.owner_name}, placeholder=True
        )
        batch.add_edge(pid, EdgeKind.INSTANCE_OF, owner)
    join_pod_containers(batch, p.uid, p.containers)
    if p.audit_id:
        audit = add_audit(batch, p.audit_id, p.location, p.location, seen_at=p.created_at or p.observed_at)
        if audit is not None:
            batch.add_edge(audit.node_id, EdgeKind.ANNOTATES, pid, {"live": True})


def join_admission(batch: GraphBatch, a: AdmissionRecord) -> None:
    aid = admission_node_id(a.request_uid)
    batch.add_node(
        aid,
        _seen(
            {
                "request_uid": a.request_uid,
                "cluster": a.cluster,
                "time": a.time,
                "username": a.username,
                "groups": list(a.groups) or None,
                "operation": a.operation,
                "kind": a.kind,
                "namespace": a.namespace,
                "name": a.name,
                "decision": a.decision,
                "audit_id": a.audit_id,
                "commit_source": a.commit_source,
                "trace_source": a.trace_source,
                "reason": a.reason,
            },
            a.time,
        ),
    )
    if a.kind == "Pod":
        target = None  # a bare Pod has no uid at admission: the Pod node is joined on its audit id
    else:
        target = workload_node_id(a.kind, a.namespace, a.name, a.cluster)
        batch.add_node(target, {"kind": a.kind, "namespace": a.namespace, "name": a.name}, placeholder=True)
        batch.add_edge(aid, EdgeKind.ADMITTED, target, {"decision": a.decision})
    if a.audit_id and a.decision in ("patched", "kept", "passed"):
        audit = add_audit(batch, a.audit_id, a.location, a.location, seen_at=a.time)
        if audit is not None:
            batch.add_edge(aid, EdgeKind.STAMPED, audit.node_id, {"decision": a.decision})
