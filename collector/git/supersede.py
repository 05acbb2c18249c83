"""Declared objects stored under ids an earlier version gave them, marked ``superseded_by`` the new id.

Ids of declared objects changed once (``IDENTITY_VERSION`` 2: cluster-scoped objects lost the
``default`` namespace an old ingest gave them) and change when a repository is ingested for another
cluster. The new ids are written by re-reading the history; the old nodes are not deleted (other
evidence may point at them) but carry ``superseded_by``, which the declared view follows.
"""

from __future__ import annotations

from collections.abc import Mapping

from liubai.collector.ingest import Sink
from liubai.collector.manifests.scope import is_cluster_scoped
from liubai.lineage.model import EdgeKind, GraphBatch, NodeKind, workload_node_id
from liubai.lineage.store.base import LineageStore

__all__ = ["IDENTITY_VERSION", "reread_reason", "supersede_stale_ids"]

IDENTITY_VERSION = "2"  # 2: cluster-scoped objects have no namespace; --cluster joins the id


def reread_reason(checkpoints: Mapping[str, str], cluster: str | None) -> str:
    """Why the whole history must be read again although checkpoints exist, or "": the ids of declared
    objects changed since the last run (``IDENTITY_VERSION``), or the repository now deploys to another
    cluster. Objects stored under the old ids are then marked ``superseded_by`` the new ones."""
    if not any(key.startswith("ref:") for key in checkpoints):
        return ""
    if checkpoints.get("identity") != IDENTITY_VERSION:
        return (
            "declared objects have new ids (cluster-scoped objects have no namespace): re-reading the "
            "whole history; objects under the old ids are marked superseded"
        )
    was = checkpoints.get("cluster") or ""
    if was != (cluster or ""):
        return (
            f"cluster changed from {was or '(unnamed)'} to {cluster or '(unnamed)'}: re-reading "
            "the whole history; objects under the old ids are marked superseded"
        )
    return ""


def _declared_by(store: LineageStore, repo: str) -> tuple[set[str], set[str]]:
    """The objects ``repo`` declared, and those another repository declared too (DECLARES edges carry
    the repository; nodes written before they did carry it themselves)."""
    own: set[str] = set()
    others: set[str] = set()
    for chunk in store.iter_edges():
        for edge in chunk:
            if edge.kind == EdgeKind.DECLARES and edge.props.get("repo") is not None:
                (own if edge.props["repo"] == repo else others).add(edge.dst)
    return own, others


def supersede_stale_ids(store: LineageStore, sink: Sink, repo: str, cluster: str | None) -> int:
    """Mark the Workload nodes ``repo`` declared whose id the current rules would not give them, written
    through ``sink``; returns how many were marked. A node another repository declares too stays as it is (that repository still
    declares it under this id). One pass over the store's edges and one over its nodes, run only when a
    re-read says so."""
    batch = GraphBatch()
    marked = 0
    own, others = _declared_by(store, repo)
    for chunk in store.iter_nodes():
        for node in chunk:
            p = node.props
            if node.kind != NodeKind.WORKLOAD or node.placeholder or node.id in others:
                continue
            if node.id not in own and p.get("repo") != repo:
                continue
            if p.get("superseded_by"):
                continue
            kind, name = str(p.get("kind") or ""), str(p.get("name") or "")
            namespace = "" if is_cluster_scoped(kind) else str(p.get("namespace") or "")
            current = workload_node_id(kind, namespace, name, cluster)
            if current != node.id:
                batch.add_node(node.id, {"superseded_by": current})
                marked += 1
    if marked:
        sink.write(batch)
    return marked
