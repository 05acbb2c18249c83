"""A traced run into the store: its records handed to the one ingest pipeline (``liubai.collector.ingest``),
which batches, writes and retries; nothing here writes to a store itself."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from liubai.collector.ingest import ingest_records
from liubai.lineage.model import RejectedRecord
from liubai.lineage.provenance import EBPF_WRITER
from liubai.lineage.records import Record
from liubai.lineage.store.base import LineageStore

if TYPE_CHECKING:
    from liubai.collector.runs import RunCollector

__all__ = ["IngestStats", "ingest_run", "run_items"]


@dataclass(slots=True)
class IngestStats:
    processes: int = 0
    file_accesses: int = 0
    rejected: int = 0
    nodes_created: int = 0
    edges_created: int = 0


def run_items(collector: RunCollector, rejected: Sequence[RejectedRecord] = ()) -> Iterator[Record]:
    """The run as pipeline items: the lines a replay could not use first (kept, countable), then the
    run's records."""
    yield from rejected
    yield from collector.records()


def ingest_run(
    store: LineageStore,
    collector: RunCollector,
    rejected: Sequence[RejectedRecord] = (),
    *,
    batch_size: int = 5000,
) -> IngestStats:
    """Join the run's records and store them in batches of ``batch_size`` records (idempotent), through
    the ingest pipeline: a store that is briefly down is retried by its one policy."""
    summary = ingest_records(store, run_items(collector, rejected), batch_size=batch_size, writer=EBPF_WRITER)
    return IngestStats(
        processes=summary.count("ProcessRecord"),
        file_accesses=summary.count("FileAccessRecord"),
        rejected=summary.rejected,
        nodes_created=summary.nodes_created,
        edges_created=summary.edges_created,
    )
