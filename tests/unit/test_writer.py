"""BatchWriter: background store writes keep order, surface errors and never write past a failure."""

from __future__ import annotations

import sys
import threading

import pytest

from liubai.collector.writer import BatchWriter
from liubai.lineage.model import GraphBatch


def _batch(i: int) -> GraphBatch:
    return GraphBatch(checkpoints={("src", "k"): str(i)})


def test_batches_are_written_in_order_off_the_caller_thread_and_reported_on_it() -> None:
    written: list[tuple[str, str]] = []
    reported: list[tuple[str, str]] = []
    caller = threading.current_thread().name

    def apply(b: GraphBatch) -> str:
        written.append((b.checkpoints[("src", "k")], threading.current_thread().name))
        return b.checkpoints[("src", "k")]

    def done(_: GraphBatch, result: str) -> None:
        reported.append((result, threading.current_thread().name))

    with BatchWriter(apply, done, in_flight=2) as writer:
        for i in range(50):
            writer.submit(_batch(i))
    assert [w[0] for w in written] == [str(i) for i in range(50)]
    assert all(name != caller for _, name in written)
    assert reported == [(str(i), caller) for i in range(50)]


def test_a_failed_write_is_raised_to_the_caller_and_nothing_after_it_lands() -> None:
    written: list[str] = []
    gate = threading.Event()

    def apply(b: GraphBatch) -> None:
        value = b.checkpoints[("src", "k")]
        if value == "1":
            gate.wait(5)
            raise RuntimeError("store is down")
        written.append(value)

    writer: BatchWriter[GraphBatch, None] = BatchWriter(apply, in_flight=3)
    writer.submit(_batch(0))
    writer.submit(_batch(1))
    writer.submit(_batch(2))  # queued behind the failing batch
    gate.set()
    with pytest.raises(RuntimeError, match="store is down"):
        writer.drain()
    writer.close()
    assert written == ["0"]


def test_the_callers_error_wins_and_in_flight_work_still_finishes() -> None:
    written: list[str] = []
    with pytest.raises(KeyError):
        with BatchWriter(lambda b: written.append(b.checkpoints[("src", "k")])) as writer:
            writer.submit(_batch(7))
            raise KeyError("reader failed")
    assert written == ["7"]


def test_in_flight_cannot_be_negative() -> None:
    with pytest.raises(ValueError):
        BatchWriter(lambda b: None, in_flight=-1)


def test_in_flight_zero_writes_in_the_caller_thread_and_leaves_switching_alone() -> None:
    caller = threading.current_thread().name
    written: list[str] = []
    before = sys.getswitchinterval()

    def apply(b: GraphBatch) -> str:
        written.append(threading.current_thread().name)
        if b.checkpoints[("src", "k")] == "2":
            raise RuntimeError("disk full")
        return "ok"

    with pytest.raises(RuntimeError, match="disk full"), BatchWriter(apply, in_flight=0) as writer:
        assert sys.getswitchinterval() == before
        for i in range(5):
            writer.submit(_batch(i))
    assert written == [caller] * 3, "the failing write is raised at once; nothing after it is written"


def test_an_open_writer_switches_threads_often_and_restores_the_interval() -> None:
    before = sys.getswitchinterval()
    with BatchWriter(lambda b: None) as outer:
        assert sys.getswitchinterval() < before
        with BatchWriter(lambda b: None):
            pass
        assert sys.getswitchinterval() < before, "an inner writer closing must not undo the outer one's"
        outer.submit(_batch(0))
    assert sys.getswitchinterval() == before
