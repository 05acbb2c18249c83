"""OTLP decoding: one record whichever encoding carried it, every resource attribute, spans, and rejects
at the path of the part that broke the schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from liubai.collector.logfields import FieldMap
from liubai.collector.logfile import read_jsonl, read_otlp
from liubai.collector.otlp.requests import Encoding, decode_logs, decode_traces
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import LogRecord, SpanRecord
from tests.otlp.otlp_data import (
    EXAMPLE_PARENT,
    EXAMPLE_SPAN,
    EXAMPLE_TRACE,
    LOGS_JSON,
    TRACE_JSON,
    as_protobuf,
    example,
)

FM = FieldMap()
AUDIT = "git-sha256:" + "ab" * 32


def _attributes(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = {str: "stringValue", int: "intValue", bool: "boolValue", float: "doubleValue"}
    return [{"key": k, "value": {kinds[type(v)]: v}} for k, v in attributes.items()]


def test_the_official_logs_example_reads_the_same_from_a_file_json_and_protobuf() -> None:
    (from_file,) = read_otlp(str(LOGS_JSON), source="otlp")
    body = LOGS_JSON.read_bytes()
    (from_json,) = decode_logs(body, Encoding.JSON, "otlp", str(LOGS_JSON) + ":1", FM).items
    (from_proto,) = decode_logs(as_protobuf(example(LOGS_JSON)), Encoding.PROTOBUF, "otlp", "x", FM).items
    assert isinstance(from_file, LogRecord)
    assert from_file == from_json
    assert isinstance(from_proto, LogRecord)
    assert from_proto.record_id == from_file.record_id  # the content id: the same graph node
    assert (from_proto.trace_id, from_proto.span_id) == (EXAMPLE_TRACE, EXAMPLE_SPAN)
    assert (
        from_proto.attributes
        == from_file.attributes
        == {
            "string.attribute": "some string",
            "boolean.attribute": "true",
            "int.attribute": "10",
            "double.attribute": "637.704",
            "array.attribute": '["many","values"]',
            "map.attribute": '{"some.map.key":"some value"}',
        }
    )
    assert from_proto.resource == from_file.resource == {"service.name": "my.service"}
    assert (from_file.time, from_file.level, from_file.service, from_file.message) == (
        "2018-12-13T14:51:00.300000Z",
        "INFORMATION",
        "my.service",
        "Example log record",
    )
    assert from_proto.location == "x#resourceLogs[0].scopeLogs[0].logRecords[0]"


def test_the_official_trace_example_is_a_span_from_a_file_json_and_protobuf() -> None:
    (from_file,) = read_otlp(str(TRACE_JSON), source="otlp")
    (from_proto,) = decode_traces(as_protobuf(example(TRACE_JSON)), Encoding.PROTOBUF, "otlp", "x", FM).items
    assert isinstance(from_file, SpanRecord) and isinstance(from_proto, SpanRecord)
    assert from_file == SpanRecord(
        source="otlp",
        trace_id=EXAMPLE_TRACE,
        span_id=EXAMPLE_SPAN,
        parent_span_id=EXAMPLE_PARENT,
        name="I'm a server span",
        kind="SERVER",
        service="my.service",
        start="2018-12-13T14:51:00.000000Z",
        end="2018-12-13T14:51:01.000000Z",
        status="UNSET",
        status_message=None,
        attributes={"my.span.attr": "some value"},
        resource={"service.name": "my.service"},
        audit_id=None,
        location=f"{TRACE_JSON}:1#resourceSpans[0].scopeSpans[0].spans[0]",
    )
    from_proto.location = from_file.location
    assert from_proto == from_file


def test_a_collector_file_export_mixes_logs_and_traces_one_document_a_line(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text(
        json.dumps(example(TRACE_JSON)) + "\n" + json.dumps(example(LOGS_JSON)) + "\n", encoding="utf-8"
    )
    for items in (list(read_otlp(str(path))), list(read_jsonl(str(path)))):
        assert [type(i) for i in items] == [SpanRecord, LogRecord]
        assert items[0].location.startswith(f"{path}:1#resourceSpans[0]")
        assert items[1].location.startswith(f"{path}:2#resourceLogs[0]")


def test_resource_attributes_are_kept_and_the_resource_audit_id_applies_unless_the_record_has_one() -> None:
    own = "git-sha256:" + "cd" * 32
    resource = {"service.name": "billing", "k8s.pod.uid": "u-1", "gitops.audit_id": AUDIT, "process.pid": 42}
    doc = {
        "resourceLogs": [
            {
                "resource": {"attributes": _attributes(resource)},
                "scopeLogs": [
                    {
                        "logRecords": [
                            {"body": {"stringValue": "plain"}, "spanId": "0000000000000000"},
                            {
                                "body": {"stringValue": "own id"},
                                "attributes": _attributes({"x-gitops-audit-id": own}),
                            },
                        ]
                    }
                ],
            }
        ]
    }
    for encoding, body in ((Encoding.JSON, json.dumps(doc).encode()), (Encoding.PROTOBUF, as_protobuf(doc))):
        plain, with_own = decode_logs(body, encoding, "otlp", "req", FM).items
        assert isinstance(plain, LogRecord) and isinstance(with_own, LogRecord)
        assert plain.resource == {**resource, "process.pid": "42"}
        assert plain.audit_id == AUDIT and plain.span_id is None and plain.service == "billing"
        assert with_own.audit_id == own and with_own.resource == plain.resource
        assert "x-gitops-audit-id" not in with_own.attributes


def test_spans_take_the_resource_audit_id_and_their_own_over_it() -> None:
    span = {"traceId": EXAMPLE_TRACE, "spanId": EXAMPLE_SPAN, "name": "GET /", "kind": 3}
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes({"gitops.audit_id": AUDIT})},
                "scopeSpans": [
                    {
                        "spans": [
                            {**span, "status": {"code": 2, "message": "boom"}},
                            {
                                **span,
                                "attributes": _attributes({"x-gitops-audit-id": "git-sha256:" + "ef" * 32}),
                            },
                        ]
                    }
                ],
            }
        ]
    }
    for encoding, body in ((Encoding.JSON, json.dumps(doc).encode()), (Encoding.PROTOBUF, as_protobuf(doc))):
        first, second = decode_traces(body, encoding, "otlp", "req", FM).items
        assert isinstance(first, SpanRecord) and isinstance(second, SpanRecord)
        assert (first.kind, first.status, first.status_message, first.audit_id) == (
            "CLIENT",
            "ERROR",
            "boom",
            AUDIT,
        )
        assert second.audit_id == "git-sha256:" + "ef" * 32 and second.parent_span_id is None
        assert first.start is None and first.end is None  # not sent: unknown, not the epoch


def test_parts_that_break_the_schema_are_rejected_at_their_path_and_the_rest_lands() -> None:
    good = {"traceId": EXAMPLE_TRACE, "spanId": EXAMPLE_SPAN, "name": "ok"}
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            good,
                            {"spanId": EXAMPLE_SPAN, "name": "no trace"},
                            "not a span",
                            {**good, "kind": 9, "parentSpanId": "xyz"},
                        ]
                    }
                ]
            }
        ]
    }
    decoded = decode_traces(json.dumps(doc).encode(), Encoding.JSON, "otlp", "req", FM)
    at = "req#resourceSpans[0].scopeSpans[0].spans"
    spans = [i for i in decoded.items if isinstance(i, SpanRecord)]
    rejects = {(r.location, r.reason) for r in decoded.items if isinstance(r, RejectedRecord)}
    assert [s.name for s in spans] == ["ok", "ok"] and decoded.dropped == 2
    assert spans[1].kind == "UNSPECIFIED" and spans[1].parent_span_id is None
    assert rejects == {
        (f"{at}[1]", "span without a traceId"),
        (f"{at}[2]", "a span is not an object"),
        (f"{at}[3].kind", "not a span kind"),
        (f"{at}[3].parentSpanId", "parentSpanId is not a 8-byte id in hex"),
    }


def test_protobuf_ids_of_the_wrong_length_are_rejected_at_their_position() -> None:
    doc = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {"body": {"stringValue": "a"}, "traceId": "abcd"},
                            {"body": {"stringValue": "b"}},
                        ]
                    }
                ]
            }
        ]
    }
    items = decode_logs(as_protobuf(doc), Encoding.PROTOBUF, "otlp", "req", FM).items
    reject, first, second = items
    assert (
        isinstance(reject, RejectedRecord) and isinstance(first, LogRecord) and isinstance(second, LogRecord)
    )
    assert reject.location == "req#resourceLogs[0].scopeLogs[0].logRecords[0].traceId"
    assert first.trace_id is None and [first.message, second.message] == ["a", "b"]


@pytest.mark.parametrize(
    ("body", "encoding"),
    [(b"\xff\xff\xff", Encoding.PROTOBUF), (b"[1]", Encoding.JSON), (b"{", Encoding.JSON)],
)
def test_a_body_that_is_not_the_message_is_an_error(body: bytes, encoding: Encoding) -> None:
    with pytest.raises(ValueError, match="not a protobuf|not valid JSON|is an object"):
        decode_logs(body, encoding, "otlp", "req", FM)
