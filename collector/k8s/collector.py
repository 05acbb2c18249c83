"""The cluster collector: every resource type listed once, or listed and watched, into the one pipeline.

``ClusterCollector.items`` yields records, checkpoints, notices and (when watching) ``Flush`` markers for
``ingest_records``. Each resource type is read by its own ``ResourceSync`` in a thread of its own (a
watch blocks on its stream); they hand items through one bounded queue, so a slow store slows the
reading instead of filling memory. Checkpoints live under the source ``k8s`` (``k8s:<cluster>`` for a
named cluster), one per resource type, and move only in the batch that holds what they cover: a watcher
killed at any point resumes from the last stored resourceVersion, re-reading (never losing) what came
after it, and rewriting a re-read event changes nothing.

A resource type RBAC refuses is reported on one line naming the verb and resource and skipped (counted);
an unreachable API server is retried with backoff (``RetryPolicy``), each retry said on one line.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from liubai.collector.ingest import Flush, IngestSummary, Item, Notice, ingest_records
from liubai.collector.k8s.api import KubeApi, KubeForbidden, KubeUnreachable
from liubai.collector.k8s.resources import BUILTIN, Resource, discover
from liubai.collector.k8s.sync import ResourceStats, ResourceSync
from liubai.collector.retry import RetryPolicy
from liubai.lineage.model import RejectedRecord
from liubai.lineage.provenance import K8S_WRITER
from liubai.lineage.store.base import LineageStore

__all__ = ["ClusterCollector", "ClusterStats", "checkpoint_source", "ingest_cluster"]

QUEUE_ITEMS = 20_000
IDLE_FLUSH_S = 0.1  # a watch that went quiet this long has what it read stored
MAX_LATENCY_S = 1.0  # and a busy one at least this often


def checkpoint_source(cluster: str | None) -> str:
    return f"k8s:{cluster}" if cluster else "k8s"


@dataclass(slots=True)
class ClusterStats:
    """What a run read, per resource type (``apps/v1/deployments``, ...)."""

    resources: dict[str, ResourceStats] = field(default_factory=dict)
    forbidden: list[str] = field(default_factory=list)  # one line each, as reported

    @property
    def objects(self) -> int:
        return sum(s.listed + s.events for s in self.resources.values())

    @property
    def relists(self) -> int:
        return sum(s.relists for s in self.resources.values())

    @property
    def vanished(self) -> int:
        return sum(s.vanished for s in self.resources.values())


@dataclass(frozen=True, slots=True)
class _Done:
    key: str


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


class ClusterCollector:
    """Reads one cluster through ``api`` into records for the store ``store``."""

    def __init__(
        self,
        api: KubeApi,
        store: LineageStore,
        *,
        cluster: str | None = None,
        retry: RetryPolicy | None = None,
        on_notice: Callable[[Notice], None] | None = None,
    ) -> None:
        self.api = api
        self.store = store
        self.cluster = cluster
        self.source = checkpoint_source(cluster)
        self.retry = retry or RetryPolicy.from_env()
        self.on_notice = on_notice
        self.stats = ClusterStats()
        self.stop = threading.Event()
        self._failure: BaseException | None = None
        self._sources: dict[str, str] = {}  # Flux GitRepository namespace/name -> URL, for its users
        self._queue: queue.Queue[Item | _Done | _Failed] = queue.Queue(QUEUE_ITEMS)

    # ------------------------------------------------------------------ plumbing

    def _emit(self, item: Item | _Done | _Failed) -> None:
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if self.stop.is_set():
                    return

    def _notice(self, location: str, message: str) -> None:
        self._emit_item(Notice(self.source, location, message))

    def _emit_item(self, item: Item) -> None:
        if isinstance(item, Notice) and self.on_notice is not None:
            self.on_notice(item)
        self._emit(item)

    def resources(self) -> list[Resource]:
        """The built-in types and the GitOps types this cluster serves (discovery is retried)."""
        found, refused = self.retry.call(
            discover, self.api, retry_if=lambda e: isinstance(e, KubeUnreachable), what="API discovery"
        )
        for exc in refused:
            self.stats.forbidden.append(str(exc))
            self._notice("k8s:discovery", str(exc))
        gitops = sorted(found, key=lambda r: r.kind != "GitRepository")  # sources before their users
        return [*BUILTIN[:1], *gitops, *BUILTIN[1:]]

    def _sync(self, resource: Resource) -> ResourceSync:
        sync = ResourceSync(
            self.api,
            resource,
            cluster=self.cluster,
            source=self.source,
            emit=self._emit_item,
            retry=self.retry,
            stop=self.stop,
            sources=self._sources,
        )
        self.stats.resources[resource.key] = sync.stats
        return sync

    def _guarded(self, resource: Resource, work: Callable[[], None]) -> None:
        """Run one type's work; RBAC refusal becomes a notice, any other failure ends the run."""
        try:
            work()
        except KubeForbidden as exc:
            self.stats.resources[resource.key].forbidden = str(exc)
            self.stats.forbidden.append(str(exc))
            self._notice(f"k8s:{resource.key}", f"{exc}; reading the other resources")
        except BaseException as exc:  # handed to the consuming thread, raised there
            self._failure = exc
            self.stop.set()
            self._emit(_Failed(exc))
        finally:
            self._emit(_Done(resource.key))

    # ------------------------------------------------------------------ runs

    def items(self, *, watch: bool = False) -> Iterator[Item]:
        """Everything once (``watch`` False: one list per type, then the iterator ends), or lists and
        watches until ``stop`` is set (``watch`` True)."""
        resources = self.resources()
        checkpoints = {k: v for (s, k), v in self.store.checkpoints(self.source).items() if s == self.source}
        if watch:
            workers = []
            for r in resources:
                sync = self._sync(r)
                sync.load_known(self.store)
                start = checkpoints.get(r.key)

                def work(sync: ResourceSync = sync, start: str | None = start) -> None:
                    sync.watch_from(start)

                workers.append(
                    threading.Thread(
                        target=self._guarded, args=(r, work), daemon=True, name=f"k8s-{r.plural}"
                    )
                )
        else:
            syncs = [self._sync(r) for r in resources]

            def list_one(sync: ResourceSync) -> None:
                if not self.stop.is_set():  # after a failure, the types left only report done
                    sync.load_known(self.store)
                    sync.list_all()

            def run_all() -> None:
                for sync in syncs:
                    self._guarded(sync.resource, functools.partial(list_one, sync))

            workers = [threading.Thread(target=run_all, daemon=True, name="k8s-list")]
        for t in workers:
            t.start()
        yield from self._drain(len(resources), watch)

    def _drain(self, expected: int, watch: bool) -> Iterator[Item]:
        done = 0
        last_flush = time.monotonic()
        while done < expected:
            try:
                item = self._queue.get(timeout=IDLE_FLUSH_S)
            except queue.Empty:
                if self._failure is not None:
                    raise self._failure from None
                if self.stop.is_set():
                    return
                if watch:
                    yield Flush()
                    last_flush = time.monotonic()
                continue
            if isinstance(item, _Done):
                done += 1
                continue
            if isinstance(item, _Failed):
                raise item.error
            yield item
            if watch and time.monotonic() - last_flush > MAX_LATENCY_S:
                yield Flush()
                last_flush = time.monotonic()
            if self.stop.is_set() and watch:
                return


def ingest_cluster(
    store: LineageStore,
    collector: ClusterCollector,
    *,
    watch: bool = False,
    batch_size: int = 2000,
    progress: Callable[[IngestSummary], None] | None = None,
    on_reject: Callable[[RejectedRecord], None] | None = None,
) -> IngestSummary:
    """Read the cluster (once, or watching until ``collector.stop`` is set) into ``store``."""
    try:
        return ingest_records(
            store,
            collector.items(watch=watch),
            batch_size=batch_size,
            progress=progress,
            on_reject=on_reject,
            writer=K8S_WRITER,
        )
    finally:
        collector.stop.set()
