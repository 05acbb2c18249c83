"""The per-request path that was made cheap: cached parse/validation, the direct GraphQL endpoint, metrics.

Each test pins a behaviour a cache or a shortcut could break: a verdict that depends on variables, a
refusal that must repeat, limits that differ per schema, and the headers and metrics every request gets.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from liubai.api.app import CSP
from liubai.api.errors import StructuredErrors
from liubai.api.limits import LimitSettings, graphql_extensions
from liubai.api.schema import LineageSchema, Query
from liubai.api.schema_context import ApiContext
from liubai.lineage.store import LineageStore
from tests.api.conftest import World, gql

# The HTTP layer in front of the store: what is tested never depends on which store answers.
pytestmark = pytest.mark.sqlite_only

SEARCH = 'query($n: Int!) { search(text: "a", first: $n) { totalCount } }'
BOMB = '{ search(text: "a") ' + "{ edges { node " * 15 + "{ id }" + " } }" * 15 + " }"
FOUR_DEEP = '{ search(text: "a") { edges { node { id } } } }'


def _messages(body: dict[str, Any]) -> list[str]:
    return [e["message"] for e in body.get("errors") or []]


def test_a_cached_query_text_still_checks_the_page_size_of_each_request(
    client: TestClient, world: World
) -> None:
    assert not _messages(gql(client, SEARCH, n=10))
    refused = _messages(gql(client, SEARCH, n=5000))
    assert refused and "'first: 5000'" in refused[0] and "maximum page size of 1000" in refused[0]
    assert not _messages(gql(client, SEARCH, n=10))


def test_refused_and_malformed_queries_are_refused_every_time(client: TestClient, world: World) -> None:
    for _ in range(3):
        assert any("exceeds maximum operation depth" in m for m in _messages(gql(client, BOMB)))
        syntax = gql(client, "{ stats { counts }")
        assert syntax.get("data") is None and syntax["errors"][0]["extensions"]["code"] == "BAD_INPUT"
        unknown = gql(client, "{ stats { nope } }")
        assert "nope" in unknown["errors"][0]["message"]


def test_schemas_with_different_limits_do_not_share_verdicts(store: LineageStore) -> None:
    def errors(max_depth: int) -> list[Any]:
        schema = LineageSchema(
            query=Query,
            extensions=[*graphql_extensions(LimitSettings(max_depth=max_depth)), StructuredErrors],
        )
        result = asyncio.run(schema.execute(FOUR_DEEP, context_value=ApiContext(lambda: store)))
        return list(result.errors or [])

    assert errors(2)
    assert not errors(12)
    assert errors(2)


def test_graphql_with_a_trailing_slash_is_the_same_endpoint(client: TestClient) -> None:
    response = client.post("/graphql/", json={"query": "{ stats { counts } }"})
    assert response.status_code == 200 and "counts" in response.json()["data"]["stats"]
    assert response.headers["content-security-policy"] == CSP


def test_generated_request_ids_are_distinct_32_hex(client: TestClient) -> None:
    ids = {
        client.post("/graphql", json={"query": "{ stats { counts } }"}).headers["x-request-id"]
        for _ in range(5)
    }
    assert len(ids) == 5 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def _count(metrics: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_graphql_requests_are_counted_in_both_histograms(client: TestClient) -> None:
    post = '{method="POST",route="/graphql",status="2xx"}'
    before = client.get("/metrics").text
    for _ in range(3):
        client.post("/graphql", json={"query": "{ stats { counts } }"})
    after = client.get("/metrics").text
    assert (
        _count(after, "liubai_graphql_query_seconds_count")
        - _count(before, "liubai_graphql_query_seconds_count")
        == 3
    )
    assert (
        _count(after, "liubai_http_request_seconds_count", post)
        - _count(before, "liubai_http_request_seconds_count", post)
        == 3
    )
