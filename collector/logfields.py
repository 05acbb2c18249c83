"""Field mapping from a raw log object (a JSON line, an OTLP log record, an SLS log) to a ``LogRecord``.

Every log source goes through the same mapping and the same normalisation (times as ISO UTC, trace ids
lower-cased, attribute values as strings, as SLS stores them), so that one log line read from a file, an
OTLP export or SLS yields the same record and, with a content-hash id, the same graph node.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from liubai.lineage.model import RejectedRecord, parse_traceparent
from liubai.lineage.records import LogRecord, iso_utc
from liubai.lineage.text import bytes_text

__all__ = [
    "FieldMap",
    "LogMapper",
    "MappedLog",
    "content_record_id",
    "log_mapper",
    "map_log",
    "normalise_time",
    "stringify",
]

_W3C_TRACE_LEN = 32
_CANONICAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_WHITESPACE = re.compile(r"\s")  # the characters str.isspace() accepts


@dataclass(frozen=True, slots=True)
class FieldMap:
    """Which keys of a raw log carry what; the first key present (and non-empty) wins.

    ``ignore_prefixes`` drops source metadata (SLS ``__topic__``, ``__tag__:...``) from the attributes so
    that the same line yields the same attributes whichever source it came through.
    """

    trace: tuple[str, ...] = ("trace_id", "traceId", "TraceID", "trace.id", "traceparent")
    audit: tuple[str, ...] = ("x-gitops-audit-id", "audit_id", "auditId", "X_GITOPS_AUDIT_ID")
    time: tuple[str, ...] = ("time", "timestamp", "@timestamp", "ts", "timeUnixNano")
    level: tuple[str, ...] = ("level", "severity", "severityText", "lvl", "log.level")
    service: tuple[str, ...] = ("service", "service.name", "service_name", "app")
    message: tuple[str, ...] = ("message", "msg", "body", "content", "log")
    ignore_prefixes: tuple[str, ...] = ("__",)
    traceparent_keys: tuple[str, ...] = ("traceparent",)

    @classmethod
    def from_mapping(cls, data: Mapping[Any, Any]) -> FieldMap:
        """Override some key lists: ``{"trace": ["tid"], "message": "text"}``; unknown names are errors, and
        so is anything but a key or a list of keys (a mapping would silently give its own keys)."""
        known = set(cls.__dataclass_fields__)
        unknown = [str(k) for k in data if not isinstance(k, str) or k not in known]
        if unknown:
            raise ValueError(f"unknown field-map entries {sorted(unknown)}; known: {sorted(known)}")
        kwargs: dict[str, tuple[str, ...]] = {}
        for name, value in data.items():
            keys = (
                (value,)
                if isinstance(value, str)
                else tuple(value)
                if isinstance(value, (list, tuple))
                else None
            )
            if keys is None or not all(isinstance(k, str) and k for k in keys):
                shown = "null" if value is None else f"{type(value).__name__} {str(value)[:60]!r}"
                raise ValueError(f"field-map entry {name!r} must be a key or a list of keys, not {shown}")
            kwargs[name] = keys
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str | Path) -> FieldMap:
        """A YAML (or JSON) file of overrides, e.g. ``trace: [tid, traceId]``. A file that cannot be read
        raises its ``OSError``; every problem with its content is a one-line ``ValueError`` naming the file
        (and the line or entry)."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: {_yaml_problem(exc)}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a field map must be a mapping of name -> key(s)")
        try:
            return cls.from_mapping(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    @property
    def mapped_keys(self) -> frozenset[str]:
        return frozenset((*self.trace, *self.audit, *self.time, *self.level, *self.service, *self.message))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: what and where (PyYAML's own text spans several lines)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = exc.problem or exc.context or "invalid"
        return f"not valid YAML{where}: {what}"
    return f"not valid YAML: {' '.join(str(exc).split())}"


@dataclass(slots=True)
class MappedLog:
    """A mapped log line plus notes on the parts of it that could not be used (kept as rejects)."""

    record: LogRecord
    rejected: list[RejectedRecord] = field(default_factory=list)


def stringify(value: Any) -> str:
    """An attribute value as SLS would hold it: strings as-is, bytes as UTF-8 text (with what is not UTF-8
    kept as ``\\xNN``: SLS stores a producer's bytes, and the SDK hands those over as bytes), everything
    else as compact JSON."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)  # what json.dumps writes for an int, at a fraction of the cost
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return bytes_text(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def normalise_time(value: Any) -> str:
    """ISO UTC from epoch seconds/ms/us/ns (by magnitude) or an ISO 8601 string; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, str):
        if _CANONICAL_TIME.fullmatch(value):
            return value  # already the form every time property uses: the common case, kept cheap
        text = value.strip()
        try:
            number: float = float(text)
        except ValueError:
            try:
                dt = datetime.fromisoformat(text.replace("z", "Z"))
            except ValueError:
                raise ValueError(f"not a time: {value!r}") from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            return iso_utc(dt)
        if text.isdigit():
            return _epoch_int(int(text))
        return _epoch(number)
    if isinstance(value, int):
        return _epoch_int(value)
    if isinstance(value, float):
        return _epoch(value)
    raise ValueError(f"not a time: {value!r}")


def _epoch_int(n: int) -> str:
    # Exact integer arithmetic keeps nanosecond stamps from losing precision through float.
    for limit, per_second in ((10**11, 1), (10**14, 10**3), (10**17, 10**6)):
        if abs(n) < limit:
            return _epoch(n / per_second) if per_second > 1 else iso_utc(n)
    seconds, rest = divmod(n, 10**9)
    return f"{_second_text(seconds)}.{rest // 1000:06d}Z"  # ``iso_utc``'s form, without its strftime


@lru_cache(maxsize=1024)
def _second_text(seconds: int) -> str:
    """``iso_utc``'s text of a whole second, up to the fraction: the lines of an export or a batch share
    their seconds, and strftime costs more than the rest of a line's time."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _epoch(x: float) -> str:
    for limit, scale in ((1e11, 1.0), (1e14, 1e-3), (1e17, 1e-6)):
        if abs(x) < limit:
            return iso_utc(x * scale)
    return iso_utc(x * 1e-9)


_Pick = tuple[str, Any] | None
_CORE_FIELDS = 6  # trace, audit, time, level, service, message: the order of ``LogMapper.pick``'s result


class LogMapper:
    """A field map compiled for mapping many lines: per key the core field it can fill and its rank,
    worked out once rather than per line."""

    __slots__ = ("ignore", "plan", "traceparent_keys", "worst")

    def __init__(self, fm: FieldMap) -> None:
        plan: dict[str, tuple[int, int]] = {}  # key -> (slot, rank)
        for slot, keys in enumerate((fm.trace, fm.audit, fm.time, fm.level, fm.service, fm.message)):
            for rank, key in enumerate(keys):
                plan.setdefault(key, (slot, rank))
        self.plan = plan
        self.worst = len(plan)
        self.ignore = fm.ignore_prefixes
        self.traceparent_keys = fm.traceparent_keys

    def pick(self, fields: Mapping[str, Any]) -> tuple[list[_Pick], dict[str, str]]:
        """One pass over the line: per core field the best-ranked non-empty key, everything else an
        attribute (source metadata such as ``__topic__`` dropped)."""
        plan, ignore = self.plan, self.ignore
        best: list[_Pick] = [None] * _CORE_FIELDS
        ranks = [self.worst] * _CORE_FIELDS
        attributes: dict[str, str] = {}
        for key, value in fields.items():
            if value is None:
                continue
            where = plan.get(key)
            if where is not None:
                slot, rank = where
                if rank < ranks[slot] and value != "":
                    demoted = best[slot]
                    if demoted is not None and not demoted[0].startswith(ignore):
                        attributes[demoted[0]] = stringify(demoted[1])
                    best[slot], ranks[slot] = (key, value), rank
                    continue
            if not key.startswith(ignore):
                kind = type(value)  # ``stringify``, inlined for the strings and ints most values are
                attributes[key] = value if kind is str else str(value) if kind is int else stringify(value)
        return best, attributes

    def map(
        self,
        fields: Mapping[str, Any],
        source: str,
        location: str,
        record_id: str | None = None,
        fallback_time: str | None = None,
        defaults: Mapping[str, str] | None = None,
    ) -> tuple[LogRecord, list[RejectedRecord]]:
        """``map_log`` without its wrapper object: the record and the rejects of its unusable parts."""
        rejected: list[RejectedRecord] = []
        best, attributes = self.pick(fields)
        trace_pick, audit_pick, time_pick, level_pick, service_pick, message_pick = best

        trace_id = None if trace_pick is None else self.trace_id(trace_pick, source, location, rejected)
        # ``stringify`` inlined for the plain strings most values are
        if audit_pick is not None:
            value = audit_pick[1]
            audit_id: str | None = value if type(value) is str else stringify(value)
        else:
            audit_id = defaults.get("audit_id") if defaults else None
        time = fallback_time
        if time_pick is not None:
            raw_time = time_pick[1]
            if type(raw_time) is str and _canonical_time(raw_time) is not None:
                time = raw_time  # the common case, without normalise_time's call and checks
            else:
                time = _time(time_pick, source, location, rejected, fallback_time)
        if level_pick is not None:
            value = level_pick[1]
            level: str | None = (value if type(value) is str else stringify(value)).upper()
        else:
            level = defaults.get("level") if defaults else None
        if service_pick is not None:
            value = service_pick[1]
            service: str | None = value if type(value) is str else stringify(value)
        else:
            service = defaults.get("service") if defaults else None
        if message_pick is not None:
            value = message_pick[1]
            message = value if type(value) is str else stringify(value)
        else:
            message = ""

        rid = record_id or content_record_id(time, level, service, message, trace_id, audit_id, attributes)
        record = LogRecord(
            source, rid, time, level, service, message, trace_id, audit_id, attributes, location
        )
        return record, rejected

    def trace_id(
        self, pick: tuple[str, Any], source: str, location: str, rejected: list[RejectedRecord]
    ) -> str | None:
        """The normalised trace id of a picked key/value; None (and a reject) if it is malformed."""
        key, raw = pick
        text = stringify(raw).strip()
        if key in self.traceparent_keys:
            trace_id = parse_traceparent(text)
            if trace_id is None:
                rejected.append(RejectedRecord(source, location, f"malformed traceparent in {key!r}", text))
            return trace_id
        if not text or _WHITESPACE.search(text) is not None or not text.strip("0"):
            rejected.append(RejectedRecord(source, location, f"malformed trace id in {key!r}", text))
            return None
        return text.lower() if len(text) == _W3C_TRACE_LEN else text


_canonical_time = _CANONICAL_TIME.fullmatch


def _time(
    pick: tuple[str, Any], source: str, location: str, rejected: list[RejectedRecord], fallback: str | None
) -> str | None:
    key, raw = pick
    try:
        return normalise_time(raw)
    except (ValueError, OverflowError, OSError):
        rejected.append(RejectedRecord(source, location, f"unparseable time in {key!r}", stringify(raw)))
        return fallback


@lru_cache(maxsize=64)
def log_mapper(fm: FieldMap) -> LogMapper:
    """The compiled form of ``fm``; readers fetch it once per file, pull or page."""
    return LogMapper(fm)


def content_record_id(
    time: str | None,
    level: str | None,
    service: str | None,
    message: str,
    trace_id: str | None,
    audit_id: str | None,
    attributes: Mapping[str, str],
) -> str:
    """A stable id from the normalised record itself, so the same line read twice (or from another
    source) is one node. Two byte-identical lines with the same timestamp are, by design, one event."""
    # Length-prefixed parts ("-" for none): unambiguous whatever the text contains, and cheaper than JSON.
    # Written out as one f-string rather than looped over: this runs for every log line.
    canon = (
        f"{'-' if time is None else f'{len(time)}:{time}'}"
        f"{'-' if level is None else f'{len(level)}:{level}'}"
        f"{'-' if service is None else f'{len(service)}:{service}'}"
        f"{'-' if message is None else f'{len(message)}:{message}'}"
        f"{'-' if trace_id is None else f'{len(trace_id)}:{trace_id}'}"
        f"{'-' if audit_id is None else f'{len(audit_id)}:{audit_id}'}"
    )
    for k in sorted(attributes):
        v = attributes[k]
        canon += f"{len(k)}:{k}{'-' if v is None else f'{len(v)}:{v}'}"
    return hashlib.blake2b(canon.encode("utf-8"), digest_size=16).hexdigest()


def map_log(
    fields: Mapping[str, Any],
    *,
    source: str,
    location: str,
    fieldmap: FieldMap,
    record_id: str | None = None,
    fallback_time: str | None = None,
    defaults: Mapping[str, str] | None = None,
) -> MappedLog:
    """Map one raw log object. ``record_id`` None means "use the content hash".

    ``defaults`` supplies values from the envelope (OTLP resource ``service.name``, the audit id a resource
    carries) that the line itself may override: keys ``level``, ``service``, ``audit_id``. A time or trace id that does not parse is reported as a reject while the line lands.
    """
    record, rejected = log_mapper(fieldmap).map(fields, source, location, record_id, fallback_time, defaults)
    return MappedLog(record, rejected)
