"""Admission records into the store, off the admission path.

An admission must be answered within the API server's timeout whether the store is fast, slow or down, so
``record`` only puts the record on a bounded queue and never waits. One writer thread collects records
for up to ``linger`` seconds after the first (and whatever queued up meanwhile, so batches grow while the
store is slow), joins them and writes them through ``StoreSink`` (the ingest pipeline's store writer,
with its retry policy). A transaction per record would cost the webhook's process CPU on every
admission; one per batch spreads that cost over every admission the batch holds (figures:
docs/performance.md). A full queue or a failed write drops records: they are counted, the first drop
and then one a minute are logged, and ``stats`` reports them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from liubai.collector.ingest import StoreSink
from liubai.collector.retry import RetryPolicy
from liubai.lineage.join import join_records
from liubai.lineage.records import AdmissionRecord
from liubai.lineage.store.base import LineageStore
from liubai.lineage.text import clip

__all__ = ["WEBHOOK_WRITER", "AdmissionRecorder", "RecorderStats"]

WEBHOOK_WRITER = "webhook"
log = logging.getLogger("liubai.webhook")
_LOG_EVERY_S = 60.0


@dataclass(slots=True)
class RecorderStats:
    stored: int = 0
    dropped_full: int = 0  # the queue was full: the store is slower than admissions, or down
    dropped_failed: int = 0  # the write failed after its retries
    failed_writes: int = 0
    last_error: str | None = None

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.dropped_failed


class AdmissionRecorder:
    """Writes admission records with ``open_store()``'s store on a background thread.

    The store is opened by that thread (an SQLite connection stays on the thread that opened it) and
    opened again on the next batch after it failed to open."""

    def __init__(
        self,
        open_store: Callable[[], LineageStore],
        *,
        queue_size: int = 10_000,
        batch_size: int = 1000,
        linger: float = 0.25,
        retry: RetryPolicy | None = None,
        writer: str = WEBHOOK_WRITER,
        label: str = "store",
    ) -> None:
        self._open_store = open_store
        self._queue: queue.Queue[AdmissionRecord] = queue.Queue(maxsize=queue_size)
        self._batch_size = batch_size
        self._linger = linger
        self._retry = retry if retry is not None else RetryPolicy.from_env()
        self._writer = writer
        self._label = label
        self._store: LineageStore | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liubai-admission-writer", daemon=True)
        self._lock = threading.Lock()
        self._last_log = -_LOG_EVERY_S
        self.stats = RecorderStats()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread.start()

    def record(self, record: AdmissionRecord) -> bool:
        """Queue ``record``; False (and counted) when the queue is full. Never blocks."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            with self._lock:
                self.stats.dropped_full += 1
            self._warn("the record queue is full")
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (for up to ``timeout`` seconds), then stop; what is left is counted dropped."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        left = self._queue.qsize()
        if left:
            with self._lock:
                self.stats.dropped_failed += left
            self._warn(f"{left} records still queued at shutdown")
        if self._store is not None and not self._thread.is_alive():
            self._store.close()
            self._store = None

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            batch = [first]
            until = time.monotonic() + self._linger
            while len(batch) < self._batch_size:
                wait = until - time.monotonic()
                try:
                    batch.append(self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, records: list[AdmissionRecord]) -> None:
        try:
            if self._store is None:
                self._store = self._open_store()
            StoreSink(self._store, self._writer, self._retry).write(join_records(records))
        except Exception as exc:  # a store that is down, read-only or damaged: count, tell, go on
            with self._lock:
                self.stats.dropped_failed += len(records)
                self.stats.failed_writes += 1
                self.stats.last_error = clip(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self._reopen()  # the next batch opens the store anew
            self._warn(f"{self._label}: {self.stats.last_error}")
            return
        with self._lock:
            self.stats.stored += len(records)

    def _reopen(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:  # closing a broken connection may fail too; the next batch opens anew
                log.debug("closing the failed store", exc_info=True)

    def _warn(self, why: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_log < _LOG_EVERY_S:
                return
            self._last_log = now
            dropped = self.stats.dropped
        log.warning("admission records dropped (%d so far): %s", dropped, why)
