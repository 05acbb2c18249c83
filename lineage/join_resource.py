"""The join of a log line or span to what emitted it, by its resource attributes alone.

OpenTelemetry SDKs and collectors (the ``k8sattributes`` processor, ``OTEL_RESOURCE_ATTRIBUTES`` our
admission webhook stamps) name the emitter under semantic-convention keys; SLS Logtail's tags are mapped to
the same keys upstream. Each key that identifies a node by itself makes one edge, with no per-record
annotation needed:

* ``k8s.pod.uid`` -> ``Pod -EMITTED->`` the record; ``container.id`` -> ``Container -EMITTED->``;
* ``k8s.<deployment|statefulset|daemonset|replicaset|job|cronjob>.name`` with ``k8s.namespace.name`` ->
  ``Workload -EMITTED->``, in the cluster ``k8s.cluster.name`` names (unnamed: the id ``liubai ingest k8s``
  writes without ``--cluster``), the way ``workload_node_id`` keeps clusters apart;
* a full 40 or 64 hex revision (``vcs.ref.head.revision``, the older ``vcs.repository.ref.revision``, or
  ``service.version`` when it is one) -> the record ``-FOR_COMMIT-> Commit``;
* ``gitops.audit_id`` / ``x-gitops-audit-id`` -> the record ``-CARRIES->`` its audit record, as a
  record-level audit id does (a malformed one is a rejected record; the record still lands).

Pods, workloads and containers are only edge ends here: a node the cluster collector has not written is
the store's bare placeholder until it does, never a node with properties guessed from a log line.

A Pod named without its uid (``k8s.pod.name``) is not linked: the join sees one record, not the store, and
a name does not identify a Pod over time (a StatefulSet's next Pod takes the same name with a new uid).
The record says so instead (``pod_link: "name only"``) and keeps the name. An abbreviated or non-hex
revision stays in ``resource`` and is never widened into a commit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from liubai.lineage.join_audit import add_audit
from liubai.lineage.join_node import container_status_id
from liubai.lineage.model import (
    EdgeKind,
    GraphBatch,
    commit_node_id,
    container_node_id,
    pod_node_id,
    workload_node_id,
)

__all__ = ["AUDIT_ID_KEYS", "REVISION_KEYS", "WORKLOAD_KEYS", "add_resource_links", "resource_commit"]

# resource key -> the workload kind it names, in the order the edges are written
WORKLOAD_KEYS: tuple[tuple[str, str], ...] = (
    ("k8s.deployment.name", "Deployment"),
    ("k8s.statefulset.name", "StatefulSet"),
    ("k8s.daemonset.name", "DaemonSet"),
    ("k8s.replicaset.name", "ReplicaSet"),
    ("k8s.job.name", "Job"),
    ("k8s.cronjob.name", "CronJob"),
)
# current semantic conventions first, then the older name, then service.version (often a release tag)
REVISION_KEYS = ("vcs.ref.head.revision", "vcs.repository.ref.revision", "service.version")
AUDIT_ID_KEYS = ("gitops.audit_id", "x-gitops-audit-id")
_FULL_SHA = re.compile(r"[0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?")


def resource_commit(resource: Mapping[str, str]) -> str | None:
    """The commit the resource names by a full SHA-1 or SHA-256 hex revision, lower-cased; None when no
    revision key holds one (a short or symbolic revision is not a commit id)."""
    for key in REVISION_KEYS:
        value = resource.get(key)
        if value and _FULL_SHA.fullmatch(value.strip()):
            return value.strip().lower()
    return None


def add_resource_links(
    batch: GraphBatch,
    node_id: str,
    resource: Mapping[str, str],
    source: str,
    location: str,
    seen_at: str | None,
) -> str | None:
    """Add the edges ``resource`` makes for the record ``node_id``; returns ``"name only"`` when it names
    a Pod without its uid (so not linked to it), else None."""
    uid = resource.get("k8s.pod.uid")
    if uid:
        batch.add_edge(pod_node_id(uid), EdgeKind.EMITTED, node_id)
    container = container_status_id(resource.get("container.id"))
    if container:
        batch.add_edge(container_node_id(container), EdgeKind.EMITTED, node_id)
    namespace = resource.get("k8s.namespace.name")
    if namespace:
        cluster = resource.get("k8s.cluster.name") or None
        for key, kind in WORKLOAD_KEYS:
            name = resource.get(key)
            if name:
                batch.add_edge(workload_node_id(kind, namespace, name, cluster), EdgeKind.EMITTED, node_id)
    sha = resource_commit(resource)
    if sha is not None:
        cid = commit_node_id(sha)
        batch.add_node(cid, {"sha": sha}, placeholder=True)
        batch.add_edge(node_id, EdgeKind.FOR_COMMIT, cid)
    for key in AUDIT_ID_KEYS:
        raw = resource.get(key)
        if raw:
            audit = add_audit(batch, raw, source, location, seen_at=seen_at)
            if audit is not None:
                batch.add_edge(node_id, EdgeKind.CARRIES, audit.node_id)
    return "name only" if not uid and resource.get("k8s.pod.name") else None
