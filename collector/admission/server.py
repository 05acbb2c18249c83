"""The webhook's HTTPS endpoints: ``POST /mutate`` (AdmissionReview), ``GET /healthz``, ``GET /metrics``.

A small Starlette app under uvicorn with TLS (the API server calls webhooks over HTTPS only). A review
that names a GitOps controller object not in the reader's cache is decided on a worker thread, since
the object has to be read from the API server; the others (nearly all at a steady rate) are decided on
the event loop right away, as a hop to a worker thread and back costs two more wake-ups, and on a busy
machine each may wait for a core. The record goes to the ``AdmissionRecorder`` queue, so the answer
never waits for the store.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from liubai.collector.admission.cluster_reader import CachedReader
from liubai.collector.admission.decide import BadReview, Outcome, WebhookSettings, admit
from liubai.collector.admission.kinds import dig
from liubai.collector.admission.recorder import AdmissionRecorder
from liubai.collector.admission.revision import gitops_refs

__all__ = ["INLINE_MAX_BYTES", "MAX_BODY_BYTES", "AdmissionService", "TlsFiles", "create_app", "run_server"]

MAX_BODY_BYTES = 16 * 1024 * 1024  # the API server sends at most about 3 MiB; anything larger is no review
INLINE_MAX_BYTES = 256 * 1024  # larger reviews are parsed and decided on a worker thread
log = logging.getLogger("liubai.webhook")


class AdmissionService:
    """Decides reviews and hands their records to the recorder; counts what it did for ``/metrics``."""

    def __init__(
        self,
        settings: WebhookSettings,
        reader: CachedReader | None,
        recorder: AdmissionRecorder | None,
    ) -> None:
        self.settings = settings
        self.reader = reader
        self.recorder = recorder
        self.registry = CollectorRegistry()
        self._decisions = Counter(
            "liubai_webhook_admissions",
            "Admission reviews answered, by decision and whether they were dry runs.",
            ["decision", "dry_run"],
            registry=self.registry,
        )
        self._seconds = Histogram(
            "liubai_webhook_decision_seconds",
            "Time to decide one admission review (parse, resolve, patch), without the HTTP exchange.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5),
            registry=self.registry,
        )
        self.registry.register(_StateCollector(self))

    def handle(self, body: bytes) -> tuple[int, bytes]:
        """The HTTP status and body answering one POSTed AdmissionReview."""
        try:
            review = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _bad(f"not an AdmissionReview: {exc}")
        return self.decide(review, len(body))

    def may_wait(self, review: Any) -> bool:
        """Whether deciding ``review`` may wait for the API server: it names an Argo CD or Flux object
        that is not in the reader's cache."""
        obj = dig(review, ("request", "object"))
        if self.reader is None or not isinstance(obj, Mapping):
            return False
        return any(not self.reader.is_fresh(ref) for _, ref in gitops_refs(obj, self.settings.gitops))

    def decide(self, review: Any, body_size: int) -> tuple[int, bytes]:
        """``handle`` for a body already parsed."""
        started = time.perf_counter()
        try:
            outcome = admit(review, self.settings, self.reader, body_size=body_size)
        except BadReview as exc:
            return _bad(str(exc))
        self._seconds.observe(time.perf_counter() - started)
        dry = review["request"].get("dryRun") is True
        self._decisions.labels(outcome.decision, "true" if dry else "false").inc()
        if outcome.record is not None and self.recorder is not None:
            self.recorder.record(outcome.record)
        _log(outcome)
        return 200, orjson.dumps(outcome.review)


def _bad(message: str) -> tuple[int, bytes]:
    log.warning("bad request: %s", message)
    return 400, orjson.dumps({"error": message})


def _log(outcome: Outcome) -> None:
    rec = outcome.record
    if rec is None:
        return
    what = f"{rec.operation} {rec.kind} {rec.namespace + '/' if rec.namespace else ''}{rec.name} by {rec.username}"
    if outcome.decision in ("refused", "passed"):
        log.warning("%s: %s: %s", what, outcome.decision, rec.reason)
    else:
        log.info("%s: %s %s", what, outcome.decision, rec.audit_id or rec.reason or "")


class _StateCollector(Collector):
    """The recorder's and the revision cache's counters, read when ``/metrics`` is scraped."""

    def __init__(self, service: AdmissionService) -> None:
        self._service = service

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        recorder, reader = self._service.recorder, self._service.reader
        if recorder is not None:
            s = recorder.stats
            stored = CounterMetricFamily("liubai_webhook_records_stored", "Admission records stored.")
            stored.add_metric([], s.stored)
            dropped = CounterMetricFamily(
                "liubai_webhook_records_dropped",
                "Admission records dropped: queue full, or the store failed after its retries.",
                labels=["why"],
            )
            dropped.add_metric(["queue_full"], s.dropped_full)
            dropped.add_metric(["store_failed"], s.dropped_failed)
            queued = GaugeMetricFamily("liubai_webhook_records_queued", "Admission records waiting.")
            queued.add_metric([], recorder.queued)
            yield from (stored, dropped, queued)
        if reader is not None:
            reads = CounterMetricFamily(
                "liubai_webhook_revision_lookups",
                "GitOps controller objects looked up, by whether the API server was asked.",
                labels=["result"],
            )
            reads.add_metric(["api"], reader.reads)
            reads.add_metric(["cached"], reader.hits)
            yield reads


async def _body(request: Request) -> bytes | None:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(service: AdmissionService) -> Starlette:
    async def mutate(request: Request) -> Response:
        body = await _body(request)
        if body is None:
            return JSONResponse({"error": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        if len(body) > INLINE_MAX_BYTES:
            status, payload = await run_in_threadpool(service.handle, body)
        else:
            try:
                review = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                status, payload = _bad(f"not an AdmissionReview: {exc}")
            else:
                if service.may_wait(review):
                    status, payload = await run_in_threadpool(service.decide, review, len(body))
                else:
                    status, payload = service.decide(review, len(body))
        return Response(payload, status_code=status, media_type="application/json")

    async def healthz(_: Request) -> Response:
        recorder = service.recorder
        state: dict[str, object] = {"status": "ok"}
        if recorder is not None:
            s = recorder.stats
            state["records"] = {
                "stored": s.stored,
                "queued": recorder.queued,
                "dropped": s.dropped,
                "last_error": s.last_error,
            }
        return JSONResponse(state)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(service.registry), media_type="text/plain; version=0.0.4")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if service.recorder is not None:
            service.recorder.start()
        try:
            yield
        finally:
            if service.recorder is not None:
                service.recorder.close()

    routes = [
        Route("/mutate", mutate, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The serving certificate and key (PEM); ``client_ca``: require API server client certificates
    signed by it."""

    cert: str
    key: str
    client_ca: str | None = None


def run_server(app: Starlette, host: str, port: int, tls: TlsFiles, log_level: str = "info") -> None:
    """Serve ``app`` over HTTPS until interrupted (SIGINT/SIGTERM stop it and flush the records)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=tls.cert,
        ssl_keyfile=tls.key,
        ssl_ca_certs=tls.client_ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED if tls.client_ca else ssl.CERT_NONE,
        http="httptools",
        lifespan="on",
        log_level=log_level,
        access_log=False,
        server_header=False,
        timeout_keep_alive=65,  # the API server keeps idle webhook connections for 90 s
    )
    uvicorn.Server(config).run()
