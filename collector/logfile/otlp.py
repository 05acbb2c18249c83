"""OpenTelemetry OTLP/JSON exports (``ExportLogsServiceRequest``, ``ExportTraceServiceRequest``) as log and
span records.

A part that breaks the schema is rejected at its JSON path and left out; the records and fields around it
still land. The per-record mapping is shared with the protobuf decoder (``liubai.collector.otlp``), so a
log line gives the same record from a file, an OTLP/JSON request or an OTLP/protobuf one.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from liubai.collector.logfields import FieldMap, log_mapper
from liubai.collector.logfile.exact_json import std_loads
from liubai.collector.logfile.source import JSON_TYPES, LogItem, default_source, open_log, raw_json, reject
from liubai.collector.otlp.mapping import Envelope, envelope_of, hex_id, map_log, map_span, severity_text
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import LogRecord, SpanRecord
from liubai.lineage.text import visible

__all__ = ["OtlpJsonWalk", "otlp_document", "read_otlp"]

_BAD = object()  # an OTLP value that broke the schema; rejected, and left out of its record
_HEX = re.compile(r"[0-9a-fA-F]+")


def read_otlp(path: str, *, source: str | None = None, fieldmap: FieldMap | None = None) -> Iterator[LogItem]:
    """OTLP/JSON logs and traces documents: one per line (the collector's file exporter, which may mix
    both signals in one file) or a single, possibly pretty-printed, document."""
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
    """The records of one OTLP/JSON document: its ``resourceLogs`` and its ``resourceSpans``."""
    logs, spans = (
        isinstance(doc, dict) and isinstance(doc.get(k), list) for k in ("resourceLogs", "resourceSpans")
    )
    if not (logs or spans):
        reason = "not an OTLP logs or traces document (no resourceLogs or resourceSpans list)"
        yield reject(source, where, reason, raw_json(doc))
        return
    walk = OtlpJsonWalk(source, fm)
    if logs:
        yield from walk.logs(doc, where)
    if spans:
        yield from walk.traces(doc, where)


class OtlpJsonWalk:
    """Reads OTLP/JSON part by part. A part that breaks the schema is rejected at its JSON path and
    left out; the records and fields around it still land."""

    __slots__ = ("dropped", "fm", "mapper", "rejected", "source")

    def __init__(self, source: str, fm: FieldMap) -> None:
        self.source, self.fm, self.mapper = source, fm, log_mapper(fm)
        self.rejected: list[RejectedRecord] = []
        self.dropped = 0  # log records and spans left out whole

    def take_rejected(self) -> list[RejectedRecord]:
        taken, self.rejected = self.rejected, []
        return taken

    def logs(self, doc: Mapping[str, Any], where: str) -> Iterator[LogItem]:
        """The records of an ``ExportLogsServiceRequest`` (without ``resourceLogs``: none)."""
        for i, rl in enumerate(self.part(doc, "resourceLogs", list, where) or []):
            yield from self._drained(self.resource_logs(rl, f"{where}#resourceLogs[{i}]"))
        yield from self.take_rejected()

    def traces(self, doc: Mapping[str, Any], where: str) -> Iterator[LogItem]:
        """The spans of an ``ExportTraceServiceRequest`` (without ``resourceSpans``: none)."""
        for i, rs in enumerate(self.part(doc, "resourceSpans", list, where) or []):
            yield from self._drained(self.resource_spans(rs, f"{where}#resourceSpans[{i}]"))
        yield from self.take_rejected()

    def _drained(self, records: Iterator[LogRecord] | Iterator[SpanRecord]) -> Iterator[LogItem]:
        """Each record after the rejects noted while reading it, so that rejects keep document order."""
        for item in records:
            yield from self.take_rejected()
            yield item
        yield from self.take_rejected()

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

    def envelope(self, owner: Mapping[str, Any], at: str) -> Envelope:
        resource = self.part(owner, "resource", dict, at) or {}
        return envelope_of(self.attributes(resource, "attributes", f"{at}.resource"))

    def scopes(self, owner: Mapping[str, Any], key: str, legacy: str, at: str) -> Iterator[tuple[str, Any]]:
        """The scope entries of a resource entry with their paths: ``key``, or the pre-1.0 ``legacy`` name
        where the current one holds nothing."""
        if not owner.get(key) and legacy in owner:
            key = legacy
        for j, scope in enumerate(self.part(owner, key, list, at) or []):
            scope_at = f"{at}.{key}[{j}]"
            if isinstance(scope, dict):
                yield scope_at, scope
            else:
                self.bad(scope_at, f"a {key} entry must be an object", scope)

    def resource_logs(self, rl: Any, at: str) -> Iterator[LogRecord]:
        if not isinstance(rl, dict):
            self.bad(at, "a resourceLogs entry must be an object", rl)
            return
        envelope = self.envelope(rl, at)
        for scope_at, sl in self.scopes(rl, "scopeLogs", "instrumentationLibraryLogs", at):
            for k, lr in enumerate(self.part(sl, "logRecords", list, scope_at) or []):
                record_at = f"{scope_at}.logRecords[{k}]"
                if not isinstance(lr, dict):
                    self.bad(record_at, "log record is not an object", lr)
                    self.dropped += 1
                    continue
                span_id = self.id_of(lr, "spanId", 8, record_at)
                fields = self.fields(lr, record_at)
                record, rejected = map_log(self.mapper, fields, span_id, envelope, self.source, record_at)
                self.rejected.extend(rejected)
                yield record

    def resource_spans(self, rs: Any, at: str) -> Iterator[SpanRecord]:
        if not isinstance(rs, dict):
            self.bad(at, "a resourceSpans entry must be an object", rs)
            return
        envelope = self.envelope(rs, at)
        for scope_at, ss in self.scopes(rs, "scopeSpans", "instrumentationLibrarySpans", at):
            for k, sp in enumerate(self.part(ss, "spans", list, scope_at) or []):
                span_at = f"{scope_at}.spans[{k}]"
                if not isinstance(sp, dict):
                    self.bad(span_at, "a span is not an object", sp)
                    self.dropped += 1
                    continue
                status = self.part(sp, "status", dict, span_at) or {}
                span, rejected = map_span(
                    trace_id=self.id_of(sp, "traceId", 16, span_at),
                    span_id=self.id_of(sp, "spanId", 8, span_at),
                    parent_span_id=self.id_of(sp, "parentSpanId", 8, span_at),
                    name=self.part(sp, "name", str, span_at) or "",
                    kind=sp.get("kind"),
                    start=sp.get("startTimeUnixNano"),
                    end=sp.get("endTimeUnixNano"),
                    status=status.get("code"),
                    status_message=self.part(status, "message", str, f"{span_at}.status"),
                    attributes=self.attributes(sp, "attributes", span_at),
                    envelope=envelope,
                    audit_keys=self.fm.audit,
                    source=self.source,
                    location=span_at,
                )
                self.rejected.extend(rejected)
                if span is None:
                    self.dropped += 1
                else:
                    yield span

    def id_of(self, owner: Mapping[str, Any], key: str, size: int, at: str) -> str | None:
        """A trace (16 bytes) or span (8 bytes) id: hex as OTLP/JSON has it, or the protobuf-JSON base64
        some exporters write; empty or all zeros is none. Anything else is rejected and taken as none."""
        value = self.part(owner, key, str, at)
        if not value:
            return None
        if len(value) == 2 * size and _HEX.fullmatch(value):
            return hex_id(value)
        raw = _base64(value)
        if raw is not None and len(raw) == size:
            return hex_id(raw)
        self.bad(f"{at}.{key}", f"{key} is not a {size}-byte id in hex", value)
        return None

    def fields(self, lr: Mapping[str, Any], at: str) -> dict[str, Any]:
        """A log record flattened into the key space the field map reads (attributes + core fields)."""
        fm = self.fm
        fields = self.attributes(lr, "attributes", at)
        ts = lr.get("timeUnixNano")
        if ts in (None, "", "0", 0):
            ts = lr.get("observedTimeUnixNano")
        if ts not in (None, "", "0", 0):
            fields[fm.time[0]] = ts
        level = lr.get("severityText") or severity_text(lr.get("severityNumber"))
        if level:
            fields[fm.level[0]] = level
        if lr.get("body") is not None:
            body = self.any_value(lr["body"], f"{at}.body")
            if body is not _BAD:
                fields[fm.message[0]] = body
        trace = self.part(lr, "traceId", str, at)
        if trace and trace.strip("0"):  # all zeros: OTLP's "no trace"
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


def _base64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _otlp_trace_id(value: str) -> str:
    """OTLP/JSON carries hex trace ids; some exporters write protobuf-JSON base64 (16 bytes) instead."""
    if len(value) == 24 and not all(c in "0123456789abcdefABCDEF" for c in value):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return value
        return raw.hex() if len(raw) == 16 else value
    return value
