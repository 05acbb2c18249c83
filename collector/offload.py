"""Reading and joining in a child process, so that it runs on another core than the store writes.

In one process, parsing, mapping and joining log lines and the store's own Python share one GIL, and the
store engine only overlaps with them while it is inside SQLite. ``join_in_subprocess`` moves the reading
side (any picklable zero-argument callable that yields records) to a spawned child that sends back joined
batches over a pipe, as plain tuples: pickling the dataclasses themselves costs more than the join.

The pipe holds little, so the child stays about one batch ahead of the parent and memory stays bounded.
An error in the child is raised in the parent with the child's message; leaving the iterator early (an
error while storing, Ctrl-C) stops the child.
"""

from __future__ import annotations

import multiprocessing
import pickle
import traceback
from collections import Counter
from collections.abc import Callable, Generator, Iterable
from contextlib import suppress
from multiprocessing.connection import Connection

from collector.ingest import Item, JoinedBatch, Notice, join_batches
from lineage.model import Edge, EdgeKind, GraphBatch, Node, NodeKind, RejectedRecord

__all__ = ["OffloadError", "join_in_subprocess"]

_NODE_KINDS = {k.value: k for k in NodeKind}
_EDGE_KINDS = {k.value: k for k in EdgeKind}
_BATCH, _END, _ERROR = b"B", b"E", b"X"


class OffloadError(RuntimeError):
    """The child process failed or died; the message says how."""


def _pack(part: JoinedBatch) -> bytes:
    b = part.batch
    return pickle.dumps(
        (
            [(n.id, n.kind.value, n.props, n.placeholder) for n in b.nodes],
            [(e.src, e.kind.value, e.dst, e.props) for e in b.edges],
            [(r.source, r.location, r.reason, r.raw) for r in b.rejected],
            b.checkpoints,
            dict(part.records),
            [(n.source, n.location, n.message, n.raw) for n in part.notices],
        ),
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def _unpack(data: bytes) -> JoinedBatch:
    nodes, edges, rejected, checkpoints, records, notices = pickle.loads(data)  # our own child, our own pipe
    batch = GraphBatch(
        nodes=[Node(i, _NODE_KINDS[k], p, ph) for i, k, p, ph in nodes],
        edges=[Edge(s, _EDGE_KINDS[k], d, p) for s, k, d, p in edges],
        rejected=[RejectedRecord(*r) for r in rejected],
        checkpoints=checkpoints,
    )
    return JoinedBatch(batch, Counter(records), [Notice(*n) for n in notices])


def _child(source: Callable[[], Iterable[Item]], batch_size: int, out: Connection) -> None:
    try:
        for part in join_batches(source(), batch_size):
            out.send_bytes(_BATCH + _pack(part))
        out.send_bytes(_END)
    except BrokenPipeError:
        pass  # the parent stopped listening: nothing left to tell it
    except BaseException as exc:  # everything reaches the parent, which decides what to do
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        with suppress(OSError):  # a parent that is gone needs no report
            out.send_bytes(_ERROR + detail.encode("utf-8", "replace"))
    finally:
        out.close()


def join_in_subprocess(
    source: Callable[[], Iterable[Item]], batch_size: int
) -> Generator[JoinedBatch, None, None]:
    """Batches of ``join_batches(source(), batch_size)``, computed in a spawned child process."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads (progress bars)
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(source, batch_size, send), name="liubai-reader", daemon=True)
    child.start()
    send.close()
    try:
        while True:
            try:
                message = receive.recv_bytes()
            except EOFError:
                child.join(5)
                raise OffloadError(f"the reader process ended without finishing (exit code {child.exitcode})") from None
            tag, body = message[:1], message[1:]
            if tag == _BATCH:
                yield _unpack(body)
            elif tag == _END:
                return
            else:
                raise OffloadError(f"reading failed in the reader process: {body.decode('utf-8', 'replace')}")
    finally:
        receive.close()
        if child.is_alive():
            child.terminate()
        child.join(5)
