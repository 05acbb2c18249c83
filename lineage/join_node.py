"""The join of what a node agent saw inside pod containers.

A container's processes hang under its Pod by the Pod's uid alone (``Pod -RAN-> Process`` for each
process whose parent is outside the container), so the node side joins with or without the cluster
collector: when that collector has ingested the Pod, the same ``pod:<uid>`` node carries its name,
namespace and owner, and the Container node (by runtime id) the image the kubelet reported. A
container's files are its own nodes (``container_file_node_id``): its ``/etc/passwd`` is not the
host's. The ``X_GITOPS_AUDIT_ID`` of a process's environment links it to its audit record
(``AuditRecord -ANNOTATES-> Process``); a malformed one is a rejected record, the process still lands.
"""

from __future__ import annotations

from typing import Any

from liubai.lineage.join_audit import add_audit
from liubai.lineage.model import (
    EdgeKind,
    GraphBatch,
    Props,
    container_file_node_id,
    container_node_id,
    pod_node_id,
)
from liubai.lineage.records import (
    ContainerOpensRecord,
    ContainerRecord,
    ContainerStatus,
    ProcessRecord,
)

__all__ = [
    "ACCESS_EDGE",
    "container_status_id",
    "join_container",
    "join_container_opens",
    "join_container_process",
    "join_pod_containers",
]

ACCESS_EDGE = {"read": EdgeKind.READ, "write": EdgeKind.WROTE, "exec": EdgeKind.EXECUTED}


def container_status_id(raw: str | None) -> str | None:
    """The runtime's id of a kubelet ``containerID`` (``containerd://<id>``, ``cri-o://<id>``,
    ``docker://<id>``), as a cgroup path names it; None when there is none."""
    if not raw:
        return None
    return raw.partition("://")[2] or raw


def join_pod_containers(batch: GraphBatch, pod_uid: str, containers: tuple[ContainerStatus, ...]) -> None:
    """The Container nodes a Pod's status names, with their image: where a node agent's container
    meets the image the kubelet pulled for it."""
    for c in containers:
        cid = container_status_id(c.container_id)
        if cid is None:
            continue
        props: Props = {
            "container_id": cid,
            "name": c.name,
            "image": c.image,
            "image_id": c.image_id,
            "pod_uid": pod_uid,
            "restart_count": c.restart_count,
        }
        batch.add_node(container_node_id(cid), {k: v for k, v in props.items() if v is not None})
        batch.add_edge(pod_node_id(pod_uid), EdgeKind.RAN, container_node_id(cid))


def join_container(batch: GraphBatch, c: ContainerRecord) -> None:
    cid = container_node_id(c.container_id)
    props: dict[str, Any] = {
        "container_id": c.container_id,
        "host": c.host,
        "runtime": c.runtime,
        "cgroup": c.cgroup,
        "pod_uid": c.pod_uid,
        "qos": c.qos,
        "namespace": c.namespace,
        "running": c.running,
        "processes": c.processes,
        "folded_processes": c.folded_processes,
        "folded_opens": c.folded_opens,
        "excluded_opens": c.excluded_opens,
        "excluded": c.excluded,
        "excluded_events": c.excluded_events or None,
        "runtime_setup_processes": c.runtime_setup_processes or None,
        "runtime_setup_events": c.runtime_setup_events or None,
        "gaps": [dict(g) for g in c.gaps] or None,
        "first_seen": c.first_seen,
        "last_seen": c.last_seen,
    }
    batch.add_node(cid, {k: v for k, v in props.items() if v is not None})
    if c.pod_uid:
        pod = pod_node_id(c.pod_uid)
        pod_props: Props = {"uid": c.pod_uid}
        if c.namespace:
            pod_props["namespace"] = c.namespace
        batch.add_node(pod, pod_props, placeholder=True)
        batch.add_edge(pod, EdgeKind.RAN, cid)


def join_container_process(batch: GraphBatch, p: ProcessRecord, node_id: str) -> None:
    """The edges of a container's process (its node is written by the caller, as for a traced run)."""
    if p.container_id:
        batch.add_node(
            container_node_id(p.container_id),
            {"container_id": p.container_id, "host": p.host},
            placeholder=True,
        )
    if p.pod_uid and (p.container_top or p.parent_start_ns is None):
        pod = pod_node_id(p.pod_uid)
        batch.add_node(pod, {"uid": p.pod_uid}, placeholder=True)
        batch.add_edge(pod, EdgeKind.RAN, node_id, {"container_id": p.container_id})
    if p.audit_id:
        audit = add_audit(batch, p.audit_id, f"node:{p.host}", node_id, seen_at=p.started_at)
        if audit is not None:
            batch.add_edge(audit.node_id, EdgeKind.ANNOTATES, node_id, {"from": "environment"})


def join_container_opens(batch: GraphBatch, o: ContainerOpensRecord) -> None:
    """``Container -READ/WROTE/EXECUTED-> File``: the container's opens of a path, by exec image.

    The edge keeps the totals over the container's life (``by_image``), so the newest window's record
    replaces the older ones on upsert; the window's own counts are in ``last_window``."""
    fid = container_file_node_id(o.host, o.container_id, o.path)
    batch.add_node(fid, {"host": o.host, "path": o.path, "container_id": o.container_id})
    cid = container_node_id(o.container_id)
    batch.add_node(cid, {"container_id": o.container_id, "host": o.host}, placeholder=True)
    totals = o.totals or o.counts
    props: dict[str, Any] = {
        "count": sum(totals.values()),
        "by_image": dict(totals),
        "last_window": {"start": o.window_start, "end": o.window_end, "by_image": dict(o.counts)},
    }
    if o.first_at is not None:
        props["first_seen"] = o.first_at
    if o.last_at is not None:
        props["last_seen"] = o.last_at
    batch.add_edge(cid, ACCESS_EDGE[o.mode], fid, props)
