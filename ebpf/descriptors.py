"""Descriptor tables and filesystem contexts as the kernel keeps them, rebuilt from traced events.

A table is shared by processes forked with CLONE_FILES and copied otherwise; exec unshares it and drops
close-on-exec descriptors. A descriptor the events never opened (a pipe, a socket, one inherited from
before tracing) is simply absent: an open relative to it is unresolved, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from liubai.ebpf.events import FD_CLOSE, FD_CLOSE_RANGE, FD_DUP, FD_SETFD, FD_UNSHARE, FdEvent

__all__ = ["CLONE_FILES", "CLONE_FS", "FdEntry", "FdTable", "FsContext", "apply_fd_event"]

CLONE_FS = 0x200
CLONE_FILES = 0x400
CLOSE_RANGE_UNSHARE = 0x2
CLOSE_RANGE_CLOEXEC = 0x4
O_CLOEXEC = 0o2000000


class FdEntry(NamedTuple):
    """What one descriptor refers to: an absolute path, how surely it is known, and close-on-exec.
    Immutable, so tables share entries safely; a tuple, as a build makes one per write open."""

    path: str
    certainty: str = "exact"  # as liubai.ebpf.paths ranks them: "exact", "kernel", "walked", "lexical"
    cloexec: bool = False


@dataclass(slots=True)
class FdTable:
    """One descriptor table (possibly shared by several processes)."""

    entries: dict[int, FdEntry] = field(default_factory=dict)

    def copy(self) -> FdTable:
        return FdTable(dict(self.entries))

    def get(self, fd: int) -> FdEntry | None:
        return self.entries.get(fd)

    def opened(self, fd: int, entry: FdEntry | None) -> None:
        """``fd`` now refers to ``entry`` (None: to something without a known path)."""
        if entry is None:
            self.entries.pop(fd, None)
        else:
            self.entries[fd] = entry

    def close_on_exec(self) -> None:
        self.entries = {fd: e for fd, e in self.entries.items() if not e.cloexec}


def _with_cloexec(entry: FdEntry, cloexec: bool) -> FdEntry:
    """``entry`` with ``cloexec`` (itself when it has it already: entries are frozen, so shared safely);
    built directly, not by ``dataclasses.replace``: a shell does a dup per redirection."""
    return entry if entry.cloexec == cloexec else FdEntry(entry.path, entry.certainty, cloexec)


def apply_fd_event(table: FdTable, event: FdEvent) -> FdTable:
    """Apply ``event`` to ``table``; the table the process uses afterwards (a copy when it unshared)."""
    op = event.op
    if op == FD_CLOSE:
        table.entries.pop(event.fd, None)
    elif op == FD_DUP:
        if event.fd != event.newfd:  # dup2(fd, fd) changes nothing, not even close-on-exec
            src = table.get(event.fd)
            table.opened(event.newfd, None if src is None else _with_cloexec(src, bool(event.arg)))
    elif op == FD_SETFD:
        src = table.get(event.fd)
        if src is not None:
            table.entries[event.fd] = _with_cloexec(src, bool(event.arg))
    elif op == FD_CLOSE_RANGE:
        if event.arg & CLOSE_RANGE_UNSHARE:
            table = table.copy()
        first, last = event.fd & 0xFFFFFFFF, event.last
        for fd in [fd for fd in table.entries if first <= fd <= last]:
            if event.arg & CLOSE_RANGE_CLOEXEC:
                table.entries[fd] = _with_cloexec(table.entries[fd], True)
            else:
                del table.entries[fd]
    elif op == FD_UNSHARE and event.arg & CLONE_FILES:
        table = table.copy()
    return table


@dataclass(slots=True)
class FsContext:
    """cwd and root of a process (shared by processes forked with CLONE_FS). None: not known."""

    cwd: str | None = None
    cwd_certainty: str = "exact"
    root: str = "/"

    def copy(self) -> FsContext:
        return FsContext(self.cwd, self.cwd_certainty, self.root)
