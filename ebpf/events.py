"""Kernel events as typed Python values: decoding of the ring-buffer bytes and a JSON form for recording.

The byte layouts mirror the structs in ``program.c`` (natural alignment, little endian); sizes of the
string slots come from the same ``ProgramOptions`` the program was rendered with. Decoding is pure so it
can be tested without BPF.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import MISSING, asdict, dataclass, fields
from functools import cache
from typing import Any

from liubai.ebpf.program import ProgramOptions
from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.text import bytes_text, visible

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
    "UringEvent",
    "event_from_json",
    "event_to_json",
    "typed_fields",
    "typed_value",
]

EV_FORK, EV_EXEC, EV_EXEC_ARGS, EV_EXEC_FAIL, EV_OPEN, EV_EXIT, EV_CHDIR = 1, 2, 3, 4, 5, 6, 7
EV_FD, EV_URING, EV_CRED, EV_ADOPT = 8, 9, 10, 11
EV_CGROUP = 12  # node mode: a v2 cgroup made or removed (read by the node tracer, never decoded as an Event)
ADOPT_FORK, ADOPT_EXEC, ADOPT_PROBE, ADOPT_SCAN = 1, 2, 3, 4  # ADOPT_SCAN: found in /proc by user space
AT_FDCWD = -100
OPEN_OPENAT, OPEN_OPENAT2, OPEN_CREAT, OPEN_BY_HANDLE, OPEN_MEMFD = 0, 1, 2, 3, 4
CD_CHDIR, CD_FCHDIR, CD_CHROOT = 0, 1, 2
FD_CLOSE, FD_DUP, FD_SETFD, FD_CLOSE_RANGE, FD_UNSHARE = 1, 2, 3, 4, 5
CR_SETUID, CR_SETREUID, CR_SETRESUID, CR_SETFSUID, CR_CAPSET = 1, 2, 3, 4, 5
ARGS_TRUNCATED, ARGS_UNREADABLE, ARGS_CUT = 1, 2, 4

_HDR = struct.Struct("<IIIIQQ")  # type, tgid, tid, uid, ts, start_ns


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


_KIND = {
    ForkEvent: "fork",
    ExecEvent: "exec",
    ExecArgsEvent: "exec_args",
    ExecFailEvent: "exec_fail",
    OpenEvent: "open",
    ChdirEvent: "chdir",
    ExitEvent: "exit",
    FdEvent: "fd",
    UringEvent: "uring",
    CredEvent: "cred",
    AdoptEvent: "adopt",
    DigestEvent: "digest",
}
_BY_KIND: dict[str, type[Event]] = {v: k for k, v in _KIND.items()}


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
        self._path_at = {EV_EXEC: self._exec.size, EV_CHDIR: self._chdir.size, EV_OPEN: self._open.size}

    def os_path(self, data: bytes) -> str | None:
        """The path of an exec, chdir or open event as the OS's own str: each byte that is not UTF-8 a
        lone surrogate, so ``open`` reaches exactly the file the kernel named; None where it has no NUL
        (cut short). The events' ``filename`` and ``path`` are for showing and storing; there the byte
        0xff and a literal ``\\xff`` read alike."""
        at = self._path_at.get(data[0] if data else 0)
        if at is None:
            raise DecodeError("not an exec, chdir or open event")
        raw = bytes(data[_HDR.size + at :])
        path, nul, _ = raw.partition(b"\0")
        return os.fsdecode(path) if nul else None

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
            if kind == EV_ADOPT:
                cgroup_id, reason, _pad = self._adopt.unpack_from(body)
                return AdoptEvent(*h, cgroup_id=cgroup_id, reason=reason)
        except struct.error as exc:
            raise DecodeError(f"event type {kind} of {len(data)} bytes: {exc}") from None
        raise DecodeError(f"unknown event type {kind}")


def event_to_json(event: Event) -> dict[str, Any]:
    """A JSON-ready dict with a ``type`` field; the inverse of ``event_from_json``."""
    out = asdict(event)
    if isinstance(event, ExecArgsEvent):
        out["argv"] = list(event.argv)
    if isinstance(event, ExecEvent) and event.cmdline is not None:
        out["cmdline"] = list(event.cmdline)
    if isinstance(event, AdoptEvent) and event.argv is not None:
        out["argv"] = list(event.argv)
    return {"type": _KIND[type(event)], **out}


_SHA256 = re.compile(r"[0-9a-f]{64}")
_U32 = (0, 2**32 - 1)
_I32 = (-(2**31), 2**31 - 1)
_NS = (0, 2**63 - 1)
_I64 = (-(2**63), 2**63 - 1)
_RANGES = {
    **dict.fromkeys(
        ("pid", "tid", "uid", "child", "old_pid", "ppid", "root_pid", "root_ppid", "root_uid", "opener_pid"),
        _U32,
    ),
    **dict.fromkeys(("clone_flags", "kind", "op", "arg", "last", "a", "b", "c", "at_flags"), _U32),
    **dict.fromkeys(("ruid", "euid", "suid", "fsuid"), _U32),
    **dict.fromkeys(("cap_arg", "cap_eff", "cgroup_id"), (0, 2**64 - 1)),
    "reason": _U32,
    "still_running": _U32,
    **dict.fromkeys(
        ("ts", "start_ns", "child_start_ns", "end_ns", "lost_events", "opener_start_ns", "opened_ts"), _NS
    ),
    **dict.fromkeys(("fd", "dfd", "newfd", "ret", "errno", "exit_code"), _I32),
    "flags": _U32,
}


def _shown(value: object) -> str:
    text = visible(repr(value))
    return text if len(text) <= 40 else text[:37] + "..."


def typed_value(name: str, annotation: str, value: object) -> Any:
    """``value`` of field ``name`` if it has the field's type (its annotation's text), strings made
    ``visible``; ValueError naming the field otherwise.

    Recorded JSON is untrusted: checking here, where it is read, means an accepted event can never break
    the collector, the timestamp arithmetic or the store later.
    """
    if value is None and annotation.endswith(" | None"):
        return None
    base = annotation.removesuffix(" | None")
    if base == "int":
        low, high = _RANGES.get(name, _I64)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer from {low} to {high}, got {_shown(value)}")
        return value
    if base == "str":
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {_shown(value)}")
        return visible(value)
    if base == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {_shown(value)}")
        return value
    if base == "tuple[str, ...]":
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            raise ValueError(f"{name} must be a list of strings")
        return tuple(visible(a) for a in value)
    raise TypeError(f"no JSON form for field {name} of type {annotation}")


@cache
def _schema(cls: type) -> tuple[dict[str, str], tuple[str, ...]]:
    """Per field of dataclass ``cls`` its annotation's text, and the fields without a default."""
    fs = fields(cls)
    required = tuple(f.name for f in fs if f.default is MISSING and f.default_factory is MISSING)
    return {f.name: str(f.type) for f in fs}, required


def typed_fields(cls: type, obj: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of dataclass ``cls`` that ``obj`` gives, each checked by ``typed_value``."""
    annotations, required = _schema(cls)
    out: dict[str, Any] = {}
    for name, value in obj.items():
        annotation = annotations.get(name)
        if annotation is None:
            raise ValueError(f"unknown field {_shown(name)}")
        out[name] = typed_value(name, annotation, value)
    missing = [name for name in required if name not in out]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    return out


def event_from_json(obj: dict[str, Any]) -> Event:
    """The event a recorded JSON line describes; ValueError naming the problem for anything else."""
    kind = obj.get("type")
    cls = _BY_KIND.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event type {_shown(kind)}")
    try:
        event = cls(**typed_fields(cls, {k: v for k, v in obj.items() if k != "type"}))
        if (
            isinstance(event, DigestEvent)
            and event.sha256 is not None
            and not _SHA256.fullmatch(event.sha256)
        ):
            raise ValueError(f"sha256 must be 64 lowercase hex digits, got {_shown(event.sha256)}")
    except ValueError as exc:
        raise ValueError(f"bad {kind} event: {exc}") from None
    return event
