"""What the store holds as running in a cluster: the live objects the cluster collector wrote.

Two readers need it, through the store protocol only (so on every store): the cluster collector, which
after a full list marks deleted whatever the store still holds as live but the list no longer has, and
the drift report. Workloads are found by their id prefix (``workload:[<cluster>:]<Kind>/``); Pods carry
no cluster in their id (``pod:<uid>``), so they are read whole and filtered on their ``cluster`` property.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from liubai.lineage.model import Node, NodeKind
from liubai.lineage.store.base import LineageStore

__all__ = ["LiveObject", "live_pods", "live_workloads"]

# find_by_prefix answers in one call; a cluster's objects must all come back, so the bound is only a
# guard against a store that holds far more than any cluster runs.
SCAN_LIMIT = 5_000_000


@dataclass(frozen=True, slots=True)
class LiveObject:
    """A stored object the cluster collector last saw alive."""

    node_id: str
    kind: str
    namespace: str
    name: str
    uid: str
    api_version: str
    props: dict[str, Any]

    @property
    def owner(self) -> str | None:
        owner = self.props.get("owner")
        return owner if isinstance(owner, str) else None


def _cluster_of(node: Node) -> str | None:
    value = node.props.get("cluster")
    return value if isinstance(value, str) and value else None


def _live(node: Node, kind: NodeKind) -> LiveObject:
    p = node.props
    return LiveObject(
        node.id,
        str(p.get("kind") or kind.value),
        str(p.get("namespace") or ""),
        str(p.get("name") or ""),
        str(p.get("uid") or ""),
        str(p.get("api_version") or "v1"),
        p,
    )


def live_workloads(
    store: LineageStore, cluster: str | None, kind: str | None = None, *, any_cluster: bool = False
) -> Iterator[LiveObject]:
    """Workload nodes of ``cluster`` (None: the unnamed one) that the collector last saw alive, of
    ``kind`` or of every kind; with ``any_cluster``, those of every cluster."""
    prefix = "" if any_cluster else (f"{cluster}:" if cluster else "")
    if kind is not None:
        prefix += f"{kind}/"
    for node in store.find_by_prefix(NodeKind.WORKLOAD, prefix, SCAN_LIMIT):
        if node.placeholder or node.props.get("live") is not True:
            continue  # declared in Git only, named by an owner reference only, or deleted
        if not any_cluster and _cluster_of(node) != cluster:
            continue  # an unnamed-cluster prefix also matches other clusters' ids
        if kind is not None and node.props.get("kind") != kind:
            continue
        yield _live(node, NodeKind.WORKLOAD)


def live_pods(store: LineageStore, cluster: str | None, *, any_cluster: bool = False) -> Iterator[LiveObject]:
    """Pod nodes of ``cluster`` (None: the unnamed one) not marked deleted; every cluster's with
    ``any_cluster``."""
    for node in store.find_by_prefix(NodeKind.POD, "", SCAN_LIMIT):
        if node.placeholder or node.props.get("phase") == "Deleted":
            continue
        if not any_cluster and _cluster_of(node) != cluster:
            continue
        yield _live(node, NodeKind.POD)
