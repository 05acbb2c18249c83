"""The agent's side of ``POST /v1/ingest``: one request, its answer sorted into what the agent does next.

200 is taken (``applied`` or ``duplicate``); 401/403 stops the agent (``AgentError``); 408, 429, 5xx and
no answer at all are ``Unavailable`` (try again later, retried under the shared ``RetryPolicy`` for a
window); anything else is ``Refused`` for good, with the body limit a 413 answer states.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from liubai.collector.agent.errors import AgentError, Refused, Unavailable
from liubai.collector.retry import RetryPolicy

__all__ = ["IngestClient"]


class IngestClient:
    """Posts encoded batches to one liubai API."""

    def __init__(
        self, server: str, token: str | None, timeout_s: float, client: httpx.Client | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client or httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout_s)
        self._retry = RetryPolicy.from_env()

    def post_once(self, data: bytes) -> str:
        """Post ``data`` once; the API's status for it (``applied``, ``duplicate``), else raises."""
        try:
            resp = self._client.post("/v1/ingest", content=data, headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code == 200:
            try:
                answer = resp.json()
            except ValueError:
                answer = None
            if not isinstance(answer, dict):  # a proxy or another service on that address: try again later
                raise Unavailable("HTTP 200 without the API's JSON answer (is --server the liubai API?)")
            return str(answer.get("status", "applied"))
        message, limit = _server_message(resp)
        if resp.status_code in (401, 403):
            raise AgentError(f"the API refused the agent's token ({resp.status_code}): {message}")
        if resp.status_code in (408, 429) or resp.status_code >= 500:
            raise Unavailable(f"HTTP {resp.status_code}: {message}")
        raise Refused(resp.status_code, message, limit)

    def post(self, data: bytes, window_s: float) -> str:
        """``data`` posted, retried under the shared policy for ``window_s`` seconds while the API is away."""
        policy = replace(
            self._retry, deadline=window_s, max_wait=min(self._retry.max_wait, 5.0, max(window_s, 0.1))
        )
        return policy.call(self.post_once, data, retry_if=lambda exc: isinstance(exc, Unavailable))

    def close(self) -> None:
        self._client.close()


def _server_message(resp: httpx.Response) -> tuple[str, int | None]:
    """The API's message in an error answer, and the body limit a 413 answer states (``limit_bytes``)."""
    try:
        body: Any = resp.json()
    except ValueError:
        return resp.text[:300], None
    detail = body.get("detail", body.get("error", body)) if isinstance(body, dict) else body
    if isinstance(detail, dict) and "message" in detail:
        limit = detail.get("limit_bytes")
        return str(detail["message"]), limit if type(limit) is int else None
    return str(detail)[:300], None
