"""What a GraphQL document costs is counted with its fragments expanded, and refused before any work.

A few hundred bytes of fragments that spread each other ten times stand for billions of fields; the API
must refuse them (by POST and by GET) without walking that expansion, and keep answering everyone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from graphql import get_introspection_query, parse
from graphql.validation.rules import overlapping_fields_can_be_merged as merging

from liubai.api.app import create_app
from liubai.api.limits import LimitSettings
from liubai.api.query_cost import CAP, DocumentCost, measure
from liubai.api.schema import build_schema
from liubai.api.schema_context import ApiContext
from liubai.lineage.store import LineageStore, open_store
from tests.hardening.conftest import limited_client


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LineageStore]:
    s = open_store(f"sqlite:///{tmp_path / 'lineage.db'}")
    yield s
    s.close()


@pytest.fixture
def client(store: LineageStore) -> Iterator[TestClient]:
    with TestClient(create_app(store=store)) as c:
        yield c


def fan_out(levels: int, width: int = 10) -> str:
    """F0 spreads F1 ``width`` times, F1 spreads F2 ``width`` times, ...: ``width ** levels`` fields."""
    names = [f"F{i}" for i in range(levels + 1)]
    spreads = [
        f"fragment {a} on Query {{ {' '.join(['...' + b] * width)} }}"
        for a, b in zip(names, names[1:], strict=False)
    ]
    return " ".join(["query FanOut { ...F0 }", *spreads, f"fragment {names[-1]} on Query {{ __typename }}"])


def ring(size: int) -> str:
    """``size`` fragments that each spread all the others: a cycle, with a path for every ordering."""
    names = [f"R{i}" for i in range(size)]
    fragments = [
        f"fragment {a} on Query {{ __typename {' '.join(f'...{b}' for b in names if b != a)} }}"
        for a in names
    ]
    return " ".join(["{ ...R0 }", *fragments])


def _errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body.get("errors") or [])


def _limit(body: dict[str, Any]) -> dict[str, Any]:
    """The one error of a refused document: its ``extensions.detail`` (which limit, its value, the count)."""
    errors = _errors(body)
    assert body.get("data") is None and len(errors) == 1, body
    ext = errors[0]["extensions"]
    assert ext["code"] == "BAD_INPUT" and ext["message"] == errors[0]["message"]
    detail: dict[str, Any] = ext["detail"]
    return detail


def test_fragment_fan_out_is_refused_for_fields_by_post_and_get(client: TestClient) -> None:
    query = fan_out(3)  # 1,000 fields and 1,110 spreads once expanded; the default limit is 300
    for _ in range(2):  # the verdict is cached per text; the refusal repeats
        posted = client.post("/graphql", json={"query": query})
        got = client.get("/graphql", params={"query": query})
        for response in (posted, got):
            assert response.status_code == 200
            detail = _limit(response.json())
            assert detail == {"limit": "fields", "max": 300, "found": 2111}
            assert "2111 selections" in response.json()["errors"][0]["message"]
            assert "maximum of 300" in response.json()["errors"][0]["message"]


def test_a_fan_out_of_any_size_is_measured_at_once_with_its_count_saturated() -> None:
    cost = measure(parse(fan_out(200)))  # 10**200 fields
    assert isinstance(cost, DocumentCost) and cost.selections == CAP and list(cost.depths.values()) == [0]


def test_depth_is_counted_through_fragments(store: LineageStore) -> None:
    query = (
        '{ search(text: "a") { ...Connection } } fragment Connection on NodeConnection { edges { ...Edge } }'
        " fragment Edge on NodeEdge { node { id } }"
    )  # search > edges > node: 3 deep
    assert not _errors(
        limited_client(store, LimitSettings(max_depth=3)).post("/graphql", json={"query": query}).json()
    )
    refused = limited_client(store, LimitSettings(max_depth=2)).post("/graphql", json={"query": query}).json()
    assert _limit(refused) == {"limit": "depth", "max": 2, "found": 3}
    assert "exceeds maximum operation depth of 2" in _errors(refused)[0]["message"]


def test_aliases_inside_fragments_count_each_time_they_are_spread(store: LineageStore) -> None:
    client = limited_client(store, LimitSettings(max_aliases=5))
    query = "{ ...A ...B } fragment A on Query { x: stats { counts } y: stats { counts } } fragment B on Query { ...A }"
    assert not _errors(client.post("/graphql", json={"query": query}).json())  # 4 aliases
    three = query.replace("{ ...A ...B }", "{ ...A ...B ...B }")  # 6
    assert _limit(client.post("/graphql", json={"query": three}).json()) == {
        "limit": "aliases",
        "max": 5,
        "found": 6,
    }


def test_fragment_cycles_are_refused_naming_the_ring(client: TestClient) -> None:
    body = client.post(
        "/graphql", json={"query": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"}
    )
    errors = _errors(body.json())
    assert body.json().get("data") is None and len(errors) == 1
    assert errors[0]["message"] == "fragment 'A' spreads itself through 'B'; fragments cannot form a cycle"
    assert errors[0]["extensions"]["code"] == "BAD_INPUT"
    assert {loc["line"] for loc in errors[0]["locations"]} == {1}


def test_queries_with_fragments_within_the_limits_answer(
    store: LineageStore, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    introspection = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    schema = client.post("/graphql", json={"query": introspection}).json()  # what GraphiQL asks first
    assert not _errors(schema) and schema["data"]["__schema"]["queryType"]["name"] == "Query"
    query = "{ stats { ...Counts } again: stats { ...Counts } } fragment Counts on Stats { counts }"
    answer = client.get("/graphql", params={"query": query}).json()
    assert not _errors(answer) and answer["data"]["stats"] == answer["data"]["again"]
    monkeypatch.setenv(
        "LIUBAI_QUERY_MAX_FIELDS", "5"
    )  # six: stats, ...Counts, counts, again, ...Counts, counts
    tight = asyncio.run(build_schema().execute(query, context_value=ApiContext(lambda: store)))
    assert tight.errors and tight.errors[0].extensions == {
        "code": "BAD_INPUT",
        "message": tight.errors[0].message,
        "retryable": False,
        "detail": {"limit": "fields", "max": 5, "found": 6},
    }


def _worst_cases(size: int) -> dict[str, str]:
    """Documents of ``size`` expanded selections that make field merging compare the most pairs."""
    pairs = int((size / 2) ** 0.5)  # k fragments of k two-field selections, all spread together
    fragments = " ".join(f"fragment M{i} on Query {{ {'stats { counts } ' * pairs}}}" for i in range(pairs))
    return {
        "same leaf": "{ stats { " + "counts " * (size - 1) + "} }",
        "same field": "{ " + "stats { counts } " * (size // 2) + "}",
        "same subtree": "{ " + 'search(text: "a") { edges { node { id } } } ' * (size // 4) + "}",
        "same fragments": "{ " + " ".join(f"...M{i}" for i in range(pairs)) + " } " + fragments,
    }


def test_field_merging_work_is_bounded_by_a_budget_not_by_the_document(
    store: LineageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """graphql-core's field-merging rule compares same-named fields pairwise (quadratic), metering that
    work in budget units. Within the fields limit a worst case would still take ~90,000 units (hundreds of
    milliseconds); the API's budget stops it at ``max_merge_work`` with a limit refusal, so the work per
    document is bounded by a constant. Over the fields limit the rule never runs at all, and ordinary
    queries (GraphiQL's introspection) spend nothing."""
    spent = [0]
    spend = merging.spend_complexity_budget

    def counting(context: Any, cost: int) -> None:
        spent[0] += cost
        spend(context, cost)

    monkeypatch.setattr(merging, "spend_complexity_budget", counting)
    schema = build_schema()
    settings = LimitSettings()

    def run(query: str) -> tuple[list[Any], int]:
        spent[0] = 0
        result = asyncio.run(schema.execute(query, context_value=ApiContext(lambda: store)))
        return list(result.errors or []), spent[0]

    for name, query in _worst_cases(settings.max_fields).items():
        errors, units = run(query)
        assert [e.extensions["detail"]["limit"] for e in errors] == ["merge_work"], name
        assert "same-named fields" in errors[0].message
        assert units <= settings.max_merge_work + 2, (name, units)
    for name, query in _worst_cases(2 * settings.max_fields).items():
        errors, units = run(query)
        assert [e.extensions["detail"]["limit"] for e in errors] == ["fields"], name
        assert units == 0, name
    errors, units = run(get_introspection_query(descriptions=True))
    assert not errors and units < settings.max_merge_work
    few = "{ a: stats { counts } b: stats { counts } c: stats { counts } }"
    assert run(few)[0] == []


def test_served_api_keeps_answering_while_fan_outs_are_refused(api_factory: Any) -> None:
    """The attack as it happened: fan-outs standing for 10**8 fields, by POST and GET, plus a dense ring
    of fragments, sent together to one uvicorn worker; /healthz must answer all along."""
    api = api_factory()
    graphql = f"{api.url}/graphql"
    attacks = [
        lambda: httpx.post(graphql, json={"query": fan_out(8)}, timeout=30),
        lambda: httpx.get(graphql, params={"query": fan_out(8)}, timeout=30),
        lambda: httpx.post(graphql, json={"query": ring(10)}, timeout=30),
    ]
    pool = ThreadPoolExecutor(len(attacks))
    try:
        pending = [pool.submit(attack) for attack in attacks]
        for _ in range(3):
            health = httpx.get(f"{api.url}/healthz", timeout=10)
            assert health.status_code == 200 and health.json()["status"] == "ok"
        answers = [p.result(timeout=60).json() for p in pending]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    assert [_limit(a)["limit"] for a in answers[:2]] == ["fields", "fields"]
    assert "spreads itself" in _errors(answers[2])[0]["message"]
