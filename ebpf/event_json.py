"""Kernel events as JSON: the form a recording and the hand-off protocol carry, checked where it is read.

Recorded JSON is untrusted: every field is checked against its event's type (and range) here, so an
accepted event can never break the collector, the timestamp arithmetic or the store later.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, asdict, fields
from functools import cache
from typing import Any

from liubai.ebpf.events import (
    AdoptEvent,
    ChdirEvent,
    CredEvent,
    DigestEvent,
    Event,
    ExecArgsEvent,
    ExecEvent,
    ExecFailEvent,
    ExitEvent,
    FdEvent,
    ForkEvent,
    OpenEvent,
    RenameEvent,
    UringEvent,
)
from liubai.lineage.text import visible

__all__ = ["event_from_json", "event_to_json", "typed_fields", "typed_value"]

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
    RenameEvent: "rename",
}
_BY_KIND: dict[str, type[Event]] = {v: k for k, v in _KIND.items()}


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
    **dict.fromkeys(("fd", "dfd", "newfd", "ret", "errno", "exit_code", "old_dfd", "new_dfd"), _I32),
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
