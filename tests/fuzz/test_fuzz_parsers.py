"""Every parser of untrusted input either returns a usable value or refuses with a reason; it never crashes.

Covered: the audit id, Kubernetes manifests, log records (JSON lines and mapped fields), kernel event
records (binary and recorded JSON) and the ingest wire format.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from liubai.collector.logfields import FieldMap, map_log
from liubai.collector.logfile import read_jsonl, read_otlp
from liubai.collector.manifests import parse_manifest
from liubai.collector.recording import replay_recording
from liubai.ebpf.events import DecodeError, Event, EventDecoder
from liubai.lineage.model import (
    AuditId,
    AuditIdError,
    EdgeKind,
    GraphBatch,
    NodeKind,
    RejectedRecord,
    parse_audit_id,
)
from liubai.lineage.records import (
    FileAccessRecord,
    LogRecord,
    ManifestObjectRecord,
    ProcessRecord,
    RunRecord,
    SkippedRecord,
)
from liubai.lineage.wire import DecodedBatch, WireError, decode_batch, encode_batch
from tests.fuzz.conftest import FUZZ

pytestmark = pytest.mark.fuzz

HEX = "0123456789abcdefABCDEF"
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4), max_leaves=12
)

# --------------------------------------------------------------------------- audit id

audit_parts = st.one_of(
    st.tuples(
        st.sampled_from(["git-sha256", "git-sha1", "git", "GIT"]), st.text(HEX, min_size=38, max_size=66)
    ),
    st.tuples(st.just("trace"), st.text(min_size=0, max_size=40)),
    st.tuples(st.text(min_size=0, max_size=8), st.text(max_size=12)),
).map(lambda kv: f"{kv[0]}:{kv[1]}")
audit_ids = st.one_of(
    st.text(max_size=200),
    st.lists(audit_parts, min_size=0, max_size=5).map("|".join),
    st.lists(audit_parts | st.text(max_size=5), max_size=4).map("|".join).map(lambda s: f"  {s}\t"),
)


@FUZZ
@given(raw=audit_ids, strict=st.booleans())
def test_audit_id_parses_to_a_stable_canonical_form_or_says_why_not(raw: str, strict: bool) -> None:
    try:
        parsed = parse_audit_id(raw, strict=strict)
    except AuditIdError as exc:
        assert exc.reason.strip() and exc.raw == raw
        return
    assert isinstance(parsed, AuditId) and (parsed.commit or parsed.trace)
    assert parse_audit_id(parsed.canonical) == parsed  # the canonical form reads back as itself


# --------------------------------------------------------------------------- manifests

k8s_docs = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(["v1", "apps/v1", ""]) | st.text(max_size=5),
        "kind": st.sampled_from(["Deployment", "ConfigMap", "List", ""]) | json_values,
        "metadata": st.fixed_dictionaries(
            {},
            optional={
                "name": json_values,
                "namespace": json_values,
                "annotations": st.dictionaries(
                    st.sampled_from(["x-gitops-audit-id", "other"]) | st.text(max_size=4),
                    json_values,
                    max_size=3,
                )
                | json_values,
            },
        ),
    },
    optional={"items": st.lists(json_values, max_size=3), "spec": json_values},
)
manifest_texts = st.one_of(
    st.lists(k8s_docs, max_size=3).map(lambda docs: yaml.safe_dump_all(docs)),
    st.text(max_size=400),
    st.binary(max_size=400),
    st.lists(
        st.sampled_from(
            [
                "---",
                "a: [",
                "kind: x",
                "  - b",
                "{{ .Values }}",
                "!!python/object:os.system",
                "&a [*a]",
                "metadata:",
                "  name: n",
                ": :",
                "\t",
            ]
        ),
        max_size=12,
    ).map("\n".join),
)


@FUZZ
@given(data=manifest_texts, path=st.sampled_from(["deploy/app.yaml", "chart/templates/x.yaml", "k.yml"]))
def test_manifest_parsing_yields_objects_or_reasoned_rejects(data: str | bytes, path: str) -> None:
    items, keys = parse_manifest(data, repo="r", commit="c" * 40, path=path)
    assert len(keys) <= len(items)
    for item in items:
        assert isinstance(item, ManifestObjectRecord | RejectedRecord | SkippedRecord)
        if isinstance(item, RejectedRecord | SkippedRecord):
            assert item.reason.strip() and item.location


# --------------------------------------------------------------------------- log records

log_fields = st.dictionaries(
    st.sampled_from(
        [
            "time",
            "timestamp",
            "@timestamp",
            "level",
            "message",
            "msg",
            "trace_id",
            "traceparent",
            "x-gitops-audit-id",
            "audit_id",
            "service",
            "_internal",
        ]
    )
    | st.text(max_size=8),
    json_values,
    max_size=8,
)


@FUZZ
@given(fields=log_fields)
def test_log_field_mapping_keeps_the_line_and_reasons_every_reject(fields: dict[str, Any]) -> None:
    mapped = map_log(fields, source="fuzz", location="f:1", fieldmap=FieldMap())
    assert isinstance(mapped.record, LogRecord) and mapped.record.record_id
    for r in mapped.rejected:
        assert r.reason.strip() and r.location == "f:1"


halves = st.sampled_from(["\ud800", "\udfff", "x\ud83d", "\ude00y"])  # halves of UTF-16 pairs
log_lines = st.one_of(
    log_fields.map(lambda d: orjson.dumps(d, option=orjson.OPT_NON_STR_KEYS)),
    st.binary(max_size=200).filter(lambda b: b"\n" not in b),
    st.just(b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"intValue": "x"}}, 3]}]}]}'),
    st.lists(json_values, max_size=3).map(lambda v: orjson.dumps({"resourceLogs": v})),
    st.just(b'{"resourceLogs":[{"resource":true}]}'),  # once crashed the reader
    st.dictionaries(st.text(max_size=4) | halves, json_values | halves, max_size=4).map(
        lambda d: json.dumps(d).encode()
    ),  # ``\\ud800`` escapes: the standard parser reads them as lone surrogates
)


@FUZZ
@given(lines=st.lists(log_lines, max_size=6))
def test_jsonl_reader_lands_good_lines_and_rejects_bad_ones_with_file_and_line(lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "in.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        items = list(read_jsonl(str(path)))
    for item in items:
        assert isinstance(item, LogRecord | RejectedRecord)
        text = json.dumps(dataclasses.astuple(item), ensure_ascii=False)
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in text), (
            text
        )  # no lone surrogate: text a store can hold
        if isinstance(item, RejectedRecord):
            assert item.reason.strip() and item.location.startswith(str(path))


# OTLP documents: every level the right shape or any JSON value instead, so each check in the walk is hit.


def _or_junk(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy | json_values


def _key_values(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    key = _or_junk(st.sampled_from(["service.name", "trace_id", "x-gitops-audit-id", "k"]))
    return st.lists(_or_junk(st.fixed_dictionaries({"key": key, "value": values})), max_size=3)


scalar_any_values = st.dictionaries(
    st.sampled_from(["stringValue", "intValue", "doubleValue", "boolValue", "bytesValue"]),
    json_scalars | st.sampled_from(["12", "-7", "1e999", "NaN", "x", "9" * 40]),
    max_size=1,
)
any_values = st.recursive(
    scalar_any_values,
    lambda inner: (
        st.fixed_dictionaries(
            {"arrayValue": _or_junk(st.fixed_dictionaries({"values": _or_junk(st.lists(inner, max_size=3))}))}
        )
        | st.fixed_dictionaries(
            {"kvlistValue": _or_junk(st.fixed_dictionaries({"values": _or_junk(_key_values(inner))}))}
        )
    ),
    max_leaves=6,
)
otlp_records = st.fixed_dictionaries(
    {},
    optional={
        "timeUnixNano": _or_junk(st.just("1767323045123456789")),
        "observedTimeUnixNano": json_scalars,
        "severityText": json_scalars,
        "severityNumber": json_scalars,
        "body": _or_junk(any_values),
        "traceId": _or_junk(st.text(HEX, min_size=32, max_size=32) | st.just("AAECAwQFBgcICQoLDA0ODw==")),
        "attributes": _or_junk(_key_values(any_values)),
    },
)
scope_logs = _or_junk(
    st.lists(
        _or_junk(
            st.fixed_dictionaries(
                {}, optional={"logRecords": _or_junk(st.lists(_or_junk(otlp_records), max_size=3))}
            )
        ),
        max_size=2,
    )
)
otlp_documents = st.fixed_dictionaries(
    {
        "resourceLogs": st.lists(
            _or_junk(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "resource": _or_junk(
                            st.fixed_dictionaries(
                                {}, optional={"attributes": _or_junk(_key_values(any_values))}
                            )
                        ),
                        "scopeLogs": scope_logs,
                        "instrumentationLibraryLogs": scope_logs,  # the name before OTLP 1.0
                    },
                )
            ),
            max_size=3,
        )
    }
)


def _log_record_slots(doc: dict[str, Any]) -> int:
    """How many log records a document holds: objects in a logRecords array, under an object of a
    scopeLogs array, under an object of the resourceLogs array."""
    slots = 0
    for rl in doc["resourceLogs"]:
        if not isinstance(rl, dict):
            continue
        scopes = rl.get("scopeLogs") or rl.get("instrumentationLibraryLogs")
        for sl in scopes if isinstance(scopes, list) else []:
            records = sl.get("logRecords") if isinstance(sl, dict) else None
            slots += sum(isinstance(r, dict) for r in records) if isinstance(records, list) else 0
    return slots


@FUZZ
@given(doc=otlp_documents)
def test_otlp_lands_every_log_record_and_rejects_each_broken_part_at_its_path(doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "export.json"
        path.write_bytes(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))
        items = list(read_otlp(str(path), source="otel"))
    records = [i for i in items if isinstance(i, LogRecord)]
    assert len(records) == _log_record_slots(doc)  # a broken sibling, field or resource loses no record
    for item in items:
        assert item.location.startswith(f"{path}:1#resourceLogs[")
        if isinstance(item, RejectedRecord):
            assert item.reason.strip() and item.raw is not None


# --------------------------------------------------------------------------- nesting past the parser's limit

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_FLOAT = b'{"a":' + b"[" * 990 + b"1.5" + b"]" * 990 + b"}"  # within orjson's limit, past Python's


@pytest.mark.parametrize("line", [DEEP, DEEP_FLOAT], ids=["past-orjson", "past-python"])
def test_a_line_nested_too_deeply_is_a_reject_and_the_next_line_lands(line: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "in.jsonl"
        path.write_bytes(line + b'\n{"message": "after"}\n')
        jsonl = list(read_jsonl(str(path)))
        otlp = list(read_otlp(str(path)))
    bad, good = jsonl
    assert (
        isinstance(bad, RejectedRecord) and "nested too deeply" in bad.reason and bad.location.endswith(":1")
    )
    assert isinstance(good, LogRecord) and good.message == "after"
    assert all(isinstance(i, RejectedRecord) for i in otlp) and len(otlp) == 2


def test_a_recorded_event_line_nested_too_deeply_is_a_reject() -> None:
    replay = replay_recording([HEADER, DEEP.decode(), '{"type":"end","end_ns":9}'], "fuzz.events")
    assert [r.location for r in replay.rejected] == ["fuzz.events:2"]
    assert "nested too deeply" in replay.rejected[0].reason and replay.complete
    with pytest.raises(ValueError, match="nested too deeply"):
        replay_recording([DEEP.decode()], "fuzz.events")


# --------------------------------------------------------------------------- kernel events

_HDR = struct.Struct("<IIIIQQ")
event_bytes = st.one_of(
    st.binary(max_size=600),
    st.tuples(st.integers(0, 9), st.integers(0, 2**32 - 1), st.binary(max_size=700)).map(
        lambda t: _HDR.pack(t[0], t[1], t[1], 0, 1, 2) + t[2]
    ),
)


@FUZZ
@given(data=event_bytes)
def test_event_decoder_returns_an_event_or_a_decode_error(data: bytes) -> None:
    try:
        event = EventDecoder().decode(data)
    except DecodeError as exc:
        assert str(exc).strip()
        return
    assert isinstance(event, Event)


HEADER = orjson.dumps(
    {
        "type": "run",
        "format": "liubai-events/1",
        "host": "h",
        "root_pid": 10,
        "start_ns": 5,
        "command": ["sh"],
        "boot_offset_ns": 0,
    }
).decode()
event_objects = st.dictionaries(
    st.sampled_from(
        [
            "type",
            "pid",
            "tid",
            "uid",
            "ts",
            "start_ns",
            "child",
            "child_start_ns",
            "argv",
            "path",
            "filename",
            "comm",
            "exit_code",
            "fd",
            "dfd",
            "flags",
            "proc",
            "parent",
            "end_ns",
        ]
    ),
    json_values
    | st.sampled_from(["fork", "exec", "exec_args", "open", "exit", "chdir", "adopt", "end"])
    | st.integers(0, 20),
    max_size=10,
)


event_lines = st.one_of(
    event_objects.map(lambda o: orjson.dumps(o).decode()),
    st.text(max_size=60),
)


@FUZZ
@given(lines=st.lists(event_lines, max_size=8))
def test_recorded_runs_replay_with_every_bad_line_rejected_for_a_reason(lines: list[str]) -> None:
    text = [HEADER, *(line.replace("\n", " ") for line in lines)]
    replay = replay_recording(text, "fuzz.events")
    for r in replay.rejected:
        assert r.reason.strip() and r.location.startswith("fuzz.events:")
    for record in replay.collector.records():  # whatever was accepted also joins into records
        assert isinstance(record, RunRecord | ProcessRecord | FileAccessRecord)


def test_a_recorded_end_line_with_a_text_end_time_is_rejected_not_a_crash() -> None:
    replay = replay_recording([HEADER, '{"type":"end","end_ns":"fork"}'], "fuzz.events")
    list(replay.collector.records())
    assert replay.rejected and "end" in replay.rejected[0].reason


# --------------------------------------------------------------------------- wire format

ids = st.one_of(
    st.builds(
        lambda k, key: f"{k.prefix}:{key}", st.sampled_from(list(NodeKind)), st.text(min_size=1, max_size=30)
    ),
    st.text(max_size=20),
)
props = st.dictionaries(st.text(max_size=10), json_values, max_size=4)


@st.composite
def batches(draw: st.DrawFn) -> GraphBatch:
    b = GraphBatch()
    for node_id in draw(st.lists(ids, max_size=5)):
        try:
            b.add_node(node_id, draw(props), placeholder=draw(st.booleans()))
        except ValueError:
            pass  # not a node id: Node.of refuses it before it can reach the wire
    for src, kind, dst in draw(st.lists(st.tuples(ids, st.sampled_from(list(EdgeKind)), ids), max_size=5)):
        b.add_edge(src, kind, dst, draw(props))
    for s, loc, reason in draw(
        st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8), st.text(max_size=8)), max_size=3)
    ):
        b.rejected.append(RejectedRecord(s, loc, reason, draw(st.text(max_size=20))))
    return b


@FUZZ
@given(batch=batches(), source=st.text(max_size=12))
def test_wire_round_trips_every_batch_it_accepts(batch: GraphBatch, source: str) -> None:
    try:
        bid, data = encode_batch(batch, source)
    except WireError as exc:
        assert str(exc).strip() and ":" in str(exc)
        return
    decoded = decode_batch(data)
    assert decoded.batch_id == bid
    assert decoded.batch.nodes == batch.nodes and decoded.batch.edges == batch.edges
    assert decoded.batch.rejected == batch.rejected


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    return st.tuples(st.integers(0, max(len(data) - 1, 0)), st.binary(max_size=8)).map(
        lambda t: data[: t[0]] + t[1] + data[t[0] + len(t[1]) :]
    )


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=300),
        json_values.map(orjson.dumps),
        batches().map(lambda b: encode_batch(b, "s")[1] if _encodable(b) else b"{}").flatmap(_mutations),
    )
)
def test_wire_decoder_accepts_valid_envelopes_only_and_names_what_is_wrong(data: bytes) -> None:
    try:
        decoded = decode_batch(data)
    except WireError as exc:
        assert str(exc).strip()
        return
    assert isinstance(decoded, DecodedBatch)
    for node in decoded.batch.nodes:
        for v in _leaves(node.props):
            assert not (isinstance(v, float) and not math.isfinite(v))


def _encodable(b: GraphBatch) -> bool:
    try:
        encode_batch(b, "s")
    except WireError:
        return False
    return True


def _leaves(v: Any) -> list[Any]:
    if isinstance(v, dict):
        return [x for y in v.values() for x in _leaves(y)]
    if isinstance(v, list):
        return [x for y in v for x in _leaves(y)]
    return [v]
