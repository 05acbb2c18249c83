"""The OTLP/HTTP receiver of ``liubai serve``, fed by the official OpenTelemetry SDK's exporters (protobuf
and JSON) and by hand-made requests for what an exporter never sends on purpose."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from google.rpc import code_pb2, status_pb2
from opentelemetry.exporter.otlp.common.http import Compression as JsonCompression
from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter as JsonLogExporter
from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter as JsonSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from liubai.api.app import create_app
from liubai.api.auth import TokenStore
from liubai.lineage.model import Direction, EdgeKind, Node, span_node_id
from liubai.lineage.store import LineageStore, open_store
from tests.otlp.otlp_data import LOGS_JSON, TRACE_JSON, as_protobuf, example
from tests.otlp.serve import Served, liubai_serve

# One real server process per module; SQLite is the store a single `liubai serve` runs on by default.
pytestmark = pytest.mark.sqlite_only

AUDIT = "git-sha256:" + "ab" * 32
PROTO = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("otlp")
    url = f"sqlite:///{root / 'lineage.db'}"
    with liubai_serve(url, root, env={"LIUBAI_INGEST_MAX_BYTES": str(LIMIT)}) as s:
        yield s


@pytest.fixture
def store(served: Served) -> Iterator[LineageStore]:
    s = open_store(served.store_url)
    yield s
    s.close()


def _logs_of(store: LineageStore, message: str) -> list[Node]:
    return [
        n
        for page in store.iter_nodes()
        for n in page
        if n.id.startswith("log:otlp:") and n.props.get("message") == message
    ]


def _send_with_sdk(base: str, encoding: str, gzipped: bool, tag: str) -> tuple[str, str]:
    """Logs written inside a span, both exported by the SDK; the span's trace and span id (hex)."""
    resource = Resource.create(
        {"service.name": "checkout", "k8s.pod.uid": "pod-uid-1", "gitops.audit_id": AUDIT, "tag": tag}
    )
    if encoding == "protobuf":
        compression = Compression.Gzip if gzipped else Compression.NoCompression
        log_exporter: Any = OTLPLogExporter(endpoint=f"{base}/v1/logs", compression=compression)
        span_exporter: Any = OTLPSpanExporter(endpoint=f"{base}/v1/traces", compression=compression)
    else:
        json_compression = JsonCompression.GZIP if gzipped else JsonCompression.NONE
        log_exporter = JsonLogExporter(endpoint=f"{base}/v1/logs", compression=json_compression)
        span_exporter = JsonSpanExporter(endpoint=f"{base}/v1/traces", compression=json_compression)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    logger = logger_provider.get_logger("shop")
    with tracer_provider.get_tracer("shop").start_as_current_span(f"charge {tag}") as span:
        logger.emit(body=f"charged {tag}", severity_text="WARN", attributes={"order": 7, "tag": tag})
        ids = span.get_span_context()
    logger.emit(body=f"outside {tag}", severity_text="INFO")
    tracer_provider.shutdown()
    logger_provider.shutdown()
    return f"{ids.trace_id:032x}", f"{ids.span_id:016x}"


@pytest.mark.parametrize(
    ("encoding", "gzipped"), [("protobuf", False), ("protobuf", True), ("json", False), ("json", True)]
)
def test_the_sdk_exporters_send_logs_that_land_with_their_ids(
    served: Served, store: LineageStore, encoding: str, gzipped: bool
) -> None:
    tag = f"{encoding}-{gzipped}"
    trace_id, span_id = _send_with_sdk(served.base, encoding, gzipped, tag)
    (inside,) = _logs_of(store, f"charged {tag}")
    (outside,) = _logs_of(store, f"outside {tag}")
    p = inside.props
    assert (p["trace_id"], p["span_id"], p["audit_id"], p["service"], p["level"]) == (
        trace_id,
        span_id,
        AUDIT,
        "checkout",
        "WARN",
    )
    assert p["attributes"] == {"order": "7", "tag": tag}
    assert outside.props["trace_id"] is None and "span_id" not in outside.props
    assert outside.props["audit_id"] == AUDIT
    span = store.get(span_node_id(trace_id, span_id))
    assert span is not None and not span.placeholder
    assert (span.props["name"], span.props["kind"], span.props["service"], span.props["audit_id"]) == (
        f"charge {tag}",
        "INTERNAL",
        "checkout",
        AUDIT,
    )
    in_span = store.neighbors(inside.id, Direction.DOWNSTREAM, [EdgeKind.IN_SPAN]).edges
    assert [e.dst for e in in_span] == [span.id]
    for record in (inside, outside, span):  # every resource attribute, the SDK's own among them
        (emitted,) = store.neighbors(record.id, Direction.UPSTREAM, [EdgeKind.EMITTED]).edges
        resource = store.get(emitted.src)
        assert resource is not None
        attributes = resource.props["attributes"]
        assert {k: attributes[k] for k in ("service.name", "k8s.pod.uid", "gitops.audit_id", "tag")} == {
            "service.name": "checkout",
            "k8s.pod.uid": "pod-uid-1",
            "gitops.audit_id": AUDIT,
            "tag": tag,
        }
        assert attributes["telemetry.sdk.name"] == "opentelemetry"


def test_partial_success_names_the_bad_record_and_keeps_the_good_ones(
    served: Served, store: LineageStore
) -> None:
    doc = example(LOGS_JSON)
    records = doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    records[0]["body"] = {"stringValue": "partial good"}
    records.append("not a record")
    answer = httpx.post(f"{served.base}/v1/logs", content=json.dumps(doc), headers=JSON)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"  # int64, as protobuf's JSON mapping writes it
    assert partial["errorMessage"].startswith("1 log record(s) rejected whole; 1 rejected part(s) kept")
    assert "scopeLogs[0].logRecords[1]: log record is not an object" in partial["errorMessage"]
    assert len(_logs_of(store, "partial good")) == 1
    kept = store.rejected(source="otlp", first=1000).records
    assert any(r.location.endswith("#resourceLogs[0].scopeLogs[0].logRecords[1]") for r in kept)


def test_partial_success_in_protobuf_for_a_span_without_ids(served: Served) -> None:
    doc = example(TRACE_JSON)
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append({"name": "no ids"})
    answer = httpx.post(f"{served.base}/v1/traces", content=as_protobuf(doc), headers=PROTO)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-protobuf"
    response = ExportTraceServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_spans == 1
    assert "spans[1]: span without a traceId" in response.partial_success.error_message


def test_requests_sent_at_once_all_land_and_each_is_answered(served: Served, store: LineageStore) -> None:
    """Requests that arrive together are written together (group commit); each still lands whole."""

    def body(n: int) -> bytes:
        doc = example(LOGS_JSON)
        records = doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
        template = records.pop()
        records.extend({**template, "body": {"stringValue": f"at once {n}-{i}"}} for i in range(50))
        return as_protobuf(doc)

    bodies = [body(n) for n in range(12)]
    with httpx.Client() as client, ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(lambda b: client.post(f"{served.base}/v1/logs", content=b, headers=PROTO), bodies)
        )
    assert [a.status_code for a in answers] == [200] * 12 and all(a.content == b"" for a in answers)
    landed = {
        n.props["message"]
        for page in store.iter_nodes()
        for n in page
        if n.id.startswith("log:otlp:") and str(n.props.get("message", "")).startswith("at once ")
    }
    assert landed == {f"at once {n}-{i}" for n in range(12) for i in range(50)}


def test_a_clean_request_answers_an_empty_response(served: Served) -> None:
    answer = httpx.post(f"{served.base}/v1/logs", content=as_protobuf(example(LOGS_JSON)), headers=PROTO)
    assert answer.status_code == 200 and answer.content == b""  # ExportLogsServiceResponse{} encodes empty


def _status(answer: httpx.Response) -> status_pb2.Status:
    """The ``google.rpc.Status`` of a refusal; the request guard's own refusals (a content type no OTLP
    client sends) keep the API's error shape."""
    if answer.headers["content-type"] == "application/x-protobuf":
        return status_pb2.Status.FromString(answer.content)
    body = answer.json()
    if "error" in body:
        return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=body["error"]["message"])
    return status_pb2.Status(code=body.get("code", 0), message=body.get("message", ""))


@pytest.mark.parametrize(
    ("headers", "body", "status", "says"),
    [
        ({"Content-Type": "text/plain"}, b"hello", 415, "application/x-protobuf or application/json (got"),
        ({**PROTO, "Content-Encoding": "br"}, b"x", 415, "unsupported Content-Encoding 'br'"),
        (PROTO, b"\xff\xff\xff\xff", 400, "not an OTLP logs request: not a protobuf"),
        (JSON, b"{not json", 400, "not an OTLP logs request: not valid JSON"),
        ({**PROTO, "Content-Encoding": "gzip"}, b"not gzip", 400, "not valid gzip"),
        ({**PROTO, "Content-Encoding": "gzip"}, gzip.compress(b"\0" * (LIMIT + 1)), 413, "unzipped body"),
        (PROTO, b"\0" * (LIMIT + 1), 413, f"{LIMIT}-byte ingest limit"),
    ],
)
def test_refusals_answer_a_google_rpc_status(
    served: Served, headers: dict[str, str], body: bytes, status: int, says: str
) -> None:
    answer = httpx.post(f"{served.base}/v1/logs", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert says in _status(answer).message


def test_metrics_are_not_collected(served: Served) -> None:
    answer = httpx.post(f"{served.base}/v1/metrics", content=b"", headers=PROTO)
    assert answer.status_code == 501
    status = _status(answer)
    assert status.code == code_pb2.UNIMPLEMENTED and "does not collect metrics" in status.message


def test_a_store_that_is_down_answers_503_with_retry_after_and_takes_the_retry(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"  # the store's directory is a file: it cannot open until that is gone
    blocker.write_text("not a directory")
    body = as_protobuf(example(LOGS_JSON))
    with TestClient(create_app(store_url=f"sqlite:///{blocker / 'lineage.db'}")) as client:
        answer = client.post("/v1/logs", content=body, headers=PROTO)
        assert answer.status_code == 503 and answer.headers["retry-after"].isdigit()
        assert _status(answer).code == code_pb2.UNAVAILABLE and "store unavailable" in _status(answer).message
        blocker.unlink()
        assert client.post("/v1/logs", content=body, headers=PROTO).status_code == 200


def test_under_auth_the_receiver_needs_the_ingest_scope(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path / "tokens.db")
    _, ingest = tokens.create("shop", ["ingest"])
    _, read = tokens.create("viewer", ["read"])
    url = f"sqlite:///{tmp_path / 'lineage.db'}"
    env = {"LIUBAI_TOKENS": str(tmp_path / "tokens.db")}
    body = as_protobuf(example(LOGS_JSON))
    with liubai_serve(url, tmp_path, "--auth", env=env) as s:
        for path in ("/v1/logs", "/v1/traces", "/v1/metrics"):
            assert httpx.post(f"{s.base}{path}", content=body, headers=PROTO).status_code == 401
            as_reader = {**PROTO, "Authorization": f"Bearer {read}"}
            assert httpx.post(f"{s.base}{path}", content=body, headers=as_reader).status_code == 403
        exporter = OTLPLogExporter(
            endpoint=f"{s.base}/v1/logs", headers={"Authorization": f"Bearer {ingest}"}
        )
        provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}))
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        provider.get_logger("shop").emit(body="with a token")
        provider.shutdown()
        stored = open_store(url)
        try:
            (node,) = _logs_of(stored, "with a token")
            assert stored.provenance([node.id])[node.id] is not None
        finally:
            stored.close()
