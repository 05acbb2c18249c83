"""``GET /export``: the export formats as downloads, for the web UI's export button.

The selection is resolved and walked before the response starts, so a bad request gets a clean 4xx
with a structured error; the body then streams from the same writers the CLI uses.

Resolving and walking the selection runs under the GraphQL query time limit (``LIUBAI_QUERY_TIMEOUT_S``):
past it the store stops its work and the request gets a 400 saying so; streaming the walked facts is
not timed.

The store comes from the ``get_store`` dependency: the app factory's ``app.state.store_holder`` (or
``app.state.store``), else the store named by ``app.state.store_url`` or ``LIUBAI_STORE``. An app may
override it with ``app.dependency_overrides``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse

from liubai.api.errors import ErrorCode
from liubai.api.limits import LimitSettings
from liubai.lineage.config import Settings
from liubai.lineage.export import (
    FILE_SUFFIX,
    MAX_DEPTH,
    MAX_LIMIT,
    MEDIA_TYPES,
    ExportError,
    ExportMeta,
    Selection,
    Selector,
    parse_time_bound,
    render,
    select,
)
from liubai.lineage.model import Direction
from liubai.lineage.slsa import SlsaError, build_provenance, run_id_of, statement_bytes
from liubai.lineage.store import LineageStore, StoreError, open_store
from liubai.lineage.store.base import StoreTimeout
from liubai.lineage.store.deadline import deadline
from liubai.lineage.text import clip

__all__ = ["get_store", "router"]

router = APIRouter()


def get_store(request: Request) -> Iterator[LineageStore]:
    """The app's store (through its holder, which retries a failed open); else one opened for this request."""
    state = request.app.state
    holder = getattr(state, "store_holder", None)
    shared = getattr(state, "store", None)
    if holder is not None or shared is not None:
        try:
            store = cast(LineageStore, holder.get() if holder is not None else shared)
        except StoreError as exc:
            raise _error(
                503, ErrorCode.STORE_UNAVAILABLE, f"store unavailable: {exc}", retryable=True
            ) from None
        yield store
        return
    url = getattr(state, "store_url", None) or Settings().store
    try:
        own = open_store(url)
    except StoreError as exc:
        raise _error(
            503, ErrorCode.STORE_UNAVAILABLE, f"cannot open the store: {exc}", retryable=True
        ) from None
    try:
        yield own
    finally:
        own.close()


def _error(status: int, code: ErrorCode, message: str, *, retryable: bool = False) -> HTTPException:
    return HTTPException(status, detail={"code": code.value, "message": message, "retryable": retryable})


@router.get(
    "/export",
    summary="Download a slice of the lineage graph",
    description="Example: GET /export?commit=3f2a9c1&depth=4&format=graphml",
    response_class=Response,
)
def export_endpoint(
    store: Annotated[LineageStore, Depends(get_store)],
    node: str | None = None,
    audit_id: str | None = None,
    commit: str | None = None,
    trace: str | None = None,
    run: str | None = None,
    depth: Annotated[int, Query(ge=0, le=MAX_DEPTH)] = 3,
    direction: Direction = Direction.BOTH,
    since: str | None = None,
    until: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100_000,
    format: str = "json",
) -> Response:
    given = [
        (sel, val)
        for sel, val in (
            (Selector.NODE, node),
            (Selector.AUDIT_ID, audit_id),
            (Selector.COMMIT, commit),
            (Selector.TRACE, trace),
            (Selector.RUN, run),
        )
        if val
    ]
    if len(given) != 1:
        raise _error(400, ErrorCode.BAD_INPUT, "name exactly one of node, audit_id, commit, trace, run")
    sel, value = given[0]
    seconds = LimitSettings().timeout_s
    try:
        with deadline(seconds):
            selection = Selection(
                sel,
                value,
                depth=depth,
                direction=direction,
                since=parse_time_bound(since, "since") if since else None,
                until=parse_time_bound(until, "until") if until else None,
                limit=limit,
            )
            if format == "slsa":
                return _slsa(store, selection)
            if format not in MEDIA_TYPES:
                raise ExportError(
                    f"unknown format {clip(format)!r}; use one of: {', '.join([*MEDIA_TYPES, 'slsa'])}"
                )
            source = select(store, selection)
    except ExportError as exc:
        missing = exc.code is ErrorCode.NOT_FOUND  # by code, never by the message's words
        raise _error(
            404 if missing else 400, ErrorCode.NOT_FOUND if missing else ErrorCode.BAD_INPUT, exc.message
        ) from None
    except StoreTimeout:
        raise _error(
            400,
            ErrorCode.BAD_INPUT,
            f"export took longer than the {seconds:g} s limit; ask for less (smaller depth or limit)",
        ) from None
    except StoreError as exc:
        raise _error(503, ErrorCode.STORE_UNAVAILABLE, str(exc), retryable=exc.retryable) from None
    meta = ExportMeta.of(selection, source, store.url)
    headers = {"Content-Disposition": f'attachment; filename="liubai-export{FILE_SUFFIX[format]}"'}
    if source.truncated:
        headers["X-Liubai-Truncated"] = "true"
    return StreamingResponse(render(source, format, meta), media_type=MEDIA_TYPES[format], headers=headers)


def _slsa(store: LineageStore, selection: Selection) -> Response:
    if selection.selector not in (Selector.RUN, Selector.NODE):
        raise ExportError("format=slsa is made for one pipeline run: pass run=<run id>")
    value = (selection.value or "").strip()
    run_id = value if selection.selector is Selector.NODE else run_id_of(value)
    try:
        statement: dict[str, Any] = build_provenance(store, run_id)
    except SlsaError as exc:
        raise ExportError(exc.message, code=exc.code) from None
    return Response(
        statement_bytes(statement),
        media_type="application/vnd.in-toto+json",
        headers={"Content-Disposition": 'attachment; filename="liubai-provenance.intoto.json"'},
    )
