"""The HTTP application: GraphQL at /graphql (GraphiQL on GET), /healthz, the export route and the web UI.

``create_app`` is what tests and ``liubai serve`` use; ``create_app_from_env`` is the uvicorn factory for
multi-worker serving, where each worker builds its own app from ``LIUBAI_STORE``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from liubai.api.auth import AuthSettings, install_auth
from liubai.api.export_http import router as export_router
from liubai.api.ingest_http import install_ingest
from liubai.api.metrics import install_observability
from liubai.api.otlp_http import install_otlp
from liubai.api.request_guard import GuardSettings, RequestGuard
from liubai.api.schema import schema
from liubai.api.schema_context import ApiContext
from liubai.lineage.config import Settings
from liubai.lineage.store import LineageStore, StoreError, StoreUnavailable, open_store
from liubai.lineage.text import clip
from liubai.lineage.urls import hide_password, redact_url

__all__ = [
    "CSP",
    "GRAPHIQL_CSP",
    "GraphQLEndpoint",
    "GraphQLView",
    "StoreHolder",
    "create_app",
    "create_app_from_env",
    "web_dir",
]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# GraphiQL's page is web/graphiql.html with GraphiQL, React and ReactDOM vendored under web/vendor/graphiql:
# it works offline, and the only relaxation is inline style attributes, which GraphiQL's editor sets.
GRAPHIQL_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
MAX_BODY_BYTES = 1 << 20
_CSP = (b"content-security-policy", CSP.encode())
_GRAPHIQL_CSP = (b"content-security-policy", GRAPHIQL_CSP.encode())
_COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]

_FALLBACK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>liubai</title></head>
<body><h1>liubai</h1><p>The web UI is not installed here (no web/index.html; set LIUBAI_WEB_DIR or
reinstall liubai). The GraphQL API answers POST requests at /graphql.</p></body></html>
"""


def web_dir() -> Path | None:
    """The UI's static files: ``LIUBAI_WEB_DIR``, else ``web/`` beside the ``api`` package: the checkout's
    ``web/`` folder, or the ``liubai.web`` package data of an installed wheel."""
    configured = os.environ.get("LIUBAI_WEB_DIR")
    candidate = Path(configured) if configured else Path(__file__).resolve().parent.parent / "web"
    return candidate if (candidate / "index.html").is_file() else None


class StoreHolder:
    """Opens the store on first use and again after a failed open, so the API can start before its store."""

    def __init__(self, state: State, url: str | None = None, store: LineageStore | None = None) -> None:
        self.url = store.url if store is not None else (url or Settings().store)
        self._state = state
        self._store = store
        self._owned = store is None
        self._lock = threading.Lock()
        state.store_url = self.url
        state.store = store  # what other routers (GET /export) read

    def get(self) -> LineageStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    try:
                        self._store = open_store(self.url)
                    except StoreUnavailable:
                        raise
                    except StoreError as exc:
                        raise StoreUnavailable(str(exc)) from exc
                    self._state.store = self._store
        return self._store

    def close(self) -> None:
        if self._owned and self._store is not None:
            self._store.close()
            self._store = self._state.store = None


class GraphQLView(GraphQL[ApiContext, None]):
    """strawberry's plain ASGI view at /graphql, with the vendored, offline GraphiQL page instead of its
    CDN-loading one and orjson for request and answer bodies (a 10,000-node lineage is megabytes of JSON).

    ``GraphQLEndpoint`` hands it /graphql straight from the middleware stack: FastAPI's route machinery
    (routing, dependency solving, exception and exit-stack middleware) cost a sizeable share of the CPU
    time of a small lineage query (docs/performance.md).
    """

    def __init__(self, holder: StoreHolder) -> None:
        super().__init__(schema, graphql_ide="graphiql", subscription_protocols=())
        self._store = holder.get

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> ApiContext:
        return ApiContext(self._store)  # resolvers need only the store

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)  # orjson.JSONDecodeError is a json.JSONDecodeError: still a 400

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data, default=str)

    async def render_graphql_ide(self, request: Request) -> Response:
        web = web_dir()
        page = web / "graphiql.html" if web is not None else None
        if page is not None and page.is_file():
            return HTMLResponse(page.read_text(encoding="utf-8"))
        # never strawberry's own page: it loads GraphiQL from a CDN, which the CSP (rightly) blocks
        return HTMLResponse(_FALLBACK_PAGE, status_code=404)


class GraphQLEndpoint:
    """Pure ASGI: HTTP requests for ``path`` go to ``view``, everything else on to the FastAPI app.

    Installed as the innermost middleware, so body limit, auth, metrics and security headers still wrap
    every GraphQL request exactly as they wrap the other routes."""

    def __init__(self, app: ASGIApp, view: ASGIApp, path: str = "/graphql") -> None:
        self.app = app
        self.view = view
        self.paths = (path, path + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            await self.view(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class SecurityHeaders:
    """Pure ASGI middleware (no body buffering) adding CSP and friends to every HTTP response."""

    def __init__(self, app: ASGIApp, graphql_path: str = "/graphql") -> None:
        self.app = app
        self.graphql_path = graphql_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_ide_request = scope["method"] == "GET" and scope["path"].rstrip("/") == self.graphql_path

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != b"content-security-policy"
                ]
                csp = _CSP
                if is_ide_request:
                    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                    if content_type.startswith(b"text/html"):
                        csp = _GRAPHIQL_CSP
                headers.append(csp)
                headers.extend(_COMMON_HEADERS)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuse GraphQL request bodies over ``max_bytes`` before anything parses them (queries are small)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, path: str = "/graphql") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/") == self.path:
            length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
            problem = None
            if length is None:
                problem = (411, "send a Content-Length header")
            elif not length.isdigit() or int(length) > self.max_bytes:
                problem = (413, f"request body over {self.max_bytes} bytes")
            if problem is not None:
                status, message = problem
                response = JSONResponse(
                    {
                        "errors": [
                            {
                                "message": message,
                                "extensions": {"code": "BAD_INPUT", "message": message, "retryable": False},
                            }
                        ]
                    },
                    status_code=status,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 for a bad query parameter, quoting each offending input only up to ``clip``'s limit:
    the default answer hands the whole value back."""
    if not isinstance(exc, RequestValidationError):  # pragma: no cover - registered for that type only
        raise exc
    detail = [
        {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg")}
        | ({"input": clip(str(e["input"]))} if e.get("input") is not None else {})
        for e in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def create_app(
    store_url: str | None = None,
    store: LineageStore | None = None,
    auth: AuthSettings | None = None,
    guard: GuardSettings | None = None,
) -> FastAPI:
    """The FastAPI app over one store: pass an open ``store`` (left open) or a ``store_url``.

    A store named by URL is opened now if it can be, otherwise on the first request that needs it.
    Auth follows ``auth``, else ``LIUBAI_AUTH`` / ``LIUBAI_TOKENS`` from the environment; the extra Host
    names follow ``guard``, else ``LIUBAI_ALLOWED_HOSTS``.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        holder.close()

    app = FastAPI(
        title="liubai", summary="Audit lineage graph API", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    holder = StoreHolder(app.state, store_url, store)
    app.state.store_holder = holder
    with contextlib.suppress(StoreError):
        holder.get()

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Liveness plus store readability (503 with the reason when the store is down or damaged)."""
        try:  # the store's probe reads more than one id would (a damaged file fails it), at any graph size
            await run_in_threadpool(lambda: holder.get().probe())
        except StoreError as exc:
            return JSONResponse(
                {
                    "status": "unavailable",
                    "store": redact_url(holder.url),
                    "error": hide_password(str(exc), holder.url),
                },
                status_code=503,
            )
        return JSONResponse({"status": "ok", "store": redact_url(holder.url)})

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.include_router(export_router)
    install_ingest(app)
    install_otlp(app)

    web = web_dir()
    if web is not None:
        app.mount("/", StaticFiles(directory=web, html=True), name="web")
    else:

        @app.get("/", response_class=HTMLResponse)
        async def no_ui(_: Request) -> str:
            return _FALLBACK_PAGE

    app.add_middleware(GraphQLEndpoint, view=GraphQLView(holder))
    app.add_middleware(BodyLimit)
    install_auth(app, auth)
    # Before auth: a browser-borne request is refused whatever token it carries.
    app.add_middleware(RequestGuard, allowed_hosts=(guard or GuardSettings()).allowed_hosts)
    install_observability(app)
    app.add_middleware(SecurityHeaders)  # added last = outermost: even refusals carry the headers
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory (``--factory api.app:create_app_from_env``): the store from ``LIUBAI_STORE``.

    The objects of a built app live as long as the worker, so they are moved out of the collector's reach
    (``gc.freeze``): otherwise every full collection walks them again, tens of milliseconds that a large
    answer, which allocates enough to trigger one, would pay each time."""
    app = create_app(Settings().store)
    gc.collect()
    gc.freeze()
    return app
