"""The OTLP/HTTP receiver: ``POST /v1/logs`` and ``POST /v1/traces``, as OpenTelemetry SDKs and collectors
export them (https://opentelemetry.io/docs/specs/otlp/#otlphttp).

Both encodings (``application/x-protobuf``, ``application/json``) and ``Content-Encoding: gzip`` are read;
the answer is the signal's ``Export*ServiceResponse`` in the request's encoding, once the records are in
the store. Records go the way every collector's records go (``join_batches``, then ``StoreSink``),
written as the sender's token like ``/v1/ingest`` batches; requests that arrive together share one
transaction (``GroupCommit``). Parts that break the schema are kept as rejected records and reported in the
response's ``partial_success``; the records around them land. Failures answer a ``google.rpc.Status``:
400 for a body that is not the message, 413 over the ingest size limit (``LIUBAI_INGEST_MAX_BYTES``, also
for the unzipped body), 415 for another content type or encoding, 503 with ``Retry-After`` while the
store is unavailable (the exporter retries). ``/v1/metrics`` answers 501: metrics are not collected.

Records are named by the source ``otlp``: ``liubai ingest logs --format otlp --source otlp`` reads the
same export from a file into the same nodes.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from liubai.api.auth import require_scope
from liubai.api.ingest_http import IngestSettings, read_limited, request_store, writer_of
from liubai.api.metrics import include_router_first, observe_ingest
from liubai.collector.ingest import StoreSink, join_batches
from liubai.collector.logfields import FieldMap
from liubai.collector.otlp.proto import OtlpItem
from liubai.collector.otlp.requests import Decoded, Encoding, decode_logs, decode_traces
from liubai.collector.retry import RetryPolicy
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import iso_utc
from liubai.lineage.store import LineageStore, StoreError
from liubai.lineage.text import clip

__all__ = ["OTLP_SOURCE", "GroupCommit", "install_otlp", "router"]

OTLP_SOURCE = "otlp"
RETRY_AFTER_S = 5
_ONE_TRY = RetryPolicy(attempts=1)  # the exporter retries a 503, not the request
_SHOWN_REJECTS = 3
_FIELD_MAP = FieldMap()

router = APIRouter()


class _Refusal(Exception):
    """A request answered with an error status and a ``google.rpc.Status`` body."""

    def __init__(self, http_status: int, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.http_status, self.code, self.message, self.headers = http_status, code, message, headers


@dataclass(frozen=True, slots=True)
class _Signal:
    name: str  # "logs", "traces"
    unit: str  # what the partial success counts
    decode: Callable[[bytes, Encoding, str, str, FieldMap], Decoded]
    response: Callable[[int, str], Message]


def _logs_response(rejected: int, message: str) -> Message:
    answer = ExportLogsServiceResponse()
    if message:
        answer.partial_success.rejected_log_records = rejected
        answer.partial_success.error_message = message
    return answer


def _traces_response(rejected: int, message: str) -> Message:
    answer = ExportTraceServiceResponse()
    if message:
        answer.partial_success.rejected_spans = rejected
        answer.partial_success.error_message = message
    return answer


LOGS = _Signal("logs", "log record(s)", decode_logs, _logs_response)
TRACES = _Signal("traces", "span(s)", decode_traces, _traces_response)


def _encoding(content_type: str | None) -> Encoding | None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        return Encoding(media)
    except ValueError:
        return None


def _message(
    message: Message, encoding: Encoding, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = (
        message.SerializeToString()
        if encoding is Encoding.PROTOBUF
        else json_format.MessageToJson(message, indent=None).encode()
    )
    return Response(body, status_code=status, media_type=encoding.value, headers=headers)


def _status(refusal: _Refusal, encoding: Encoding) -> Response:
    status = status_pb2.Status(code=refusal.code, message=refusal.message)
    return _message(status, encoding, refusal.http_status, refusal.headers)


def _detail(exc: HTTPException) -> str:
    """The message of an error the ingest route's helpers raise for their own clients."""
    detail = exc.detail
    return str(detail.get("message", detail)) if isinstance(detail, dict) else str(detail)


def _unavailable(message: str) -> _Refusal:
    return _Refusal(503, code_pb2.UNAVAILABLE, message, {"Retry-After": str(RETRY_AFTER_S)})


async def _body(request: Request, limit: int) -> bytes:
    """The request body, unzipped; neither form may pass ``limit``."""
    try:
        body = await read_limited(request, limit)
    except HTTPException as exc:  # 413, stating the limit
        raise _Refusal(exc.status_code, code_pb2.RESOURCE_EXHAUSTED, _detail(exc)) from None
    coding = request.headers.get("content-encoding", "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding != "gzip":
        raise _Refusal(
            415,
            code_pb2.INVALID_ARGUMENT,
            f"unsupported Content-Encoding {clip(coding)!r}; send gzip or none",
        )
    unzip = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        data = unzip.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _Refusal(400, code_pb2.INVALID_ARGUMENT, f"body is not valid gzip: {exc}") from None
    if len(data) > limit:
        raise _Refusal(
            413, code_pb2.RESOURCE_EXHAUSTED, f"unzipped body is larger than the {limit}-byte ingest limit"
        )
    if not unzip.eof:
        raise _Refusal(400, code_pb2.INVALID_ARGUMENT, "gzip body is truncated")
    return data


@dataclass(slots=True, eq=False)
class _Pending:
    store: LineageStore
    writer: str
    items: list[OtlpItem]
    done: bool = False
    error: StoreError | None = None


class GroupCommit:
    """Writes requests' records, joined as every collector's are (``join_batches``, ``StoreSink``), in as
    few transactions as it can: the requests that arrive while a write is under way are written together
    by the next request to get the store, in one transaction (group commit). Many exporters at once (one
    per Pod) then cost the store a few large transactions instead of one small one each. A request is
    answered only once its records are in the store; if that write fails, every request of the group
    fails with it (none of their records landed)."""

    def __init__(self, max_records: int = 20_000) -> None:
        self.max_records = max_records
        self._pending: list[_Pending] = []
        self._queue = threading.Lock()  # guards ``_pending``
        self._write = threading.Lock()  # one write at a time; its holder writes for the others too

    def write(self, store: LineageStore, items: list[OtlpItem], writer: str) -> None:
        mine = _Pending(store, writer, items)
        with self._queue:
            self._pending.append(mine)
        while not mine.done:
            with self._write:
                if not mine.done:
                    self._write_group(self._take(mine))
        if mine.error is not None:
            raise mine.error

    def _take(self, mine: _Pending) -> list[_Pending]:
        """``mine`` and the waiting requests of the same store and writer, up to ``max_records``."""
        with self._queue:
            group, size = [mine], len(mine.items)
            for other in self._pending:
                if other is mine or other.store is not mine.store or other.writer != mine.writer:
                    continue
                if size + len(other.items) > self.max_records:
                    break
                group.append(other)
                size += len(other.items)
            self._pending = [p for p in self._pending if p not in group]
        return group

    @staticmethod
    def _write_group(group: list[_Pending]) -> None:
        head = group[0]
        items = [item for p in group for item in p.items]
        try:
            sink = StoreSink(head.store, head.writer, _ONE_TRY)
            for joined in join_batches(items, max(1, len(items))):
                sink.write(joined.batch)
                observe_ingest(OTLP_SOURCE, joined.batch, "applied")
        except StoreError as exc:
            for p in group:
                p.error = exc
        finally:
            for p in group:
                p.done = True


def _partial_success(decoded: Decoded, unit: str) -> str:
    """What the response says about rejects: how many parts, where the first ones were and why."""
    rejects = [i for i in decoded.items if isinstance(i, RejectedRecord)]
    if not rejects:
        return ""
    first = "; ".join(f"{r.location}: {r.reason}" for r in rejects[:_SHOWN_REJECTS])
    more = f" (and {len(rejects) - _SHOWN_REJECTS} more)" if len(rejects) > _SHOWN_REJECTS else ""
    return (
        f"{decoded.dropped} {unit} rejected whole; {len(rejects)} rejected part(s) kept as "
        f"rejected records: {first}{more}"
    )


async def _export(request: Request, signal: _Signal) -> Response:
    encoding = _encoding(request.headers.get("content-type"))
    if encoding is None:
        shown = clip(request.headers.get("content-type") or "none")
        refusal = _Refusal(
            415,
            code_pb2.INVALID_ARGUMENT,
            f"unsupported Content-Type {shown!r}; send application/x-protobuf or application/json",
        )
        return _status(refusal, Encoding.JSON)
    settings: IngestSettings = getattr(request.app.state, "ingest_settings", None) or IngestSettings()
    try:
        body = await _body(request, settings.max_bytes)
        try:
            store = request_store(request)
        except HTTPException as exc:
            raise _unavailable(_detail(exc)) from None
        where = f"{request.url.path}@{iso_utc(time.time())}"
        try:
            decoded = await run_in_threadpool(signal.decode, body, encoding, OTLP_SOURCE, where, _FIELD_MAP)
        except ValueError as exc:
            raise _Refusal(
                400, code_pb2.INVALID_ARGUMENT, f"not an OTLP {signal.name} request: {exc}"
            ) from None
        try:
            await run_in_threadpool(_writes(request).write, store, decoded.items, writer_of(request))
        except StoreError as exc:
            if exc.retryable:
                raise _unavailable(f"store unavailable: {exc}") from None
            raise _Refusal(500, code_pb2.INTERNAL, f"store failed: {exc}") from None
    except _Refusal as refusal:
        return _status(refusal, encoding)
    return _message(signal.response(decoded.dropped, _partial_success(decoded, signal.unit)), encoding)


@router.post("/v1/logs", dependencies=[Depends(require_scope("ingest"))])
async def export_logs(request: Request) -> Response:
    """OTLP/HTTP logs (``ExportLogsServiceRequest``), protobuf or JSON, gzip or not.

    Example: OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:8000 with the OTLP/HTTP exporter of any SDK.
    """
    return await _export(request, LOGS)


@router.post("/v1/traces", dependencies=[Depends(require_scope("ingest"))])
async def export_traces(request: Request) -> Response:
    """OTLP/HTTP traces (``ExportTraceServiceRequest``), protobuf or JSON, gzip or not."""
    return await _export(request, TRACES)


@router.post("/v1/metrics", dependencies=[Depends(require_scope("ingest"))])
async def export_metrics(request: Request) -> Response:
    """Metrics are not collected: 501 (not retryable), so an exporter drops them instead of retrying."""
    encoding = _encoding(request.headers.get("content-type")) or Encoding.JSON
    refusal = _Refusal(
        501,
        code_pb2.UNIMPLEMENTED,
        "liubai does not collect metrics; it receives OTLP logs at /v1/logs and traces at /v1/traces",
    )
    return _status(refusal, encoding)


def _writes(request: Request) -> GroupCommit:
    writes: GroupCommit | None = getattr(request.app.state, "otlp_writes", None)
    if writes is None:  # an app built without ``install_otlp``
        writes = request.app.state.otlp_writes = GroupCommit()
    return writes


def install_otlp(app: FastAPI) -> None:
    """Add the OTLP/HTTP receiver to ``app`` (ahead of the web UI's catch-all mount)."""
    app.state.otlp_writes = GroupCommit()
    include_router_first(app, router)
