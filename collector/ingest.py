"""Records -> graph batches -> store, for any collector.

A collector yields records interleaved with ``Checkpoint`` markers (where it could resume) and
``Notice`` items (something the user must hear, e.g. rewritten history). The driver joins records into
batches of ``batch_size`` and upserts each; a checkpoint rides in the batch that holds the data it
covers, so it only moves after the store accepted that data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from collector.writer import BatchWriter
from lineage.join import add_record
from lineage.model import GraphBatch, NodeKind, RejectedRecord
from lineage.records import Record
from lineage.store.base import LineageStore, StoreError, UpsertResult

__all__ = ["Checkpoint", "IngestSummary", "Notice", "ingest_records"]

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


Item = Record | Checkpoint | Notice


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


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, StoreError) and exc.retryable


def ingest_records(
    store: LineageStore,
    items: Iterable[Item],
    *,
    batch_size: int = 2000,
    progress: Callable[[IngestSummary], None] | None = None,
    on_reject: Callable[[RejectedRecord], None] | None = None,
    distinct_kinds: frozenset[NodeKind] = DEFAULT_DISTINCT,
    attempts: int = 4,
) -> IngestSummary:
    """Join and store ``items`` in batches of about ``batch_size`` records; return what was ingested.

    The next batch is read and joined while the store writes the last one (``BatchWriter``).
    ``on_reject`` hears every rejected record (input rejects and join rejects) as its batch is sent.

    A store that is briefly unavailable is retried with jittered backoff; other store errors propagate
    (the last stored checkpoint still marks a consistent position).
    """
    summary = IngestSummary()
    seen: dict[str, set[str]] = {k.value: set() for k in distinct_kinds}
    retrying = Retrying(
        retry=retry_if_exception(_retryable),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.5, max=8),
        reraise=True,
    )
    batch = GraphBatch()
    pending = 0
    notes: list[RejectedRecord] = []

    def stored(_: GraphBatch, result: UpsertResult) -> None:
        summary.nodes_created += result.nodes_created
        summary.edges_created += result.edges_created
        summary.batches += 1
        summary.distinct = {k: len(v) for k, v in seen.items()}
        if progress is not None:
            progress(summary)

    def flush(writer: BatchWriter[UpsertResult]) -> None:
        nonlocal batch, pending, notes
        if not batch and not notes:
            return
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
        batch.rejected.extend(notes)
        writer.submit(batch)
        batch, pending, notes = GraphBatch(), 0, []

    with BatchWriter(partial(retrying, store.upsert), stored) as writer:
        for item in items:
            if isinstance(item, Checkpoint):
                batch.checkpoints[(item.source, item.key)] = item.value
                continue
            if isinstance(item, Notice):
                summary.notices.append(item)  # kept in the store's rejected trail, reported as a notice
                notes.append(RejectedRecord(item.source, item.location, item.message, item.raw))
                continue
            summary.records[type(item).__name__] += 1
            add_record(batch, item)
            pending += 1
            if pending >= batch_size:
                flush(writer)
            elif progress is not None and pending % _PROGRESS_EVERY == 0:
                progress(summary)
        flush(writer)
    summary.distinct = {k: len(v) for k, v in seen.items()}
    return summary
