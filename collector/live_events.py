"""The events of a live traced run, enriched with what only the live machine can know.

Added to the events *before* they are recorded or replayed, so replaying never looks at the local
filesystem: the sha256 of each executed image, the cwd a relative exec name is resolved against, argv
and credentials read back from /proc, and the kernel's own resolution of uncertain opens. Every value
read from /proc is checked against the events that follow: one read after the process had moved on
(a later exec, credential change or descriptor close) is withdrawn, so a doubt leaves a gap, never a
false value.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from liubai.collector.runs import BinaryHasher, resolve_path
from liubai.collector.written_files import WrittenFiles, is_write_open
from liubai.ebpf import procfs
from liubai.ebpf.credentials import effective_file_caps
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
    FD_CLOSE,
    FD_CLOSE_RANGE,
    FD_DUP,
    OPEN_BY_HANDLE,
    ChdirEvent,
    CredEvent,
    DecodeError,
    Event,
    EventDecoder,
    ExecArgsEvent,
    ExecEvent,
    ExitEvent,
    FdEvent,
    ForkEvent,
    OpenEvent,
)
from liubai.ebpf.procfs import read_cwd
from liubai.lineage.text import bytes_text, visible

__all__ = ["LiveEvents", "same_process"]

CTIME_MARGIN_NS = 20_000_000  # file change times come from a coarse clock (a tick behind, or more)
_OPEN_KIND_AT = 32 + 12  # byte offset of OpenEvent.kind in the raw event
_OPEN_FLAGS_AT = 32 + 8  # and of its flags


@dataclass(slots=True)
class _Read:
    """Something read from /proc for an event, valid only if nothing changed it before ``at``."""

    at: int
    event: Event


class LiveEvents:
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
        if (
            kind not in _DECODED_AT_ONCE
            and not (kind == EV_OPEN and (_uncertain_open(raw) or self._written_open(raw)))
            and not (
                kind == EV_FD
                and self.written is not None
                and self.written.tracks(_TGID.unpack_from(raw, 4)[0])
            )
        ):
            self._items.append(raw)
            return
        try:
            event = self.decoder.decode(raw)
        except DecodeError:
            self.decode_errors += 1
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
        elif isinstance(event, OpenEvent):
            os_path = self.decoder.os_path(raw)
            if _uncertain_open(raw):
                self._read_open(event, os_path)
            if self.written is not None and is_write_open(event.flags):
                self._items.append(event)
                self._items.extend(self.written.opened(event, self._written_path(event, os_path)))
                return
        elif isinstance(event, ExitEvent):
            self._cwd.pop(event.pid, None)
            self._root.pop(event.pid, None)
            self._read_at.pop(event.pid, None)
            self._args.pop(event.pid, None)
            self._forget_read(event.pid)
            self._alive.discard(event.pid)
        self._items.append(event)
        if self.written is not None:
            self._items.extend(self.written.after(event))

    def _written_open(self, raw: bytes) -> bool:
        return self.written is not None and is_write_open(_FLAGS.unpack_from(raw, _OPEN_FLAGS_AT)[0])

    def _written_path(self, event: OpenEvent, os_path: str | None) -> str | None:
        """The file a write open reached, as this host names it: the path as given when it is plain
        (against the followed cwd and root), else the kernel's link of the descriptor, read now."""
        path = None
        if os_path is not None and ".." not in os_path.split("/") and event.kind != OPEN_BY_HANDLE:
            if os_path.startswith("/"):
                path = os_path
            elif event.dfd == AT_FDCWD:
                path = _kernel_join(os_path, self._known_cwd(event.pid))
        if path is not None:
            root = self._root.get(event.pid)
            return path if root is None or root == "/" else root.rstrip("/") + path
        try:
            target = os.readlink(f"/proc/{event.pid}/fd/{event.fd}")
        except OSError:
            return None
        if not target.startswith("/") or not _same_process(event.pid, event.start_ns):
            return None
        return target.removesuffix(" (deleted)")

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
            new_root = _kernel_join(os_path, self._cwd.get(event.pid))
            if new_root is not None:
                self._root[event.pid] = posixpath.normpath(new_root)
            return
        if event.fd >= 0:
            event.cwd, cwd = read_cwd(event.pid), None
            if self.container_view and event.cwd is not None:
                event.cwd = procfs.container_relative(event.pid, event.cwd)
        else:
            cwd = _kernel_join(os_path, self._cwd.get(event.pid))
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

    # -- /proc reads ------------------------------------------------------------------------------------

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
        status = _read_status(event.pid, event.start_ns)
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
        path = _kernel_join(os_filename, base)
        exe_fd = _open_exe(pid)
        read_at = procfs.clock_boot_ns()
        try:
            live = exe_fd is not None and _same_process(pid, event.start_ns)
            exe = _exe_facts(pid, exe_fd) if live and exe_fd is not None else None
            if exe is not None and exe_fd is not None:
                event.image = visible(exe[0])
                if self.container_view:
                    event.image = procfs.container_relative(pid, event.image)
                event.image_sha256 = self.hasher.sha256_fd(exe_fd)
                _read_rights(event, exe_fd, exe[1])
            named = _stat_named(path, pid, self._root.get(pid), live)
            if named is None and live and not self.container_view:  # gone between the two reads
                named = _stat_named(path, pid, self._root.get(pid), False)
            if exe is not None and (named is None or not _is_script(named[0])):
                # the image itself: what the name led to, an fexecve'd descriptor, or a binary replaced
                # (renamed over) since the exec; only a #! interpreter is an image of its own
                event.sha256, event.image_sha256 = event.image_sha256, None
                self._via_exe.add(id(event))
                if path is not None and not path.startswith(_NOT_HERE):
                    event.image = None
            elif path is None or path.startswith(_NOT_HERE):
                event.hash_note = "the executed descriptor could not be read back"
            elif named is not None and self._unchanged_since(named[1], event.ts):
                event.sha256 = self.hasher.sha256(named[0])
                if event.sha256 is None:
                    event.hash_note = "the executed file could not be read"
                elif exe is None and not self._interpreter(event, named[0], pid, live):
                    _read_rights(event, named[0], named[1])
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
        interp = _shebang(script)
        if interp is None:
            return _is_script(script)
        found = _stat_named(interp, pid, self._root.get(pid), live)
        event.image = visible(interp)
        if found is not None and self._unchanged_since(found[1], event.ts):
            event.image_sha256 = self.hasher.sha256(found[0])
            _read_rights(event, found[0], found[1])
        return True

    def _read_live(self, event: ExecEvent, args: ExecArgsEvent | None) -> None:
        status = _read_status(event.pid, event.start_ns)
        if status is not None:
            event.ruid, event.euid, event.suid, event.fsuid, event.cap_eff = status
        if args is None or args.truncated or args.unreadable or args.cut:
            try:
                with open(f"/proc/{event.pid}/cmdline", "rb") as fh:
                    raw = fh.read()
            except OSError:
                return
            if raw and _same_process(event.pid, event.start_ns):
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
        if target is None or not _same_process(event.pid, event.start_ns):
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
        path = _kernel_join(os_path, self._known_cwd(event.pid))
        root = self._root.get(event.pid)
        if path is None or (root is not None and root != "/"):
            return
        event.kernel_path, event.walked = visible(os.path.realpath(path)), True

    def __len__(self) -> int:
        return len(self._items)

    def events(self) -> Iterator[Event]:
        """Every event in kernel order; a descriptor read back after it was closed or replaced is withdrawn.

        The withdrawal is settled before the first event leaves: the event that frees a descriptor comes
        after the open whose read it withdraws, and a consumer uses the open's path as soon as it sees it."""
        self._settle_open_reads()
        if self.written is not None and not self._finished:
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

    def _settle_open_reads(self) -> None:
        """Check every event of a process with a pending descriptor read against it; only those events
        are decoded here (and kept decoded), so a run with no uncertain open pays one header peek each."""
        pending = self._open_reads
        items = self._items
        for i, item in enumerate(items):
            if not pending:
                return
            if isinstance(item, bytes):
                if item[0] not in _FREES_DESCRIPTORS or _TGID.unpack_from(item, 4)[0] not in pending:
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


def _uncertain_open(raw: bytes) -> bool:
    """An open whose lexical path may be wrong: ``..``, a descriptor link, or a handle (no path at all)."""
    return raw.find(b"..", 48) >= 0 or raw.find(b"/fd/", 48) >= 0 or raw[_OPEN_KIND_AT] == OPEN_BY_HANDLE


_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _same_process(pid: int, start_ns: int) -> bool:
    """Whether ``pid`` is still the process that started at ``start_ns``: /proc gives the start in clock
    ticks (rounded down), the kernel's fork event a few microseconds after the exact start."""
    try:
        return 0 <= start_ns - procfs.start_ns(pid) < _TICK_NS + 2_000_000
    except (OSError, ValueError, IndexError):
        return False


same_process = _same_process


def _open_exe(pid: int) -> int | None:
    try:
        return os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _exe_facts(pid: int, fd: int) -> tuple[str, os.stat_result] | None:
    try:
        return os.readlink(f"/proc/{pid}/exe"), os.fstat(fd)
    except OSError:
        return None


def _stat_named(
    path: str | None, pid: int, root: str | None, live: bool
) -> tuple[str, os.stat_result] | None:
    """The file ``path`` names for the process (inside its root) and its stat, or None."""
    if path is None or path.startswith(_NOT_HERE):
        return None
    if live:
        where = f"/proc/{pid}/root{path if path.startswith('/') else '/' + path}"
    elif root is not None and root != "/":
        where = root.rstrip("/") + path
    else:
        where = path
    try:
        st = os.stat(where)
    except OSError:
        return None
    return (where, st) if stat.S_ISREG(st.st_mode) else None


def _read_rights(event: ExecEvent, image: int | str, st: os.stat_result) -> None:
    """What the executed image grants at exec: set-user-ID owner and effective file capabilities, none
    on a nosuid mount. Unreadable facts leave ``image_rights`` False (credentials then unknown)."""
    try:
        nosuid = bool(os.statvfs(image).f_flag & os.ST_NOSUID)
        try:
            xattr: bytes | None = os.getxattr(image, "security.capability")
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP):
                raise
            xattr = None
    except OSError:
        return
    event.image_rights = True
    if not nosuid:
        event.image_setuid = st.st_uid if st.st_mode & stat.S_ISUID else None
        event.image_caps = effective_file_caps(xattr)


def _shebang(path: str) -> str | None:
    """The interpreter a ``#!`` script names (an absolute path), or None."""
    try:
        with open(path, "rb") as fh:
            line = fh.readline(256)
    except OSError:
        return None
    if not line.startswith(b"#!"):
        return None
    words = line[2:].split()
    return os.fsdecode(words[0]) if words and words[0].startswith(b"/") else None


def _is_script(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"#!"
    except OSError:
        return False


def _read_status(pid: int, start_ns: int) -> tuple[int, int, int, int, int] | None:
    """(ruid, euid, suid, fsuid, CapEff) from /proc/<pid>/status, if it is still that process."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    uids: list[int] = []
    cap: int | None = None
    for line in text.splitlines():
        if line.startswith("Uid:"):
            uids = [int(x) for x in line.split()[1:5]]
        elif line.startswith("CapEff:"):
            cap = int(line.split()[1], 16)
    if len(uids) != 4 or cap is None or not _same_process(pid, start_ns):
        return None
    return uids[0], uids[1], uids[2], uids[3], cap


_DECODED_AT_ONCE = frozenset((EV_FORK, EV_EXEC, EV_EXEC_ARGS, EV_CHDIR, EV_EXIT, EV_CRED))
_FREES_DESCRIPTORS = frozenset((EV_FD, EV_OPEN))  # raw kinds that can free or replace a number
_TGID = struct.Struct("<I")
_FLAGS = struct.Struct("<I")
# Paths that name a process's own descriptors: opened here, they would be the tracer's, not the traced one's.
_NOT_HERE = ("/dev/fd/", "/proc/")


def _kernel_join(path: str | None, base: str | None) -> str | None:
    """``path`` against ``base`` as the kernel walks it: ``..`` after a symlink leads out of its target,
    so no lexical normalising; None if relative with no base."""
    if path is None or (base is None and not path.startswith("/")):
        return None
    return path if base is None else posixpath.join(base, path)
