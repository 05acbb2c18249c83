"""The HTTP/1.1 connection layer of ``liubai serve``: request-head limits that hold before any app code runs.

uvicorn's httptools protocol puts no bound on a request head: llhttp hands a header value over in pieces
and httptools joins them by concatenation, so one connection streaming a 100 MB header costs quadratic
CPU and stalls every other connection of the worker for many seconds. ``LimitedHttpToolsProtocol`` keeps
httptools' speed and adds what it lacks:

* at most ``max_head_bytes`` of request line plus headers (431, connection closed): bytes beyond the cap
  are never fed to the parser;
* at most ``max_headers`` header fields (431);
* a head must be complete within ``head_timeout_s`` of its first byte (408, closed), and a new
  connection must send one within that time (closed): a slowloris client cannot hold a connection by
  trickling a head or by sending nothing.

Idle keep-alive stays bounded by uvicorn's own ``timeout_keep_alive`` (``keepalive_s`` here). Request
bodies keep their own caps in the app (``BodyLimit``, the ingest ``max_bytes``).
"""

from __future__ import annotations

import asyncio
import functools
import http
import logging
from typing import Any

import httptools
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

__all__ = ["HttpSettings", "LimitedHttpToolsProtocol", "http_settings"]

log = logging.getLogger("liubai.http")


class HttpSettings(BaseSettings):
    """``LIUBAI_HTTP_*``: the connection limits ``liubai serve`` applies before a request reaches the app."""

    model_config = SettingsConfigDict(env_prefix="LIUBAI_HTTP_", extra="ignore")

    max_head_bytes: int = Field(default=64 * 1024, ge=1024)
    max_headers: int = Field(default=100, ge=8)
    head_timeout_s: float = Field(default=10.0, gt=0)
    keepalive_s: int = Field(default=5, ge=1)


@functools.cache
def http_settings() -> HttpSettings:
    """Read once per process: every worker builds its protocols from the environment ``serve`` set."""
    return HttpSettings()


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a head that broke a limit."""


def _response(status: int, message: str) -> bytes:
    body = message.encode("utf-8")
    return (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode("ascii") + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a byte cap, a header-count cap and a deadline on each request head.

    The byte count is exact for a head that starts a read; a pipelined head that starts inside a read may
    run over by the rest of that read (the transport reads at most 256 KiB at a time)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = http_settings()
        self._max_head_bytes = limits.max_head_bytes
        self._max_headers = limits.max_headers
        self._head_timeout_s = limits.head_timeout_s
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._refusal: tuple[int, str] | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_head:
            self._feed(data)
            return
        if self._head_timer is None:
            self._arm_head_timer()
        room = self._max_head_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            self._feed(data)
            return
        # Only what the head may still hold reaches the parser; the rest only if the head ended within it.
        self._head_bytes = self._max_head_bytes
        self._feed(data[:room])
        if self.transport.is_closing():
            return
        if self._in_head:
            self._refuse(431, f"request head over {self._max_head_bytes} bytes")
            return
        self._feed(data[room:])

    def _feed(self, data: bytes) -> None:
        """uvicorn's ``data_received`` for one piece, with a limit hit in a callback answered as such."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self._max_headers:
            self._refusal = (431, f"request has over {self._max_headers} header fields")
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # whatever comes next on this connection is the next request's head
        self._head_bytes = 0

    def _refuse(self, status: int, message: str) -> None:
        self._cancel_head_timer()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.warning("%s from %s; connection closed", message, client)
        if not self.transport.is_closing():
            self.transport.write(_response(status, message))
            self.transport.close()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self._head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # the head's clock runs from when the server is ready to read it
            return
        if self._head_bytes == 0:  # nothing sent (an idle pre-connect): close quietly, as after keep-alive
            self.transport.close()
            return
        self._refuse(408, f"request head not complete within {self._head_timeout_s:g} s")
