"""The program's ring buffer read straight from its memory map, as libbpf's ``ring_buffer__consume`` reads
it, but with no ctypes callback per event: that callback (argument conversion, ``string_at``, bcc's
wrapper) cost more than the tracer's own work on an event, and a service's shell makes tens of thousands
of events a second (an open and the fd events of each redirection).

The layout is the kernel's (``kernel/bpf/ringbuf.c``): page 0 is the consumer position (ours to
write), page 1 the producer position, then the data pages, mapped twice in a row so a record that wraps
reads as one piece. A record is an 8-byte header (its length with the busy and discard bits, then a page
offset) and its bytes, padded to 8. A record still being written (busy) stops the pass; the next poll
takes it up.

Positions are 8-byte words the kernel reads and writes concurrently: they are read and written whole
with the native struct format (one aligned load or store), and the order of those loads and stores is
what x86-64 guarantees for plain ones (acquire for loads, release for stores). Elsewhere the caller keeps
libbpf's reader (``supported()``).
"""

from __future__ import annotations

import mmap
import platform
import select
import struct
import sys
from collections.abc import Callable

__all__ = ["RingReader", "open_ring", "supported"]

_BUSY, _DISCARD = 1 << 31, 1 << 30
_LENGTH = ~(_BUSY | _DISCARD) & 0xFFFFFFFF
_HEADER = 8
_U32 = struct.Struct("@I")  # native: copied whole (memcpy of an aligned word), never byte by byte
_U64 = struct.Struct("@Q")


def supported() -> bool:
    """Whether plain loads and stores order as the ring buffer needs (x86-64's total store order)."""
    return sys.byteorder == "little" and platform.machine() in ("x86_64", "AMD64")


def _max_entries(map_fd: int) -> int:
    """The ring's data size in bytes, as the kernel reports the map."""
    with open(f"/proc/self/fdinfo/{map_fd}") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key == "max_entries":
                return int(value)
    raise OSError(f"map fd {map_fd}: no max_entries in its fdinfo")


class RingReader:
    """One ring buffer, read by ``poll`` / ``consume``; each record's bytes go to ``callback``.
    ``consumer``: the consumer page; ``data``: the producer page then the data (mapped twice), of
    ``size`` bytes; ``waiter``: the epoll the map's fd is registered with (``open_ring``)."""

    def __init__(
        self,
        consumer: mmap.mmap | bytearray,
        data: mmap.mmap | bytes,
        size: int,
        callback: Callable[[bytes], object],
        waiter: select.epoll | None = None,
    ) -> None:
        if size <= 0 or size & (size - 1):
            raise OSError(f"ring buffer of {size} bytes: not a power of two")
        self.callback = callback
        self._consumer, self._data, self._waiter = consumer, data, waiter
        self._mask = size - 1
        self._page = len(data) - 2 * size  # the producer page's size

    def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for the kernel's wake-up (it wakes only for a backlog), then consume."""
        if self._waiter is not None:
            self._waiter.poll(timeout_ms / 1000 if timeout_ms >= 0 else -1)
        return self.consume()

    def consume(self) -> int:
        """Hand every complete record to the callback; how many. A record is consumed before its callback
        runs (as libbpf does), so one that raises is not handed over twice."""
        consumer, data, mask, page = self._consumer, self._data, self._mask, self._page
        unpack32, unpack64 = _U32.unpack_from, _U64.unpack_from
        pos = unpack64(consumer, 0)[0]
        count = 0
        try:
            while True:
                end = unpack64(data, 0)[0]
                if pos >= end:
                    return count
                while pos < end:
                    at = page + (pos & mask)
                    header = unpack32(data, at)[0]
                    if header & _BUSY:
                        return count
                    length = header & _LENGTH
                    pos += (length + _HEADER + 7) & ~7
                    if not header & _DISCARD:
                        count += 1
                        self.callback(data[at + _HEADER : at + _HEADER + length])
                _U64.pack_into(consumer, 0, pos)  # space freed for the kernel as each pass ends
        finally:
            _U64.pack_into(consumer, 0, pos)

    def close(self) -> None:
        for part in (self._waiter, self._data, self._consumer):
            close = getattr(part, "close", None)
            if close is not None:
                close()


def open_ring(map_fd: int, callback: Callable[[bytes], object]) -> RingReader:
    """The reader of the ring buffer map ``map_fd``: its pages mapped as libbpf maps them."""
    size = _max_entries(map_fd)
    page = mmap.PAGESIZE
    consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    parts: list[mmap.mmap | select.epoll] = [consumer]
    try:
        data = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        parts.append(data)
        waiter = select.epoll()
        parts.append(waiter)
        waiter.register(map_fd, select.EPOLLIN)
        return RingReader(consumer, data, size, callback, waiter)
    except BaseException:
        for part in parts:
            part.close()
        raise
