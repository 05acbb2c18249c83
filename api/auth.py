"""API tokens with scopes, stored hashed, and the checks that keep an exposed API closed.

A token is ``lb_<id>_<secret>``: the id finds the row, the secret (32 random bytes) is compared in
constant time against its stored sha256, so the token file never holds a usable credential. Scopes:
``read`` (GraphQL, export, metrics), ``ingest`` (``POST /v1/ingest`` and the OTLP receiver's ``/v1/logs``, ``/v1/traces``, ``/v1/metrics``), ``admin`` (everything).
Revocation takes effect on the next request: every request reads the token file.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from liubai.lineage.errors import ErrorCode, LiubaiError

__all__ = [
    "AuthError",
    "AuthSettings",
    "Principal",
    "TokenScope",
    "TokenInfo",
    "TokenStore",
    "UnsafeBind",
    "check_bind_safety",
    "install_auth",
    "prepare_serve",
    "require_scope",
    "route_scope",
    "single_authorization",
]


class TokenScope(StrEnum):
    READ = "read"
    INGEST = "ingest"
    ADMIN = "admin"


def default_tokens_path() -> Path:
    return Path(user_data_dir("liubai")) / "tokens.db"


class AuthSettings(BaseSettings):
    """``LIUBAI_AUTH=1`` switches auth on; ``LIUBAI_TOKENS`` names the token file."""

    model_config = SettingsConfigDict(env_prefix="LIUBAI_", extra="ignore")

    auth: bool = False
    tokens: Path = Field(default_factory=default_tokens_path)


_STATUS_CODES = {400: ErrorCode.BAD_INPUT, 401: ErrorCode.UNAUTHENTICATED, 403: ErrorCode.FORBIDDEN}


class AuthError(LiubaiError):
    """400 (ambiguous credentials), 401 (who are you?) or 403 (you may not), with the matching code;
    ``message`` is safe to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, code=_STATUS_CODES[status])
        self.status = status


class UnsafeBind(RuntimeError):
    """Listening beyond loopback with nobody checked at the door."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return TokenScope.ADMIN.value in self.scopes or scope in self.scopes


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)
"""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class TokenStore:
    """The token file: a small SQLite database readable only by its owner."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        if fresh:
            self.path.chmod(0o600)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(_SCHEMA)
        self._lock = threading.Lock()

    def create(self, name: str, scopes: Sequence[str]) -> tuple[TokenInfo, str]:
        """A new token; the plain token is returned once and never stored."""
        wanted = tuple(sorted({TokenScope(s).value for s in scopes}))  # ValueError names a bad scope
        if not wanted:
            raise ValueError("a token needs at least one scope (read, ingest, admin)")
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        info = TokenInfo(token_id, name, wanted, _now(), None)
        with self._lock:
            self._conn.execute(
                "INSERT INTO tokens(id, name, scopes, secret_sha256, created_at) VALUES (?,?,?,?,?)",
                (token_id, name, ",".join(wanted), _digest(secret), info.created_at),
            )
        return info, f"lb_{token_id}_{secret}"

    def create_first_admin(self, name: str) -> tuple[TokenInfo, str] | None:
        """An admin token if no live one exists, else None; one transaction, so two processes starting
        at once (a container restarted while its first start still runs) never both create one."""
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        info = TokenInfo(token_id, name, (TokenScope.ADMIN.value,), _now(), None)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                live = self._conn.execute("SELECT scopes FROM tokens WHERE revoked_at IS NULL").fetchall()
                if any(TokenScope.ADMIN.value in row[0].split(",") for row in live):
                    self._conn.execute("ROLLBACK")
                    return None
                self._conn.execute(
                    "INSERT INTO tokens(id, name, scopes, secret_sha256, created_at) VALUES (?,?,?,?,?)",
                    (token_id, name, TokenScope.ADMIN.value, _digest(secret), info.created_at),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return info, f"lb_{token_id}_{secret}"

    def list(self) -> list[TokenInfo]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, name, scopes, created_at, revoked_at FROM tokens ORDER BY created_at, id"
            ).fetchall()
        return [TokenInfo(r[0], r[1], tuple(r[2].split(",")), r[3], r[4]) for r in rows]

    def revoke(self, token_id: str) -> bool:
        """True if a live token was revoked; False if there is no such token or it already was."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (_now(), token_id)
            )
        return cur.rowcount == 1

    def verify(self, token: str) -> Principal:
        """The principal a presented token stands for; AuthError(401) for a bad, unknown or revoked one."""
        prefix, _, rest = token.partition("_")
        token_id, _, secret = rest.partition("_")
        if prefix != "lb" or not token_id or not secret:
            raise AuthError(401, "malformed token (expected lb_<id>_<secret>)")
        with self._lock:
            row = self._conn.execute(
                "SELECT name, scopes, secret_sha256, revoked_at FROM tokens WHERE id = ?", (token_id,)
            ).fetchone()
        # Compare even for an unknown id, so timing does not tell which ids exist.
        stored = row[2] if row is not None else b"\0" * 32
        if not hmac.compare_digest(_digest(secret), stored) or row is None:
            raise AuthError(401, "invalid token")
        if row[3] is not None:
            raise AuthError(401, f"token {token_id} was revoked at {row[3]}")
        return Principal(token_id, row[0], frozenset(row[1].split(",")))

    def close(self) -> None:
        self._conn.close()


# --------------------------------------------------------------------------- HTTP


def bearer(header: str | None) -> str:
    if not header:
        raise AuthError(401, "missing token: send 'Authorization: Bearer <token>'")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError(401, "unsupported Authorization header: send 'Authorization: Bearer <token>'")
    return value.strip()


# Path prefix -> scope needed; first match wins. Paths not listed serve no lineage data (liveness,
# the UI's static files) and stay open so that probes and the login page work.
DEFAULT_RULES: tuple[tuple[str, str], ...] = (
    ("/v1/ingest", TokenScope.INGEST.value),
    ("/v1/logs", TokenScope.INGEST.value),
    ("/v1/traces", TokenScope.INGEST.value),
    ("/v1/metrics", TokenScope.INGEST.value),
    ("/graphql", TokenScope.READ.value),
    ("/export", TokenScope.READ.value),
    ("/metrics", TokenScope.READ.value),
    ("/v1/", TokenScope.READ.value),
)
PUBLIC_PATHS = frozenset({"/healthz"})


def route_scope(path: str, rules: Sequence[tuple[str, str]] = DEFAULT_RULES) -> str | None:
    """The scope a request path needs, or None for a public path."""
    if path in PUBLIC_PATHS:
        return None
    for prefix, scope in rules:
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return scope
    return None


class AuthMiddleware:
    """Pure ASGI: every request to a protected path must carry a token with the scope the path needs."""

    def __init__(
        self, app: ASGIApp, tokens: TokenStore, rules: Sequence[tuple[str, str]] = DEFAULT_RULES
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.rules = tuple(rules)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = route_scope(scope["path"], self.rules)
        if needed is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if _is_graphiql_page(scope, headers):
            await self.app(scope, receive, send)
            return
        try:
            single_authorization(sum(1 for k, _ in scope.get("headers", []) if k.lower() == b"authorization"))
            principal = authorize(self.tokens, headers.get("authorization"), needed)
        except AuthError as exc:
            await _deny(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _is_graphiql_page(scope: Scope, headers: dict[str, str]) -> bool:
    """The GraphiQL page itself is public: it holds no data, and a browser cannot send a token when it
    navigates to it. Any GET carrying a query string (``?query=``) still needs the read scope."""
    return (
        scope.get("method") == "GET"
        and scope["path"] in ("/graphql", "/graphql/")
        and not scope.get("query_string")
        and "text/html" in headers.get("accept", "")
    )


def single_authorization(count: int) -> None:
    """Two Authorization headers are refused, not resolved: a proxy and a client that each add one must not
    leave it to header order which token is checked, or which one a later hop sees."""
    if count > 1:
        raise AuthError(400, f"send one Authorization header, not {count}")


def authorize(tokens: TokenStore, header: str | None, scope: str) -> Principal:
    principal = tokens.verify(bearer(header))
    if not principal.allows(scope):
        raise AuthError(
            403,
            f"token {principal.token_id} ({principal.name}) lacks scope {scope!r}; it has: "
            + ", ".join(sorted(principal.scopes)),
        )
    return principal


def _deny(exc: AuthError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="liubai"'} if exc.status == 401 else None
    return JSONResponse(
        {"error": {"code": exc.code.value, "message": exc.message}}, status_code=exc.status, headers=headers
    )


def install_auth(app: FastAPI, settings: AuthSettings | None = None) -> TokenStore | None:
    """Guard every data route of ``app`` when auth is on (``LIUBAI_AUTH=1``); a no-op otherwise."""
    settings = settings or AuthSettings()
    app.state.auth_on = settings.auth
    if not settings.auth:
        app.state.tokens = None
        return None
    tokens = TokenStore(settings.tokens)
    app.state.tokens = tokens
    app.add_middleware(AuthMiddleware, tokens=tokens)
    return tokens


def require_scope(scope: str) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency for routers that check their own scope (defence in depth behind the middleware)."""
    TokenScope(scope)

    async def dependency(request: Request) -> None:
        tokens: TokenStore | None = getattr(request.app.state, "tokens", None)
        if tokens is None:
            return
        try:
            single_authorization(len(request.headers.getlist("authorization")))
            authorize(tokens, request.headers.get("authorization"), scope)
        except AuthError as exc:
            raise HTTPException(
                exc.status,
                detail={"code": exc.code.value, "message": exc.message},
                headers={"WWW-Authenticate": 'Bearer realm="liubai"'} if exc.status == 401 else None,
            ) from None

    return dependency


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def prepare_serve(host: str, auth: bool, insecure: bool) -> AuthSettings:
    """``liubai serve --auth/--insecure``: refuse an unsafe bind and hand the auth switch to every worker.

    Workers build their app from the environment, so the switch travels as ``LIUBAI_AUTH=1``.
    """
    settings = AuthSettings()
    if auth:
        settings = settings.model_copy(update={"auth": True})
    check_bind_safety(host, settings.auth, insecure)
    if settings.auth:
        os.environ["LIUBAI_AUTH"] = "1"
        os.environ["LIUBAI_TOKENS"] = str(settings.tokens)
    return settings


def check_bind_safety(host: str, auth_on: bool, insecure: bool) -> None:
    """Refuse to listen beyond loopback without auth, unless the operator said ``--insecure``."""
    if is_loopback(host) or auth_on or insecure:
        return
    raise UnsafeBind(
        f"refusing to listen on {host} without authentication: anyone who can reach it could read the "
        "lineage graph and write into it. Use --auth (or LIUBAI_AUTH=1) with tokens from 'liubai token "
        "create', or --insecure if a proxy in front authenticates."
    )
