"""Who gets in, and what a hostile query or search text can do: through the real app with a real store."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from liubai.api.app import create_app
from liubai.api.auth import AuthSettings, TokenStore, UnsafeBind, check_bind_safety
from liubai.api.limits import LimitSettings
from liubai.api.schema import LineageSchema, Query
from liubai.api.schema_context import ApiContext
from liubai.lineage.join import join_records
from liubai.lineage.model import EdgeKind, GraphBatch
from liubai.lineage.records import LogRecord
from liubai.lineage.store import LineageStore, open_store
from liubai.lineage.wire import encode_batch
from tests.hardening.conftest import limited_client

HOSTILE = [
    "' OR '1'='1",
    '"; DROP TABLE nodes; --',
    "MATCH (n) DETACH DELETE n",
    "}) RETURN n //",
    "{$where: 1}",
    "a\\' UNION SELECT * FROM tokens --",
    "*",
    'NEAR(a b) OR "x"',
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LineageStore]:
    s = open_store(f"sqlite:///{tmp_path / 'lineage.db'}")
    yield s
    s.close()


@pytest.fixture
def secured(store: LineageStore, tmp_path: Path) -> Iterator[tuple[TestClient, TokenStore, dict[str, str]]]:
    app = create_app(store=store, auth=AuthSettings(auth=True, tokens=tmp_path / "tokens.db"))
    tokens: TokenStore = app.state.tokens
    plain = {scope: tokens.create(f"{scope}-user", [scope])[1] for scope in ("read", "ingest", "admin")}
    with TestClient(app) as client:
        yield client, tokens, plain


def _batch() -> bytes:
    b = GraphBatch()
    b.add_node("commit:" + "c" * 40, {"subject": "x"})
    b.add_edge("repo:r", EdgeKind.HAS_COMMIT, "commit:" + "c" * 40)
    return encode_batch(b, "test")[1]


ROUTES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("POST", "/graphql", "read", {"json": {"query": "{ stats { counts } }"}}),
    ("GET", "/graphql", "read", {"params": {"query": "{ stats { counts } }"}}),
    ("GET", "/export", "read", {"params": {"commit": "c" * 40}}),
    ("GET", "/metrics", "read", {}),
    ("POST", "/v1/ingest", "ingest", {"content": _batch(), "headers": {"Content-Type": "application/json"}}),
]
WRONG = {"read": "ingest", "ingest": "read"}


def _call(client: TestClient, method: str, path: str, token: str | None, kw: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    kw = dict(kw)
    return client.request(method, path, headers={**kw.pop("headers", {}), **headers}, **kw)


@pytest.mark.parametrize(("method", "path", "scope", "kw"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_every_data_route_wants_the_right_token(
    secured: tuple[TestClient, TokenStore, dict[str, str]],
    method: str,
    path: str,
    scope: str,
    kw: dict[str, Any],
) -> None:
    client, tokens, plain = secured
    none = _call(client, method, path, None, kw)
    assert none.status_code == 401 and "missing token" in none.json()["error"]["message"]
    assert none.headers["www-authenticate"].startswith("Bearer")
    assert _call(client, method, path, "lb_nope_nope", kw).status_code == 401
    assert (
        _call(client, method, path, plain[scope][:-2] + "xx", kw).status_code == 401
    )  # right id, wrong secret
    wrong = _call(client, method, path, plain[WRONG[scope]], kw)
    assert wrong.status_code == 403 and f"lacks scope '{scope}'" in wrong.json()["error"]["message"]
    ok = _call(client, method, path, plain[scope], kw)
    assert ok.status_code not in (401, 403), ok.text
    assert _call(client, method, path, plain["admin"], kw).status_code not in (401, 403)

    token_id = plain[scope].split("_")[1]
    assert tokens.revoke(token_id)
    revoked = _call(client, method, path, plain[scope], kw)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]


@pytest.mark.parametrize(("method", "path", "scope", "kw"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_two_authorization_headers_are_refused_whichever_comes_first(
    secured: tuple[TestClient, TokenStore, dict[str, str]],
    method: str,
    path: str,
    scope: str,
    kw: dict[str, Any],
) -> None:
    client, _, plain = secured
    kw = dict(kw)
    extra = list(kw.pop("headers", {}).items())
    good, bad = f"Bearer {plain['admin']}", "Bearer lb_nope_nope"
    for pair in ((good, bad), (bad, good), (good, good)):
        answer = client.request(method, path, headers=[*extra, *(("Authorization", v) for v in pair)], **kw)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == {
            "code": "BAD_INPUT",
            "message": "send one Authorization header, not 2",
        }


def test_liveness_stays_open_and_every_answer_has_a_request_id(
    secured: tuple[TestClient, TokenStore, dict[str, str]],
) -> None:
    client, _, _ = secured
    health = client.get("/healthz", headers={"X-Request-ID": "probe-42"})
    assert health.status_code == 200 and health.headers["x-request-id"] == "probe-42"
    denied = client.post(
        "/graphql", json={"query": "{ stats { counts } }"}, headers={"X-Request-ID": "bad id\n"}
    )
    assert denied.status_code == 401 and len(denied.headers["x-request-id"]) == 32


def test_token_file_keeps_only_hashes(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path / "tokens.db")
    _, plain = tokens.create("ci", ["read"])
    tokens.close()
    secret = plain.split("_", 2)[2]
    raw = (tmp_path / "tokens.db").read_bytes()
    for extra in tmp_path.glob("tokens.db-*"):
        raw += extra.read_bytes()
    assert secret.encode() not in raw and plain.encode() not in raw
    assert stat.S_IMODE((tmp_path / "tokens.db").stat().st_mode) == 0o600
    rows = (
        sqlite3.connect(tmp_path / "tokens.db").execute("SELECT length(secret_sha256) FROM tokens").fetchall()
    )
    assert rows == [(32,)]


def test_token_cli_create_list_revoke(tmp_path: Path) -> None:
    from liubai.api.cli.main import app

    runner = CliRunner()
    path = str(tmp_path / "t.db")
    made = runner.invoke(app, ["token", "create", "--scope", "ingest", "--name", "node-1", "--tokens", path])
    assert made.exit_code == 0, made.output
    plain = made.stdout.strip().splitlines()[-1]
    token_id = plain.split("_")[1]
    assert TokenStore(path).verify(plain).scopes == {"ingest"}
    listed = runner.invoke(app, ["token", "list", "--tokens", path])
    assert (
        token_id in listed.stdout
        and "node-1" in listed.stdout
        and plain.split("_", 2)[2] not in listed.stdout
    )
    assert runner.invoke(app, ["token", "revoke", token_id, "--tokens", path]).exit_code == 0
    again = runner.invoke(app, ["token", "revoke", token_id, "--tokens", path])
    assert again.exit_code == 1 and "no live token" in again.stderr
    bad = runner.invoke(app, ["token", "create", "--scope", "root", "--name", "x", "--tokens", path])
    assert bad.exit_code == 1 and "unknown scope 'root'" in bad.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "example.org"])
def test_exposed_bind_without_auth_is_refused(host: str) -> None:
    with pytest.raises(UnsafeBind, match="--insecure"):
        check_bind_safety(host, auth_on=False, insecure=False)
    check_bind_safety(host, auth_on=True, insecure=False)
    check_bind_safety(host, auth_on=False, insecure=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.9.9.9"])
def test_loopback_bind_needs_no_auth(host: str) -> None:
    check_bind_safety(host, auth_on=False, insecure=False)


# --------------------------------------------------------------------------- GraphQL limits


def _errors(resp: Any) -> list[dict[str, Any]]:
    return list(resp.json().get("errors") or [])


def test_depth_bomb_is_refused_with_the_limit_named(store: LineageStore) -> None:
    client = limited_client(store, LimitSettings(max_depth=6))
    deep = '{ search(text: "a") { edges { node { id } pageInfo: node { id } } } }'
    assert not _errors(client.post("/graphql", json={"query": deep}))
    bomb = '{ search(text: "a") ' + "{ edges { node " * 6 + "{ id }" + " } }" * 6 + " }"
    errs = _errors(client.post("/graphql", json={"query": bomb}))
    assert errs and "exceeds maximum operation depth of 6" in errs[0]["message"]


def test_huge_first_is_refused_literal_or_variable(store: LineageStore) -> None:
    client = limited_client(store, LimitSettings())
    lit = client.post("/graphql", json={"query": '{ search(text: "a", first: 1000000) { totalCount } }'})
    assert "maximum page size of 1000" in _errors(lit)[0]["message"]
    var = client.post(
        "/graphql",
        json={
            "query": 'query($n: Int!) { search(text: "a", first: $n) { totalCount } }',
            "variables": {"n": 5000},
        },
    )
    assert "'first: 5000'" in _errors(var)[0]["message"]
    fine = client.post("/graphql", json={"query": '{ search(text: "a", first: 10) { totalCount } }'})
    assert fine.json()["data"]["search"]["totalCount"] == 0


def test_alias_fan_out_and_token_floods_are_refused(store: LineageStore) -> None:
    client = limited_client(store, LimitSettings(max_aliases=5, max_tokens=200))
    aliases = "{ " + " ".join(f"a{i}: stats {{ counts }}" for i in range(10)) + " }"
    assert "aliases" in _errors(client.post("/graphql", json={"query": aliases}))[0]["message"]
    flood = "{ stats { " + "counts " * 300 + "} }"
    assert "token" in _errors(client.post("/graphql", json={"query": flood}))[0]["message"].lower()


def test_query_over_its_time_limit_gets_a_clear_error(store: LineageStore) -> None:
    client = limited_client(store, LimitSettings(timeout_s=1e-9))
    errs = _errors(client.post("/graphql", json={"query": "{ stats { counts } }"}))
    assert errs and "longer than the 1e-09 s limit" in errs[0]["message"]
    assert errs[0]["extensions"]["detail"]["limit"] == "timeout"


def test_real_app_refuses_depth_bombs_and_huge_pages(store: LineageStore) -> None:
    with TestClient(create_app(store=store)) as client:
        bomb = '{ search(text: "a") ' + "{ edges { node " * 15 + "{ id }" + " } }" * 15 + " }"
        assert "depth" in _errors(client.post("/graphql", json={"query": bomb}))[0]["message"]
        huge = client.post("/graphql", json={"query": '{ search(text: "a", first: 1000000) { totalCount } }'})
        assert _errors(huge)[0]["extensions"]["code"] == "BAD_INPUT"


# --------------------------------------------------------------------------- hostile text is data


def _hostile_logs(store: LineageStore) -> None:
    records = [
        LogRecord(
            source="hostile",
            record_id=f"r{i}",
            time="2026-01-01T00:00:00Z",
            message=f"payload {text}",
            service="svc",
            trace_id=f"{i:032x}",
        )
        for i, text in enumerate(HOSTILE)
    ]
    store.upsert(join_records(records))


def _search_all(store: LineageStore, text: str) -> list[str]:
    schema = LineageSchema(query=Query)
    q = "query($t: String!) { search(text: $t, first: 50) { edges { node { id } } totalCount } }"
    result = asyncio.run(
        schema.execute(q, variable_values={"t": text}, context_value=ApiContext(lambda: store))
    )
    assert result.errors is None, result.errors
    assert result.data is not None
    return [e["node"]["id"] for e in result.data["search"]["edges"]]


def _check_hostile_search(store: LineageStore) -> None:
    _hostile_logs(store)
    before = store.counts()
    for i, text in enumerate(HOSTILE):
        ids = _search_all(store, text)
        if any(c.isalnum() for c in text):  # text with words finds the line holding it, as text
            assert f"log:hostile:r{i}" in ids, (text, ids)
    assert store.counts() == before  # nothing was dropped, deleted or added by a search
    # the stored text is intact, byte for byte
    for i, text in enumerate(HOSTILE):
        node = store.get(f"log:hostile:r{i}")
        assert node is not None and node.props["message"] == f"payload {text}"


def test_hostile_search_text_is_data_on_sqlite(store: LineageStore) -> None:
    _check_hostile_search(store)
    assert "log:hostile:r2" in _search_all(store, "MATCH (n) DETACH DELETE n")


@pytest.mark.neo4j
def test_hostile_search_text_is_data_on_neo4j(neo4j_clean_url: str) -> None:
    store = open_store(neo4j_clean_url)
    try:
        _check_hostile_search(store)
    finally:
        store.close()


def test_serve_refuses_an_exposed_bind_without_auth_and_passes_auth_to_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from liubai.api.auth import prepare_serve

    monkeypatch.setenv("LIUBAI_AUTH", "0")
    monkeypatch.setenv("LIUBAI_TOKENS", str(tmp_path / "t.db"))
    with pytest.raises(UnsafeBind, match="refusing to listen on 0.0.0.0"):
        prepare_serve("0.0.0.0", auth=False, insecure=False)
    assert prepare_serve("0.0.0.0", auth=True, insecure=False).auth
    import os

    assert os.environ["LIUBAI_AUTH"] == "1" and os.environ["LIUBAI_TOKENS"] == str(tmp_path / "t.db")


def test_request_logs_are_json_lines_with_the_request_id(store: LineageStore) -> None:
    import io
    import json
    import logging

    from liubai.api.metrics import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("liubai.http")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with TestClient(create_app(store=store, auth=AuthSettings(auth=False))) as client:
            client.post("/graphql", json={"query": "{ stats { counts } }"}, headers={"X-Request-ID": "req-7"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    entry = next(x for x in lines if x.get("path") == "/graphql")
    assert entry["request_id"] == "req-7" and entry["status"] == 200 and entry["method"] == "POST"
    assert entry["level"] == "info" and isinstance(entry["duration_ms"], float)


def test_the_graphiql_page_opens_without_a_token_but_queries_through_it_do_not(
    secured: tuple[TestClient, TokenStore, dict[str, str]],
) -> None:
    client, _, _ = secured
    page = client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    by_get = client.get("/graphql", params={"query": "{ stats { counts } }"}, headers={"Accept": "text/html"})
    assert by_get.status_code == 401
    as_json = client.get("/graphql", headers={"Accept": "application/json"})
    assert as_json.status_code == 401
    posted = client.post("/graphql", json={"query": "{ stats { counts } }"}, headers={"Accept": "text/html"})
    assert posted.status_code == 401
