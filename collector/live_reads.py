"""What a live run reads back from /proc for its events, and withdraws when the process moved on.

``LiveReads`` is the /proc half of ``liubai.collector.live_events.LiveEvents`` (which derives from it):
for an exec it hashes the image that ran and reads argv and credentials, for a credential change the
new credentials, for an uncertain open the kernel's link of the descriptor. A read made after a later
exec or credential change of the process saw that later state: it is withdrawn, leaving a gap rather
than a false value.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from liubai.collector.binary_hasher import BinaryHasher
from liubai.collector.proc_facts import (
    NOT_HERE,
    exe_facts,
    is_script,
    kernel_join,
    open_exe,
    read_rights,
    read_status,
    same_process,
    shebang,
    stat_named,
)
from liubai.ebpf import procfs
from liubai.ebpf.events import (
    AT_FDCWD,
    EV_FD,
    EV_OPEN,
    FD_CLOSE,
    FD_CLOSE_RANGE,
    FD_DUP,
    CredEvent,
    DecodeError,
    Event,
    EventDecoder,
    ExecArgsEvent,
    ExecEvent,
    ExitEvent,
    FdEvent,
    OpenEvent,
)
from liubai.ebpf.paths import resolve_path
from liubai.lineage.text import bytes_text, visible

__all__ = ["CTIME_MARGIN_NS", "LiveReads", "_Read", "_check_open_reads"]

# change times come from a coarse clock, a tick behind the event clock: one this far before an exec is
# surely from before it
CTIME_MARGIN_NS = 20_000_000


@dataclass(slots=True)
class _Read:
    """Something read from /proc for an event, valid only if nothing changed it before ``at``."""

    at: int
    event: Event


class LiveReads:
    """Reads from /proc for a live run's events; the state it keeps is set up by ``LiveEvents``."""

    container_view: bool
    hasher: BinaryHasher
    _root: dict[int, str]
    _args: dict[int, ExecArgsEvent]
    _proc_reads: dict[int, _Read]
    _open_reads: dict[int, dict[int, list[_Read]]]
    _via_exe: set[int]
    _boot_offset: int
    _items: list[bytes | Event]
    decoder: EventDecoder

    def _known_cwd(self, pid: int) -> str | None:
        """The cwd the events tell for ``pid`` (``LiveEvents`` follows it)."""
        raise NotImplementedError

    def _withdraw_older_read(self, event: ExecEvent | CredEvent) -> None:
        """A read made for an earlier exec/cred event of this process after ``event`` happened saw the
        process as ``event`` left it, not as the earlier event did: withdraw it."""
        older = self._proc_reads.get(event.pid)
        if older is None or older.at < event.ts:
            return
        prev = older.event
        if isinstance(prev, ExecEvent | CredEvent):
            prev.ruid = prev.euid = prev.suid = prev.fsuid = prev.cap_eff = None
        if isinstance(prev, ExecEvent):
            if isinstance(event, ExecEvent):
                prev.cmdline = None
                if prev.image is not None:
                    prev.image = prev.image_sha256 = None
                if id(prev) in self._via_exe:
                    prev.sha256, prev.hash_note = None, "the process ran another image before it was read"
                    prev.image_rights = False

    def _remember_read(self, pid: int, read: _Read) -> None:
        """Keep ``read`` as the one later events of ``pid`` may withdraw (only the last one can be)."""
        self._forget_read(pid)
        self._proc_reads[pid] = read

    def _forget_read(self, pid: int) -> None:
        """Drop what is kept for the last read of ``pid`` (a resident tracer runs for days)."""
        old = self._proc_reads.pop(pid, None)
        if old is not None:
            self._via_exe.discard(id(old.event))

    def _cred_changed(self, event: CredEvent) -> None:
        status = read_status(event.pid, event.start_ns)
        if status is not None:
            event.ruid, event.euid, event.suid, event.fsuid, event.cap_eff = status
            self._remember_read(event.pid, _Read(procfs.clock_boot_ns(), event))

    def _executed(self, event: ExecEvent, os_filename: str | None) -> None:
        """Hash the image that ran, read argv and credentials, as far as /proc still shows them.

        ``/proc/<pid>/exe`` is the image itself (an interpreter for a ``#!`` script), whatever its name is
        now. When the process is gone, the file its name leads to (inside its root) is hashed only if
        it has not changed since before the exec."""
        pid = event.pid
        args = self._args.pop(pid, None)
        base = None
        if os_filename is not None and not os_filename.startswith("/"):
            base = self._known_cwd(pid)
            event.cwd = None if base is None else visible(resolve_path(base, None) or base)
        path = kernel_join(os_filename, base)
        exe_fd = open_exe(pid)
        read_at = procfs.clock_boot_ns()
        try:
            live = exe_fd is not None and same_process(pid, event.start_ns)
            exe = exe_facts(pid, exe_fd) if live and exe_fd is not None else None
            if exe is not None and exe_fd is not None:
                event.image = visible(exe[0])
                if self.container_view:
                    event.image = procfs.container_relative(pid, event.image)
                event.image_sha256 = self.hasher.sha256_fd(exe_fd)
                read_rights(event, exe_fd, exe[1])
            named = stat_named(path, pid, self._root.get(pid), live)
            if named is None and live and not self.container_view:  # gone between the two reads
                named = stat_named(path, pid, self._root.get(pid), False)
            if exe is not None and (named is None or not self.hasher.is_script(*named)):
                # the image itself: what the name led to, an fexecve'd descriptor, or a binary replaced
                # (renamed over) since the exec; only a #! interpreter is an image of its own
                event.sha256, event.image_sha256 = event.image_sha256, None
                self._via_exe.add(id(event))
                if path is not None and not path.startswith(NOT_HERE):
                    event.image = None
            elif path is None or path.startswith(NOT_HERE):
                event.hash_note = "the executed descriptor could not be read back"
            elif named is not None and self._unchanged_since(named[1], event.ts):
                event.sha256 = self.hasher.sha256(named[0])
                if event.sha256 is None:
                    event.hash_note = "the executed file could not be read"
                elif exe is None and not self._interpreter(event, named[0], pid, live):
                    read_rights(event, named[0], named[1])
            elif named is None and self.container_view and not live:
                event.hash_note = "the process ended before its container's file could be read"
            elif named is None:
                event.hash_note = "the executed file is gone"
            else:
                event.hash_note = "the executed file changed after the exec"
            if live:
                self._read_live(event, args)
            if live or exe is not None:
                self._remember_read(pid, _Read(read_at, event))
        finally:
            if exe_fd is not None:
                os.close(exe_fd)

    def _unchanged_since(self, st: os.stat_result, boot_ns: int) -> bool:
        return st.st_ctime_ns + CTIME_MARGIN_NS < boot_ns + self._boot_offset

    def _interpreter(self, event: ExecEvent, script: str, pid: int, live: bool) -> bool:
        """The ``#!`` interpreter of a script whose process is gone: named by the (unchanged) script,
        hashed (and its rights read) if it too is unchanged since the exec. False: not a script."""
        interp = shebang(script)
        if interp is None:
            return is_script(script)
        found = stat_named(interp, pid, self._root.get(pid), live)
        event.image = visible(interp)
        if found is not None and self._unchanged_since(found[1], event.ts):
            event.image_sha256 = self.hasher.sha256(found[0])
            read_rights(event, found[0], found[1])
        return True

    def _read_live(self, event: ExecEvent, args: ExecArgsEvent | None) -> None:
        status = read_status(event.pid, event.start_ns)
        if status is not None:
            event.ruid, event.euid, event.suid, event.fsuid, event.cap_eff = status
        if args is None or args.truncated or args.unreadable or args.cut:
            try:
                with open(f"/proc/{event.pid}/cmdline", "rb") as fh:
                    raw = fh.read()
            except OSError:
                return
            if raw and same_process(event.pid, event.start_ns):
                event.cmdline = tuple(bytes_text(a) for a in raw.split(b"\0")[:-1])

    def _read_open(self, event: OpenEvent, os_path: str | None) -> None:
        """The kernel's resolution of an uncertain open: the link of its descriptor, read now; for a
        process already gone, a ``..`` path walked through the symlinks as they are now."""
        if self.container_view:
            return  # a host path, or one of another mount namespace: not the container's view
        try:
            target = os.readlink(f"/proc/{event.pid}/fd/{event.fd}")
        except OSError:
            target = None
        if target is None or not same_process(event.pid, event.start_ns):
            self._walk_open(event, os_path)
            return
        if not target.startswith("/"):
            return
        event.kernel_path = visible(target.removesuffix(" (deleted)"))
        read = _Read(procfs.clock_boot_ns(), event)
        self._open_reads.setdefault(event.pid, {}).setdefault(event.fd, []).append(read)

    def _walk_open(self, event: OpenEvent, os_path: str | None) -> None:
        if os_path is None or ".." not in os_path.split("/") or event.dfd != AT_FDCWD:
            return
        path = kernel_join(os_path, self._known_cwd(event.pid))
        root = self._root.get(event.pid)
        if path is None or (root is not None and root != "/"):
            return
        event.kernel_path, event.walked = visible(os.path.realpath(path)), True

    def _settle_open_reads(self) -> None:
        """Check every event of a process with a pending descriptor read against it; only those events
        are decoded here (and kept decoded), so a run with no uncertain open pays one header peek each."""
        pending = self._open_reads
        items = self._items
        for i, item in enumerate(items):
            if not pending:
                return
            if isinstance(item, bytes):
                if item[0] not in _FREES_DESCRIPTORS or _U32.unpack_from(item, 4)[0] not in pending:
                    continue
                try:
                    item = items[i] = self.decoder.decode(item)
                except DecodeError:
                    continue  # counted when events() meets it
            _check_open_reads(pending, item)


def _check_open_reads(pending: dict[int, dict[int, list[_Read]]], event: Event) -> None:
    """Withdraw reads of descriptors that ``event`` freed or replaced before the read was made.

    One number can be read back for several opens (closed and reused before the reads caught up):
    each read stays pending until an event after its own open frees the number."""
    reads = pending.get(event.pid)
    if not reads:
        return
    hit: list[int] = []
    if isinstance(event, FdEvent):
        if event.op == FD_CLOSE:
            hit = [event.fd]
        elif event.op == FD_DUP:
            hit = [event.newfd]
        elif event.op == FD_CLOSE_RANGE:
            hit = [fd for fd in reads if event.fd <= fd <= event.last]
    elif isinstance(event, OpenEvent):
        hit = [event.fd] if event.fd in reads else []
    elif isinstance(event, ExecEvent | ExitEvent):
        hit = list(reads)
    for fd in hit:
        kept: list[_Read] = []
        for read in reads.get(fd, ()):
            if read.event is event or event.ts < read.event.ts:
                kept.append(read)  # the open itself, or an event before it
            elif event.ts <= read.at and isinstance(read.event, OpenEvent):
                read.event.kernel_path = None
        if kept:
            reads[fd] = kept
        else:
            reads.pop(fd, None)


_FREES_DESCRIPTORS = frozenset((EV_FD, EV_OPEN))  # raw kinds that can free or replace a number
_U32 = struct.Struct("<I")  # a u32 of the raw event: the tgid at 4, an open's flags at 40
