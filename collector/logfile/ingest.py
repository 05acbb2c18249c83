"""Log files into a store: read in-process, or parsed and joined in a child process for big files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from functools import partial

from liubai.collector.ingest import IngestSummary, ingest_records, store_batches
from liubai.collector.logfields import FieldMap
from liubai.collector.logfile.jsonl import read_jsonl
from liubai.collector.logfile.otlp import read_otlp
from liubai.collector.logfile.source import LogFormat, LogItem
from liubai.collector.offload import has_a_second_core, join_in_subprocess
from liubai.lineage.model import RejectedRecord
from liubai.lineage.provenance import LOGS_WRITER
from liubai.lineage.records import LogRecord, SpanRecord
from liubai.lineage.store.base import LineageStore, row_preparer

__all__ = ["OFFLOAD_MIN_BYTES", "FileIngestStats", "ingest_files", "read_log_file"]

OFFLOAD_MIN_BYTES = 4 << 20  # about 20k JSON lines


def read_log_file(
    path: str, fmt: LogFormat = "jsonl", *, source: str | None = None, fieldmap: FieldMap | None = None
) -> Iterator[LogItem]:
    """Records of one file in the given format."""
    reader = read_otlp if fmt == "otlp" else read_jsonl
    return reader(path, source=source, fieldmap=fieldmap)


@dataclass(slots=True)
class FileIngestStats:
    records: int = 0  # log records
    rejected: int = 0
    batches: int = 0
    files: int = 0
    spans: int = 0  # from OTLP trace documents


def _offloaded(path: str, parallel: bool | None) -> bool:
    """Whether to read ``path`` in a child process: asked for, or (by default) a file big enough for the
    child's start-up to pay off, on a machine with a second core."""
    if path == "-" or parallel is False:
        return False  # stdin belongs to this process
    if parallel:
        return True
    try:
        size = os.stat(path).st_size
    except OSError:
        return False  # reported as a rejected record by the reader, in-process
    return has_a_second_core() and size >= OFFLOAD_MIN_BYTES


def ingest_files(
    store: LineageStore,
    paths: Iterable[str],
    fmt: LogFormat = "jsonl",
    *,
    source: str | None = None,
    fieldmap: FieldMap | None = None,
    batch_size: int = 10_000,
    progress: Callable[[FileIngestStats], None] | None = None,
    on_reject: Callable[[RejectedRecord], None] | None = None,
    parallel: bool | None = None,
    paced: bool = True,
) -> FileIngestStats:
    """Read files into ``store`` in batches of ``batch_size`` records, the next batch parsed while the last
    one is written. Ids are content hashes, so a re-run after a crash simply re-writes what landed.

    Files of ``OFFLOAD_MIN_BYTES`` or more are read, parsed and joined in a child process while this one
    stores (``parallel`` True/False forces either way); the graph is the same. There, batches grow while
    the store falls behind (``paced``, see ``BatchPace``)."""
    stats = FileIngestStats()
    for path in paths:
        done = FileIngestStats(stats.records, stats.rejected, stats.batches, stats.files, stats.spans)

        def show(summary: IngestSummary, done: FileIngestStats = done) -> None:
            stats.records = done.records + summary.count(LogRecord.__name__)
            stats.spans = done.spans + summary.count(SpanRecord.__name__)
            stats.rejected = done.rejected + summary.rejected
            stats.batches = done.batches + summary.batches
            if progress is not None:
                progress(stats)

        read = partial(read_log_file, path, fmt, source=source, fieldmap=fieldmap)
        if _offloaded(path, parallel):
            with closing(
                join_in_subprocess(read, batch_size, row_preparer(store), paced=paced)
            ) as joined:  # a store error stops the child
                store_batches(
                    store, joined, progress=show, on_reject=on_reject, background=False, writer=LOGS_WRITER
                )
        else:  # reports every stored batch through ``show``
            ingest_records(
                store, read(), batch_size=batch_size, progress=show, on_reject=on_reject, writer=LOGS_WRITER
            )
        stats.files += 1
        if progress is not None:
            progress(stats)
    return stats
