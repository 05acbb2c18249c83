"""BatchWriter: background store writes keep order, surface errors and never write past a failure."""

from __future__ import annotations

import threading

import pytest

from collector.writer import BatchWriter
from lineage.model import GraphBatch


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

    writer: BatchWriter[None] = BatchWriter(apply, in_flight=3)
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


def test_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BatchWriter(lambda b: None, in_flight=0)
