"""``POST /v1/ingest``: agents push graph batches (``liubai.lineage.wire`` envelopes), applied exactly once.

Exactly once, even across API restarts and worker processes: the batch id is the batch's ``once``
checkpoint ``("ingest", <id>)``, which the store checks and records inside the same write transaction
as the batch's facts; a batch whose checkpoint exists is answered ``duplicate`` and changes nothing.
Bodies over the size limit get 413 before they are parsed, stating the limit in ``detail.limit_bytes``
so an agent builds its later batches under it; a body that is not a valid envelope gets 422 naming the
field.

Every batch is written as its sender's token (``token:<name>``; ``http:anonymous`` without auth), never
as what the envelope says, so the store keeps it from changing what local collectors wrote
(``liubai.lineage.provenance``). A sender may set only checkpoints of its own writer name: another source's
checkpoint (the git collector's position, say) is refused with 422.

The batch reaches the store through the ingest pipeline's write step (``StoreSink``), as every
collector's batches do, with the sender's writer and the ``once`` checkpoint set on the batch itself.
It is tried once: a store that is briefly unavailable is answered 503 at once, and the sender (an
agent) retries under its own policy, so that a request never holds a server worker through backoff.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from liubai.api.auth import Principal, require_scope
from liubai.api.metrics import INGEST_BATCHES, include_router_first, observe_agent, observe_ingest
from liubai.collector.ingest import StoreSink
from liubai.collector.retry import RetryPolicy
from liubai.lineage.config import Settings
from liubai.lineage.model import GraphBatch
from liubai.lineage.provenance import remote_writer
from liubai.lineage.store import LineageStore, StoreError, open_store
from liubai.lineage.wire import DecodedBatch, WireError, decode_batch

__all__ = [
    "CHECKPOINT_SOURCE",
    "IngestSettings",
    "apply_batch",
    "install_ingest",
    "read_limited",
    "request_store",
    "router",
    "writer_of",
]

CHECKPOINT_SOURCE = "ingest"
APPLIED = "applied"


class IngestSettings(BaseSettings):
    """``LIUBAI_INGEST_MAX_BYTES`` caps one request body (default 16 MiB)."""

    model_config = SettingsConfigDict(env_prefix="LIUBAI_INGEST_", extra="ignore")

    max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)


router = APIRouter()
_ONE_TRY = RetryPolicy(attempts=1)  # see the module doc: the sender retries, not the request
_inflight: dict[str, asyncio.Lock] = {}


def _error(status: int, code: str, message: str, *, retryable: bool = False, **more: Any) -> HTTPException:
    return HTTPException(status, detail={"code": code, "message": message, "retryable": retryable, **more})


def request_store(request: Request) -> LineageStore:
    """The app's store; 503 (retryable) while it cannot be opened."""
    state = request.app.state
    holder = getattr(state, "store_holder", None)
    try:
        if holder is not None:
            return cast(LineageStore, holder.get())
        store = getattr(state, "store", None)
        if store is None:  # a bare app: open the configured store once and keep it
            store = state.store = open_store(getattr(state, "store_url", None) or Settings().store)
        return cast(LineageStore, store)
    except StoreError as exc:
        raise _error(503, "STORE_UNAVAILABLE", f"store unavailable: {exc}", retryable=True) from None


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, or 413 naming ``limit`` as soon as it is known to be larger."""
    too_big = _error(
        413,
        "TOO_LARGE",
        f"request body is larger than the {limit}-byte ingest limit; send smaller batches",
        limit_bytes=limit,
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def writer_of(request: Request) -> str:
    """The writer a request's batch is written as: the token that authenticated it."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return remote_writer(principal.name if principal is not None else None)


def foreign_checkpoint(decoded: DecodedBatch, writer: str) -> str | None:
    """The first checkpoint source of the batch that is not ``writer``'s own, if any."""
    return next((src for src, _ in sorted(decoded.batch.checkpoints) if src != writer), None)


def apply_batch(store: LineageStore, decoded: DecodedBatch, writer: str) -> dict[str, Any]:
    """Apply one decoded batch as ``writer`` unless its id was applied before; the store decides that
    inside the write that lands the id with the facts, so concurrent workers apply it once."""
    bid = decoded.batch_id
    duplicate = {"batch_id": bid, "status": "duplicate"}
    if store.get_checkpoint(CHECKPOINT_SOURCE, bid) is not None:
        return duplicate
    batch = decoded.batch
    work = GraphBatch(
        batch.nodes,
        batch.edges,
        batch.rejected,
        dict(batch.checkpoints),
        writer=writer,
        once=(CHECKPOINT_SOURCE, bid),
    )
    work.checkpoints[(CHECKPOINT_SOURCE, bid)] = APPLIED
    result = StoreSink(store, writer, _ONE_TRY).write(work)
    if result.duplicate:
        return duplicate
    return {
        "batch_id": bid,
        "status": APPLIED,
        "nodes": len(batch.nodes),
        "edges": len(batch.edges),
        "rejected": len(batch.rejected),
        "nodes_created": result.nodes_created,
        "nodes_updated": result.nodes_updated,
        "edges_created": result.edges_created,
        "edges_updated": result.edges_updated,
        "rejected_added": result.rejected_added,
        "conflicts": result.conflicts,
    }


@router.post("/v1/ingest", dependencies=[Depends(require_scope("ingest"))])
async def ingest(request: Request, store: Annotated[LineageStore, Depends(request_store)]) -> dict[str, Any]:
    """Apply one ``liubai.batch`` envelope (see ``liubai.lineage.wire``); replays answer ``duplicate``.

    Example: curl -H 'Authorization: Bearer lb_…' -H 'Content-Type: application/json' --data-binary @batch.json \
    http://127.0.0.1:8000/v1/ingest
    """
    settings: IngestSettings = getattr(request.app.state, "ingest_settings", None) or IngestSettings()
    body = await read_limited(request, settings.max_bytes)
    try:
        decoded = await run_in_threadpool(decode_batch, body)
    except WireError as exc:
        INGEST_BATCHES.labels("refused").inc()
        raise _error(422, "BAD_BATCH", f"refused batch: {exc}") from None
    if any(src == CHECKPOINT_SOURCE for src, _ in decoded.batch.checkpoints):
        INGEST_BATCHES.labels("refused").inc()
        raise _error(422, "BAD_BATCH", f"refused batch: checkpoint source {CHECKPOINT_SOURCE!r} is reserved")
    writer = writer_of(request)
    foreign = foreign_checkpoint(decoded, writer)
    if foreign is not None:
        INGEST_BATCHES.labels("refused").inc()
        raise _error(
            422,
            "BAD_BATCH",
            f"refused batch: checkpoint source {foreign!r} belongs to another writer; this sender writes "
            f"as {writer!r} and may set only checkpoints of that source",
        )
    if decoded.agent is not None:
        a = decoded.agent
        observe_agent(a.name, a.spool_bytes, a.spooled_batches, a.dropped_batches)
    lock = _inflight.setdefault(decoded.batch_id, asyncio.Lock())
    try:
        async with lock:  # the same batch sent twice at once is applied once
            answer = await run_in_threadpool(apply_batch, store, decoded, writer)
    except StoreError as exc:
        INGEST_BATCHES.labels("failed").inc()
        status, code = (503, "STORE_UNAVAILABLE") if exc.retryable else (500, "STORE_ERROR")
        raise _error(status, code, f"store failed: {exc}", retryable=exc.retryable) from None
    finally:
        if not lock.locked():
            _inflight.pop(decoded.batch_id, None)
    observe_ingest(decoded.source, decoded.batch, answer["status"])
    return answer


def install_ingest(app: FastAPI, settings: IngestSettings | None = None) -> None:
    """Add ``POST /v1/ingest`` to ``app`` (ahead of the web UI's catch-all mount)."""
    app.state.ingest_settings = settings or IngestSettings()
    include_router_first(app, router)
