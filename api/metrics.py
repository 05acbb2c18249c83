"""liubai's own health in Prometheus form, and JSON logs whose lines carry a request id.

Metrics live in one process-local registry (``REGISTRY``): ingest facts and rejects by source, lost
BPF events, request and GraphQL latency, and what each agent reports about its spool. With several
uvicorn workers each worker answers /metrics for itself. Label values a sender chooses (agent names,
ingest sources) are bounded in number and length (``MetricSettings``), so senders cannot grow a scrape
without end.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
from contextvars import ContextVar
from typing import Any

from fastapi import APIRouter, FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liubai.lineage.model import GraphBatch, NodeKind

__all__ = [
    "REGISTRY",
    "BoundedLabel",
    "MetricSettings",
    "JsonFormatter",
    "configure_json_logging",
    "include_router_first",
    "install_observability",
    "observe_agent",
    "observe_ingest",
    "request_id",
    "router",
]

REGISTRY = CollectorRegistry(auto_describe=True)

INGEST_FACTS = Counter(
    "liubai_ingest_facts",
    "Nodes and edges received for ingest, by sending source",
    ["source"],
    registry=REGISTRY,
)
INGEST_REJECTED = Counter(
    "liubai_ingest_rejected_records",
    "Rejected records received, by sending source",
    ["source"],
    registry=REGISTRY,
)
INGEST_BATCHES = Counter(
    "liubai_ingest_batches",
    "Ingest batches by outcome (applied, duplicate, refused)",
    ["outcome"],
    registry=REGISTRY,
)
BPF_LOST = Counter(
    "liubai_bpf_lost_events",
    "Kernel events lost by traced runs (ring buffer overruns)",
    ["source"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "liubai_http_request_seconds",
    "HTTP request latency by route and status class",
    ["route", "method", "status"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUERY_SECONDS = Histogram(
    "liubai_graphql_query_seconds",
    "GraphQL request latency",
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
AGENT_SPOOL_BYTES = Gauge(
    "liubai_agent_spool_bytes",
    "Bytes waiting in an agent's spool, as last reported",
    ["agent"],
    registry=REGISTRY,
)
AGENT_SPOOL_BATCHES = Gauge(
    "liubai_agent_spool_batches",
    "Batches waiting in an agent's spool, as last reported",
    ["agent"],
    registry=REGISTRY,
)
AGENT_DROPPED = Gauge(
    "liubai_agent_dropped_batches",
    "Batches an agent dropped because its spool was full (since it started)",
    ["agent"],
    registry=REGISTRY,
)


class MetricSettings(BaseSettings):
    """``LIUBAI_METRICS_*``: how many distinct values, and how many characters of each, a label taken from
    a sender keeps (agent names, ingest sources)."""

    model_config = SettingsConfigDict(env_prefix="LIUBAI_METRICS_", extra="ignore")

    max_label_values: int = Field(default=200, ge=1)
    max_label_chars: int = Field(default=64, ge=8)


class BoundedLabel:
    """A label value chosen by whoever sends a batch, kept to a bounded set: every value is one more time
    series in every scrape, forever, so the first ``max_values`` distinct values (cut to ``max_chars``) keep
    their own series and all later ones share ``other``."""

    OTHER = "other"

    def __init__(self, max_values: int, max_chars: int) -> None:
        self.max_values = max_values
        self.max_chars = max_chars
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        value = value[: self.max_chars]
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.max_values:
                self._seen.add(value)
                return value
        return self.OTHER


_metric_settings = MetricSettings()
_agent_label = BoundedLabel(_metric_settings.max_label_values, _metric_settings.max_label_chars)
_source_label = BoundedLabel(_metric_settings.max_label_values, _metric_settings.max_label_chars)

_request_id: ContextVar[str | None] = ContextVar("liubai_request_id", default=None)
_VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_KNOWN_ROUTES = ("/graphql", "/v1/ingest", "/metrics", "/healthz", "/export")
log = logging.getLogger("liubai.http")


# Unique, not secret: a random per-process prefix and a counter, 32 hex characters like a uuid4 hex
# (uuid4 reads the kernel's random source on every request).
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def request_id() -> str | None:
    """The id of the request being served (None outside a request)."""
    return _request_id.get()


def observe_ingest(source: str, batch: GraphBatch, outcome: str) -> None:
    """Count one ingest request's facts, rejects and lost kernel events."""
    INGEST_BATCHES.labels(outcome).inc()
    if outcome != "applied":
        return
    source = _source_label(source)
    INGEST_FACTS.labels(source).inc(batch.fact_count)
    INGEST_REJECTED.labels(source).inc(len(batch.rejected))
    lost = sum(
        int(n.props.get("lost_events") or 0)
        for n in batch.nodes
        if n.kind is NodeKind.PIPELINE_RUN and isinstance(n.props.get("lost_events"), int)
    )
    if lost:
        BPF_LOST.labels(source).inc(lost)


def observe_agent(name: str, spool_bytes: int, spool_batches: int, dropped: int) -> None:
    """Record what an agent reports of its spool; past the label bound, agents share the ``other`` series."""
    name = _agent_label(name)
    AGENT_SPOOL_BYTES.labels(name).set(spool_bytes)
    AGENT_SPOOL_BATCHES.labels(name).set(spool_batches)
    AGENT_DROPPED.labels(name).set(dropped)


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus text exposition of ``REGISTRY``."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def _route(path: str) -> str:
    """A bounded label: known route prefixes, everything else (UI files, probes for 404s) as 'other'."""
    return next((r for r in _KNOWN_ROUTES if path == r or path.startswith(r + "/")), "other")


class Observability:
    """Pure ASGI middleware: a request id per request (kept from X-Request-ID if sane), latency, one log line.

    The histogram children are looked up once per (route, method, status class): ``labels()`` takes a lock
    and validates its arguments on every call, a measurable share of a small GraphQL request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], tuple[Any, ...]] = {}

    def _observe(self, path: str, method: str, status: int, elapsed: float) -> None:
        route = _route(path)
        key = (route, method, status // 100)
        histograms = self._children.get(key)
        if histograms is None:
            child = REQUEST_SECONDS.labels(route, method, f"{status // 100}xx")
            histograms = (child, QUERY_SECONDS) if route == "/graphql" and method == "POST" else (child,)
            if len(self._children) < 256:  # methods are the client's choice: the cache must stay bounded
                self._children[key] = histograms
        for histogram in histograms:
            histogram.observe(elapsed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next(
            (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"), ""
        )
        rid = incoming if incoming and _VALID_ID.fullmatch(incoming) else _new_request_id()
        token = _request_id.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())],
                }
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            self._observe(scope["path"], scope["method"], status, elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            _request_id.reset(token)


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = _request_id.get()
        if rid is not None:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_json_logging() -> None:
    """Route liubai's loggers through ``JsonFormatter`` on stderr (idempotent).

    The level is ``LIUBAI_LOG_LEVEL`` (``liubai serve --log-level`` sets it for its workers), else INFO,
    where every HTTP request writes one line."""
    root = logging.getLogger("liubai")
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(_level(os.environ.get("LIUBAI_LOG_LEVEL", "info")))
    root.propagate = False


def _level(level: str) -> int:
    named = logging.getLevelName(level.strip().upper())
    return named if isinstance(named, int) else logging.INFO


def include_router_first(app: FastAPI, extra: APIRouter) -> None:
    """Include ``extra`` ahead of any mount (the web UI is mounted at ``/`` and would shadow later routes)."""
    before = len(app.router.routes)
    app.include_router(extra)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    first_mount = next(
        (i for i, r in enumerate(app.router.routes) if isinstance(r, Mount)), len(app.router.routes)
    )
    app.router.routes[first_mount:first_mount] = added


def install_observability(app: FastAPI, *, json_logs: bool = True) -> None:
    """Add request ids, latency metrics and the /metrics route to ``app``."""
    if json_logs:
        configure_json_logging()
    include_router_first(app, router)
    app.add_middleware(Observability)
