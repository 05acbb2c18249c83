"""The per-record part of OTLP that every encoding shares: a resource as an envelope, a flattened log
record into a ``LogRecord``, a span's parts into a ``SpanRecord``.

The OTLP/JSON walk (files and ``application/json`` requests) and the protobuf walk
(``application/x-protobuf`` requests) each turn their own objects into plain values and hand them here,
so one log line gives the same record, and the same content id, whichever way it came.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from liubai.collector.logfields import LogMapper, normalise_time, stringify
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import LogRecord, SpanRecord

__all__ = [
    "AUDIT_RESOURCE_KEYS",
    "Envelope",
    "envelope_of",
    "hex_id",
    "map_log",
    "map_span",
    "severity_text",
    "span_kind",
    "status_code",
]

# What the admission webhook stamps into OTEL_RESOURCE_ATTRIBUTES (``collector/admission/otel.py``), then
# the header name a producer may have copied there.
AUDIT_RESOURCE_KEYS = ("gitops.audit_id", "x-gitops-audit-id")
_SEVERITY = ((4, "TRACE"), (8, "DEBUG"), (12, "INFO"), (16, "WARN"), (20, "ERROR"), (24, "FATAL"))
# opentelemetry.proto.trace.v1 Span.SpanKind and Status.StatusCode, by number, without their prefix
_SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS_CODES = ("UNSET", "OK", "ERROR")


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a resource gives each of its records: every attribute as a string, and the defaults
    (``service``, ``audit_id``) a record may override with its own."""

    resource: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)


def envelope_of(attributes: Mapping[str, Any]) -> Envelope:
    """A resource's attributes (plain values) as an envelope; values stringified as log attributes are."""
    resource = {k: stringify(v) for k, v in attributes.items() if v is not None}
    defaults: dict[str, str] = {}
    service = resource.get("service.name")
    if service is not None:
        defaults["service"] = service
    audit = next((resource[k] for k in AUDIT_RESOURCE_KEYS if resource.get(k)), None)
    if audit is not None:
        defaults["audit_id"] = audit
    return Envelope(resource, defaults)


def map_log(
    mapper: LogMapper,
    fields: Mapping[str, Any],
    span_id: str | None,
    envelope: Envelope,
    source: str,
    location: str,
) -> tuple[LogRecord, list[RejectedRecord]]:
    """A flattened OTLP log record (attributes plus core fields under the field map's first keys)."""
    record, rejected = mapper.map(fields, source, location, defaults=envelope.defaults)
    record.resource = envelope.resource
    record.span_id = span_id
    return record, rejected


def hex_id(raw: bytes | str | None) -> str | None:
    """A trace or span id as lower-case hex; empty or all zeros (the OTLP "none") as None."""
    if not raw:
        return None
    text = raw.hex() if isinstance(raw, bytes) else raw.lower()
    return text if text.strip("0") else None


def severity_text(number: Any) -> str | None:
    """The short severity name of an OTLP ``severityNumber`` (1-24), None for anything else."""
    try:
        n = int(number)
    except (TypeError, ValueError, OverflowError):
        return None
    return next((name for top, name in _SEVERITY if 1 <= n <= top), None)


def _enum(value: Any, names: tuple[str, ...], prefix: str) -> str | None:
    """An OTLP enum given by number (the wire and OTLP/JSON) or by its full or short name."""
    if value is None:
        return names[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return names[value] if 0 <= value < len(names) else None
    if isinstance(value, str):
        short = value.removeprefix(prefix)
        return short if short in names else None
    return None


def span_kind(value: Any) -> str | None:
    """``SERVER`` for 2 or ``SPAN_KIND_SERVER``; None for what is no span kind."""
    return _enum(value, _SPAN_KINDS, "SPAN_KIND_")


def status_code(value: Any) -> str | None:
    """``ERROR`` for 2 or ``STATUS_CODE_ERROR``; None for what is no status code."""
    return _enum(value, _STATUS_CODES, "STATUS_CODE_")


def _time_or_none(value: Any, what: str, source: str, at: str, rejected: list[RejectedRecord]) -> str | None:
    if value in (None, 0, "", "0"):
        return None
    try:
        return normalise_time(value)
    except (ValueError, OverflowError, OSError):
        rejected.append(RejectedRecord(source, at, f"unparseable {what}", stringify(value)))
        return None


def map_span(
    *,
    trace_id: str | None,
    span_id: str | None,
    parent_span_id: str | None,
    name: str,
    kind: Any,
    start: Any,
    end: Any,
    status: Any,
    status_message: str | None,
    attributes: Mapping[str, Any],
    envelope: Envelope,
    audit_keys: tuple[str, ...],
    source: str,
    location: str,
) -> tuple[SpanRecord | None, list[RejectedRecord]]:
    """A span from its plain parts. Without a trace and span id it is no span: None and a reject. A kind,
    status or time that does not read is a reject while the span lands with it unknown."""
    rejected: list[RejectedRecord] = []
    if trace_id is None or span_id is None:
        missing = "traceId" if trace_id is None else "spanId"
        rejected.append(RejectedRecord(source, location, f"span without a {missing}", f"name={name!r}"))
        return None, rejected
    kind_name = span_kind(kind)
    if kind_name is None:
        rejected.append(RejectedRecord(source, f"{location}.kind", "not a span kind", stringify(kind)))
        kind_name = "UNSPECIFIED"
    status_name = status_code(status)
    if status_name is None:
        rejected.append(
            RejectedRecord(source, f"{location}.status.code", "not a status code", stringify(status))
        )
        status_name = "UNSET"
    attrs = {k: stringify(v) for k, v in attributes.items() if v is not None}
    audit = next((attrs[k] for k in audit_keys if attrs.get(k)), None) or envelope.defaults.get("audit_id")
    record = SpanRecord(
        source=source,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        kind=kind_name,
        service=envelope.defaults.get("service"),
        start=_time_or_none(start, "startTimeUnixNano", source, location, rejected),
        end=_time_or_none(end, "endTimeUnixNano", source, location, rejected),
        status=status_name,
        status_message=status_message or None,
        attributes=attrs,
        resource=envelope.resource,
        audit_id=audit,
        location=location,
    )
    return record, rejected
