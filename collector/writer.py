"""Store writes on a background thread, so that reading and joining the next batch overlaps the last write.

A collector spends its time in two places that can run at once on two cores: Python that reads, maps and
joins records, and the store engine writing the previous batch (SQLite releases the GIL while it steps;
Neo4j works in its own process). ``BatchWriter`` keeps exactly one batch in flight by default and applies
batches strictly in order, so a checkpoint still lands only together with the data it covers, and a batch
is never written after one that failed.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["BatchWriter"]

B = TypeVar("B")  # what one write takes: a GraphBatch, or a batch with rows prepared for the store
R = TypeVar("R")

# While a writer is open the interpreter switches threads every 0.2 ms instead of every 5 ms. The writer
# spends most of its time in the store engine with the GIL released, but needs the GIL back between
# statements; with the default interval each hand-back waits up to 5 ms for the reading thread's Python to
# yield, which ``bench/log_ingest.py`` shows as a markedly slower ingest (docs/performance.md).
_SWITCH_INTERVAL_S = 0.0002
_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.0


def _fast_switching(on: bool) -> None:
    """Reference-counted, so nested or concurrent writers restore the caller's interval only at the end."""
    global _switch_users, _switch_saved
    with _switch_lock:
        if on:
            if _switch_users == 0:
                _switch_saved = sys.getswitchinterval()
                sys.setswitchinterval(min(_switch_saved, _SWITCH_INTERVAL_S))
            _switch_users += 1
        else:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


class BatchWriter(Generic[B, R]):
    """Apply batches with ``apply`` on one worker thread; ``on_done(batch, result)`` runs in the caller's
    thread as each write is collected, so counters and progress bars need no locking.

    An error from ``apply`` is raised in the caller at the next ``submit``, ``drain`` or ``close``.
    ``in_flight=0`` writes in the caller's thread instead: for a caller whose reading runs in another
    process, where a writer thread would only add GIL hand-offs to every write.
    """

    def __init__(
        self,
        apply: Callable[[B], R],
        on_done: Callable[[B, R], None] | None = None,
        *,
        in_flight: int = 1,
    ) -> None:
        if in_flight < 0:
            raise ValueError("in_flight must be 0 (write in the caller's thread) or more")
        self._apply = apply
        self._on_done = on_done
        self._limit = in_flight
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="liubai-store-writer") if in_flight else None
        )
        self._pending: deque[tuple[B, Future[R]]] = deque()
        self._failed = False  # set on the worker thread: batches queued behind a failure are skipped
        self._open = self._pool is not None
        if self._open:
            _fast_switching(True)

    def submit(self, batch: B) -> None:
        """Queue ``batch`` after the ones before it; waits while ``in_flight`` writes are outstanding."""
        if self._pool is None:
            result = self._apply(batch)
            if self._on_done is not None:
                self._on_done(batch, result)
            return
        while len(self._pending) >= self._limit:
            self._collect_oldest()
        self._pending.append((batch, self._pool.submit(self._run, batch)))

    def _run(self, batch: B) -> R:
        if self._failed:
            raise RuntimeError("an earlier batch failed; this one was not written")
        try:
            return self._apply(batch)
        except BaseException:
            self._failed = True
            raise

    def drain(self) -> None:
        """Wait until every submitted batch is written (e.g. before reading a checkpoint back)."""
        while self._pending:
            self._collect_oldest()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._open:
            self._open = False
            _fast_switching(False)

    def _collect_oldest(self) -> None:
        batch, future = self._pending.popleft()
        try:
            result = future.result()
        except BaseException:
            for _, later in self._pending:
                later.cancel()
            self._pending.clear()
            raise
        if self._on_done is not None:
            self._on_done(batch, result)

    def __enter__(self) -> BatchWriter[B, R]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
            return
        # The caller is already failing: let in-flight work finish (it is consistent on its own), keep
        # the caller's error rather than a second one from the writer.
        try:
            with suppress(BaseException):
                self.drain()
        finally:
            self._shutdown()
