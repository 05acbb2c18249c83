"""What the agent ships from: re-readable sources (a log file, a trace recording) cut into units, each a
line's or a record's records with the position just after them, so a position moves only past whole units.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from liubai.collector.agent.errors import AgentError
from liubai.collector.agentstate import CountPosition, Position
from liubai.collector.tail import FilePosition, FileTail
from liubai.lineage.records import Record

__all__ = ["EventsSource", "LogFileSource", "Source", "Unit", "available_sources", "make_source"]

_HEAD = 64 * 1024  # bytes looked at to tell JSON lines from pretty-printed documents


@dataclass(frozen=True, slots=True)
class Unit:
    """Records that always travel in the same batch (one log line's, or one record) and the position just
    after them; ``raw`` is the input text, quoted by the reject if the unit alone is over the API's limit."""

    records: tuple[Record, ...]
    after: Position
    location: str
    raw: bytes = b""
    oversized: bool = False  # already the reject standing in for an oversized unit


class Source(Protocol):
    """A re-readable, deterministic stream of records: the same input from the same position always yields
    the same units."""

    key: str  # where the position is kept, unique per input
    label: str  # the source name sent with each batch

    def units(self, position: Position | None) -> Iterator[Unit]: ...

    def close(self) -> None: ...


def _counted(records: Iterable[Record], position: Position | None) -> Iterator[Unit]:
    """One unit per record, positioned by count, after the ``position.records`` already shipped."""
    start = position.records if isinstance(position, CountPosition) else 0
    for index, record in enumerate(records, 1):
        if index > start:
            yield Unit((record,), CountPosition(index), str(getattr(record, "location", "") or ""))


@dataclass(slots=True)
class LogFileSource:
    """A log file, possibly still being written and rotated. JSON lines are read from the saved byte offset
    (``liubai.collector.tail``), complete lines only, so a line caught half-written is read on a later pass.
    Gzip files, pretty-printed JSON documents and ``--otlp`` exports are read whole each pass and
    positioned by record count (they are written once, not appended to), and are not followed across
    rotation."""

    path: str
    fmt: str = "jsonl"
    key: str = ""
    label: str = ""
    _tail: FileTail = field(init=False)

    def __post_init__(self) -> None:
        from liubai.collector.logfile import default_source

        self.key = f"logs:{os.path.abspath(self.path)}"
        self.label = default_source(self.path)
        self._tail = FileTail(self.path)

    def close(self) -> None:
        self._tail.close()

    def _whole(self, position: Position | None) -> bool:
        """Whether the file is read whole: not JSON lines, or gzip, or pretty-printed documents (its first
        line with anything on it opens an object or an array alone, as ``read_jsonl`` tells them)."""
        from liubai.collector.logfile import DOCUMENT_OPENERS

        if self.fmt != "jsonl":
            return True
        if isinstance(position, FilePosition) and position.offset > 0:
            return False
        head = self._tail.head(_HEAD)
        if head[:2] == b"\x1f\x8b":
            return True
        for line in head.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                return False  # not complete yet: nothing is read from it this pass anyway
            if not line.isspace():
                return line.strip() in DOCUMENT_OPENERS
        return False

    def units(self, position: Position | None) -> Iterator[Unit]:
        if self._whole(position):
            yield from _counted(self._whole_records(), position)
            return
        from liubai.collector.logfields import FieldMap, log_mapper
        from liubai.collector.logfile import jsonl_line_items
        from liubai.lineage.text import visible

        fm = FieldMap()
        mapper = log_mapper(fm)
        skip = position.records if isinstance(position, CountPosition) else 0  # a version-1 position, once
        for line in self._tail.lines(position if isinstance(position, FilePosition) else None):
            where = f"{visible(line.name)}:{line.lineno}"
            records: tuple[Record, ...] = tuple(jsonl_line_items(line.data, self.label, where, mapper, fm))
            if skip:
                dropped = min(skip, len(records))
                skip -= dropped
                records = records[dropped:]
            yield Unit(records, line.after, where, line.data)

    def _complete_lines(self) -> int | None:
        """Lines ending in a newline right now; None where that cannot be told (gzip, a single OTLP document)."""
        if self.fmt != "jsonl":
            return None
        with open(self.path, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                return None
            fh.seek(0)
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))

    def _whole_records(self) -> Iterator[Record]:
        from liubai.collector.logfile import read_log_file

        complete = self._complete_lines()
        for record in read_log_file(self.path, "otlp" if self.fmt == "otlp" else "jsonl"):
            if complete is not None:
                m = _LINE.search(record.location)
                if m is not None and int(m.group(1)) > complete:
                    return
            yield record


_LINE = re.compile(r":(\d+)(?:#|$)")


@dataclass(slots=True)
class EventsSource:
    """A recording made by ``liubai trace --record``: one traced pipeline run, replayed into records."""

    path: str
    key: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        self.key = f"events:{os.path.abspath(self.path)}"
        self.label = f"events:{Path(self.path).name}"

    def close(self) -> None:
        pass

    def units(self, position: Position | None) -> Iterator[Unit]:
        return _counted(self._records(), position)

    def _records(self) -> Iterator[Record]:
        from liubai.collector.recording import replay_recording
        from liubai.collector.runs import run_items

        # bytes that are not UTF-8 become "\\xNN" text in the replay (see ``replay_recording``)
        with open(self.path, encoding="utf-8", errors="surrogateescape") as fh:
            try:
                replay = replay_recording(fh, self.path)
            except ValueError as exc:
                raise AgentError(str(exc)) from None
        yield from run_items(replay.collector, replay.rejected)


_SOURCES: dict[str, Callable[[str], Source]] = {
    "logs": lambda p: LogFileSource(p, "jsonl"),
    "otlp": lambda p: LogFileSource(p, "otlp"),
    "events": EventsSource,
}
_NEEDS = {
    "logs": "liubai.collector.logfile",
    "otlp": "liubai.collector.logfile",
    "events": "liubai.collector.recording",
}


def available_sources() -> list[str]:
    """Source kinds whose collector module is installed here."""
    import importlib.util

    return [k for k in _SOURCES if importlib.util.find_spec(_NEEDS[k]) is not None]


def make_source(kind: str, path: str) -> Source:
    if kind not in available_sources():
        raise AgentError(
            f"source kind {kind!r} is not available here (available: {', '.join(available_sources())})"
        )
    if not os.path.isfile(path):
        raise AgentError(f"{kind} input {path!r} does not exist or is not a file")
    return _SOURCES[kind](path)
