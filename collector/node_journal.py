"""The node agent's journal: every window's records as JSON lines on disk, fsynced before the next window.

The journal is what the agent has recorded; shipping reads it like a log file (``NodeJournalSource``,
positioned by byte offset), so a kill -9 loses at most the window being built, never one written. A
window ends with a marker line (``{"window": {...}}``) naming its end; a restarted agent reads the last
marker for the gap it was away (from that end to its new start) and the last Container records for
the totals it continues. A line cut by a crash mid-write was never synced as a whole: it is cut off
before anything new is appended.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from liubai.collector.agent.sources import Unit
from liubai.collector.agentstate import Position
from liubai.collector.node import ContainerSeed
from liubai.collector.tail import FilePosition, FileTail
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import (
    ContainerOpensRecord,
    ContainerRecord,
    FileAccessRecord,
    ProcessRecord,
    Record,
)

__all__ = [
    "JOURNAL_NAME",
    "JournalState",
    "NodeJournal",
    "NodeJournalSource",
    "decode_line",
    "encode_record",
    "read_journal_state",
]

JOURNAL_NAME = "node-journal.jsonl"
_TYPES: dict[str, type[Any]] = {
    t.__name__: t
    for t in (ProcessRecord, FileAccessRecord, ContainerRecord, ContainerOpensRecord, RejectedRecord)
}


_FIELDS: dict[str, tuple[str, ...]] = {}


def _field_names(kind: type[Any]) -> tuple[str, ...]:
    names = _FIELDS.get(kind.__name__)
    if names is None:
        names = _FIELDS[kind.__name__] = tuple(f.name for f in dataclasses.fields(kind))
    return names


def encode_record(record: Record) -> bytes:
    """One journal line (with its newline) for a record (its fields as they are: no deep copy)."""
    kind: type[Any] = type(record)
    fields_ = {name: getattr(record, name) for name in _field_names(kind)}
    data = {"type": type(record).__name__, "record": fields_}
    try:
        return orjson.dumps(data) + b"\n"
    except TypeError:  # text orjson refuses (a lone surrogate): escaped, still one line
        return json.dumps(data, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def _record_of(kind: type[Any], data: dict[str, Any]) -> Record:
    """The record of ``kind`` from its fields, lists back to the tuples the type declares."""
    names = {f.name: str(f.type) for f in dataclasses.fields(kind)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    values = {
        k: tuple(v) if isinstance(v, list) and names[k].startswith("tuple") else v for k, v in data.items()
    }
    record: Record = kind(**values)
    return record


def decode_line(line: bytes, where: str, source: str) -> list[Record]:
    """The record of one journal line ([] for a window marker); a line that is not one is a reject."""
    try:
        data = json.loads(line)
        if "window" in data and isinstance(data["window"], dict):
            return []
        kind = _TYPES[data["type"]]
        return [_record_of(kind, data["record"])]
    except (ValueError, KeyError, TypeError) as exc:
        reason = f"journal line is not a record: {type(exc).__name__}: {exc}"
        return [RejectedRecord(source, where, reason[:500], line.decode("utf-8", "replace")[:2000])]


@dataclass(slots=True)
class JournalState:
    """What a restarted agent continues from."""

    last_window_end: str | None = None
    seeds: dict[str, ContainerSeed] = field(default_factory=dict)


def read_journal_state(path: Path) -> JournalState:
    """The last window's end and the last record of each container (with its open totals)."""
    state = JournalState()
    if not path.exists():
        return state
    with path.open("rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break  # cut by a crash: never recorded
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            window = data.get("window")
            if isinstance(window, dict) and isinstance(window.get("end"), str):
                state.last_window_end = window["end"]
                continue
            kind, fields_ = data.get("type"), data.get("record")
            if not isinstance(fields_, dict):
                continue
            try:
                if kind == "ProcessRecord":
                    _note_process(state, fields_)
                elif kind == "ContainerRecord":
                    rec = _record_of(ContainerRecord, fields_)
                    assert isinstance(rec, ContainerRecord)
                    seed = state.seeds.setdefault(rec.container_id, ContainerSeed(rec))
                    seed.record = rec
                elif kind == "ContainerOpensRecord":
                    opens = _record_of(ContainerOpensRecord, fields_)
                    assert isinstance(opens, ContainerOpensRecord)
                    placeholder = ContainerSeed(_placeholder(opens))
                    seed = state.seeds.setdefault(opens.container_id, placeholder)
                    seed.totals[(opens.path, opens.mode)] = dict(opens.totals)
            except (TypeError, ValueError):
                continue
    return state


def _note_process(state: JournalState, fields_: dict[str, Any]) -> None:
    """Keep which processes of a container the journal last knew running (pid -> start time)."""
    cid, pid, start = fields_.get("container_id"), fields_.get("pid"), fields_.get("start_ns")
    if not isinstance(cid, str) or not isinstance(pid, int) or not isinstance(start, int):
        return
    seed = state.seeds.get(cid)
    if seed is None:
        host = str(fields_.get("host") or "")
        seed = state.seeds[cid] = ContainerSeed(ContainerRecord(host, cid, "", "", None, "", ""))
    if fields_.get("ended_at") is None:
        seed.running[pid] = start
    elif seed.running.get(pid) == start:
        del seed.running[pid]


def _placeholder(opens: ContainerOpensRecord) -> ContainerRecord:
    return ContainerRecord(
        opens.host, opens.container_id, "", "", None, opens.first_at or "", opens.last_at or ""
    )


class NodeJournal:
    """Appends windows to the journal file; each window is synced to disk before ``write_window`` returns."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / JOURNAL_NAME
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._cut_torn_tail()

    def _cut_torn_tail(self) -> None:
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        keep = size
        while keep > 0:
            step = min(65536, keep)
            chunk = os.pread(self._fd, step, keep - step)
            at = chunk.rfind(b"\n")
            if at >= 0:
                keep = keep - step + at + 1
                break
            keep -= step
        if keep != size:
            os.ftruncate(self._fd, keep)
            os.fsync(self._fd)

    def write_window(self, records: Iterable[Record], start: str, end: str) -> int:
        """Append the window's records and its marker, then fsync; the number of records written."""
        parts = [encode_record(r) for r in records]
        marker = {"window": {"start": start, "end": end, "records": len(parts)}}
        parts.append(json.dumps(marker, separators=(",", ":")).encode() + b"\n")
        view = memoryview(b"".join(parts))
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        return len(parts) - 1

    def close(self) -> None:
        os.close(self._fd)


@dataclass(slots=True)
class NodeJournalSource:
    """The journal as an agent ``Source``: complete lines from the saved byte offset, one unit each."""

    path: str
    label: str = "node"  # the source name sent with each batch
    key: str = ""
    _tail: FileTail = field(init=False)

    def __post_init__(self) -> None:
        self.key = f"node-journal:{os.path.abspath(self.path)}"
        self._tail = FileTail(self.path)

    def close(self) -> None:
        self._tail.close()

    def units(self, position: Position | None) -> Iterator[Unit]:
        start = position if isinstance(position, FilePosition) else None
        for line in self._tail.lines(start):
            where = f"{JOURNAL_NAME}:{line.lineno}"
            yield Unit(tuple(decode_line(line.data, where, self.label)), line.after, where, line.data)
