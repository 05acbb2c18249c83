"""Digests of the files a traced run writes, taken while it runs: when the last descriptor of a written
file closes (a close, dup2 over it, close_range, exec's close-on-exec, or the exit of the last process
holding it), the file is hashed at once, in user space.

A provenance that hashed files when it is exported would vouch for whatever lies on disk by then; these
digests are what the run left behind. The descriptor model covers only descriptors opened for writing,
shared and copied at fork as the kernel does. A digest is kept only when the file provably did not change
between the close and the end of hashing (its change time is not after the close, and fstat before and
after reading agree); otherwise the event says why there is none, never a digest of something else.
A file rewritten later gets a new digest at its next last close, so the last one stands.

The file is opened and checked at once on the reader's thread. A small one (up to ``INLINE_MAX``, most
outputs) is read and hashed there too: handing each file to a worker thread cost more than hashing it
(a GIL hand-off per file, ~65 us against ~13 us, on a two-core build). A large one is read on one worker
thread (reading and hashing release the GIL), so it does not hold up the reading of kernel events; its
digest event takes its place in the event order at once and is filled in by the time ``finish`` returns.
"""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from liubai.ebpf.descriptors import CLONE_FILES, O_CLOEXEC, FdEntry, FdTable, apply_fd_event
from liubai.ebpf.events import (
    FD_CLOSE,
    DigestEvent,
    Event,
    ExecEvent,
    ExitEvent,
    FdEvent,
    ForkEvent,
    OpenEvent,
)
from liubai.lineage.text import visible

__all__ = [
    "CTIME_MARGIN_NS",
    "INLINE_MAX",
    "WrittenFiles",
    "digest_open_file",
    "is_write_open",
    "open_closed_file",
]

CTIME_MARGIN_NS = 20_000_000  # change times come from a coarse clock (a tick behind the event clock)
_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000  # O_WRONLY, O_RDWR, O_CREAT, O_TRUNC
_UNRESOLVED = "\0unresolved"  # the key of a written file whose path could not be found at run time


def is_write_open(flags: int) -> bool:
    return bool(flags & _WRITE_FLAGS)


@dataclass(frozen=True, slots=True)
class _Opener:
    pid: int
    tid: int
    uid: int
    start_ns: int
    ts: int


INLINE_MAX = 256 << 10  # hashed on the reader's own thread up to this size (a hand-off costs more)
_CHUNK = 1 << 20


def open_closed_file(path: str, closed_boot_ns: int, boot_offset_ns: int) -> tuple[int, os.stat_result] | str:
    """A read descriptor of the file at ``path`` and its stat, if it is still the regular file its writer
    closed at ``closed_boot_ns`` (unchanged since), else why not. Opening a device or FIFO can have
    effects, so only what the name shows to be a regular file is opened."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return "the file was gone before it could be hashed"
    except OSError as exc:
        return f"the file could not be read to hash it: {exc.strerror or exc}"
    if not stat.S_ISREG(named.st_mode):
        return "not a regular file"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return "the file was gone before it could be hashed"
    except OSError as exc:
        return f"the file could not be opened to hash it: {exc.strerror or exc}"
    try:
        before = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        return f"the file could not be read to hash it: {exc.strerror or exc}"
    why = None
    if (before.st_dev, before.st_ino) != (named.st_dev, named.st_ino) or not stat.S_ISREG(before.st_mode):
        why = "the file was replaced while it was being hashed"
    elif before.st_ctime_ns > closed_boot_ns + boot_offset_ns + CTIME_MARGIN_NS:
        why = "the file changed after its writer closed it, before it could be hashed"
    if why is not None:
        os.close(fd)
        return why
    return fd, before


def digest_open_file(fd: int, before: os.stat_result) -> tuple[str | None, str | None]:
    """(sha256, None) of the file open at ``fd`` if it did not change while read, else (None, why);
    closes ``fd``. Reads in the file's own size first, so a small file costs one read and no big buffer."""
    try:
        digest = hashlib.sha256()
        want = min(max(before.st_size, 1), _CHUNK)
        try:
            while chunk := os.read(fd, want):
                digest.update(chunk)
                want = _CHUNK if len(chunk) == _CHUNK else 4096  # then only the end of the file is read
        except OSError as exc:
            return None, f"the file could not be read to hash it: {exc.strerror or exc}"
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (before.st_size, before.st_mtime_ns, before.st_ctime_ns) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
    ):
        return None, "the file changed while it was being hashed"
    return digest.hexdigest(), None


def _is_device(path: str) -> bool:
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


class WrittenFiles:
    """The descriptors of a run that refer to files opened for writing, and the digests their last
    closes call for. Paths are the OS's own str (what ``open`` needs)."""

    def __init__(self, boot_offset_ns: int) -> None:
        self.boot_offset_ns = boot_offset_ns
        self._tables: dict[int, FdTable] = {}  # pid -> its written-file descriptors (shared: one object)
        self._openers: dict[str, _Opener] = {}  # path -> the last write open of it
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []

    def tracks(self, pid: int) -> bool:
        """Whether ``pid`` may hold a written file open (its descriptor events then matter)."""
        table = self._tables.get(pid)
        return table is not None and bool(table.entries)

    def opened(self, event: OpenEvent, os_path: str | None) -> list[DigestEvent]:
        """A write open; ``os_path`` None when its path could not be resolved while the run went on.

        A device (``> /dev/null`` in a loop) is said to be one at once and not followed: no digest can
        come of it, and following it would cost every fork and exit of the shell that holds it."""
        table = self._tables.get(event.pid)
        replaced = table.get(event.fd) if table is not None else None  # a missed close: closed now
        if replaced is not None and table is not None:
            table.opened(event.fd, None)
        out = self._closed([replaced.path] if replaced else [], event)
        key = os_path if os_path is not None else f"{_UNRESOLVED}:{event.pid}:{event.ts}"
        self._openers[key] = _Opener(event.pid, event.tid, event.uid, event.start_ns, event.ts)
        if os_path is not None and os_path.startswith("/dev/") and _is_device(os_path):
            note = self._note(key, event, "not a regular file")
            return out if note is None else [*out, note]
        if table is None:
            table = self._tables[event.pid] = FdTable()
        table.opened(event.fd, FdEntry(key, cloexec=bool(event.flags & O_CLOEXEC)))
        return out

    def after(self, event: Event) -> list[DigestEvent]:
        """Follow ``event`` (fork, exec, descriptor change, exit); digests of files it closed last."""
        if isinstance(event, ForkEvent):
            table = self._tables.get(event.pid)
            if table is not None and table.entries:
                self._tables[event.child] = table if event.clone_flags & CLONE_FILES else table.copy()
            else:
                self._tables.pop(event.child, None)
            return []
        table = self._tables.get(event.pid)
        if table is None:
            return []
        if isinstance(event, FdEvent) and event.op == FD_CLOSE:  # the common case, without two set builds
            entry = table.entries.pop(event.fd, None)
            if entry is None or any(e.path == entry.path for e in table.entries.values()):
                return []
            return self._closed([entry.path], event)
        before = {e.path for e in table.entries.values()}
        if isinstance(event, FdEvent):
            self._tables[event.pid] = table = apply_fd_event(table, event)
        elif isinstance(event, ExecEvent):
            self._tables[event.pid] = table = table.copy()
            table.close_on_exec()
        elif isinstance(event, ExitEvent):
            del self._tables[event.pid]
            return self._closed(sorted(before), event)
        else:
            return []
        return self._closed(sorted(before - {e.path for e in table.entries.values()}), event)

    def finish(self, last: Event | None) -> list[DigestEvent]:
        """At the end of tracing: wait for the hashing under way; a file whose last close was not seen
        (a process still running holds it, or the close was among events the kernel dropped) gets none."""
        still = sorted({e.path for t in self._tables.values() for e in t.entries.values()})
        self._tables.clear()
        why = "no last close of it was seen before tracing stopped (still open, or its close was lost)"
        out = [self._note(path, last, why) for path in still]
        for future in self._pending:
            future.result()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return [d for d in out if d is not None]

    def _still_open(self, path: str) -> bool:
        seen: set[int] = set()
        for table in self._tables.values():
            if id(table) in seen:
                continue
            seen.add(id(table))
            if any(e.path == path for e in table.entries.values()):
                return True
        return False

    def _closed(self, paths: list[str], event: Event) -> list[DigestEvent]:
        out: list[DigestEvent] = []
        for path in paths:
            if self._still_open(path):
                continue
            if path.startswith(_UNRESOLVED):
                note = self._note(path, event, "its path could not be resolved while the run went on")
                if note is not None:
                    out.append(note)
                continue
            digest = self._note(path, event, None)
            if digest is not None:
                self._hash(digest, path, event.ts)
                out.append(digest)
        return out

    def _hash(self, digest: DigestEvent, path: str, closed_ts: int) -> None:
        """Open the file at once; read a small one here, a large one on the worker thread (reading and
        hashing release the GIL, so a large output does not hold up the reading of kernel events)."""
        opened = open_closed_file(path, closed_ts, self.boot_offset_ns)
        if isinstance(opened, str):
            digest.hash_note = opened
        elif opened[1].st_size <= INLINE_MAX:
            digest.sha256, digest.hash_note = digest_open_file(*opened)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="liubai-hash")
            self._pending.append(self._pool.submit(self._fill, digest, *opened))

    @staticmethod
    def _fill(digest: DigestEvent, fd: int, before: os.stat_result) -> None:
        digest.sha256, digest.hash_note = digest_open_file(fd, before)

    def _note(self, path: str, event: Event | None, why: str | None) -> DigestEvent | None:
        opener = self._openers.pop(path, None)
        if opener is None:
            return None
        shown = "" if path.startswith(_UNRESOLVED) else visible(path)
        pid, tid, uid, ts, start = (
            (event.pid, event.tid, event.uid, event.ts, event.start_ns)
            if event is not None
            else (opener.pid, opener.tid, opener.uid, opener.ts, opener.start_ns)
        )
        return DigestEvent(
            pid,
            tid,
            uid,
            ts,
            start,
            path=shown,
            opener_pid=opener.pid,
            opener_start_ns=opener.start_ns,
            opened_ts=opener.ts,
            hash_note=why,
        )
