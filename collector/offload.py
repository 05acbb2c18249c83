"""Reading and joining in a child process, so that it runs on another core than the store writes.

In one process, parsing, mapping and joining log lines and the store's own Python share one GIL, and the
store engine only overlaps with them while it is inside SQLite. ``join_in_subprocess`` moves the reading
side (any picklable zero-argument callable that yields records) to a spawned child that sends back joined
batches over a pipe as plain lists and tuples: pickling the dataclasses themselves costs more than the join.
``run_in_subprocess`` is the general form, for readers that make their own batches (SLS pulls).

The parent reads at most ``_AHEAD`` batches ahead of its store, so the child stays a few batches ahead and
memory stays bounded. An error in the child is raised in the parent with the child's message; leaving
the iterator early (an error while storing, Ctrl-C) stops the child, and a child whose parent dies ends.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing, contextmanager, suppress
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

from liubai.collector.ingest import DEFAULT_DISTINCT, BatchPace, Item, JoinedBatch, Notice, join_batches
from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.model import Edge, GraphBatch, Node, NodeKind, RejectedRecord

__all__ = [
    "Emit",
    "OffloadError",
    "for_the_writer",
    "has_a_second_core",
    "join_in_subprocess",
    "run_in_subprocess",
]

_BATCH, _END, _ERROR = b"B", b"E", b"X"


class OffloadError(LiubaiError, RuntimeError):
    """The child process failed or died; the message says how."""

    code = ErrorCode.INTERNAL


Emit = Callable[[GraphBatch, Any], float]  # sends a batch; returns the seconds it waited for the parent
_PARENT_CHECK_S = 1.0
_CHILD_GC_THRESHOLDS = (500_000, 20, 100)
_AHEAD = 2  # batches the parent reads ahead of its store


def has_a_second_core() -> bool:
    """Whether this process may run on more than one CPU (its affinity: ``taskset``, a container's cpuset).
    On one, a reader process only adds the pickling of every batch."""
    try:
        return len(os.sched_getaffinity(0)) > 1
    except AttributeError:  # no affinity on this platform
        return (os.cpu_count() or 1) > 1


def _pack(batch: GraphBatch, extra: Any) -> bytes:
    """A batch as plain data: nodes and edges as columns, one list per field (fewer objects to build and
    pickle than a tuple per fact); kinds go as enum members, which pickle by reference once."""
    nodes, edges = batch.nodes, batch.edges
    return pickle.dumps(
        (
            (
                [n.id for n in nodes],
                [n.kind for n in nodes],
                [n.props for n in nodes],
                [n.placeholder for n in nodes],
            ),
            (
                [e.src for e in edges],
                [e.kind for e in edges],
                [e.dst for e in edges],
                [e.props for e in edges],
            ),
            [(r.source, r.location, r.reason, r.raw) for r in batch.rejected],
            batch.checkpoints,
            extra,
        ),
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def _unpack(data: bytes) -> tuple[GraphBatch, Any]:
    nodes, edges, rejected, checkpoints, extra = pickle.loads(data)  # our own child, our own pipe
    batch = GraphBatch(
        nodes=list(map(Node, *nodes)),
        edges=list(map(Edge, *edges)),
        rejected=[RejectedRecord(*r) for r in rejected],
        checkpoints=checkpoints,
    )
    return batch, extra


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """A spawned child imports the parent's main module again (``liubai``'s whole command line, a bench
    script: a long wait before it reads a line) unless the module is hidden while the child starts.
    Producers live in importable modules, so the child needs nothing from it; a main module read from
    stdin, which a child could not import at all, then works too."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, Any] = {
        name: main.__dict__.pop(name) for name in ("__spec__", "__file__") if name in main.__dict__
    }
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _exit_with(parent_pid: int) -> None:
    """End this process when the parent is gone (killed with SIGKILL, say): a child that follows a log
    source may never write to the pipe again, so a broken pipe alone would not stop it."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="liubai-parent-watch", daemon=True).start()


def _child(producer: Callable[[Emit], None], out: Connection, parent_pid: int) -> None:
    # What start-up made lives as long as the child: keep the collector from walking it again and again.
    gc.freeze()
    # A batch's objects all live until the batch is sent, and none of them is in a cycle: reference counting
    # frees them all. The collector runs only when objects outnumber frees by 500k (a 10k-line batch makes
    # about 100k): a leak of cycles stays bounded, and a batch is rarely walked (at the default threshold,
    # and even at tens of thousands, walking batches takes a visible share of a log reader's time).
    gc.set_threshold(*_CHILD_GC_THRESHOLDS)
    _exit_with(parent_pid)

    def emit(batch: GraphBatch, extra: Any) -> float:
        data = _BATCH + _pack(batch, extra)
        waited = time.perf_counter()
        out.send_bytes(data)  # blocks while the parent has _AHEAD batches queued
        return time.perf_counter() - waited

    try:
        producer(emit)
        out.send_bytes(_END)
    except BrokenPipeError:
        pass  # the parent stopped listening: nothing left to tell it
    except BaseException as exc:  # everything reaches the parent, which decides what to do
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        try:
            report = pickle.dumps((detail, exc))
        except Exception:  # an exception that does not pickle still has its message
            report = pickle.dumps((detail, None))
        with suppress(OSError):  # a parent that is gone needs no report
            out.send_bytes(_ERROR + report)
    finally:
        out.close()


class _Inbox:
    """The child's messages, read on a thread up to ``_AHEAD`` ahead of the consumer. The pipe itself holds
    64 KiB and a batch is megabytes, so without this the child waits whenever the parent is busy storing
    a batch that took longer than usual, and the two stop overlapping."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._queue: queue.Queue[bytes | None] = queue.Queue(_AHEAD)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liubai-reader-inbox", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                message: bytes | None = self._conn.recv_bytes()
            except (EOFError, OSError):
                message = None  # the child is gone (or was stopped)
            while True:
                try:
                    self._queue.put(message, timeout=0.1)
                    break
                except queue.Full:
                    if self._closed.is_set():
                        return
            if message is None:
                return

    def get(self, stop: threading.Event | None) -> bytes | None:
        """The next message, None when the child is gone; raises ``_Stopped`` once ``stop`` is set."""
        while True:
            if stop is not None and stop.is_set():
                raise _Stopped
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                continue

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)


class _Stopped(Exception):
    pass


def run_in_subprocess(
    producer: Callable[[Emit], None],
    *,
    stop: threading.Event | None = None,
    passthrough: tuple[type[BaseException], ...] = (),
) -> Generator[tuple[GraphBatch, Any], None, None]:
    """The ``(batch, extra)`` pairs that ``producer(emit)`` emits in a spawned child process, in order.

    ``producer`` must pickle (a module-level function, a ``partial`` of one, a dataclass instance) and so
    must ``extra``. Once ``stop`` is set the iteration ends before the next pair. A failure in the child
    of a ``passthrough`` type is raised here as itself, any other as ``OffloadError`` with its message.
    """
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads (progress bars)
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(producer, send, os.getpid()), name="liubai-reader", daemon=True)
    with _main_module_hidden():
        child.start()
    send.close()
    inbox = _Inbox(receive)
    try:
        while True:
            try:
                message = inbox.get(stop)
            except _Stopped:
                return
            if message is None:
                child.join(5)
                raise OffloadError(
                    f"the reader process ended without finishing ({_how_it_ended(child.exitcode)})"
                )
            tag, body = message[:1], message[1:]
            if tag == _BATCH:
                yield _unpack(body)
            elif tag == _END:
                return
            else:
                detail, exc = pickle.loads(body)
                if isinstance(exc, passthrough):
                    raise exc
                raise OffloadError(f"reading failed in the reader process: {detail}")
    finally:
        if child.is_alive():
            child.terminate()  # its end of the pipe closes, which ends the inbox's read
        child.join(5)
        inbox.close()
        receive.close()


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        with suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"  # SIGKILL: out of memory, most likely
    return f"exit code {exitcode}"


def for_the_writer(
    batch: GraphBatch, prepare: Callable[[GraphBatch], Any] | None, keep: frozenset[NodeKind] = frozenset()
) -> tuple[GraphBatch, Any]:
    """What a reader process sends for ``batch``: the batch itself, or, with ``prepare`` (see
    ``row_preparer``), the store's rows and what the writer still needs of the batch: its rejected records,
    checkpoints and the real nodes of the ``keep`` kinds (which an ingest summary counts)."""
    if prepare is None or not (batch.nodes or batch.edges):
        return batch, None
    kept = [n for n in batch.nodes if n.kind in keep and not n.placeholder]
    sent = GraphBatch(nodes=kept, rejected=batch.rejected, checkpoints=batch.checkpoints, writer=batch.writer)
    return sent, prepare(batch)


def _join_and_emit(
    source: Callable[[], Iterable[Item]],
    batch_size: int,
    prepare: Callable[[GraphBatch], Any] | None,
    paced: bool,
    keep: frozenset[NodeKind],
    emit: Emit,
) -> None:
    pace = BatchPace() if paced else None
    for part in join_batches(source(), batch_size, start_small=True, pace=pace):
        notices = [(n.source, n.location, n.message, n.raw) for n in part.notices]
        batch, rows = for_the_writer(part.batch, prepare, keep=keep)
        send = partial(emit, batch, (dict(part.records), notices, rows))
        if pace is None:
            send()
        else:
            pace.hand_over(send)


def join_in_subprocess(
    source: Callable[[], Iterable[Item]],
    batch_size: int,
    prepare: Callable[[GraphBatch], Any] | None = None,
    *,
    paced: bool = True,
    keep: frozenset[NodeKind] = DEFAULT_DISTINCT,
) -> Generator[JoinedBatch, None, None]:
    """Batches of ``join_batches(source(), batch_size)``, computed in a spawned child process. With
    ``prepare`` (a ``RowStore``'s ``prepare_rows``) the child also prepares each batch's rows for the store
    and sends, of the nodes, only those of the ``keep`` kinds, which ``store_batches`` counts (see
    ``JoinedBatch.rows``). ``paced``: batches grow while the store falls behind (``BatchPace``)."""
    job = partial(_join_and_emit, source, batch_size, prepare, paced, keep)
    with closing(run_in_subprocess(job)) as pairs:
        for batch, (records, notices, rows) in pairs:
            yield JoinedBatch(batch, Counter(records), [Notice(*n) for n in notices], rows, keep)
