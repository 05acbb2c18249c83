"""Errors that quote what a caller sent quote at most a bounded part of it, and say how long it was."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from liubai.api.app import create_app
from liubai.lineage.model import parse_audit_id
from liubai.lineage.store import LineageStore
from liubai.lineage.wire import WireError, decode_batch

# The HTTP layer in front of the store: what is tested never depends on which store answers.
pytestmark = pytest.mark.sqlite_only

LONG = "z" * 100_000
TAIL = "(100000 characters)"


def _messages(answer: object) -> str:
    return orjson.dumps(answer).decode()


def test_graphql_errors_quote_a_capped_argument(client: TestClient) -> None:
    for query, value in (
        ("query($v: String!) { commit(sha: $v) { id } }", "commit:" + LONG),
        ("query($v: ID!) { lineage(from: $v) { truncated } }", "commit:" + "a" * 100_000),
        ("query($v: ID!) { lineage(from: $v) { truncated } }", "file:" + LONG),
        ("query($v: String!) { audit(auditId: $v) { auditId } }", "git-sha256:" + LONG),
    ):
        body = client.post("/graphql", json={"query": query, "variables": {"v": value}}).json()
        text = _messages(body["errors"])
        assert len(text) < 2_000 and "characters)" in text, text[:300]
    kinds = client.post(
        "/graphql",
        json={
            "query": 'query($k: [EdgeKind!]) { lineage(from: "x", edgeKinds: $k) { truncated } }',
            "variables": {"k": [LONG]},
        },
    ).json()
    assert len(_messages(kinds)) < 2_000


def test_graphql_syntax_and_validation_errors_are_capped(client: TestClient) -> None:
    for query in ("{ " + LONG + " }", '{ node(id: "x") { ' + LONG + " } }", "{ stats { counts } } " + LONG):
        body = client.post("/graphql", json={"query": query}).json()
        assert len(_messages(body)) < 3_000, _messages(body)[:300]


def test_ingest_refusals_quote_a_capped_value(client: TestClient) -> None:
    headers = {"Content-Type": "application/json"}
    for envelope in ({"format": LONG, "version": 1}, {"format": "liubai.batch", "version": LONG}):
        answer = client.post("/v1/ingest", content=orjson.dumps(envelope), headers=headers)
        assert answer.status_code == 422
        message = answer.json()["detail"]["message"]
        assert len(message) < 500 and "(100002 characters)" in message, message[:300]


def test_wire_and_audit_id_errors_are_capped() -> None:
    try:
        decode_batch(orjson.dumps({"format": LONG}))
    except WireError as exc:
        assert len(str(exc)) < 500
    else:  # pragma: no cover
        raise AssertionError("a wrong format was accepted")
    for raw in ("git-sha256:" + LONG, LONG, "trace:x|" + LONG + ":v| bad"):
        try:
            parse_audit_id(raw)
        except ValueError as exc:
            assert len(str(exc)) < 700 and "characters)" in str(exc), str(exc)[:300]


def test_export_errors_quote_a_capped_value(store: LineageStore) -> None:
    with TestClient(create_app(store=store)) as c:
        for params in (
            {"node": "commit:" + LONG[:20_000]},
            {"commit": LONG[:20_000]},
            {"run": LONG[:20_000]},
            {"commit": "ab" * 20, "since": LONG[:20_000]},
            {"commit": "ab" * 20, "format": LONG[:20_000]},
            {"commit": "ab" * 20, "depth": LONG[:20_000]},
        ):
            answer = c.get("/export", params=params)
            assert 400 <= answer.status_code < 500
            assert len(answer.text) < 1_000 and "characters)" in answer.text, (
                params.keys(),
                answer.text[:300],
            )
