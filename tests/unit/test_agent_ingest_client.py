"""The agent sorts each answer of ``POST /v1/ingest`` into what it does next: taken, stop, later, never."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from liubai.collector.agent.errors import AgentError, Refused, Unavailable
from liubai.collector.agent.ingest_client import IngestClient


def _client(answer: Callable[[httpx.Request], httpx.Response]) -> IngestClient:
    transport = httpx.MockTransport(answer)
    return IngestClient("http://api", "t0k", 1.0, httpx.Client(transport=transport, base_url="http://api"))


def test_a_taken_batch_reports_the_apis_status() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "duplicate"})

    assert _client(answer).post_once(b"{}") == "duplicate"
    assert seen[0].url.path == "/v1/ingest" and seen[0].content == b"{}"


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(401, json={"detail": "bad token"}), AgentError),
        (httpx.Response(503, text="down"), Unavailable),
        (httpx.Response(429, text="slow down"), Unavailable),
        (httpx.Response(200, text="<html>a proxy</html>"), Unavailable),
        (httpx.Response(422, json={"detail": {"message": "not a batch"}}), Refused),
    ],
)
def test_each_answer_is_sorted_by_what_the_agent_does_next(
    response: httpx.Response, error: type[Exception]
) -> None:
    with pytest.raises(error):
        _client(lambda _: response).post_once(b"{}")


def test_a_413_carries_the_limit_the_api_states() -> None:
    answer = httpx.Response(413, json={"detail": {"message": "too large", "limit_bytes": 1234}})
    with pytest.raises(Refused) as refused:
        _client(lambda _: answer).post_once(b"{}")
    assert refused.value.status == 413 and refused.value.limit == 1234


def test_no_answer_at_all_is_unavailable() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(Unavailable, match="ConnectError"):
        _client(answer).post_once(b"{}")
