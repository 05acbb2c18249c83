"""Kernel events as typed Python values: decoding of the ring-buffer bytes and a JSON form for recording.

The byte layouts mirror the structs in ``program.c`` (natural alignment, little endian); sizes of the
string slots come from the same ``ProgramOptions`` the program was rendered with. Decoding is pure so it
can be tested without BPF.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

from liubai.ebpf.program import ProgramOptions
from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.text import bytes_text

__all__ = [
    "AdoptEvent",
    "CD_CHROOT",
    "CD_FCHDIR",
    "ChdirEvent",
    "DigestEvent",
    "CredEvent",
    "DecodeError",
    "Event",
    "EventDecoder",
    "ExecArgsEvent",
    "ExecEvent",
    "ExecFailEvent",
    "ExitEvent",
    "FdEvent",
    "ForkEvent",
    "OPEN_BY_HANDLE",
    "OPEN_MEMFD",
    "OpenEvent",
    "RENAME_EXCHANGE",
    "RenameEvent",
    "UringEvent",
]

EV_FORK, EV_EXEC, EV_EXEC_ARGS, EV_EXEC_FAIL, EV_OPEN, EV_EXIT, EV_CHDIR = 1, 2, 3, 4, 5, 6, 7
EV_FD, EV_URING, EV_CRED, EV_ADOPT = 8, 9, 10, 11
EV_CGROUP = 12  # node mode: a v2 cgroup made or removed (read by the node tracer, never decoded as an Event)
EV_RENAME = 13  # run mode only
RENAME_EXCHANGE = 2  # renameat2: the two names swap files
ADOPT_FORK, ADOPT_EXEC, ADOPT_PROBE, ADOPT_SCAN = 1, 2, 3, 4  # ADOPT_SCAN: found in /proc by user space
AT_FDCWD = -100
OPEN_OPENAT, OPEN_OPENAT2, OPEN_CREAT, OPEN_BY_HANDLE, OPEN_MEMFD = 0, 1, 2, 3, 4
CD_CHDIR, CD_FCHDIR, CD_CHROOT = 0, 1, 2
FD_CLOSE, FD_DUP, FD_SETFD, FD_CLOSE_RANGE, FD_UNSHARE = 1, 2, 3, 4, 5
CR_SETUID, CR_SETREUID, CR_SETRESUID, CR_SETFSUID, CR_CAPSET = 1, 2, 3, 4, 5
ARGS_TRUNCATED, ARGS_UNREADABLE, ARGS_CUT = 1, 2, 4

_HDR = struct.Struct("<IIIIQQ")  # type, tgid, tid, uid, ts, start_ns
_NAMES_AT = _HDR.size + struct.calcsize("<iiII")  # a rename's two names follow its numbers
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # os.fsdecode's


class DecodeError(LiubaiError, ValueError):
    """Bytes that are not a liubai kernel event (wrong size or unknown type)."""

    code = ErrorCode.BAD_INPUT


@dataclass(slots=True)
class Event:
    """Common header: the process (``pid`` = tgid, ``start_ns``) and thread that caused the event."""

    pid: int
    tid: int
    uid: int
    ts: int
    start_ns: int


@dataclass(slots=True)
class ForkEvent(Event):
    """A new process; ``clone_flags`` (low 32 bits) say whether it shares the descriptor table
    (CLONE_FILES) or the cwd (CLONE_FS) with its parent."""

    child: int = 0
    child_start_ns: int = 0
    clone_flags: int = 0


@dataclass(slots=True)
class ExecEvent(Event):
    """A successful exec. Filled in user space while the process is live: ``cwd`` (for a relative name),
    ``sha256`` of the image the name led to (or ``hash_note`` saying why there is none), ``image`` and
    ``image_sha256`` (what ``/proc/<pid>/exe`` showed: the interpreter of a ``#!`` script, the file of
    an fexecve), ``cmdline`` (argv read back from /proc where the kernel copy was partial) and the
    credentials /proc showed (``ruid``/``euid``/``suid``/``fsuid``, ``cap_eff``). With ``image_rights``, what the
    exec's image grants (``image_setuid``: its owner if set-user-ID; ``image_caps``: its effective file
    capabilities), read from the image verified unchanged since the exec: the kernel's exec rules then
    give the credentials /proc could no longer show."""

    filename: str = ""
    comm: str = ""
    old_pid: int = 0
    cwd: str | None = None
    sha256: str | None = None
    hash_note: str | None = None
    image: str | None = None
    image_sha256: str | None = None
    cmdline: tuple[str, ...] | None = None
    ruid: int | None = None
    euid: int | None = None
    suid: int | None = None
    fsuid: int | None = None
    cap_eff: int | None = None
    image_rights: bool = False
    image_setuid: int | None = None
    image_caps: int = 0


@dataclass(slots=True)
class ExecArgsEvent(Event):
    """An exec attempt (it may still fail): the path asked for and the argv as read at syscall entry,
    ``truncated`` (more than fits), ``cut`` (an argument longer than its slot) or ``unreadable`` (a page
    not resident then); ``dfd``/``at_flags`` of an execveat."""

    filename: str = ""
    argv: tuple[str, ...] = ()
    truncated: bool = False
    unreadable: bool = False
    cut: bool = False
    dfd: int = AT_FDCWD
    at_flags: int = 0


@dataclass(slots=True)
class ExecFailEvent(Event):
    errno: int = 0


@dataclass(slots=True)
class OpenEvent(Event):
    """A successful open/openat/openat2/creat/open_by_handle_at (``kind``): the fd it returned, the dirfd
    and the path as the caller gave it. ``kernel_path``: the kernel's own resolution, read back from
    ``/proc/<pid>/fd/<fd>`` while the descriptor was still this open's (paths with ``..``, descriptor
    links, handles), or, with ``walked``, by walking the filesystem's symlinks just after (the process
    was gone). A memfd_create (``kind`` 4) names its descriptor only: ``path`` is the memfd's name."""

    path: str = ""
    fd: int = -1
    dfd: int = AT_FDCWD
    flags: int = 0
    kind: int = OPEN_OPENAT
    kernel_path: str | None = None
    walked: bool = False


@dataclass(slots=True)
class ChdirEvent(Event):
    """A successful chdir (``path``), fchdir (``fd`` >= 0) or chroot (``kind``); ``cwd`` is /proc's answer
    where ``fd`` was unknown."""

    path: str = ""
    fd: int = -1
    cwd: str | None = None
    kind: int = CD_CHDIR


@dataclass(slots=True)
class RenameEvent(Event):
    """A successful rename/renameat/renameat2: ``old_path`` (relative to ``old_dfd``) now names nothing and
    ``new_path`` (relative to ``new_dfd``) the file it named, or, with ``RENAME_EXCHANGE`` in ``flags``,
    the two names swap. The usual last step of writing a file atomically (write aside, then rename)."""

    old_path: str = ""
    new_path: str = ""
    old_dfd: int = AT_FDCWD
    new_dfd: int = AT_FDCWD
    flags: int = 0


@dataclass(slots=True)
class FdEvent(Event):
    """A change of the descriptor table: close, dup (``fd`` -> ``newfd``), close-on-exec set or cleared
    (``arg``), close_range (``fd``..``last``, ``arg`` its flags), unshare (``arg`` its flags)."""

    op: int = 0
    fd: int = -1
    newfd: int = -1
    arg: int = 0
    last: int = 0


@dataclass(slots=True)
class UringEvent(Event):
    """The process set up or entered an io_uring: its file operations bypass the traced syscalls."""

    fd: int = -1


@dataclass(slots=True)
class CredEvent(Event):
    """A successful setuid/setreuid/setresuid/setfsuid/capset (``op``) with its arguments; the ids /proc
    showed just after (filled in user space, None when they could not be read for sure)."""

    op: int = 0
    ret: int = 0
    a: int = 0
    b: int = 0
    c: int = 0
    cap_arg: int = 0
    ruid: int | None = None
    euid: int | None = None
    suid: int | None = None
    fsuid: int | None = None
    cap_eff: int | None = None


@dataclass(slots=True)
class ExitEvent(Event):
    """The last thread of a process exited. ``exit_code``: exit status, -signal, or None when unknown."""

    exit_code: int | None = None
    comm: str = ""


@dataclass(slots=True)
class AdoptEvent(Event):
    """Node mode: a process already running in a pod cgroup joined the traced tree at a fork or exec
    (``reason``) without its birth being seen; ``cgroup_id`` is its v2 cgroup (0: found by /proc).
    What /proc showed just then (``ppid``, ``comm``, ``argv``, ``binary``, ``cwd`` as the container sees
    it) is filled in user space; None where it could not be read for this very process."""

    cgroup_id: int = 0
    reason: int = 0
    ppid: int | None = None
    comm: str | None = None
    argv: tuple[str, ...] | None = None
    binary: str | None = None
    cwd: str | None = None


@dataclass(slots=True)
class DigestEvent(Event):
    """Made in user space, not by the kernel: the sha256 of a file the run wrote, taken once the last
    descriptor of it closed (the header is the closing process and the time of the close). The file is
    named by the write open that last opened it (``opener_pid``/``opener_start_ns``, ``opened_ts``) and,
    for reading, by the ``path`` that was hashed. No ``sha256``: ``hash_note`` says why none was taken."""

    path: str = ""
    opener_pid: int = 0
    opener_start_ns: int = 0
    opened_ts: int = 0
    sha256: str | None = None
    hash_note: str | None = None


def _os_name(raw: bytes, start: int = 0, stop: int | None = None) -> str | None:
    """The NUL-ended name in ``raw[start:stop]`` as ``os.fsdecode`` gives it; None without a NUL."""
    end = raw.find(b"\0", start, len(raw) if stop is None else stop)
    return raw[start:end].decode(_FS_ENCODING, _FS_ERRORS) if end >= 0 else None


def _text(raw: bytes) -> str:
    return bytes_text(raw.split(b"\0", 1)[0])


class EventDecoder:
    """Decodes ring-buffer records of a program rendered with ``options``.

    Paths and argv are the tail of their event (the kernel sends only the bytes used)."""

    def __init__(self, options: ProgramOptions | None = None) -> None:
        o = options or ProgramOptions()
        self.options = o
        self._fork = struct.Struct("<IIQ")
        self._exec = struct.Struct("<II16s")
        self._exec_args = struct.Struct(f"<IIiI{o.path_len}s")
        self._exec_fail = struct.Struct("<iI")
        self._open = struct.Struct("<iiII")
        self._exit = struct.Struct("<iI16s")
        self._chdir = struct.Struct("<ii")
        self._fd = struct.Struct("<IiiIII")
        self._uring = struct.Struct("<iI")
        self._cred = struct.Struct("<IiIIIIQ")
        self._adopt = struct.Struct("<QII")
        self._rename = struct.Struct("<iiII")
        self._path_at = {EV_EXEC: self._exec.size, EV_CHDIR: self._chdir.size, EV_OPEN: self._open.size}

    def os_path(self, data: bytes) -> str | None:
        """The path of an exec, chdir or open event as the OS's own str: each byte that is not UTF-8 a
        lone surrogate, so ``open`` reaches exactly the file the kernel named; None where it has no NUL
        (cut short). The events' ``filename`` and ``path`` are for showing and storing; there the byte
        0xff and a literal ``\\xff`` read alike."""
        at = self._path_at.get(data[0] if data else 0)
        if at is None:
            raise DecodeError("not an exec, chdir or open event")
        return _os_name(bytes(data), _HDR.size + at)

    def os_paths(self, data: bytes) -> tuple[str | None, str | None]:
        """The old and new name of a rename event, as ``os_path`` gives an open's."""
        if not data or data[0] != EV_RENAME:
            raise DecodeError("not a rename event")
        data = bytes(data)
        new_at = _NAMES_AT + self._rename.unpack_from(data, _HDR.size)[3]
        return _os_name(data, _NAMES_AT, new_at), _os_name(data, new_at)

    def open_numbers(self, data: bytes) -> OpenEvent:
        """An open event's numbers, its ``path`` left empty: what a model of its descriptor needs, at a
        third of a full decode (the reader does this while the traced command runs; the event itself is
        decoded once it has ended)."""
        head, (fd, dfd, flags, how) = self._numbers(data, EV_OPEN, self._open, "an open")
        return OpenEvent(*head, path="", fd=fd, dfd=dfd, flags=flags, kind=how)

    def rename_numbers(self, data: bytes) -> RenameEvent:
        """A rename event's numbers, its paths left empty (``os_paths`` gives them), as ``open_numbers``."""
        head, (old_dfd, new_dfd, flags, _) = self._numbers(data, EV_RENAME, self._rename, "a rename")
        return RenameEvent(*head, old_dfd=old_dfd, new_dfd=new_dfd, flags=flags)

    @staticmethod
    def _numbers(
        data: bytes, kind: int, body: struct.Struct, what: str
    ) -> tuple[tuple[int, int, int, int, int], tuple[int, ...]]:
        """The header (tgid, tid, uid, ts, start) and the fixed body of an event of ``kind``."""
        try:
            got, tgid, tid, uid, ts, start = _HDR.unpack_from(data)
            numbers = body.unpack_from(data, _HDR.size)
        except struct.error as exc:
            raise DecodeError(f"{what} event of {len(data)} bytes: {exc}") from None
        if got != kind:
            raise DecodeError(f"not {what} event")
        return (tgid, tid, uid, ts, start), numbers

    def decode(self, data: bytes) -> Event:
        if len(data) < _HDR.size:
            raise DecodeError(f"event of {len(data)} bytes is shorter than its {_HDR.size}-byte header")
        kind, tgid, tid, uid, ts, start = _HDR.unpack_from(data)
        try:
            if kind == EV_FD:  # the most frequent kind (a shell's redirections): no view, no keywords
                op, fd, newfd, arg, last, _pad = self._fd.unpack_from(data, _HDR.size)
                return FdEvent(tgid, tid, uid, ts, start, op, fd, newfd, arg, last)
            h = (tgid, tid, uid, ts, start)
            body = memoryview(data)[_HDR.size :]
            if kind == EV_FORK:
                child, flags, child_start = self._fork.unpack_from(body)
                return ForkEvent(*h, child=child, child_start_ns=child_start, clone_flags=flags)
            if kind == EV_EXEC:
                old_pid, _pad, comm = self._exec.unpack_from(body)
                filename = bytes(body[self._exec.size :])
                return ExecEvent(*h, filename=_text(filename), comm=_text(comm), old_pid=old_pid)
            if kind == EV_EXEC_ARGS:
                argc, flags, dfd, at_flags, filename = self._exec_args.unpack_from(body)
                packed = bytes(body[self._exec_args.size :])
                argv = tuple(bytes_text(a) for a in packed.split(b"\0")[: min(argc, self.options.max_args)])
                return ExecArgsEvent(
                    *h,
                    filename=_text(filename),
                    argv=argv,
                    truncated=bool(flags & ARGS_TRUNCATED),
                    unreadable=bool(flags & ARGS_UNREADABLE),
                    cut=bool(flags & ARGS_CUT),
                    dfd=dfd,
                    at_flags=at_flags,
                )
            if kind == EV_EXEC_FAIL:
                err, _pad = self._exec_fail.unpack_from(body)
                return ExecFailEvent(*h, errno=err)
            if kind == EV_OPEN:
                fd, dfd, flags, how = self._open.unpack_from(body)
                path = _text(bytes(body[self._open.size :]))
                return OpenEvent(*h, path=path, fd=fd, dfd=dfd, flags=flags, kind=how)
            if kind == EV_EXIT:
                code, has_code, comm = self._exit.unpack_from(body)
                return ExitEvent(*h, exit_code=code if has_code else None, comm=_text(comm))
            if kind == EV_CHDIR:
                how, fd = self._chdir.unpack_from(body)
                path = _text(bytes(body[self._chdir.size :]))
                return ChdirEvent(*h, path=path, fd=fd, kind=how)
            if kind == EV_URING:
                fd, _pad = self._uring.unpack_from(body)
                return UringEvent(*h, fd=fd)
            if kind == EV_CRED:
                op, ret, a, b, c, _pad, cap = self._cred.unpack_from(body)
                return CredEvent(*h, op=op, ret=ret, a=a, b=b, c=c, cap_arg=cap)
            if kind == EV_RENAME:
                old_dfd, new_dfd, flags, new_at = self._rename.unpack_from(body)
                names = bytes(body[self._rename.size :])
                return RenameEvent(
                    *h,
                    old_path=_text(names[:new_at]),
                    new_path=_text(names[new_at:]),
                    old_dfd=old_dfd,
                    new_dfd=new_dfd,
                    flags=flags,
                )
            if kind == EV_ADOPT:
                cgroup_id, reason, _pad = self._adopt.unpack_from(body)
                return AdoptEvent(*h, cgroup_id=cgroup_id, reason=reason)
        except struct.error as exc:
            raise DecodeError(f"event type {kind} of {len(data)} bytes: {exc}") from None
        raise DecodeError(f"unknown event type {kind}")
