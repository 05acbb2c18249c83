"""The events of a live traced run, enriched with what only the live machine can know.

Added to the events *before* they are recorded or replayed, so replaying never looks at the local
filesystem: the sha256 of each executed image, the cwd a relative exec name is resolved against, argv
and credentials read back from /proc, and the kernel's own resolution of uncertain opens. Every value
read from /proc is checked against the events that follow: one read after the process had moved on
(a later exec, credential change or descriptor close) is withdrawn, so a doubt leaves a gap, never a
false value.

The /proc reads and their withdrawal live in ``live_reads`` (``LiveReads``, the base class of
``LiveEvents``); the reads themselves, each checked to be of the very process, in ``proc_facts``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterator
from typing import TypeVar

from liubai.collector.binary_hasher import BinaryHasher
from liubai.collector.live_reads import _U32, LiveReads, _Read
from liubai.collector.proc_facts import kernel_join, same_process
from liubai.collector.written_files import WrittenFiles, is_write_open
from liubai.ebpf import procfs
from liubai.ebpf.events import (
    AT_FDCWD,
    CD_CHROOT,
    EV_CHDIR,
    EV_CRED,
    EV_EXEC,
    EV_EXEC_ARGS,
    EV_EXIT,
    EV_FD,
    EV_FORK,
    EV_OPEN,
    EV_RENAME,
    OPEN_BY_HANDLE,
    ChdirEvent,
    CredEvent,
    DecodeError,
    Event,
    EventDecoder,
    ExecArgsEvent,
    ExecEvent,
    ExitEvent,
    ForkEvent,
    OpenEvent,
)
from liubai.ebpf.procfs import read_cwd

__all__ = ["LiveEvents", "same_process"]

_E = TypeVar("_E", bound=Event)

_OPEN_KIND_AT = 32 + 12  # byte offset of OpenEvent.kind in the raw event
_OPEN_FLAGS_AT = 32 + 8  # and of its flags


class LiveEvents(LiveReads):
    """The events of a live run, kept as raw bytes while the command runs and decoded afterwards.

    Appending bytes is the least work the reader can do per event, so tracing steals as little CPU as
    possible from the traced command. Fork, exec, chdir, credential and exit events (and opens whose
    path is uncertain) are decoded at once: an exec's image is hashed while it is still the one that
    ran, and /proc is read while the process lives.

    Paths here are the OS's own str (``os.fsdecode``: lone surrogates for bytes that are not UTF-8), so
    that ``open`` reaches the very file the kernel named; events keep their shown ``\\xNN`` text.
    """

    def __init__(
        self,
        decoder: EventDecoder,
        hasher: BinaryHasher | None = None,
        lost: Callable[[], int] | None = None,
        *,
        container_view: bool = False,
        on_exec: Callable[[ExecEvent], None] | None = None,
        hash_written: bool | None = None,
    ) -> None:
        """``lost``: how many events the kernel has dropped so far (``Tracer.lost_events``).

        ``container_view``: the processes live in containers (other mount namespaces), so every file is
        reached through ``/proc/<pid>/root`` while the process lives and never by its name on the host;
        paths /proc shows (cwd) are made relative to the container's root, and descriptor links are
        not read back (a gap, not a host path). ``on_exec``: called with each exec event once enriched.

        ``hash_written`` (default: unless ``container_view``): hash each written file when its last
        descriptor closes (``liubai.collector.written_files``); the digests join the events in order."""
        self.container_view = container_view
        self.on_exec = on_exec
        self.decoder = decoder
        self.hasher = hasher or BinaryHasher()
        self.decode_errors = 0
        self._items: list[bytes | Event] = []
        self._lost = lost
        self._cwd: dict[int, str] = {}  # pid -> cwd, as far as the events so far tell it
        self._root: dict[int, str] = {}  # pid -> root directory after a chroot (absent: "/")
        self._read_at: dict[int, tuple[int, int]] = {}  # pid -> boot-clock times around reading /proc's cwd
        self._following = True  # until the kernel drops an event, which may have been a fork or chdir
        self._lost_settled = 0  # the kernel's drop count at the end of the last batch
        self._alive: set[int] = set()
        self._args: dict[int, ExecArgsEvent] = {}
        self._proc_reads: dict[int, _Read] = {}  # pid -> the last exec/cred read from /proc
        self._open_reads: dict[int, dict[int, list[_Read]]] = {}  # pid -> fd -> descriptor link reads
        self._via_exe: set[int] = set()  # ids of exec events hashed through /proc/<pid>/exe
        self._boot_offset = procfs.boot_offset_ns()
        hashing = not container_view if hash_written is None else hash_written
        self.written = WrittenFiles(self._boot_offset) if hashing else None
        self._finished = False

    def alive(self) -> int:
        """How many processes of the traced tree the events show still running."""
        return len(self._alive)

    def start_at(self, pid: int, os_cwd: str | None, read_between: tuple[int, int] | None = None) -> None:
        """The cwd of a traced process that no fork of the run introduces (the root, an adopted one).

        ``read_between``: the boot-clock times around reading it from /proc while the process was already
        traced (attaching). A chdir event from before that is in /proc's answer already, and one from
        during it may be: the first is not applied twice, the second makes the cwd unknown."""
        self._alive.add(pid)
        if os_cwd is None or not self._following or pid in self._cwd:
            return
        self._cwd[pid] = os_cwd
        if read_between is not None:
            self._read_at[pid] = read_between

    def __call__(self, raw: bytes) -> None:
        kind = raw[0]  # the type is a little-endian u32 below 256
        written = self.written
        if kind == EV_FD:
            if written is None or not written.tracks(_U32.unpack_from(raw, 4)[0]):
                self._items.append(raw)
            else:
                self._fd_changed(raw, written)
            return
        if kind == EV_OPEN:
            if _uncertain_open(raw):
                self._uncertain(raw)
            elif written is not None and is_write_open(_U32.unpack_from(raw, _OPEN_FLAGS_AT)[0]):
                self._write_opened(raw, written)
            else:
                self._items.append(raw)
            return
        elif kind == EV_RENAME and written is not None:
            self._renamed(raw, written)
            return
        elif kind not in _DECODED_AT_ONCE:
            self._items.append(raw)
            return
        event = self._decoded(self.decoder.decode, raw)
        if event is None:
            return
        if isinstance(event, ForkEvent):
            self._forked(event)
        elif isinstance(event, ExecArgsEvent):
            self._args[event.pid] = event
        elif isinstance(event, ExecEvent):
            self._withdraw_older_read(event)
            self._executed(event, self.decoder.os_path(raw))
            if self.on_exec is not None:
                self.on_exec(event)
        elif isinstance(event, ChdirEvent):
            self._changed_dir(event, self.decoder.os_path(raw))
        elif isinstance(event, CredEvent):
            self._withdraw_older_read(event)
            self._cred_changed(event)
        elif isinstance(event, ExitEvent):
            self._cwd.pop(event.pid, None)
            self._root.pop(event.pid, None)
            self._read_at.pop(event.pid, None)
            self._args.pop(event.pid, None)
            self._forget_read(event.pid)
            self._alive.discard(event.pid)
        self._items.append(event)
        if written is not None:
            self._items.extend(written.after(event))
            self._settle_if_full()

    def _fd_changed(self, raw: bytes, written: WrittenFiles) -> None:
        """A descriptor change of a process that may hold a written file open."""
        event = self._decoded(self.decoder.decode, raw)
        if event is None:
            return
        self._items.append(event)
        self._items.extend(written.after(event))
        self._settle_if_full()

    def _uncertain(self, raw: bytes) -> None:
        """An open whose path may be wrong: the kernel's link of its descriptor is read back now."""
        event = self._decoded(self.decoder.decode, raw)
        if event is None:
            return
        assert isinstance(event, OpenEvent)
        os_path = self.decoder.os_path(raw)
        self._read_open(event, os_path)
        self._items.append(event)
        if self.written is not None and is_write_open(event.flags):
            self._items.extend(self.written.opened(event, *self._written_path(event, os_path)))
            self._settle_if_full()

    def _write_opened(self, raw: bytes, written: WrittenFiles) -> None:
        """A write open of a plain path: only its numbers are decoded now (the event is once the run ends)."""
        event = self._decoded(self.decoder.open_numbers, raw)
        if event is None:
            return
        self._items.append(raw)
        self._items.extend(written.opened(event, *self._written_path(event, self.decoder.os_path(raw))))
        self._settle_if_full()

    def _renamed(self, raw: bytes, written: WrittenFiles) -> None:
        event = self._decoded(self.decoder.rename_numbers, raw)
        if event is None:
            return
        old, new = self.decoder.os_paths(raw)
        self._items.append(raw)
        old, new = (
            self._plain_path(event.pid, old, event.old_dfd),
            self._plain_path(event.pid, new, event.new_dfd),
        )
        self._items.extend(written.renamed(event, old, new))
        self._settle_if_full()

    def _decoded(self, decode: Callable[[bytes], _E], raw: bytes) -> _E | None:
        """``decode(raw)``, or None for bytes that are not an event (counted in ``decode_errors``)."""
        try:
            return decode(raw)
        except DecodeError:
            self.decode_errors += 1
            return None

    def _settle_if_full(self) -> None:
        """Settle before the batch's end when too many closes wait (memory stays bounded)."""
        if self.written is not None and self.written.full:
            self.settle()

    def settle(self) -> None:
        """The end of a batch of events (``Tracer.on_raw``'s ``settle``): hash the files closed in it. The
        kernel's drop count is read here, not per name resolved (a map read each, a tenth of a build's
        time): every event of the batch was sent before now, so a count unchanged since the last batch
        means no drop came before any of them; a higher one leaves every name the batch gave unhashed."""
        if self.written is None or not self.written.busy:
            return
        try:
            lost = self._lost() if self._lost is not None else 0
        except OSError:  # the program is gone (the caller did not settle in time): as if events dropped
            lost = self._lost_settled + 1
        if lost > self._lost_settled:
            self._lost_settled = lost
            self._following = False
            self._cwd.clear()
            self.written.doubt_batch()
        self.written.settle(procfs.boot_offset_ns())  # the wall clock may have been slewed since the start

    def _plain_path(self, pid: int, os_path: str | None, dfd: int) -> str | None:
        """``os_path`` of a written file as this host names it, when it is plain (no ``..``) and absolute
        or relative to the followed cwd (and root); else None. Checked for drops by ``settle``."""
        if os_path is None or (".." in os_path and ".." in os_path.split("/")):
            return None
        if os_path.startswith("/"):
            path: str | None = os_path
        elif dfd == AT_FDCWD and self._following:  # the drop count is checked at the batch's end
            path = kernel_join(os_path, self._cwd.get(pid))
        else:
            path = None
        if path is None:
            return None
        root = self._root.get(pid)
        return path if root is None or root == "/" else root.rstrip("/") + path

    def _written_path(self, event: OpenEvent, os_path: str | None) -> tuple[str | None, int]:
        """The file a write open reached, as this host names it, and when it was read back (0: not read).
        The path as given when it is plain (against the followed cwd and root), else the kernel's link of
        the descriptor, read now: valid only if the number was not freed before then (``WrittenFiles``
        checks that at the event that frees it)."""
        if event.kind != OPEN_BY_HANDLE:
            path = self._plain_path(event.pid, os_path, event.dfd)
            if path is not None:
                return path, 0
        try:
            target = os.readlink(f"/proc/{event.pid}/fd/{event.fd}")
        except OSError:
            return None, 0
        read_at = procfs.clock_boot_ns()
        if not target.startswith("/") or not same_process(event.pid, event.start_ns):
            return None, 0
        return target.removesuffix(" (deleted)"), read_at

    def _known_cwd(self, pid: int) -> str | None:
        """The cwd the events tell for ``pid``; None from the first dropped event on."""
        if self._following and self._lost is not None and self._lost():
            self._following = False
            self._cwd.clear()
        return self._cwd.get(pid)

    def _forked(self, event: ForkEvent) -> None:
        self._alive.add(event.child)
        if event.pid in self._root:
            self._root[event.child] = self._root[event.pid]
        else:
            self._root.pop(event.child, None)
        window = self._read_at.get(event.child)
        if window is not None and event.ts < window[0]:
            return  # a child adopted after this fork: /proc's answer for it is the later word
        cwd = self._cwd.get(event.pid)
        if cwd is None:
            self._cwd.pop(event.child, None)  # a reused pid's old cwd must not stand
        else:
            self._cwd[event.child] = cwd

    def _changed_dir(self, event: ChdirEvent, os_path: str | None) -> None:
        """Move the followed cwd (or root). An fchdir names a descriptor, not a path: /proc's cwd, read
        now, shows where it led, but may already be past a later chdir, so the cwd is no longer followed."""
        if event.kind == CD_CHROOT:
            new_root = kernel_join(os_path, self._cwd.get(event.pid))
            if new_root is not None:
                self._root[event.pid] = posixpath.normpath(new_root)
            return
        if event.fd >= 0:
            event.cwd, cwd = read_cwd(event.pid), None
            if self.container_view and event.cwd is not None:
                event.cwd = procfs.container_relative(event.pid, event.cwd)
        else:
            cwd = kernel_join(os_path, self._cwd.get(event.pid))
        window = self._read_at.get(event.pid)
        if window is not None:
            if event.ts < window[0]:
                return  # told by /proc already
            del self._read_at[event.pid]
            if event.ts <= window[1]:
                cwd = None  # /proc may or may not have told it
        if cwd is None or not self._following:
            self._cwd.pop(event.pid, None)
        else:
            self._cwd[event.pid] = cwd

    def __len__(self) -> int:
        return len(self._items)

    def events(self) -> Iterator[Event]:
        """Every event in kernel order; a descriptor read back after it was closed or replaced is withdrawn.

        The withdrawal is settled before the first event leaves: the event that frees a descriptor comes
        after the open whose read it withdraws, and a consumer uses the open's path as soon as it sees it."""
        self._settle_open_reads()
        if self.written is not None and not self._finished:
            self.settle()
            self._finished = True
            last = self._items[-1] if self._items and isinstance(self._items[-1], Event) else None
            self._items.extend(self.written.finish(last))
        for item in self._items:
            if isinstance(item, bytes):
                try:
                    event = self.decoder.decode(item)
                except DecodeError:
                    self.decode_errors += 1
                    continue
            else:
                event = item
            yield event

    def insert(self, event: Event) -> None:
        """An event made in user space (a process a resident tracer adopted), in its place in the order."""
        self._items.append(event)

    def take(self) -> list[Event]:
        """The events so far, in kernel order, removed from the run (a resident tracer's batches).

        Descriptor reads still pending stay checked against later events only where the caller holds
        the batch back (see ``liubai.ebpf.node``); with ``container_view`` none are made."""
        out = list(self.events())
        self._items = []
        return out


def _uncertain_open(raw: bytes) -> bool:
    """An open whose lexical path may be wrong: ``..``, a descriptor link, or a handle (no path at all)."""
    return raw.find(b"..", 48) >= 0 or raw.find(b"/fd/", 48) >= 0 or raw[_OPEN_KIND_AT] == OPEN_BY_HANDLE


_DECODED_AT_ONCE = frozenset((EV_FORK, EV_EXEC, EV_EXEC_ARGS, EV_CHDIR, EV_EXIT, EV_CRED))
