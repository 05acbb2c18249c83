"""Digests of the files a traced run writes, taken while it runs: when the last descriptor of a written
file closes (a close, dup2 over it, close_range, exec's close-on-exec, or the exit of the last process
holding it), the file is hashed at the end of that batch of kernel events, in user space.

A provenance that hashed files when it is exported would vouch for whatever lies on disk by then; these
digests are what the run left behind. The descriptor model covers only descriptors opened for writing,
shared and copied at fork as the kernel does. A digest is kept only when the file provably did not change
between the close and the end of hashing (its change time is not after the close, and the name's stat
before opening and the descriptor's fstat after reading agree); otherwise the event says why there is
none, never a digest of something else. A path read back from the descriptor's link (a ``..`` name, a
handle, a directory descriptor) stands only if the number was not freed before the read. A file rewritten
later gets a new digest at its next last close, so the last one stands; one opened for writing again
before its batch is hashed gets none for the earlier close (a change time cannot tell a write just after
a close from one before it).

Renames are followed: most tools write a file aside and rename it into place, so the close is read when
its name is already gone. Hashing waits for the end of the batch, by when the rename has been read too,
and the file is read once under the name it ends under, for the write and for the rename, which is
itself a write of that name by the renaming process.

A small file (up to ``INLINE_MAX``, most outputs) is read and hashed on the reader's thread: handing each
file to a worker thread cost more than hashing it (a GIL hand-off per file, ~65 us against ~13 us, on a
two-core build). A large one is read on one worker thread (reading and hashing release the GIL), so it
does not hold up the reading of kernel events; its digest event takes its place in the event order at
once and is filled in by the time ``finish`` returns.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

from liubai.collector import digest_notes as why_not
from liubai.collector.closed_file import GONE, INLINE_MAX, digest_open_file, is_device, open_closed_file
from liubai.collector.digest_jobs import REOPENED, DigestJobs, Job, fill
from liubai.ebpf.descriptors import CLONE_FILES, O_CLOEXEC, FdEntry, FdTable, apply_fd_event
from liubai.ebpf.events import (
    FD_CLOSE,
    RENAME_EXCHANGE,
    DigestEvent,
    Event,
    ExecEvent,
    ExitEvent,
    FdEvent,
    ForkEvent,
    OpenEvent,
    RenameEvent,
)
from liubai.ebpf.paths import renamed_path
from liubai.lineage.text import visible

__all__ = ["QUEUE_MAX", "WrittenFiles", "is_write_open"]

_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000  # O_WRONLY, O_RDWR, O_CREAT, O_TRUNC
QUEUE_MAX = 4096  # closes waiting for the end of a batch; more are hashed at once (bounded memory)


def is_write_open(flags: int) -> bool:
    return bool(flags & _WRITE_FLAGS)


class _Opener(NamedTuple):
    pid: int
    tid: int
    uid: int
    start_ns: int
    ts: int


class WrittenFiles:
    """The descriptors of a run that refer to files opened for writing, and the digests their last
    closes call for. Paths are the OS's own str (what ``open`` needs)."""

    def __init__(self, boot_offset_ns: int) -> None:
        self.boot_offset_ns = boot_offset_ns
        self._tables: dict[int, FdTable] = {}  # pid -> its written-file descriptors (shared: one object)
        self._openers: dict[str, _Opener] = {}  # path -> the last write open of it
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._jobs = DigestJobs()  # closed since the last batch ended, and read at its end
        self._gone: dict[str, Job] = {}  # found gone at the last settle: perhaps renamed, read next
        self._fresh: set[str] = set()  # names given to written files in this batch (opens, renames)
        self._read_back: dict[int, dict[int, int]] = {}  # pid -> fd -> when its path was read from /proc

    def tracks(self, pid: int) -> bool:
        """Whether ``pid`` may hold a written file open (its descriptor events then matter)."""
        table = self._tables.get(pid)
        return table is not None and bool(table.entries)

    def opened(self, event: OpenEvent, os_path: str | None, read_at: int = 0) -> list[DigestEvent]:
        """A write open; ``os_path`` None when its path could not be resolved while the run went on.
        ``read_at``: when ``os_path`` was read back from the descriptor's link in /proc (0: the open
        named it). That read is of another file if the number was freed before it: the event that frees
        it says so (``_freed``).

        A device (``> /dev/null`` in a loop) is said to be one at once and not followed: no digest can
        come of it, and following it would cost every fork and exit of the shell that holds it."""
        table = self._tables.get(event.pid)
        reads = self._read_back.get(event.pid)
        out: list[DigestEvent] = []
        if table is not None and (replaced := table.entries.pop(event.fd, None)) is not None:
            path = (
                self._freed(event, event.fd, replaced.path) if reads and event.fd in reads else replaced.path
            )
            out = self._closed([path], event)  # a missed close: closed now
        if reads:
            reads.pop(event.fd, None)
        key = os_path if os_path is not None else f"{why_not.UNRESOLVED}:{event.pid}:{event.ts}"
        jobs = self._jobs
        if key in jobs.waiting.jobs:
            jobs.drop(key, REOPENED)
        if key in jobs.hashed.jobs:
            jobs.withdraw([key], why_not.LATE_OPEN)
        self._gone.pop(key, None)  # a file written anew there: not where the one found gone went
        self._openers[key] = _Opener(event.pid, event.tid, event.uid, event.start_ns, event.ts)
        if os_path is not None and os_path.startswith("/dev/") and is_device(os_path):
            note = self._note(key, event, "not a regular file")  # nothing to settle (no drop check)
            return out if note is None else [*out, note]
        self._fresh.add(key)
        if table is None:
            table = self._tables[event.pid] = FdTable()
        table.entries[event.fd] = FdEntry(key, "exact", bool(event.flags & O_CLOEXEC))
        if read_at:
            self._read_back.setdefault(event.pid, {})[event.fd] = read_at
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
        reads = self._read_back.get(event.pid)
        if isinstance(event, FdEvent) and event.op == FD_CLOSE:  # the common case, without two set builds
            entry = table.entries.pop(event.fd, None)
            if entry is None:
                return []
            path = self._freed(event, event.fd, entry.path) if reads and event.fd in reads else entry.path
            if table.entries and any(e.path == path for e in table.entries.values()):
                return []
            return self._closed([path], event)
        old = dict(table.entries)
        if isinstance(event, FdEvent):
            self._tables[event.pid] = table = apply_fd_event(table, event)
        elif isinstance(event, ExecEvent):
            self._tables[event.pid] = table = table.copy()
            table.close_on_exec()
        elif isinstance(event, ExitEvent):
            del self._tables[event.pid]
            self._read_back.pop(event.pid, None)  # its links can no longer be read: nothing to check
            return self._closed(sorted({e.path for e in old.values()}), event)
        else:
            return []
        freed = [
            (fd, entry.path)
            for fd, entry in old.items()
            if reads and fd in reads and ((held := table.entries.get(fd)) is None or held.path != entry.path)
        ]
        unsure = [self._freed(event, fd, path) for fd, path in freed]
        after = {e.path for e in table.entries.values()}
        return self._closed(
            sorted({e.path for e in old.values()} - after) + [u for u in unsure if u not in after], event
        )

    def _freed(self, event: Event, fd: int, path: str) -> str:
        """``fd`` of ``event``'s process, whose path was read back from its link, is freed by ``event``.
        Freed before that read, the link read was of whatever held the number then: every descriptor of
        the file is re-keyed to a marker that says so, which is returned (else ``path``)."""
        read_at = self._read_back[event.pid].pop(fd)
        if event.ts > read_at:
            return path
        marker = f"{why_not.UNSURE}:{event.ts}:{path}"
        self._rekey_open(lambda p: marker if p == path else None)
        if path in self._openers:
            self._openers[marker] = self._openers.pop(path)
        return marker

    def renamed(self, event: RenameEvent, old: str | None, new: str | None) -> list[DigestEvent]:
        """A rename by a traced process (``old``/``new`` None: not resolved while the run went on).

        Written files it moves, still open or closed and not yet hashed, follow it to their new name;
        one whose name it gives to another file is not hashed under that name. The file it puts at
        ``new`` gets a digest of its own, as a write by the renaming process (``opened_ts`` is the
        rename's time, +1 for the second name of an exchange), read once with what it moved there.
        Between a close and the rename that moves the file, only a traced write would show a change:
        the rename itself sets the change time."""
        exchange = bool(event.flags & RENAME_EXCHANGE)
        self._follow(old, new, exchange, event.ts)
        out: list[DigestEvent] = []
        for n, (src, dst) in enumerate([(old, new), (new, old)] if exchange else [(old, new)]):
            digest = DigestEvent(
                event.pid,
                event.tid,
                event.uid,
                event.ts,
                event.start_ns,
                path="" if dst is None else visible(dst),
                opener_pid=event.pid,
                opener_start_ns=event.start_ns,
                opened_ts=event.ts + n,
            )
            out.append(digest)
            if dst is None:
                digest.hash_note = why_not.NOTES[why_not.UNRESOLVED]
                continue
            self._fresh.add(dst)
            job = self._jobs.waiting.get(dst)
            if job is None:
                gone = self._gone.pop(src, None) if src is not None else None
                job = Job(gone.digests if gone is not None else [], dst, event.ts)
                self._jobs.enqueue(job)
            job.digests.append(digest)
        return out

    def _follow(self, old: str | None, new: str | None, exchange: bool, ts: int) -> None:
        """Move what the rename moved; a name it gave another file (wherever that came from) no longer
        leads to the file written under it, nor does any name below a directory it replaced.

        Only the jobs at or below the two names are looked at: a build renames thousands of files while
        as many wait in the queue."""
        given = {new, old} if exchange else {new}
        replaced_dir = None if exchange or new is None else new + "/"
        hashed = self._jobs.hashed
        if hashed.jobs:
            self._jobs.withdraw(
                [p for n in given if n is not None for p in hashed.at_or_below(n)], why_not.LATE_RENAME
            )

        def key_after(path: str) -> str | None:
            moved = renamed_path(path, old, new, exchange)
            if moved is None and (path in given or (replaced_dir and path.startswith(replaced_dir))):
                return f"{why_not.REPLACED}:{ts}:{path}"
            return moved

        waiting = self._jobs.waiting
        paths = (
            {p for n in (old, new) if n is not None for p in waiting.at_or_below(n)} if waiting.jobs else ()
        )
        moved: list[Job] = []
        for path in paths:
            if (key := key_after(path)) is None:
                continue
            job = self._jobs.waiting.pop(path)
            if key.startswith("\0"):
                fill(job.digests, None, why_not.marker_note(key))
            else:
                job.path, job.since = key, ts
                self._fresh.add(key)
                moved.append(job)
        for job in moved:
            self._jobs.enqueue(job)
        self._rekey_open(key_after)

    def _rekey_open(self, key_after: Callable[[str], str | None]) -> None:
        """Give each written file still open the key ``key_after`` makes of its own (None: kept), in every
        descriptor table holding it and for its opener."""
        keys: dict[str, str] = {}
        for table in {id(t): t for t in self._tables.values() if t.entries}.values():
            for fd, entry in table.entries.items():
                if (key := keys.get(entry.path) or key_after(entry.path)) is not None:
                    keys[entry.path] = key
                    table.entries[fd] = FdEntry(key, entry.certainty, entry.cloexec)
        if keys:
            self._openers.update({keys[k]: self._openers.pop(k) for k in keys if k in self._openers})
            self._fresh.update(keys.values())

    @property
    def full(self) -> bool:
        """Whether so many closes wait that the batch should be settled now (bounded memory)."""
        return len(self._jobs.waiting.jobs) > QUEUE_MAX

    @property
    def busy(self) -> bool:
        """Whether this batch named written files or closed some (``settle`` has work)."""
        return bool(self._jobs.waiting or self._fresh)

    def doubt_batch(self) -> None:
        """The kernel dropped events during this batch (perhaps a chdir or rename before one of its
        events): no name given to a written file in it is hashed."""

        def doubted(path: str) -> str | None:
            return f"{why_not.DOUBTED}:{path}" if path in self._fresh else None

        for path in [p for p in self._jobs.waiting if p in self._fresh]:
            fill(self._jobs.waiting.pop(path).digests, None, why_not.NOTES[why_not.DOUBTED])
        self._rekey_open(doubted)

    def settle(self, boot_offset_ns: int | None = None) -> None:
        """Hash the files closed since the last batch of events ended (``boot_offset_ns``: the clocks'
        offset now, if read anew).

        Deferred this far so that a rename read in the same batch is applied first: the file is looked
        up under the name it ends under (a cached lookup), not under a temporary name just renamed away
        (a miss that takes the directory's lock, against the writer's own renames). One found gone is
        kept until the next batch, whose rename of it may still tell where it went."""
        if boot_offset_ns is not None:
            self.boot_offset_ns = boot_offset_ns
        self._fresh, self._gone = set(), {}
        hashed: dict[str, Job] = {}
        for path, job in self._jobs.take().items():
            if (why := self._hash(job)) is None:
                hashed[path] = job
            elif why == GONE:
                self._gone[path] = job
        self._jobs.read(hashed)

    def finish(self, last: Event | None) -> list[DigestEvent]:
        """At the end of tracing: hash what is left and wait for the hashing under way; a file whose
        last close was not seen (a process still running holds it, or the close was among events the
        kernel dropped) gets none."""
        self.settle()
        self._gone = {}
        still = sorted({e.path for t in self._tables.values() for e in t.entries.values()})
        self._tables.clear()
        why = "no last close of it was seen before tracing stopped (still open, or its close was lost)"
        out = [self._note(path, last, why) for path in still]
        for future in self._pending:
            future.result()
        self._pending.clear()
        self._jobs.withdraw_again()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return [d for d in out if d is not None]

    def _still_open(self, path: str) -> bool:
        return any(
            e.path == path for table in self._tables.values() if table.entries for e in table.entries.values()
        )

    def _closed(self, paths: list[str], event: Event) -> list[DigestEvent]:
        out: list[DigestEvent] = []
        for path in paths:
            if self._still_open(path):
                continue
            if path.startswith("\0"):
                why = why_not.NOTES[path.split(":", 1)[0]]
                if (note := self._note(path, event, why)) is not None:
                    out.append(note)
                continue
            digest = self._note(path, event, None)
            if digest is not None:
                self._jobs.enqueue(Job([digest], path, event.ts))
                out.append(digest)
        return out

    def _hash(self, job: Job) -> str | None:
        """Open the file at once; read a small one here, a large one on the worker thread (reading and
        hashing release the GIL, so a large output does not hold up the reading of kernel events).
        Why there is no digest, where that is known at once."""
        opened = open_closed_file(job.path, job.since, self.boot_offset_ns)
        if isinstance(opened, str):
            fill(job.digests, None, opened)
            return opened
        if opened[1].st_size <= INLINE_MAX:
            fill(job.digests, *digest_open_file(*opened))
            return job.digests[0].hash_note
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="liubai-hash")
        self._pending.append(self._pool.submit(self._fill_later, job.digests, *opened))
        return None

    @staticmethod
    def _fill_later(digests: list[DigestEvent], fd: int, named: os.stat_result) -> None:
        fill(digests, *digest_open_file(fd, named))

    def _note(self, path: str, event: Event | None, why: str | None) -> DigestEvent | None:
        opener = self._openers.pop(path, None)
        if opener is None:
            return None
        shown = "" if path.startswith("\0") else visible(path)
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
