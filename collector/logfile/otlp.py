"""OpenTelemetry OTLP/JSON log exports (``ExportLogsServiceRequest``) as log records.

A part that breaks the schema is rejected at its JSON path and left out; the records and fields around it
still land.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from liubai.collector.logfields import FieldMap, log_mapper
from liubai.collector.logfile.exact_json import std_loads
from liubai.collector.logfile.source import JSON_TYPES, LogItem, default_source, open_log, raw_json, reject
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import LogRecord
from liubai.lineage.text import visible

__all__ = ["otlp_document", "read_otlp"]

_SEVERITY = ((4, "TRACE"), (8, "DEBUG"), (12, "INFO"), (16, "WARN"), (20, "ERROR"), (24, "FATAL"))
_BAD = object()  # an OTLP value that broke the schema; rejected, and left out of its record


def read_otlp(path: str, *, source: str | None = None, fieldmap: FieldMap | None = None) -> Iterator[LogItem]:
    """OTLP/JSON ``ExportLogsServiceRequest`` documents: one per line (the collector's file exporter)
    or a single, possibly pretty-printed, document."""
    src = visible(source) if source else default_source(path)
    fm = fieldmap or FieldMap()
    name = "stdin" if path == "-" else visible(path)  # a name that is not UTF-8 arrives with surrogates
    try:
        with open_log(path) as stream:
            data = stream.read()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        yield reject(src, name, f"cannot read: {exc}", b"")
        return
    try:
        documents: list[tuple[int, Any]] = [(1, std_loads(data))]
    except ValueError:
        documents = []
        for lineno, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                documents.append((lineno, std_loads(line)))
            except ValueError as exc:
                yield reject(src, f"{name}:{lineno}", f"not valid JSON: {exc}", line)
    for lineno, doc in documents:
        yield from otlp_document(doc, src, f"{name}:{lineno}", fm)


def otlp_document(doc: Any, source: str, where: str, fm: FieldMap) -> Iterator[LogItem]:
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceLogs"), list):
        yield reject(source, where, "not an OTLP logs document (no resourceLogs list)", raw_json(doc))
        return
    walk = _OtlpWalk(source, fm)
    for i, rl in enumerate(doc["resourceLogs"]):
        for item in walk.resource_logs(rl, f"{where}#resourceLogs[{i}]"):
            yield from walk.take_rejected()
            yield item
        yield from walk.take_rejected()


class _OtlpWalk:
    """Reads OTLP/JSON logs part by part. A part that breaks the schema is rejected at its JSON path and
    left out; the records and fields around it still land."""

    __slots__ = ("fm", "mapper", "rejected", "source")

    def __init__(self, source: str, fm: FieldMap) -> None:
        self.source, self.fm, self.mapper = source, fm, log_mapper(fm)
        self.rejected: list[RejectedRecord] = []

    def take_rejected(self) -> list[RejectedRecord]:
        taken, self.rejected = self.rejected, []
        return taken

    def bad(self, at: str, reason: str, value: Any) -> object:
        self.rejected.append(reject(self.source, at, reason, raw_json(value)))
        return _BAD

    def part(self, owner: Mapping[str, Any], key: str, kind: type, at: str) -> Any:
        """``owner[key]`` if it is of ``kind`` or absent (None); anything else is rejected."""
        value = owner.get(key)
        if value is None or isinstance(value, kind):
            return value
        self.bad(f"{at}.{key}", f"{key} must be {JSON_TYPES[kind]}, got {JSON_TYPES.get(type(value))}", value)
        return None

    def resource_logs(self, rl: Any, at: str) -> Iterator[LogRecord]:
        if not isinstance(rl, dict):
            self.bad(at, "a resourceLogs entry must be an object", rl)
            return
        resource = self.attributes(self.part(rl, "resource", dict, at) or {}, "attributes", f"{at}.resource")
        service = resource.get("service.name")
        env = {"service": str(service)} if service is not None else {}
        # the pre-1.0 name, read where the current one holds nothing
        key = (
            "instrumentationLibraryLogs"
            if not rl.get("scopeLogs") and "instrumentationLibraryLogs" in rl
            else "scopeLogs"
        )
        for j, sl in enumerate(self.part(rl, key, list, at) or []):
            scope_at = f"{at}.{key}[{j}]"
            if not isinstance(sl, dict):
                self.bad(scope_at, f"a {key} entry must be an object", sl)
                continue
            for k, lr in enumerate(self.part(sl, "logRecords", list, scope_at) or []):
                record_at = f"{scope_at}.logRecords[{k}]"
                if not isinstance(lr, dict):
                    self.bad(record_at, "log record is not an object", lr)
                    continue
                record, rejected = self.mapper.map(
                    self.fields(lr, record_at), self.source, record_at, defaults=env
                )
                self.rejected.extend(rejected)
                yield record

    def fields(self, lr: Mapping[str, Any], at: str) -> dict[str, Any]:
        """A log record flattened into the key space the field map reads (attributes + core fields)."""
        fm = self.fm
        fields = self.attributes(lr, "attributes", at)
        ts = lr.get("timeUnixNano")
        if ts in (None, "", "0", 0):
            ts = lr.get("observedTimeUnixNano")
        if ts not in (None, "", "0", 0):
            fields[fm.time[0]] = ts
        level = lr.get("severityText") or _severity_text(lr.get("severityNumber"))
        if level:
            fields[fm.level[0]] = level
        if lr.get("body") is not None:
            body = self.any_value(lr["body"], f"{at}.body")
            if body is not _BAD:
                fields[fm.message[0]] = body
        trace = self.part(lr, "traceId", str, at)
        if trace:
            fields[fm.trace[0] if fm.trace[0] not in fm.traceparent_keys else "trace_id"] = _otlp_trace_id(
                trace
            )
        return fields

    def attributes(self, owner: Mapping[str, Any], key: str, at: str) -> dict[str, Any]:
        """A ``KeyValue`` list (``attributes`` of a resource or record, ``values`` of a kvlist) as a dict."""
        out: dict[str, Any] = {}
        for n, kv in enumerate(self.part(owner, key, list, at) or []):
            kv_at = f"{at}.{key}[{n}]"
            if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
                self.bad(kv_at, "an attribute must be an object with a string key", kv)
                continue
            value = self.any_value(kv.get("value"), f"{kv_at}.value")
            if value is not _BAD:
                out[kv["key"]] = value
        return out

    def any_value(self, v: Any, at: str) -> Any:
        """An OTLP ``AnyValue`` as a plain value (int64 arrives as a JSON string and becomes an int); a
        bare JSON value is taken as it is."""
        if not isinstance(v, dict):
            return v
        if "stringValue" in v:
            return v["stringValue"]
        if "intValue" in v:
            try:
                return int(v["intValue"])
            except (TypeError, ValueError, OverflowError):
                return self.bad(at, "intValue is not an integer", v)
        if "doubleValue" in v:
            try:
                return float(v["doubleValue"])
            except (TypeError, ValueError, OverflowError):
                return self.bad(at, "doubleValue is not a number", v)
        if "boolValue" in v:
            return bool(v["boolValue"])
        if "arrayValue" in v:
            array_at = f"{at}.arrayValue"
            values = self.part(self.part(v, "arrayValue", dict, at) or {}, "values", list, array_at) or []
            items = (self.any_value(x, f"{array_at}.values[{n}]") for n, x in enumerate(values))
            return [x for x in items if x is not _BAD]
        if "kvlistValue" in v:
            return self.attributes(self.part(v, "kvlistValue", dict, at) or {}, "values", f"{at}.kvlistValue")
        if "bytesValue" in v:
            return v["bytesValue"]
        return None


def _severity_text(number: Any) -> str | None:
    try:
        n = int(number)
    except (TypeError, ValueError, OverflowError):
        return None
    return next((name for top, name in _SEVERITY if 1 <= n <= top), None)


def _otlp_trace_id(value: str) -> str:
    """OTLP/JSON carries hex trace ids; some exporters write protobuf-JSON base64 (16 bytes) instead."""
    if len(value) == 24 and not all(c in "0123456789abcdefABCDEF" for c in value):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return value
        return raw.hex() if len(raw) == 16 else value
    return value
