"""OTLP protobuf requests (``ExportLogsServiceRequest``, ``ExportTraceServiceRequest``) as log and span
records, read straight off the generated message objects.

Values become what the OTLP/JSON walk makes of the same record (int64 as int, bytes as the base64 text
OTLP/JSON carries, ids as lower-case hex) before the shared mapping (``mapping``), so a line sent as
protobuf is the record, and the content id, it would be from JSON. Locations use the JSON paths
(``#resourceLogs[0].scopeLogs[1].logRecords[2]``) of the same position.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from liubai.collector.logfields import FieldMap, log_mapper
from liubai.collector.otlp.mapping import envelope_of, hex_id, map_log, map_span, severity_text
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import LogRecord, SpanRecord

__all__ = ["Decoded", "OtlpItem", "ProtoDecodeError", "proto_logs", "proto_traces"]

OtlpItem = LogRecord | SpanRecord | RejectedRecord


@dataclass(slots=True)
class Decoded:
    """The items of one request, and how many of its log records or spans were left out whole (a
    request's ``partial_success`` count; the rest of its rejects are parts of records that landed)."""

    items: list[OtlpItem]
    dropped: int = 0


class ProtoDecodeError(ValueError):
    """The body is not the protobuf message it should be."""


@dataclass(frozen=True, slots=True)
class _Keys:
    """The field-map keys an OTLP log record's core fields are filed under (as the JSON walk files them)."""

    time: str
    level: str
    message: str
    trace: str

    @classmethod
    def of(cls, fm: FieldMap) -> _Keys:
        trace = fm.trace[0] if fm.trace[0] not in fm.traceparent_keys else "trace_id"
        return cls(fm.time[0], fm.level[0], fm.message[0], trace)


def _parse(message: Any, body: bytes) -> None:
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise ProtoDecodeError(f"not a protobuf {type(message).__name__}: {exc}") from None


def _any(v: AnyValue) -> Any:
    """An ``AnyValue`` as the plain value the JSON walk makes of it (None when it holds nothing)."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [_any(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return _attributes(v.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode("ascii")
    return None


def _attributes(kvs: Any) -> dict[str, Any]:
    """A repeated ``KeyValue`` as a dict; plain strings, most values, without ``_any``'s call."""
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        v = kv.value
        if v.WhichOneof("value") == "string_value":
            out[kv.key] = v.string_value
        else:
            out[kv.key] = _any(v)
    return out


def _id(raw: bytes, size: int, what: str, source: str, at: str, rejected: list[RejectedRecord]) -> str | None:
    """A trace (16 bytes) or span (8 bytes) id as hex; another length is rejected and taken as none."""
    if raw and len(raw) != size:
        rejected.append(RejectedRecord(source, f"{at}.{what}", f"{what} is not a {size}-byte id", raw.hex()))
        return None
    return hex_id(raw)


def proto_logs(body: bytes, source: str, where: str, fm: FieldMap) -> Decoded:
    """The records of a protobuf ``ExportLogsServiceRequest``, each after the rejects of its parts."""
    request = ExportLogsServiceRequest()
    _parse(request, body)
    return Decoded(list(_logs(request, source, where, fm)))


def _logs(request: ExportLogsServiceRequest, source: str, where: str, fm: FieldMap) -> Iterator[OtlpItem]:
    mapper, keys = log_mapper(fm), _Keys.of(fm)
    time_key, level_key, message_key, trace_key = keys.time, keys.level, keys.message, keys.trace
    for i, rl in enumerate(request.resource_logs):
        at = f"{where}#resourceLogs[{i}]"
        envelope = envelope_of(_attributes(rl.resource.attributes))
        for j, sl in enumerate(rl.scope_logs):
            scope_at = f"{at}.scopeLogs[{j}]"
            for k, lr in enumerate(sl.log_records):
                record_at = f"{scope_at}.logRecords[{k}]"
                notes: list[RejectedRecord] = []
                fields = _attributes(lr.attributes) if lr.attributes else {}
                ts = lr.time_unix_nano or lr.observed_time_unix_nano
                if ts:
                    fields[time_key] = ts
                level = lr.severity_text or severity_text(lr.severity_number)
                if level:
                    fields[level_key] = level
                if lr.HasField("body"):
                    body = lr.body
                    fields[message_key] = (
                        body.string_value if body.WhichOneof("value") == "string_value" else _any(body)
                    )
                raw = lr.trace_id
                if raw:  # the common cases inline: none, or 16 bytes
                    trace = raw.hex() if len(raw) == 16 else _id(raw, 16, "traceId", source, record_at, notes)
                    if trace is not None and trace.strip("0"):
                        fields[trace_key] = trace
                raw = lr.span_id
                span_id = None
                if raw:
                    span_id = raw.hex() if len(raw) == 8 else _id(raw, 8, "spanId", source, record_at, notes)
                    if span_id is not None and not span_id.strip("0"):
                        span_id = None
                record, rejected = map_log(mapper, fields, span_id, envelope, source, record_at)
                if notes:
                    yield from notes
                if rejected:
                    yield from rejected
                yield record


def proto_traces(body: bytes, source: str, where: str, fm: FieldMap) -> Decoded:
    """The spans of a protobuf ``ExportTraceServiceRequest``; a span without ids is a reject."""
    request = ExportTraceServiceRequest()
    _parse(request, body)
    items = list(_traces(request, source, where, fm))
    spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    return Decoded(items, spans - sum(type(i) is SpanRecord for i in items))


def _traces(request: ExportTraceServiceRequest, source: str, where: str, fm: FieldMap) -> Iterator[OtlpItem]:
    for i, rs in enumerate(request.resource_spans):
        at = f"{where}#resourceSpans[{i}]"
        envelope = envelope_of(_attributes(rs.resource.attributes))
        for j, ss in enumerate(rs.scope_spans):
            scope_at = f"{at}.scopeSpans[{j}]"
            for k, sp in enumerate(ss.spans):
                span_at = f"{scope_at}.spans[{k}]"
                notes: list[RejectedRecord] = []
                span, rejected = map_span(
                    trace_id=_id(sp.trace_id, 16, "traceId", source, span_at, notes),
                    span_id=_id(sp.span_id, 8, "spanId", source, span_at, notes),
                    parent_span_id=_id(sp.parent_span_id, 8, "parentSpanId", source, span_at, notes),
                    name=sp.name,
                    kind=sp.kind,
                    start=sp.start_time_unix_nano,
                    end=sp.end_time_unix_nano,
                    status=sp.status.code,
                    status_message=sp.status.message,
                    attributes=_attributes(sp.attributes),
                    envelope=envelope,
                    audit_keys=fm.audit,
                    source=source,
                    location=span_at,
                )
                yield from notes
                yield from rejected
                if span is not None:
                    yield span
