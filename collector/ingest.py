"""Records -> graph batches -> store: the one ingest pipeline of every collector.

A collector yields records interleaved with ``Checkpoint`` markers (where it could resume), ``Notice``
items (something the user must hear, e.g. rewritten history) and, from a live source, ``Flush`` markers
(store what came so far now, do not wait for a full batch). The driver joins records into
batches of ``batch_size`` and writes each through ``StoreSink``; a checkpoint rides in the batch that
holds the data it covers, so it only moves after the store accepted that data.

``StoreSink`` is the one place a collector's batch reaches a store: it names the batch's writer and
retries a briefly unavailable store under the shared ``RetryPolicy``. Git, log files, eBPF runs and
replays go through ``ingest_records``.

Two sources build their own batches, and only these. SLS batches by shard pull: a batch's checkpoint is
the shard's next cursor, which holds only for whole pulls; its batches still go through a ``StoreSink``.
The node agent (``liubai.collector.agent``) batches by units, a log line's records and the position after
it: an API that answers 413 makes it halve a batch by units and move its position per delivered half,
which this pipeline's checkpoints cannot be split by. It writes no store itself: the API's ingest
(``liubai.api.ingest_http``) stores what it posts through a ``StoreSink``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from liubai.collector.retry import RetryPolicy
from liubai.collector.writer import BatchWriter
from liubai.lineage.join import add_record, record_joiner
from liubai.lineage.model import GraphBatch, NodeKind, RejectedRecord
from liubai.lineage.provenance import LOCAL_WRITER
from liubai.lineage.records import LogRecord, Record
from liubai.lineage.store.base import LineageStore, StoreError, UpsertResult, write_batch

__all__ = [
    "BatchPace",
    "Checkpoint",
    "Flush",
    "IngestSummary",
    "JoinedBatch",
    "Notice",
    "Sink",
    "StoreSink",
    "ingest_records",
    "join_batches",
    "store_batches",
]

DEFAULT_DISTINCT = frozenset({NodeKind.REPO, NodeKind.WORKLOAD, NodeKind.AUDIT_RECORD, NodeKind.TRACE})
_SAMPLES = 5
_PROGRESS_EVERY = 256


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The position a source may resume from once everything yielded before this marker is stored."""

    source: str
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A condition the user must be told about; it is also kept as a rejected record for the audit trail."""

    source: str
    location: str
    message: str
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Flush:
    """Ends the batch being built: a live source (a watch) that went quiet has what it read stored now,
    not when enough more arrives to fill the batch."""


Item = Record | Checkpoint | Notice | Flush


class BatchPace:
    """Grows batches while the store they queue up for falls behind, and shrinks them once it keeps up.

    A store commits a transaction per batch, and SQLite rewrites every page it touched once per
    transaction: log line ids land at random places of their index, so at a million lines nearly every
    page of it is rewritten per 10k-line batch. Fewer, larger transactions then write far less: a big file
    stores markedly faster when its batches follow the store (``bench/log_ingest.py --scale``).
    Small batches stay best while the store keeps up: it starts sooner and finishes sooner after the last
    line is read.

    The reader hands each batch over through ``hand_over``, which weighs how long that waited for the
    store against how long the batch took to build; ``factor`` (1, 2, 4, ... up to ``max_factor``)
    multiplies the batch size.
    """

    BEHIND = 0.25  # a hand-over that waits this share of the build time: the store is behind
    CAUGHT_UP = 0.05  # above the few percent that the pipe's own copy of a batch takes
    MIN_WAIT_S = 0.02  # below this a wait is noise (a busy moment of the machine), not a trend
    # Caught-up hand-overs in a row before batches shrink: while a bigger batch is built the store always
    # catches up, so shrinking at the first one makes the sizes swing (and a big file slower).
    CALM = 8

    def __init__(self, max_factor: int = 4) -> None:
        self.max_factor = max_factor
        self.factor = 1
        self._calm = 0
        self._since = time.perf_counter()

    def hand_over(self, send: Callable[[], float]) -> None:
        """Run ``send``, which returns how long it waited for the store, and learn from that wait."""
        ready = time.perf_counter()
        waited = send()
        self.handed_over(waited, ready - self._since)
        self._since = time.perf_counter()

    def handed_over(self, waited: float, built: float) -> None:
        if waited > self.BEHIND * built and waited > self.MIN_WAIT_S:
            self.factor, self._calm = min(self.max_factor, self.factor * 2), 0
        elif waited < self.CAUGHT_UP * built:
            self._calm += 1
            if self._calm >= self.CALM:
                self.factor, self._calm = max(1, self.factor // 2), 0
        else:
            self._calm = 0


@dataclass(slots=True)
class IngestSummary:
    """Counts of one ingest run. ``distinct`` counts non-placeholder node ids of the tracked kinds."""

    records: Counter[str] = field(default_factory=Counter)
    distinct: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    rejected_samples: list[RejectedRecord] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    nodes_created: int = 0
    edges_created: int = 0
    batches: int = 0

    def count(self, record_type: str) -> int:
        return self.records.get(record_type, 0)

    @property
    def commits(self) -> int:
        return self.count("CommitRecord")

    @property
    def workloads(self) -> int:
        return self.distinct.get(NodeKind.WORKLOAD.value, 0)

    @property
    def audit_records(self) -> int:
        return self.distinct.get(NodeKind.AUDIT_RECORD.value, 0)

    @property
    def rewritten(self) -> list[Notice]:
        return [n for n in self.notices if n.message.startswith("history rewritten")]


def store_retryable(exc: BaseException) -> bool:
    """A store error worth another try: the store said it may pass (busy, briefly unreachable)."""
    return isinstance(exc, StoreError) and exc.retryable


class Sink(Protocol):
    """Where joined batches go: a store (``StoreSink``), or a hand-over to the process that stores them."""

    def write(self, batch: GraphBatch, rows: Any = None) -> object: ...


def _first_line(exc: BaseException) -> str:
    """A retry warning is one line: a driver's message may run over several."""
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


@dataclass(frozen=True, slots=True)
class StoreSink:
    """Writes batches into ``store`` as ``writer``, retrying a briefly unavailable store under ``retry``
    (its ``for_store`` bound); any other store error propagates at once."""

    store: LineageStore
    writer: str = LOCAL_WRITER
    retry: RetryPolicy = field(default_factory=RetryPolicy.from_env)

    def write(self, batch: GraphBatch, rows: Any = None) -> UpsertResult:
        """``batch`` into the store, or ``rows`` a reader process prepared for it (see ``RowStore``)."""
        batch.writer = self.writer
        policy = self.retry.for_store()
        return policy.call(
            write_batch,
            self.store,
            batch,
            rows,
            retry_if=store_retryable,
            what=f"store {self.store.url}",
            describe=_first_line,
        )


@dataclass(slots=True)
class JoinedBatch:
    """One batch ready for the store, with the record types joined into it and the notices read with it
    (not yet in ``batch.rejected``: the driver reports them apart, then keeps them with the batch).

    ``rows``: the batch's nodes and edges already prepared for a ``RowStore`` (in a reader process); then
    ``batch`` holds only its rejected records, checkpoints and the non-placeholder nodes of the ``kept``
    kinds, those an ingest summary counts."""

    batch: GraphBatch
    records: Counter[str] = field(default_factory=Counter)
    notices: list[Notice] = field(default_factory=list)
    rows: Any = None
    kept: frozenset[NodeKind] = frozenset()


def join_batches(
    items: Iterable[Item],
    batch_size: int,
    *,
    tick: Callable[[Counter[str]], None] | None = None,
    start_small: bool = False,
    pace: BatchPace | None = None,
) -> Iterator[JoinedBatch]:
    """Join ``items`` into batches of about ``batch_size`` records. A checkpoint rides in the batch being
    built when it arrives, so it is stored with the records before it or after them, never before.
    ``tick`` hears the record types pending in that batch every few hundred records, for progress.
    ``start_small``: the first batch holds an eighth of ``batch_size``, each next one twice as many up to
    ``batch_size``, so that a store waiting in another process gets its first batch sooner. ``pace``: each
    batch once ramped up holds ``batch_size`` times the pace's factor, as it stands when the batch starts."""
    size = max(1, batch_size // 8) if start_small else batch_size
    ramped = size
    batch, records, notices, pending = GraphBatch(), Counter[str](), list[Notice](), 0
    add_log = record_joiner(LogRecord)
    for item in items:
        kind = type(item)
        if kind is LogRecord:  # most items: no need to ask what else they are, nor add_record's dispatch
            add_log(batch, item)
        elif isinstance(item, Checkpoint):
            batch.checkpoints[(item.source, item.key)] = item.value
            continue
        elif isinstance(item, Notice):
            notices.append(item)
            continue
        elif isinstance(item, Flush):
            if batch or notices:
                yield JoinedBatch(batch, records, notices)
                batch, records, notices, pending = GraphBatch(), Counter(), [], 0
            continue
        else:
            add_record(batch, item)
        records[kind.__name__] += 1
        pending += 1
        if pending >= size:
            yield JoinedBatch(batch, records, notices)
            batch, records, notices, pending = GraphBatch(), Counter(), [], 0
            ramped = min(batch_size, ramped * 2)
            size = ramped * pace.factor if pace is not None and ramped == batch_size else ramped
        elif tick is not None and pending % _PROGRESS_EVERY == 0:
            tick(records)
    if batch or notices:
        yield JoinedBatch(batch, records, notices)


def store_batches(
    store: LineageStore,
    joined: Iterable[JoinedBatch],
    *,
    progress: Callable[[IngestSummary], None] | None = None,
    on_reject: Callable[[RejectedRecord], None] | None = None,
    distinct_kinds: frozenset[NodeKind] = DEFAULT_DISTINCT,
    retry: RetryPolicy | None = None,
    summary: IngestSummary | None = None,
    background: bool = True,
    writer: str = LOCAL_WRITER,
) -> IngestSummary:
    """Store joined batches in order and count what landed: on a background writer (``BatchWriter``)
    while the next batch is joined, or, with ``background=False``, in this thread (when the joining
    happens in another process). ``on_reject`` hears every rejected record (input rejects and join
    rejects) as its batch is sent.

    A store that is briefly unavailable is retried under ``retry`` (default: ``RetryPolicy.from_env()``, from the
    environment); other store errors propagate (the last stored checkpoint still marks a consistent
    position). Every batch is written as ``writer`` (the collector's name, see
    ``liubai.lineage.provenance``).
    """
    summary = summary if summary is not None else IngestSummary()
    seen: dict[str, set[str]] = {k.value: set() for k in distinct_kinds}
    sink = StoreSink(store, writer, retry if retry is not None else RetryPolicy.from_env())

    def write(part: JoinedBatch) -> UpsertResult:
        return sink.write(part.batch, part.rows)

    def stored(_: JoinedBatch, result: UpsertResult) -> None:
        summary.nodes_created += result.nodes_created
        summary.edges_created += result.edges_created
        summary.batches += 1
        summary.distinct = {k: len(v) for k, v in seen.items()}
        if progress is not None:
            progress(summary)

    with BatchWriter(write, stored, in_flight=1 if background else 0) as batches:
        for part in joined:
            batch = part.batch
            if part.rows is not None and not distinct_kinds <= part.kept:
                missing = ", ".join(sorted(k.value for k in distinct_kinds - part.kept))
                raise ValueError(f"cannot count {missing} nodes: the reader process did not keep them")
            summary.records.update(part.records)
            for node in batch.nodes:
                if not node.placeholder:
                    bucket = seen.get(node.kind.value)
                    if bucket is not None:
                        bucket.add(node.id)
            summary.rejected += len(batch.rejected)
            if on_reject is not None:
                for rejected in batch.rejected:
                    on_reject(rejected)
            room = _SAMPLES - len(summary.rejected_samples)
            if room > 0:
                summary.rejected_samples.extend(batch.rejected[:room])
            summary.notices.extend(part.notices)  # reported as notices, kept in the store's rejected trail
            batch.rejected.extend(
                RejectedRecord(n.source, n.location, n.message, n.raw) for n in part.notices
            )
            batches.submit(part)
    summary.distinct = {k: len(v) for k, v in seen.items()}
    return summary


def ingest_records(
    store: LineageStore,
    items: Iterable[Item],
    *,
    batch_size: int = 2000,
    progress: Callable[[IngestSummary], None] | None = None,
    on_reject: Callable[[RejectedRecord], None] | None = None,
    distinct_kinds: frozenset[NodeKind] = DEFAULT_DISTINCT,
    retry: RetryPolicy | None = None,
    writer: str = LOCAL_WRITER,
) -> IngestSummary:
    """Join and store ``items`` in batches of about ``batch_size`` records; return what was ingested.

    The next batch is read and joined while the store writes the last one (``store_batches``); progress
    also reports the records of the batch being built.
    """
    summary = IngestSummary()
    tick = None
    if progress is not None:
        report = progress

        def tick(pending: Counter[str]) -> None:
            report(replace(summary, records=summary.records + pending))

    return store_batches(
        store,
        join_batches(items, batch_size, tick=tick),
        progress=progress,
        on_reject=on_reject,
        distinct_kinds=distinct_kinds,
        retry=retry,
        summary=summary,
        writer=writer,
    )
