"""Requests a browser carries for another site: refused before auth or any route sees them.

With the default no-auth server on loopback, any page a user opens could otherwise write into the graph:
a cross-origin ``fetch(..., {mode: 'no-cors'})`` or a form POST is a "simple" request, sent without a
CORS preflight, and DNS rebinding lets a page reach a loopback server under the attacker's own name.
``RequestGuard`` (pure ASGI, no body buffering) therefore wants:

* a ``Host`` this server answers to: localhost, 127.0.0.1 or [::1] with the server's port, the address
  the connection reached, or a name from ``--allowed-host`` / ``LIUBAI_ALLOWED_HOSTS`` (421 otherwise);
* on every state-changing request (any method but GET, HEAD, OPTIONS) and on a GraphQL GET that runs a
  query: no ``Origin`` but the server's own (or an allowed name) and no ``Sec-Fetch-Site`` saying another
  site (403);
* on every state-changing request: ``Content-Type: application/json``, which no simple request can
  carry (415); the OTLP receiver's paths also take ``application/x-protobuf``, which no simple request
  can carry either (a browser preflights it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from liubai.lineage.text import clip

__all__ = ["GuardSettings", "RequestGuard", "parse_host"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
JSON_TYPES = frozenset({"application/json"})  # what strawberry and the ingest route parse
OTLP_PATHS = frozenset({"/v1/logs", "/v1/traces", "/v1/metrics"})
OTLP_TYPES = frozenset({"application/json", "application/x-protobuf"})  # the two OTLP/HTTP encodings
DEFAULT_PORTS = {"http": 80, "https": 443}


class GuardSettings(BaseSettings):
    """``LIUBAI_ALLOWED_HOSTS``: comma-separated extra names (``name`` for any port, ``name:port``)."""

    model_config = SettingsConfigDict(env_prefix="LIUBAI_", extra="ignore")

    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def parse_host(value: str) -> tuple[str, int | None] | None:
    """``name[:port]`` (IPv6 in brackets) as lower-case name and port; None if it is not of that form."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
    else:
        name, sep, port_text = value.partition(":")
        rest = sep + port_text
    if not name or (rest and (not rest.startswith(":") or not rest[1:].isdigit())):
        return None
    return name, int(rest[1:]) if rest else None


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


class RequestGuard:
    """Pure ASGI: refuse a wrong Host, a foreign Origin and a non-JSON body on state-changing requests."""

    def __init__(
        self, app: ASGIApp, allowed_hosts: Sequence[str] = (), graphql_path: str = "/graphql"
    ) -> None:
        self.app = app
        self.graphql_paths = (graphql_path, graphql_path + "/")
        entries = [parse_host(entry) for entry in allowed_hosts]
        bad = [entry for entry, parsed in zip(allowed_hosts, entries, strict=True) if parsed is None]
        if bad:
            raise ValueError(f"allowed host {clip(bad[0])!r} is not a host name with an optional :port")
        self.allowed = frozenset(e for e in entries if e is not None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = origin = content_type = fetch_site = None
        for key, value in scope["headers"]:
            if key == b"host":
                host = value.decode("latin-1")
            elif key == b"origin":
                origin = value.decode("latin-1")
            elif key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"sec-fetch-site":
                fetch_site = value.decode("latin-1")
        problem = self._problem(scope, host, origin, content_type, fetch_site)
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, code, message = problem
        await self._refusal(scope, status, code, message)(scope, receive, send)

    def _problem(
        self,
        scope: Scope,
        host: str | None,
        origin: str | None,
        content_type: str | None,
        fetch_site: str | None,
    ) -> tuple[int, str, str] | None:
        if host is None:
            return 400, "BAD_INPUT", "send a Host header"
        parsed = parse_host(host)
        if parsed is None or not self._host_allowed(scope, *parsed):
            return (
                421,
                "BAD_INPUT",
                f"Host {clip(host)!r} is not a name this server answers to; "
                "allow it with --allowed-host (LIUBAI_ALLOWED_HOSTS)",
            )
        method = scope["method"]
        changes = method not in SAFE_METHODS
        runs_query = (
            method == "GET" and scope["path"] in self.graphql_paths and bool(scope.get("query_string"))
        )
        if changes or runs_query:
            if origin is not None and not self._own_origin(origin, host, scope.get("scheme", "http")):
                return (
                    403,
                    "FORBIDDEN",
                    f"cross-origin request refused: Origin {clip(origin)!r} is not this server's own",
                )
            if origin is None and fetch_site in ("cross-site", "same-site"):
                return 403, "FORBIDDEN", f"cross-origin request refused (Sec-Fetch-Site: {clip(fetch_site)})"
        if changes:
            media = (content_type or "").partition(";")[0].strip().lower()
            otlp = scope["path"] in OTLP_PATHS
            if media not in (OTLP_TYPES if otlp else JSON_TYPES):
                shown = repr(clip(content_type)) if content_type else "none"
                wanted = "application/x-protobuf or application/json" if otlp else "application/json"
                return 415, "BAD_INPUT", f"send Content-Type: {wanted} (got {shown})"
        return None

    def _host_allowed(self, scope: Scope, name: str, port: int | None) -> bool:
        server = scope.get("server")
        server_port = server[1] if server else None
        default_port = DEFAULT_PORTS.get(scope.get("scheme", "http"))
        port_is_ours = port == server_port or (port is None and server_port == default_port)
        if port_is_ours and (
            name in LOOPBACK_NAMES or (server and name == _bracketed(str(server[0]).lower()))
        ):
            return True
        return (name, None) in self.allowed or (name, port) in self.allowed

    def _own_origin(self, origin: str, host: str, scheme: str) -> bool:
        """The request's own Host, or a name the operator allowed: a proxy may pass its upstream's address
        as Host while the browser names the proxy in Origin."""
        if _same_origin(origin, host, scheme):
            return True
        _, sep, netloc = origin.strip().lower().partition("://")
        named = parse_host(netloc) if sep and "/" not in netloc else None
        return named is not None and ((named[0], None) in self.allowed or named in self.allowed)

    def _refusal(self, scope: Scope, status: int, code: str, message: str) -> JSONResponse:
        if scope["path"] in self.graphql_paths:  # GraphQL clients read errors in GraphQL's shape
            ext = {"code": code, "message": message, "retryable": False}
            return JSONResponse({"errors": [{"message": message, "extensions": ext}]}, status_code=status)
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _same_origin(origin: str, host: str, scheme: str) -> bool:
    """The Origin names this server as the request's Host does (a proxy may have ended TLS: any scheme)."""
    origin_scheme, sep, netloc = origin.strip().lower().partition("://")
    if not sep or "/" in netloc:
        return False  # "null" (sandboxed or file: pages) and anything malformed
    mine, theirs = parse_host(host), parse_host(netloc)
    if mine is None or theirs is None:
        return False
    my_port = mine[1] if mine[1] is not None else DEFAULT_PORTS.get(scheme)
    their_port = theirs[1] if theirs[1] is not None else DEFAULT_PORTS.get(origin_scheme)
    return mine[0] == theirs[0] and (my_port == their_port or {my_port, their_port} <= {80, 443})
