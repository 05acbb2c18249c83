"""A bounded on-disk queue of encoded batches, for when the API cannot take them right now.

One file per batch, named by a sequence number so that replay keeps the order the batches were made
in. A file is written to a temporary name, fsynced and renamed, so a crash leaves either the whole
batch or nothing. The spool refuses (``SpoolFull``) rather than grow past ``max_bytes`` or when the
disk itself is full; it never raises anything else for a write it could not make.

A batch the API refuses for good (422: it will never be valid) is not deleted: it goes to
``<spool>/dead-letter/`` with a ``.reason`` file beside it, for an operator to read, fix and resend
(``curl --data-binary @<file> .../v1/ingest``). Dead letters do not count against ``max_bytes``.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Spool", "SpoolFull", "SpooledBatch", "atomic_write"]

_NAME = re.compile(r"(\d{12})-([0-9a-f]{64})\.batch")


def atomic_write(path: Path, data: bytes) -> None:
    """``data`` into ``path`` (mode 0600) whole or not at all: written beside it, synced, then renamed."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


class SpoolFull(Exception):
    """The batch was not spooled; ``reason`` says whether the byte limit or the disk is full."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    seq: int
    batch_id: str
    path: Path

    def read(self) -> bytes:
        return self.path.read_bytes()


class Spool:
    """A directory of ``<seq>-<batch id>.batch`` files holding at most ``max_bytes`` in total."""

    def __init__(self, directory: Path | str, max_bytes: int, reserve_bytes: int = 64 * 1024) -> None:
        self.dir = Path(directory)
        self.reserve_bytes = reserve_bytes  # left free on the disk for the agent's own state files
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        for leftover in self.dir.glob("*.tmp"):  # a write cut short by a crash
            leftover.unlink(missing_ok=True)
        self._entries: list[SpooledBatch] = sorted(
            (
                SpooledBatch(int(m.group(1)), m.group(2), p)
                for p in self.dir.iterdir()
                if (m := _NAME.fullmatch(p.name))
            ),
            key=lambda e: e.seq,
        )
        self._bytes = sum(e.path.stat().st_size for e in self._entries)
        self._next = self._entries[-1].seq + 1 if self._entries else 1

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, batch_id: str, data: bytes) -> SpooledBatch:
        """Append one batch durably, or raise SpoolFull (nothing is left behind on disk)."""
        if self._bytes + len(data) > self.max_bytes:
            raise SpoolFull(
                f"spool {self.dir} is full ({self._bytes} of {self.max_bytes} bytes used, "
                f"this batch needs {len(data)})"
            )
        free = _free_bytes(self.dir)
        if free is not None and free - len(data) < self.reserve_bytes:
            raise SpoolFull(
                f"disk holding spool {self.dir} is full ({free} bytes free, this batch needs {len(data)} "
                f"and {self.reserve_bytes} stay free for the agent's state)"
            )
        entry = SpooledBatch(self._next, batch_id, self.dir / f"{self._next:012d}-{batch_id}.batch")
        try:
            atomic_write(entry.path, data)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise SpoolFull(f"disk holding spool {self.dir} is full ({exc.strerror})") from None
            raise SpoolFull(f"cannot write to spool {self.dir}: {exc}") from None
        self._entries.append(entry)
        self._bytes += len(data)
        self._next += 1
        return entry

    def dead_letter(self, batch_id: str, data: bytes, reason: str) -> Path:
        """Keep a refused batch and why, durably, under ``dead-letter/``; OSError if it cannot be written."""
        where = self.dir / "dead-letter"
        where.mkdir(exist_ok=True)
        path = where / f"{batch_id}.batch"
        atomic_write(path.with_suffix(".reason"), reason.encode() + b"\n")
        atomic_write(path, data)
        return path

    def oldest(self) -> SpooledBatch | None:
        return self._entries[0] if self._entries else None

    def remove(self, entry: SpooledBatch) -> None:
        """Forget a batch the API has accepted."""
        size = entry.path.stat().st_size if entry.path.exists() else 0
        entry.path.unlink(missing_ok=True)
        self._entries = [e for e in self._entries if e.seq != entry.seq]
        self._bytes -= size


def _free_bytes(directory: Path) -> int | None:
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
