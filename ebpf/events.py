"""Kernel events as typed Python values: decoding of the ring-buffer bytes and a JSON form for recording.

The byte layouts mirror the structs in ``program.c`` (natural alignment, little endian); sizes of the
string slots come from the same ``ProgramOptions`` the program was rendered with. Decoding is pure so it
can be tested without BPF.
"""

from __future__ import annotations

import os
import struct
from dataclasses import MISSING, asdict, dataclass, fields
from functools import cache
from typing import Any

from liubai.ebpf.program import ProgramOptions
from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.text import bytes_text, visible

__all__ = [
    "ChdirEvent",
    "DecodeError",
    "Event",
    "EventDecoder",
    "ExecArgsEvent",
    "ExecEvent",
    "ExecFailEvent",
    "ExitEvent",
    "ForkEvent",
    "OpenEvent",
    "event_from_json",
    "event_to_json",
    "typed_fields",
    "typed_value",
]

EV_FORK, EV_EXEC, EV_EXEC_ARGS, EV_EXEC_FAIL, EV_OPEN, EV_EXIT, EV_CHDIR = 1, 2, 3, 4, 5, 6, 7
AT_FDCWD = -100

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
    child: int = 0
    child_start_ns: int = 0


@dataclass(slots=True)
class ExecEvent(Event):
    """A successful exec; ``cwd`` and ``sha256`` are filled in user space while the process is live."""

    filename: str = ""
    comm: str = ""
    old_pid: int = 0
    cwd: str | None = None
    sha256: str | None = None


@dataclass(slots=True)
class ExecArgsEvent(Event):
    """An execve attempt (it may still fail): the path asked for and the argv, bounded."""

    filename: str = ""
    argv: tuple[str, ...] = ()
    truncated: bool = False


@dataclass(slots=True)
class ExecFailEvent(Event):
    errno: int = 0


@dataclass(slots=True)
class OpenEvent(Event):
    """A successful open/openat/openat2: the fd it returned, the dirfd and the path as the caller gave it."""

    path: str = ""
    fd: int = -1
    dfd: int = AT_FDCWD
    flags: int = 0


@dataclass(slots=True)
class ChdirEvent(Event):
    """A successful chdir (``path``) or fchdir (``fd`` >= 0); ``cwd`` is /proc's answer where ``fd`` was unknown."""

    path: str = ""
    fd: int = -1
    cwd: str | None = None


@dataclass(slots=True)
class ExitEvent(Event):
    """The last thread of a process exited. ``exit_code``: exit status, -signal, or None when unknown."""

    exit_code: int | None = None
    comm: str = ""


_KIND = {
    ForkEvent: "fork",
    ExecEvent: "exec",
    ExecArgsEvent: "exec_args",
    ExecFailEvent: "exec_fail",
    OpenEvent: "open",
    ChdirEvent: "chdir",
    ExitEvent: "exit",
}
_BY_KIND: dict[str, type[Event]] = {v: k for k, v in _KIND.items()}


def _text(raw: bytes) -> str:
    return bytes_text(raw.split(b"\0", 1)[0])


class EventDecoder:
    """Decodes ring-buffer records of a program rendered with ``options``."""

    def __init__(self, options: ProgramOptions | None = None) -> None:
        o = options or ProgramOptions()
        self.options = o
        self._fork = struct.Struct("<II Q")
        self._exec = struct.Struct(f"<II 16s {o.path_len}s")
        self._exec_args = struct.Struct(f"<II {o.path_len}s {o.max_args * o.arg_len}s")
        self._exec_fail = struct.Struct("<iI")
        self._open = struct.Struct(f"<iiII {o.path_len}s")
        self._exit = struct.Struct("<iI 16s")
        self._chdir = struct.Struct(f"<ii {o.path_len}s")
        self._path_layouts = {EV_EXEC: self._exec, EV_CHDIR: self._chdir}  # the path is their last field

    def os_path(self, data: bytes) -> str | None:
        """The path of an exec or chdir event as the OS's own str: each byte that is not UTF-8 a lone
        surrogate, so ``open`` reaches exactly the file the kernel named; None where the path filled its
        slot (``path_len``) and may have been cut short. The events' ``filename`` and ``path`` are for
        showing and storing; there the byte 0xff and a literal ``\\xff`` read alike."""
        layout = self._path_layouts.get(data[0] if data else 0)
        if layout is None:
            raise DecodeError("not an exec or chdir event")
        try:
            raw = layout.unpack_from(data, _HDR.size)[-1]
        except struct.error as exc:
            raise DecodeError(f"event of {len(data)} bytes: {exc}") from None
        path, nul, _ = raw.partition(b"\0")
        return os.fsdecode(path) if nul and len(path) < self.options.path_len - 1 else None

    def decode(self, data: bytes) -> Event:
        if len(data) < _HDR.size:
            raise DecodeError(f"event of {len(data)} bytes is shorter than its {_HDR.size}-byte header")
        kind, tgid, tid, uid, ts, start = _HDR.unpack_from(data)
        h = (tgid, tid, uid, ts, start)
        body = memoryview(data)[_HDR.size :]
        try:
            if kind == EV_FORK:
                child, _pad, child_start = self._fork.unpack_from(body)
                return ForkEvent(*h, child=child, child_start_ns=child_start)
            if kind == EV_EXEC:
                old_pid, _pad, comm, filename = self._exec.unpack_from(body)
                return ExecEvent(*h, filename=_text(filename), comm=_text(comm), old_pid=old_pid)
            if kind == EV_EXEC_ARGS:
                argc, truncated, filename, argv_raw = self._exec_args.unpack_from(body)
                n = self.options.arg_len
                argv = tuple(
                    _text(argv_raw[i * n : (i + 1) * n]) for i in range(min(argc, self.options.max_args))
                )
                return ExecArgsEvent(*h, filename=_text(filename), argv=argv, truncated=bool(truncated))
            if kind == EV_EXEC_FAIL:
                err, _pad = self._exec_fail.unpack_from(body)
                return ExecFailEvent(*h, errno=err)
            if kind == EV_OPEN:
                fd, dfd, flags, _pad, path = self._open.unpack_from(body)
                return OpenEvent(*h, path=_text(path), fd=fd, dfd=dfd, flags=flags)
            if kind == EV_EXIT:
                code, has_code, comm = self._exit.unpack_from(body)
                return ExitEvent(*h, exit_code=code if has_code else None, comm=_text(comm))
            if kind == EV_CHDIR:
                _ret, fd, path = self._chdir.unpack_from(body)
                return ChdirEvent(*h, path=_text(path), fd=fd)
        except struct.error as exc:
            raise DecodeError(f"event type {kind} of {len(data)} bytes: {exc}") from None
        raise DecodeError(f"unknown event type {kind}")


def event_to_json(event: Event) -> dict[str, Any]:
    """A JSON-ready dict with a ``type`` field; the inverse of ``event_from_json``."""
    out = asdict(event)
    if isinstance(event, ExecArgsEvent):
        out["argv"] = list(event.argv)
    return {"type": _KIND[type(event)], **out}


_U32 = (0, 2**32 - 1)
_I32 = (-(2**31), 2**31 - 1)
_NS = (0, 2**63 - 1)
_I64 = (-(2**63), 2**63 - 1)
_RANGES = {
    **dict.fromkeys(
        ("pid", "tid", "uid", "child", "old_pid", "ppid", "root_pid", "root_ppid", "root_uid"), _U32
    ),
    **dict.fromkeys(("ts", "start_ns", "child_start_ns", "end_ns", "lost_events"), _NS),
    **dict.fromkeys(("fd", "dfd", "errno", "exit_code"), _I32),
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
        return cls(**typed_fields(cls, {k: v for k, v in obj.items() if k != "type"}))
    except ValueError as exc:
        raise ValueError(f"bad {kind} event: {exc}") from None
