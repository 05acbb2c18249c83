"""Drift: what runs in a cluster that Git does not account for, listed rather than hidden.

A running workload (a live Deployment, StatefulSet, DaemonSet, Job or CronJob that no other object owns,
or a bare Pod) drifts when:

* it carries no audit id (``no-audit-id``), a malformed one (``bad-audit-id``) or one without a commit
  (``no-commit``);
* its audit id names a commit the store does not know (``unknown-commit``): Git never declared it here;
* the commit is known but does not declare the workload (``undeclared``). A GitOps controller stamps the
  revision it applies on every object, while ``Commit -DECLARES-> Workload`` exists only where a commit
  changed the manifest; so the workload counts as declared when the commit or its nearest ancestor that
  touched the manifest declares it (and did not delete it).

Only the store protocol is used, so the answer is the same on every store. A live object named by a
cluster (``--cluster``) also meets the object Git declared without one: a repository that names no
cluster declares for any.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from liubai.lineage.cluster_view import LiveObject, live_pods, live_workloads
from liubai.lineage.model import (
    AuditIdError,
    Direction,
    EdgeKind,
    commit_node_id,
    parse_audit_id,
    workload_node_id,
)
from liubai.lineage.store.base import LineageStore

__all__ = ["DRIFT_KINDS", "Drift", "DriftReason", "find_drift"]

DRIFT_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
_RUNNING_PHASES = frozenset({"Pending", "Running", "Unknown"})
ANCESTRY_DEPTH = 1_000  # commits walked back from the running one to find the manifest's last change
_PAGE = 500


class DriftReason(StrEnum):
    NO_AUDIT_ID = "no-audit-id"
    BAD_AUDIT_ID = "bad-audit-id"
    NO_COMMIT = "no-commit"
    UNKNOWN_COMMIT = "unknown-commit"
    UNDECLARED = "undeclared"


@dataclass(frozen=True, slots=True)
class Drift:
    """One running object Git does not account for, and why (``detail`` says it in words)."""

    node_id: str
    kind: str
    namespace: str
    name: str
    cluster: str | None
    reason: DriftReason
    detail: str
    audit_id: str | None = None
    commit: str | None = None


def _running(store: LineageStore, cluster: str | None, every: bool) -> list[LiveObject]:
    found = [
        o
        for o in live_workloads(store, cluster, any_cluster=every)
        if o.kind in DRIFT_KINDS and o.owner is None
    ]
    found.extend(
        o
        for o in live_pods(store, cluster, any_cluster=every)
        if o.owner is None and o.props.get("phase") in _RUNNING_PHASES
    )
    return sorted(found, key=lambda o: o.node_id)


class _Declarations:
    """Which commits declare a workload, and which commits precede a commit; each asked once."""

    def __init__(self, store: LineageStore) -> None:
        self.store = store
        self._known: dict[str, bool] = {}
        self._ancestors: dict[str, dict[str, int]] = {}

    def commit_known(self, cid: str) -> bool:
        if cid not in self._known:
            node = self.store.get(cid)
            self._known[cid] = node is not None and not node.placeholder
        return self._known[cid]

    def declaring(self, wid: str) -> dict[str, bool]:
        """Commit id -> whether that commit deleted the manifest, for each commit that changed it."""
        out: dict[str, bool] = {}
        after: str | None = None
        while True:
            page = self.store.neighbors(wid, Direction.UPSTREAM, [EdgeKind.DECLARES], _PAGE, after)
            for e in page.edges:
                out[e.src] = bool(e.props.get("deleted"))
            if page.end_cursor is None:
                return out
            after = page.end_cursor

    def ancestors(self, cid: str) -> dict[str, int]:
        """Commit id -> hops back from ``cid`` (0 for itself), along PARENT edges."""
        if cid not in self._ancestors:
            sub = self.store.lineage(cid, Direction.UPSTREAM, ANCESTRY_DEPTH, [EdgeKind.PARENT])
            self._ancestors[cid] = dict(sub.depth) or {cid: 0}
        return self._ancestors[cid]

    def declared(self, cid: str, wids: list[str]) -> bool:
        changes: dict[str, bool] = {}
        for wid in wids:
            changes.update(self.declaring(wid))
        if not changes:
            return False
        depth = self.ancestors(cid)
        nearest = min((c for c in changes if c in depth), key=lambda c: (depth[c], c), default=None)
        return nearest is not None and not changes[nearest]


def _check(obj: LiveObject, decl: _Declarations) -> Drift | None:
    cluster = obj.props.get("cluster") or None
    raw = obj.props.get("live_audit_id" if obj.kind != "Pod" else "audit_id")

    def drift(reason: DriftReason, detail: str, commit: str | None = None) -> Drift:
        audit = raw if isinstance(raw, str) else None
        return Drift(obj.node_id, obj.kind, obj.namespace, obj.name, cluster, reason, detail, audit, commit)

    if not isinstance(raw, str) or not raw:
        return drift(DriftReason.NO_AUDIT_ID, "carries no x-gitops-audit-id annotation")
    try:
        audit = parse_audit_id(raw)
    except AuditIdError as exc:
        return drift(DriftReason.BAD_AUDIT_ID, f"malformed audit id: {exc.reason}")
    if audit.commit is None:
        return drift(DriftReason.NO_COMMIT, "its audit id names no commit")
    cid = commit_node_id(audit.commit)
    if not decl.commit_known(cid):
        return drift(
            DriftReason.UNKNOWN_COMMIT,
            f"commit {audit.commit[:12]} is not in the store: Git never declared it (or its repository "
            "was not ingested)",
            audit.commit,
        )
    wids = [workload_node_id(obj.kind, obj.namespace, obj.name, cluster)]
    if cluster:
        wids.append(workload_node_id(obj.kind, obj.namespace, obj.name))
    if not decl.declared(cid, wids):
        return drift(
            DriftReason.UNDECLARED,
            f"commit {audit.commit[:12]} does not declare {obj.kind}/{obj.namespace}/{obj.name} "
            "(nor does an ancestor that changed its manifest)",
            audit.commit,
        )
    return None


def find_drift(store: LineageStore, cluster: str | None = None, *, every_cluster: bool = True) -> list[Drift]:
    """Running objects Git does not account for, by node id: of every cluster (the default), or, with
    ``every_cluster=False``, of ``cluster`` alone (None: the unnamed one)."""
    decl = _Declarations(store)
    out: list[Drift] = []
    for obj in _running(store, cluster, every_cluster):
        found = _check(obj, decl)
        if found is not None:
            out.append(found)
    return out
