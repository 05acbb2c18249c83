"""The ring buffer reader's walk over the kernel's record layout, on buffers laid out as the kernel lays
them (consumer page; producer page, then the data pages twice in a row), so no BPF map is needed."""

from __future__ import annotations

import struct

import pytest

from liubai.ebpf.ringbuf import RingReader

PAGE = 4096
SIZE = 64  # data bytes; a power of two
BUSY, DISCARD = 1 << 31, 1 << 30


class Ring:
    """What the kernel's side writes: records at the producer position, in both copies of the data."""

    def __init__(self) -> None:
        self.consumer = bytearray(PAGE)
        self.data = bytearray(PAGE + 2 * SIZE)
        self.producer = 0

    def write(self, payload: bytes, flags: int = 0) -> int:
        """One record at the producer position; where it starts."""
        at = self.producer
        record = struct.pack("<II", len(payload) | flags, 0) + payload
        record += b"\0" * (-len(record) % 8)
        for i, byte in enumerate(record):
            offset = (at + i) % SIZE
            self.data[PAGE + offset] = self.data[PAGE + SIZE + offset] = byte
        self.producer += len(record)
        struct.pack_into("<Q", self.data, 0, self.producer)
        return at

    def commit(self, at: int, length: int) -> None:
        """Clear the busy bit of the record at ``at`` (the kernel's submit)."""
        for base in (PAGE, PAGE + SIZE):
            struct.pack_into("<I", self.data, base + at % SIZE, length)

    def read(self, callback: object = None) -> tuple[list[bytes], int]:
        got: list[bytes] = []
        reader = RingReader(self.consumer, bytes(self.data), SIZE, callback or got.append)  # type: ignore[arg-type]
        reader.consume()
        return got, struct.unpack_from("<Q", self.consumer, 0)[0]


def test_records_are_handed_over_in_order_and_consumed() -> None:
    ring = Ring()
    ring.write(b"first")
    ring.write(b"second!!")
    got, consumed = ring.read()
    assert got == [b"first", b"second!!"]
    assert consumed == ring.producer
    assert ring.read()[0] == []  # nothing twice


def test_a_record_still_being_written_stops_the_pass_until_it_is_submitted() -> None:
    ring = Ring()
    ring.write(b"done")
    busy = ring.write(b"writing", BUSY)
    ring.write(b"after")
    got, consumed = ring.read()
    assert got == [b"done"] and consumed == busy
    ring.commit(busy, len(b"writing"))
    assert ring.read()[0] == [b"writing", b"after"]


def test_discarded_records_are_skipped() -> None:
    ring = Ring()
    ring.write(b"dropped", DISCARD)
    ring.write(b"kept")
    assert ring.read()[0] == [b"kept"]


def test_a_record_across_the_end_of_the_ring_reads_whole() -> None:
    ring = Ring()
    ring.write(b"x" * 40)
    assert ring.read()[0] == [b"x" * 40]
    ring.write(b"wraps-around-the-end!")  # starts at byte 48 of 64
    ring.write(b"then")
    assert ring.read()[0] == [b"wraps-around-the-end!", b"then"]


def test_a_callback_that_raises_does_not_get_its_record_again() -> None:
    ring = Ring()
    ring.write(b"bad")
    ring.write(b"good")
    seen: list[bytes] = []

    def fails_once(raw: bytes) -> None:
        seen.append(raw)
        if raw == b"bad":
            raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError):
        ring.read(fails_once)
    ring.read(fails_once)
    assert seen == [b"bad", b"good"]


def test_a_size_that_is_not_a_power_of_two_is_refused() -> None:
    with pytest.raises(OSError, match="power of two"):
        RingReader(bytearray(PAGE), bytes(PAGE + 2 * 48), 48, print)
