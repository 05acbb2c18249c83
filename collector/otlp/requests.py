"""One OTLP/HTTP request body, in either encoding, as records: what the receiver stores.

``application/x-protobuf`` goes through the protobuf walk, ``application/json`` through the OTLP/JSON walk
that files use too; both share the per-record mapping. A body that is not the message at all raises
``ValueError`` (the receiver's 400); a part of it that breaks the schema is a reject among the records.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from liubai.collector.logfields import FieldMap
from liubai.collector.logfile.exact_json import std_loads
from liubai.collector.logfile.otlp import OtlpJsonWalk
from liubai.collector.otlp.proto import Decoded, proto_logs, proto_traces

__all__ = ["Decoded", "Encoding", "decode_logs", "decode_traces"]


class Encoding(StrEnum):
    """The two OTLP/HTTP encodings, by their content type."""

    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


def _json_request(body: bytes) -> dict[str, Any]:
    try:
        doc = std_loads(body)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"an OTLP/JSON request is an object, not {type(doc).__name__}")
    return doc


def decode_logs(body: bytes, encoding: Encoding, source: str, where: str, fm: FieldMap) -> Decoded:
    """The records of an ``ExportLogsServiceRequest`` body."""
    if encoding is Encoding.PROTOBUF:
        return proto_logs(body, source, where, fm)
    return _json(body, source, where, fm, OtlpJsonWalk.logs)


def decode_traces(body: bytes, encoding: Encoding, source: str, where: str, fm: FieldMap) -> Decoded:
    """The spans of an ``ExportTraceServiceRequest`` body."""
    if encoding is Encoding.PROTOBUF:
        return proto_traces(body, source, where, fm)
    return _json(body, source, where, fm, OtlpJsonWalk.traces)


def _json(body: bytes, source: str, where: str, fm: FieldMap, signal: Callable[..., Any]) -> Decoded:
    doc = _json_request(body)
    walk = OtlpJsonWalk(source, fm)
    items = list(signal(walk, doc, where))
    return Decoded(items, walk.dropped)
