"""One resource type kept in step with the store: list, then watch from the list's resourceVersion.

The list is a full sync: every object becomes a record, and whatever the store still holds as live but
the list no longer has is recorded deleted (it went while nobody watched). A watch resumes from the
checkpointed resourceVersion; bookmarks move the checkpoint along while nothing changes; ``410 Gone``
(the version is older than the server keeps) means list again. After every record comes the checkpoint
that covers it, so the pipeline stores a resourceVersion only with the data read up to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from liubai.collector.ingest import Checkpoint, Item, Notice
from liubai.collector.k8s.api import KubeApi, KubeError, KubeGone, KubeUnreachable
from liubai.collector.k8s.convert import to_record
from liubai.collector.k8s.resources import Resource
from liubai.collector.retry import RetryPolicy
from liubai.lineage.cluster_view import live_pods, live_workloads
from liubai.lineage.model import pod_node_id, workload_node_id
from liubai.lineage.records import ClusterObjectRecord, PodRecord, iso_utc
from liubai.lineage.store.base import LineageStore

__all__ = ["Known", "ResourceStats", "ResourceSync"]

PAGE = 500
WATCH_TIMEOUT_S = 300


@dataclass(frozen=True, slots=True)
class Known:
    """What a deletion record needs of an object the store holds as live."""

    namespace: str
    name: str
    uid: str
    api_version: str


@dataclass(slots=True)
class ResourceStats:
    """Counts of one resource type; only its own worker writes them."""

    listed: int = 0
    events: int = 0
    relists: int = 0
    vanished: int = 0  # found missing on a list: deleted while nobody watched
    forbidden: str | None = None


def _now() -> str:
    import time

    return iso_utc(time.time())


class ResourceSync:
    """Lists and watches one resource type, handing records and checkpoints to ``emit``."""

    def __init__(
        self,
        api: KubeApi,
        resource: Resource,
        *,
        cluster: str | None,
        source: str,
        emit: Callable[[Item], None],
        retry: RetryPolicy,
        stop: threading.Event,
        sources: dict[str, str],
    ) -> None:
        self.api = api
        self.resource = resource
        self.cluster = cluster
        self.source = source
        self.emit = emit
        self.retry = retry
        self.stop = stop
        self.sources = sources  # GitRepository namespace/name -> URL, shared by the Flux types
        self.stats = ResourceStats()
        self.known: dict[str, Known] = {}

    # ------------------------------------------------------------------ the store's view

    def load_known(self, store: LineageStore) -> None:
        """The objects of this type the store holds as live: the list compares against them."""
        r = self.resource
        found = (
            live_pods(store, self.cluster) if r.kind == "Pod" else live_workloads(store, self.cluster, r.kind)
        )
        self.known = {o.node_id: Known(o.namespace, o.name, o.uid, o.api_version) for o in found}

    def _node_id(self, record: ClusterObjectRecord | PodRecord) -> str:
        if isinstance(record, PodRecord):
            return pod_node_id(record.uid)
        return workload_node_id(record.kind, record.namespace, record.name, record.cluster)

    def _put(self, record: ClusterObjectRecord | PodRecord) -> None:
        node = self._node_id(record)
        if record.deleted:
            self.known.pop(node, None)
        else:
            self.known[node] = Known(
                record.namespace,
                record.name,
                record.uid,
                record.api_version if isinstance(record, ClusterObjectRecord) else "v1",
            )
        self.emit(record)

    def _deleted(self, key: Known, at: str) -> ClusterObjectRecord | PodRecord:
        r = self.resource
        if r.kind == "Pod":
            return PodRecord(self.cluster, key.namespace, key.name, key.uid, at, deleted=True)
        return ClusterObjectRecord(
            self.cluster, key.api_version, r.kind, key.namespace, key.name, key.uid, at, deleted=True
        )

    def _object(self, obj: Mapping[str, Any], *, deleted: bool = False) -> None:
        if self.resource.kind == "GitRepository":
            meta = obj.get("metadata") or {}
            url = (obj.get("spec") or {}).get("url")
            if isinstance(url, str):
                self.sources[f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"] = url
        record = to_record(
            self.resource, obj, self.cluster, deleted=deleted, now=_now(), sources=self.sources
        )
        if record is not None:
            self._put(record)

    def _checkpoint(self, rv: str) -> None:
        self.emit(Checkpoint(self.source, self.resource.key, rv))

    # ------------------------------------------------------------------ list

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        return self.retry.call(fn, *args, retry_if=lambda e: isinstance(e, KubeUnreachable), what=what)

    def list_all(self) -> str:
        """One full list (in pages of one snapshot): records, deletions of what it misses, checkpoint.
        Returns the list's resourceVersion."""
        while True:
            try:
                return self._list_pages()
            except KubeGone:  # the snapshot's continue token expired between pages: list afresh
                if self.stop.is_set():
                    raise

    def _list_pages(self) -> str:
        r = self.resource
        seen: set[str] = set()
        query = {"limit": str(PAGE)}
        rv = ""
        while True:
            doc = self._call(
                f"list {r.label}",
                lambda q=dict(query): self.api.get(r.path, q, verb="list", resource=r.label),
            )
            if doc is None:
                raise KubeError(f"Kubernetes API {self.api.server}: {r.label} are not served (404)")
            meta = doc.get("metadata") or {}
            rv = rv or str(meta.get("resourceVersion") or "")
            for obj in doc.get("items") or []:
                if not isinstance(obj, dict):
                    continue
                obj.setdefault("apiVersion", r.api_version)  # list items leave out what the list says
                self._object(obj)
                self.stats.listed += 1
                uid = (obj.get("metadata") or {}).get("uid")
                if r.kind == "Pod" and isinstance(uid, str):
                    seen.add(pod_node_id(uid))
                else:
                    m = obj.get("metadata") or {}
                    ns = str(m.get("namespace") or "") if r.namespaced else ""
                    seen.add(workload_node_id(r.kind, ns, str(m.get("name") or ""), self.cluster))
            token = meta.get("continue")
            if not token:
                break
            query = {"limit": str(PAGE), "continue": str(token)}
        at = _now()
        for node, key in list(self.known.items()):
            if node not in seen:
                self._put(self._deleted(key, at))
                self.stats.vanished += 1
        self._checkpoint(rv)
        return rv

    # ------------------------------------------------------------------ watch

    def watch_from(self, rv: str | None) -> None:
        """List (when there is no ``rv``), then watch until ``stop``; relist on ``410 Gone``."""
        r = self.resource
        while not self.stop.is_set():
            if rv is None:
                rv = self.list_all()
            try:
                rv = self._watch_once(rv)
            except KubeGone as exc:
                self.stats.relists += 1
                self.emit(
                    Notice(
                        self.source,
                        f"k8s:{r.key}",
                        f"resourceVersion {rv} of {r.label} is too old (410 Gone): listing again ({exc})",
                    )
                )
                rv = None

    def _watch_once(self, rv: str) -> str:
        """One watch request from ``rv``, followed to its end; the last resourceVersion read."""
        r = self.resource
        query = {"resourceVersion": rv, "allowWatchBookmarks": "true"}
        events = self._call(
            f"watch {r.label}",
            lambda: self.api.watch(r.path, query, resource=r.label, timeout_s=WATCH_TIMEOUT_S),
        )
        try:
            for event in events:
                if self.stop.is_set():
                    break
                rv = self._event(event, rv)
        except KubeUnreachable as exc:  # the stream broke off: the caller watches again from rv
            if self.stop.is_set():
                return rv
            self.emit(Notice(self.source, f"k8s:{r.key}", f"watch of {r.label} broke off, resuming: {exc}"))
        return rv

    def _event(self, event: Any, rv: str) -> str:
        if not isinstance(event, dict):
            return rv
        kind, obj = event.get("type"), event.get("object")
        if not isinstance(obj, dict):
            return rv
        if kind == "ERROR":
            code = obj.get("code")
            message = obj.get("message") or obj.get("reason") or "no message"
            if code == 410:
                raise KubeGone(str(message))
            if isinstance(code, int) and (code == 429 or code >= 500):
                raise KubeUnreachable(f"watch {self.resource.label}: {code} {message}")
            raise KubeError(
                f"Kubernetes API {self.api.server}: watch {self.resource.label} failed: {code} {message}"
            )
        new_rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            obj.setdefault("apiVersion", self.resource.api_version)
            self._object(obj, deleted=kind == "DELETED")
            self.stats.events += 1
        if new_rv != rv:
            self._checkpoint(new_rv)
        return new_rv
