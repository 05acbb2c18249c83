"""Recordings of traced runs: JSON lines written while tracing and replayed into a ``RunCollector``.

A bad line of a recording becomes a rejected record and the rest still lands.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from liubai.collector.runs import RunCollector, RunInfo
from liubai.ebpf.event_json import event_from_json, event_to_json, typed_fields, typed_value
from liubai.ebpf.events import Event
from liubai.ebpf.procfs import ProcInfo
from liubai.lineage.model import RejectedRecord
from liubai.lineage.text import visible

__all__ = ["RECORDING_FORMAT", "RecordingWriter", "Replay", "replay_recording"]

RECORDING_FORMAT = "liubai-events/1"


class RecordingWriter:
    """Writes a run as JSON lines: a ``run`` header, one line per (enriched) event, an ``end`` line."""

    def __init__(self, path: str, info: RunInfo) -> None:
        self._fh = open(path, "w", encoding="utf-8")  # closed in close()
        self._write({"type": "run", "format": RECORDING_FORMAT, **_info_json(info)})

    def _write(self, obj: dict[str, Any]) -> None:
        self._fh.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")

    def event(self, event: Event) -> None:
        self._write(event_to_json(event))

    def adopt(self, info: ProcInfo, parent: tuple[int, int] | None) -> None:
        self._write({"type": "adopt", "proc": asdict(info), "parent": list(parent) if parent else None})

    def close(self, info: RunInfo) -> None:
        self._write(
            {
                "type": "end",
                "end_ns": info.end_ns,
                "exit_code": info.exit_code,
                "lost_events": info.lost_events,
                "still_running": info.still_running,
            }
        )
        self._fh.close()


def _info_json(info: RunInfo) -> dict[str, Any]:
    out = asdict(info)
    out["command"] = list(info.command)
    for key in ("end_ns", "exit_code", "lost_events", "still_running"):
        out.pop(key)
    return out


@dataclass(slots=True)
class Replay:
    """A recording read back: the collector holding its events, plus lines that could not be used."""

    collector: RunCollector
    rejected: list[RejectedRecord]
    complete: bool


def replay_recording(
    lines: Iterable[str],
    source: str,
    *,
    commit: str | None = None,
    audit_id: str | None = None,
    trace_id: str | None = None,
    host: str | None = None,
) -> Replay:
    """Rebuild a run from a recording; a bad line becomes a rejected record and the rest still lands.

    ``commit``/``audit_id``/``trace_id``/``host`` override what the recording says (a demo replays one
    recorded run for its own commit). ValueError naming the line and field when the header is unusable.
    Read the file with ``errors="surrogateescape"``: a byte that is not UTF-8 then lands as the text
    ``\\xNN`` (``typed_value`` makes every string ``visible``), as in a live trace.
    """
    source = visible(source)
    it = iter(enumerate(lines, start=1))
    header: dict[str, Any] | None = None
    header_line = 1
    for header_line, line in it:
        if line.strip():
            try:
                header = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{source}:{header_line}: the first line is not JSON ({exc.msg})") from None
            except RecursionError:
                raise ValueError(
                    f"{source}:{header_line}: the first line is nested too deeply to parse"
                ) from None
            break
    if not isinstance(header, dict) or header.get("type") != "run":
        raise ValueError(f"{source}: not a liubai recording (the first line must be a 'run' header)")
    if header.get("format") != RECORDING_FORMAT:
        raise ValueError(f"{source}: unsupported recording format {visible(repr(header.get('format')))[:60]}")
    try:
        fields = typed_fields(RunInfo, {k: v for k, v in header.items() if k not in ("type", "format")})
        if not fields["host"]:
            raise ValueError("host must not be empty")
    except ValueError as exc:
        raise ValueError(f"{source}:{header_line}: bad run header: {exc}") from None
    info = RunInfo(**fields)
    for name, value in (("commit", commit), ("audit_id", audit_id), ("trace_id", trace_id), ("host", host)):
        if value is not None:
            setattr(info, name, visible(value))
    collector = RunCollector(info)
    rejected: list[RejectedRecord] = []
    complete = False
    for lineno, line in it:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            kind = obj.get("type")
            if kind == "end":
                _end(info, obj)
                complete = True
            elif kind == "adopt":
                collector.adopt(*_adopted(obj))
            else:
                collector.add(event_from_json(obj))
        except (ValueError, RecursionError) as exc:
            reason = (
                exc.msg
                if isinstance(exc, json.JSONDecodeError)
                else "nested too deeply to parse"
                if isinstance(exc, RecursionError)
                else str(exc)
            )
            rejected.append(
                RejectedRecord(
                    f"events:{source}",
                    f"{source}:{lineno}",
                    f"unusable event line: {reason}",
                    visible(line[:2000]),
                )
            )
    return Replay(collector, rejected, complete)


def _end(info: RunInfo, obj: dict[str, Any]) -> None:
    """Apply an ``end`` line: when the run ended, how, and how many kernel events were lost."""
    try:
        end_ns = typed_value("end_ns", "int | None", obj.get("end_ns"))
        exit_code = typed_value("exit_code", "int | None", obj.get("exit_code"))
        lost_events = typed_value("lost_events", "int | None", obj.get("lost_events"))
        still_running = typed_value("still_running", "int | None", obj.get("still_running"))
    except ValueError as exc:
        raise ValueError(f"end line: {exc}") from None
    info.end_ns, info.exit_code, info.lost_events = end_ns, exit_code, lost_events or 0
    info.still_running = still_running or 0


def _adopted(obj: dict[str, Any]) -> tuple[ProcInfo, tuple[int, int] | None]:
    """An ``adopt`` line: a process that was running before tracing began, and its parent's key."""
    proc = obj.get("proc")
    if not isinstance(proc, dict):
        raise ValueError("adopt line: proc must be an object")
    try:
        info = ProcInfo(**typed_fields(ProcInfo, proc))
    except ValueError as exc:
        raise ValueError(f"adopt line: {exc}") from None
    parent = obj.get("parent")
    if parent is None:
        return info, None
    if not isinstance(parent, list) or len(parent) != 2:
        raise ValueError("adopt line: parent must be null or [pid, start_ns]")
    return info, (typed_value("pid", "int", parent[0]), typed_value("start_ns", "int", parent[1]))
