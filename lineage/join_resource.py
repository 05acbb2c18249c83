"""The join of a log line or span to what emitted it, by its resource attributes alone.

OpenTelemetry SDKs and collectors (the ``k8sattributes`` processor, the ``OTEL_RESOURCE_ATTRIBUTES`` our
admission webhook stamps) name the emitter under semantic-convention keys; SLS Logtail's tags are mapped to
the same keys upstream. The emitter is one Resource node per distinct attribute set
(``resource:<hash>``, holding the attributes), ``-EMITTED->`` each of its records: a record costs one edge,
and the links below are written once per resource, not once per line. Each key that names a node by itself
makes one link, with no per-record annotation needed:

* ``k8s.pod.uid`` -> ``Pod -RAN-> Resource``; ``container.id`` -> ``Container -RAN-> Resource``;
* ``k8s.<deployment|statefulset|daemonset|replicaset|job|cronjob>.name`` with ``k8s.namespace.name`` ->
  ``Resource -INSTANCE_OF-> Workload``, in the cluster ``k8s.cluster.name`` names (unnamed: the id
  ``liubai ingest k8s`` writes without ``--cluster``), as ``workload_node_id`` keeps clusters apart;
* a full 40 or 64 hex revision (``vcs.ref.head.revision``, the older ``vcs.repository.ref.revision``, or
  ``service.version`` when it is one) -> ``Resource -FOR_COMMIT-> Commit``;
* ``gitops.audit_id`` / ``x-gitops-audit-id`` -> ``Resource -CARRIES-> AuditRecord``, as a record-level
  audit id is carried (a malformed one is a rejected record; the records still land).

Pods, workloads and containers are edge ends only: one the cluster collector has not written is the
store's bare placeholder until it does, never a node with properties guessed from a log line.

A Pod named without its uid (``k8s.pod.name``) is not linked: the join sees one record, not the store, and
a name does not identify a Pod over time (a StatefulSet's next Pod takes the same name with a new uid).
The resource and its records say so instead (``pod_link: "name only"``), and the name stays among the
attributes. An abbreviated or non-hex revision stays an attribute; it is never widened into a commit.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import orjson

from liubai.lineage.join_audit import add_audit
from liubai.lineage.join_node import container_status_id
from liubai.lineage.model import (
    EdgeKind,
    GraphBatch,
    Props,
    commit_node_id,
    container_node_id,
    pod_node_id,
    resource_node_id,
    workload_node_id,
)

__all__ = [
    "AUDIT_ID_KEYS",
    "NAME_ONLY",
    "ResourcePlan",
    "RECORD_KEYS",
    "REVISION_KEYS",
    "WORKLOAD_KEYS",
    "add_resource",
    "resource_commit",
    "resource_links",
]

# resource key -> the workload kind it names, in the order the links are written
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
# attributes each record keeps as its own properties too, so that a line or span reads by itself
RECORD_KEYS: tuple[tuple[str, str], ...] = (
    ("service.version", "service_version"),
    ("deployment.environment.name", "environment"),
    ("deployment.environment", "environment"),
)
NAME_ONLY = "name only"
_FULL_SHA = re.compile(r"[0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?")


def resource_commit(resource: Mapping[str, str]) -> str | None:
    """The commit the resource names by a full SHA-1 or SHA-256 hex revision, lower-cased; None when no
    revision key holds one (a short or symbolic revision is not a commit id)."""
    for key in REVISION_KEYS:
        value = resource.get(key)
        if value and _FULL_SHA.fullmatch(value.strip()):
            return value.strip().lower()
    return None


@dataclass(frozen=True, slots=True)
class ResourcePlan:
    """What one distinct attribute set writes: worked out once, shared by every record that has it."""

    node_id: str
    props: Props  # shared, never changed (``GraphBatch.add_seen``)
    record_props: Props  # merged into each record's own properties
    emitters: tuple[str, ...]  # Pod and Container ids: ``-RAN-> Resource``
    workloads: tuple[str, ...]
    commit: str | None
    audit_ids: tuple[str, ...]


def resource_links(resource: Mapping[str, str]) -> ResourcePlan:
    """What ``resource`` links: its Pod and Container, workloads, commit and audit ids (cached)."""
    return _plan(tuple(sorted(resource.items())))


@lru_cache(maxsize=4096)
def _plan(items: tuple[tuple[str, str], ...]) -> ResourcePlan:
    resource = dict(items)
    digest = hashlib.blake2b(orjson.dumps(items), digest_size=16).hexdigest()
    emitters = []
    uid = resource.get("k8s.pod.uid")
    if uid:
        emitters.append(pod_node_id(uid))
    container = container_status_id(resource.get("container.id"))
    if container:
        emitters.append(container_node_id(container))
    workloads = []
    namespace = resource.get("k8s.namespace.name")
    if namespace:
        cluster = resource.get("k8s.cluster.name") or None
        workloads = [
            workload_node_id(kind, namespace, resource[key], cluster)
            for key, kind in WORKLOAD_KEYS
            if resource.get(key)
        ]
    record_props: Props = {}
    for key, prop in RECORD_KEYS:
        if resource.get(key) and prop not in record_props:
            record_props[prop] = resource[key]
    props: Props = {"attributes": resource, "service": resource.get("service.name")}
    if not uid and resource.get("k8s.pod.name"):
        props["pod_link"] = record_props["pod_link"] = NAME_ONLY
    return ResourcePlan(
        resource_node_id(digest),
        {k: v for k, v in props.items() if v is not None},
        record_props,
        tuple(emitters),
        tuple(workloads),
        resource_commit(resource),
        tuple(resource[k] for k in AUDIT_ID_KEYS if resource.get(k)),
    )


def add_resource(
    batch: GraphBatch, resource: Mapping[str, str], source: str, location: str, seen_at: str | None
) -> tuple[str, Props]:
    """Add the Resource node of ``resource`` with its links; returns its id and the properties the
    record keeps itself (the caller writes ``Resource -EMITTED-> record``)."""
    plan = resource_links(resource)
    if batch.add_seen(plan.node_id, plan.props, seen_at):
        return plan.node_id, plan.record_props  # a repeat in this batch: its links are here already
    rid = plan.node_id
    for emitter in plan.emitters:
        batch.add_edge(emitter, EdgeKind.RAN, rid)
    for workload in plan.workloads:
        batch.add_edge(rid, EdgeKind.INSTANCE_OF, workload)
    if plan.commit is not None:
        cid = commit_node_id(plan.commit)
        batch.add_node(cid, {"sha": plan.commit}, placeholder=True)
        batch.add_edge(rid, EdgeKind.FOR_COMMIT, cid)
    for raw in plan.audit_ids:
        audit = add_audit(batch, raw, source, location, seen_at=seen_at)
        if audit is not None:
            batch.add_edge(rid, EdgeKind.CARRIES, audit.node_id)
    return rid, plan.record_props
