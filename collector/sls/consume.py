"""SLS shard consumption and backfill: cursors, checkpoints, pulling and the consumer loop.

Modes:

* **shard consumption** (``SlsCollector.consume``): ListShards, GetCursor, PullLogs per shard; a pull (or,
  while the store falls behind, a few pulls of one shard) becomes one graph batch that carries the shard's
  next cursor as its checkpoint, so the checkpoint moves only when the store accepted the data (a crash
  re-reads, never loses, never doubles). Shards that appear later (split/merge) are picked up and read
  from their beginning; read-only parents are drained.
* **in a consumer group** (``group=GroupMember``): the same loop over only the shards SLS assigns to this
  consumer (``liubai.collector.sls.group``); a shard taken away is released once its last batch is
  stored, and a shard taken over starts at the store's checkpoint (else the group's, else ``start``).
* **backfill by query** (``SlsCollector.backfill``): GetLogs over a time window, paged until complete.

SLS batches per shard pull rather than per record count, so it does not use ``ingest_records``; its
batches still reach the store only through the pipeline's ``StoreSink`` (one write step, one retry
policy), or, in a reader process, through the hand-over sink (``liubai.collector.sls.handoff``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

from aliyun.log import LogClient, LogException

from liubai.collector.ingest import BatchPace, Sink, StoreSink
from liubai.collector.logfields import FieldMap, log_mapper
from liubai.collector.offload import run_in_subprocess
from liubai.collector.retry import RetryPolicy
from liubai.collector.sls.client import (
    QUERY_PAGE,
    SlsError,
    _cursor,
    _parsed,
    _shard_ids,
    sls_call,
    sls_source,
)
from liubai.collector.sls.group import GroupMember
from liubai.collector.sls.mapping import pulled_records, queried_logs, queried_records
from liubai.collector.writer import BatchWriter
from liubai.lineage.join import record_joiner
from liubai.lineage.model import GraphBatch, RejectedRecord
from liubai.lineage.provenance import SLS_WRITER
from liubai.lineage.records import LogRecord
from liubai.lineage.store.base import LineageStore, row_preparer

__all__ = ["ConsumeStats", "SlsCollector"]

log = logging.getLogger(__name__)

_MAX_PULL_GROUPS = 1000  # log groups one PullLogs returns at most


@dataclass(slots=True)
class ConsumeStats:
    records: int = 0
    rejected: int = 0
    batches: int = 0
    pulls: int = 0
    shards: set[int] = field(default_factory=set)
    finished_shards: set[int] = field(default_factory=set)
    released_shards: set[int] = field(default_factory=set)  # given up to other consumers of the group


@dataclass(slots=True)
class _ShardState:
    cursor: str
    readonly: bool
    drained: bool = False


class SlsCollector:
    """Reads one logstore into a store. ``id_mode="content"`` gives consumed logs content-hash ids too
    (the same ids a JSONL/OTLP copy of the same lines gets under the same ``source``)."""

    def __init__(
        self,
        client: LogClient,
        project: str,
        logstore: str,
        store: LineageStore,
        *,
        source: str | None = None,
        fieldmap: FieldMap | None = None,
        retry: RetryPolicy | None = None,
        pull_count: int = 100,
        id_mode: Literal["cursor", "content"] = "cursor",
        progress: Callable[[ConsumeStats], None] | None = None,
        on_reject: Callable[[RejectedRecord], None] | None = None,
        sink: Sink | None = None,
        pace: BatchPace | None = None,
        group: GroupMember | None = None,
    ) -> None:
        """``sink``: where batches go instead of ``store`` (a reader process hands them to the process that
        stores them): each goes over in this thread and once, not on a writer thread with retries;
        ``store`` then only answers checkpoint reads. ``pace``: store as many pulls of a shard per batch
        as its factor (a reader process raises it while the store falls behind). ``group``: read only
        the shards SLS assigns to this consumer of a consumer group."""
        self.client = client
        self.project = project
        self.logstore = logstore
        self.store = store
        self.source = source or sls_source(project, logstore)
        self.checkpoint_source = sls_source(project, logstore)
        self.fieldmap = fieldmap or FieldMap()
        self.retry = retry or RetryPolicy.from_env()
        self.pull_count = pull_count
        self.id_mode = id_mode
        self.progress = progress
        self.on_reject = on_reject
        self.stats = ConsumeStats()
        self._shards: dict[int, _ShardState] = {}
        self._writer: BatchWriter[GraphBatch, None] | None = None
        self._handed_over = sink is not None
        self._sink: Sink = sink if sink is not None else StoreSink(store, SLS_WRITER, self.retry)
        self.pace = pace
        self.group = group
        self._first_start = "begin"
        self._first_listing: set[int] | None = None

    # ------------------------------------------------------------------ shard consumption
    def consume(
        self,
        *,
        start: str = "begin",
        follow: bool = False,
        poll_interval: float = 1.0,
        shard_refresh: float = 10.0,
        stop: threading.Event | None = None,
        offload: bool = False,
    ) -> ConsumeStats:
        """Read every shard up to its end (``follow``: then keep polling until ``stop`` is set).

        ``start`` (``begin``, ``end`` or a unix time) applies to shards with no checkpoint on the first
        run; later-found shards, and any shard of a logstore already being followed, start at ``begin``.
        ``offload``: pull, map and join in a child process (see ``_offloaded``); not with a consumer group
        (a shard taken over must be started from the store's checkpoint of that moment).
        """
        if offload and self.group is not None:
            raise ValueError("a consumer-group member reads in this process (offload=False)")
        if offload:
            options = {
                "start": start,
                "follow": follow,
                "poll_interval": poll_interval,
                "shard_refresh": shard_refresh,
            }
            return self._offloaded("consume", options, stop)
        stop = stop or threading.Event()
        group = self.group
        if group is not None:
            group.join(self.retry)
        try:
            with self._writing():
                resumed = bool(self.store.checkpoints(self.checkpoint_source))
                self._first_start = start if not resumed else "begin"
                self._refresh_shards()
                last_refresh = time.monotonic()
                while not stop.is_set():
                    moved = False
                    for shard_id, state in list(self._shards.items()):
                        if stop.is_set():
                            break
                        if not state.drained:
                            moved |= self._drain(shard_id, state, stop)
                    reassigned = group is not None and group.held() != set(self._shards)
                    if time.monotonic() - last_refresh >= shard_refresh or not moved or reassigned:
                        before = set(self._shards)
                        self._refresh_shards()
                        last_refresh = time.monotonic()
                        if set(self._shards) != before:
                            continue
                    if group is not None:
                        group.flush()
                    if not follow and not moved:
                        break
                    if not moved:
                        self._drain_writes()
                        stop.wait(poll_interval)
        finally:
            if group is not None:
                group.leave()  # after the writer has stored (and reported) every batch
        return self.stats

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Batches of this run are written on a background thread while the next pull is read."""
        with BatchWriter(self._store_batch, self._stored, in_flight=0 if self._handed_over else 1) as writer:
            self._writer = writer
            try:
                yield
            finally:
                self._writer = None

    def _drain_writes(self) -> None:
        if self._writer is not None:
            self._writer.drain()

    def _refresh_shards(self) -> None:
        """Follow the listing (and, in a group, the assignment). Shards of the first listing without a
        checkpoint start at ``start``, later ones at their beginning."""
        self._drain_writes()  # checkpoints read below must include every batch already pulled
        listed = sls_call(
            self.retry,
            f"ListShards {self.project}/{self.logstore}",
            partial(_parsed, partial(self.client.list_shards, self.project, self.logstore), _shard_ids),
        )
        listed_ids = {shard_id for shard_id, _ in listed}
        if self._first_listing is None:
            self._first_listing = listed_ids
        first_listing = self._first_listing
        for gone in set(self._shards) - listed_ids:  # expired read-only shards disappear from the listing
            del self._shards[gone]
        if self.group is not None:
            held = self.group.held()
            for shard_id in set(self._shards) - held:  # its batches are stored: another may take it
                del self._shards[shard_id]
                self.group.release(shard_id)
                self.stats.released_shards.add(shard_id)
            listed = [(shard_id, readonly) for shard_id, readonly in listed if shard_id in held]
        for shard_id, readonly in listed:
            state = self._shards.get(shard_id)
            if state is not None:
                if readonly and not state.readonly:
                    state.readonly, state.drained = True, False  # split since: drain the rest once more
                continue
            key = f"shard:{shard_id}"
            cursor = self.store.get_checkpoint(self.checkpoint_source, key)
            if cursor is None and self.group is not None:
                cursor = self.group.checkpoint(shard_id, self.retry)
            if cursor is None:
                start = self._first_start if shard_id in first_listing else "begin"
                get = partial(self.client.get_cursor, self.project, self.logstore, shard_id, start)
                cursor = sls_call(self.retry, f"GetCursor shard {shard_id}", partial(_parsed, get, _cursor))
            self._shards[shard_id] = _ShardState(cursor, readonly)
            self.stats.shards.add(shard_id)

    def _drain(self, shard_id: int, state: _ShardState, stop: threading.Event) -> bool:
        """Pull until the shard has nothing more; True if anything was read. A batch holds one pull, or
        the pace's factor of them while the store falls behind; it carries the cursor after its last."""
        moved = False
        batch, pulls, cursor = GraphBatch(), 0, state.cursor
        group = self.group
        while not stop.is_set() and (group is None or shard_id in group.held()):
            try:
                resp = sls_call(
                    self.retry, f"PullLogs shard {shard_id}", partial(self._pull, shard_id, cursor)
                )
            except SlsError as exc:
                if exc.sls_code != "ShardNotExist":
                    raise
                log.warning("shard %d no longer exists (expired after a split or merge)", shard_id)
                del self._shards[shard_id]
                break
            self.stats.pulls += 1
            next_cursor = resp.get_next_cursor()
            if resp.get_loggroup_count() == 0 or next_cursor == cursor:
                if state.readonly:
                    state.drained = True
                    self.stats.finished_shards.add(shard_id)
                break
            self._add_pull(batch, shard_id, cursor, resp)
            batch.checkpoints[(self.checkpoint_source, f"shard:{shard_id}")] = next_cursor
            cursor, moved, pulls = next_cursor, True, pulls + 1
            if pulls >= self._pulls_per_batch():
                self._upsert(batch)
                batch, pulls, state.cursor = GraphBatch(), 0, cursor  # past what is handed over, not beyond
        if pulls:
            self._upsert(batch)
            state.cursor = cursor
        return moved

    def _pulls_per_batch(self) -> int:
        """The pace's factor, as long as a batch stays under what one pull may return at most."""
        return 1 if self.pace is None else max(1, min(self.pace.factor, _MAX_PULL_GROUPS // self.pull_count))

    def _pull(self, shard_id: int, cursor: str) -> Any:  # a mangled body raises (retryable) from here
        resp = self.client.pull_logs(self.project, self.logstore, shard_id, cursor, count=self.pull_count)
        resp.loggroup_list  # noqa: B018 - parse inside the retry so a mangled body is re-fetched
        return resp

    def _add_pull(self, batch: GraphBatch, shard_id: int, cursor: str, resp: Any) -> None:
        """The lines of one pull into ``batch`` (ids: see ``pulled_records``)."""
        join = record_joiner(LogRecord)
        at = f"{self.project}/{self.logstore} shard {shard_id} cursor {cursor} #"
        id_prefix = f"{shard_id}:{cursor}:" if self.id_mode == "cursor" else None
        for record, rejected in pulled_records(resp, log_mapper(self.fieldmap), self.source, at, id_prefix):
            self._add(batch, join, record, rejected)

    def _add(
        self,
        batch: GraphBatch,
        join: Callable[[GraphBatch, LogRecord], None],
        record: LogRecord,
        rejected: list[RejectedRecord],
    ) -> None:
        before = len(batch.rejected)
        join(batch, record)
        batch.rejected.extend(rejected)
        self.stats.records += 1
        if len(batch.rejected) > before:
            self.stats.rejected += len(batch.rejected) - before
            if self.on_reject is not None:
                for r in batch.rejected[before:]:
                    self.on_reject(r)

    def _upsert(self, batch: GraphBatch) -> None:
        assert self._writer is not None, "batches are only stored inside _writing()"
        self._writer.submit(batch)

    def _store_batch(self, batch: GraphBatch, rows: Any = None) -> None:
        """``batch`` into the sink, or ``rows`` a reader process prepared for it (see ``RowStore``). A store
        that is briefly down is retried (``StoreSink``); a hand-over is not (a broken pipe stays broken)."""
        self._sink.write(batch, rows)

    def _stored(self, batch: GraphBatch, __: None) -> None:
        if self.group is not None:
            for (source, key), cursor in batch.checkpoints.items():
                if source == self.checkpoint_source and key.startswith("shard:"):
                    self.group.stored(int(key.removeprefix("shard:")), cursor)
        self.stats.batches += 1
        if self.progress is not None:
            self.progress(self.stats)

    # ------------------------------------------------------------------ in a reader process
    def _offloaded(
        self, method: Literal["consume", "backfill"], options: dict[str, Any], stop: threading.Event | None
    ) -> ConsumeStats:
        """``method(**options)`` with pulling, decoding, mapping and joining in a child process and only the
        store writes here, so the two run on different cores (one process tops out well below the
        store's rate). Each batch still carries its shard checkpoint and is stored in order; a batch the
        child pulled but this process had not stored when stopped is simply pulled again next time."""
        from liubai.collector.sls.handoff import Reader  # it runs an SlsCollector: imported when used

        reader = Reader(
            client=self.client,
            project=self.project,
            logstore=self.logstore,
            source=self.source,
            fieldmap=self.fieldmap,
            retry=self.retry,
            pull_count=self.pull_count,
            id_mode=self.id_mode,
            checkpoints=self.store.checkpoints(self.checkpoint_source),
            method=method,
            options=options,
            prepare=row_preparer(self.store),
        )
        with closing(run_in_subprocess(reader, stop=stop, passthrough=(SlsError,))) as batches:
            for batch, (seen, rows, last) in batches:
                self.stats = replace(seen, batches=self.stats.batches)  # batches: those stored here
                if last:  # the final counts come alone, after the last batch
                    continue
                self._store_batch(batch, rows)
                if self.on_reject is not None:
                    for r in batch.rejected:
                        self.on_reject(r)
                self._stored(batch, None)
        return self.stats

    # ------------------------------------------------------------------ backfill by query
    def backfill(
        self, query: str, from_time: int, to_time: int, *, page_size: int = QUERY_PAGE, offload: bool = False
    ) -> ConsumeStats:
        """Every log matching ``query`` with ``from_time <= time < to_time`` (unix seconds), page by page."""
        if offload:
            options = {"query": query, "from_time": from_time, "to_time": to_time, "page_size": page_size}
            return self._offloaded("backfill", options, None)
        offset = 0
        mapper, join = log_mapper(self.fieldmap), record_joiner(LogRecord)
        at = f"{self.project}/{self.logstore} query {query!r} #"
        with self._writing():
            for page in self._pages(query, from_time, to_time, page_size):
                batch = GraphBatch()
                for record, rejected in queried_records(page, mapper, self.source, at, offset):
                    self._add(batch, join, record, rejected)
                offset += len(page)
                self._upsert(batch)
        return self.stats

    def _pages(
        self, query: str, from_time: int, to_time: int, page_size: int
    ) -> Iterator[list[tuple[dict[str, str], str]]]:
        """Pages of (fields, time) per log."""
        offset = 0
        while True:

            def get(off: int = offset) -> Any:
                resp = self.client.get_log(
                    self.project,
                    self.logstore,
                    from_time,
                    to_time,
                    query=query or None,
                    offset=off,
                    size=page_size,
                )
                if not resp.is_completed():
                    raise LogException("RequestTimeout", "query did not complete", resp_status=503)
                return resp

            what = f"GetLogs {self.project}/{self.logstore}"
            logs = sls_call(self.retry, what, partial(_parsed, get, queried_logs))
            if logs:
                yield logs
            if len(logs) < page_size:
                return
            offset += len(logs)
