"""The HTTP surface around GraphQL: health, security headers, GraphiQL, the UI, a store that is down."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from liubai.api.app import CSP, GRAPHIQL_CSP, create_app
from tests.api.conftest import World, data, error


def test_healthz_reports_ok_and_the_store(client: TestClient, world: World) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "store": world.store.url}


@pytest.mark.sqlite_only  # HTTP layer: no store answer involved
def test_every_response_carries_the_csp(client: TestClient) -> None:
    responses = [
        client.get("/healthz"),
        client.post("/graphql", json={"query": "{ stats { counts } }"}),
        client.get("/"),
        client.get("/no-such-file.js"),
    ]
    for response in responses:
        assert response.headers["content-security-policy"] == CSP, response.request.url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in CSP and "script-src 'self';" in CSP


@pytest.mark.sqlite_only  # HTTP layer: no store answer involved
def test_graphiql_page_is_served_with_its_own_policy(client: TestClient) -> None:
    page = client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "graphiql" in page.text.lower()
    assert page.headers["content-security-policy"] == GRAPHIQL_CSP
    # the relaxed policy is for that page only: a GET query on the same path keeps the strict one
    api = client.get(
        "/graphql", params={"query": "{ stats { counts } }"}, headers={"Accept": "application/json"}
    )
    assert api.status_code == 200 and "counts" in api.json()["data"]["stats"]
    assert api.headers["content-security-policy"] == CSP


@pytest.mark.sqlite_only  # HTTP layer: no store answer involved
def test_cross_site_form_posts_are_refused(client: TestClient) -> None:
    # an HTML form on another site can POST urlencoded data without a CORS preflight: it must not run
    form = client.post("/graphql", data={"query": "{ stats { counts } }"})
    assert form.status_code in (400, 415)


@pytest.mark.sqlite_only  # HTTP layer: no store answer involved
def test_oversized_request_bodies_are_refused_before_parsing(client: TestClient) -> None:
    padding = "x" * (2 << 20)
    response = client.post("/graphql", json={"query": "{ stats { counts } }", "variables": {"pad": padding}})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert response.headers["content-security-policy"] == CSP
    small = client.post("/graphql", json={"query": "{ stats { counts } }"})
    assert small.status_code == 200 and "errors" not in small.json()


@pytest.mark.sqlite_only  # HTTP layer: no store answer involved
def test_ui_index_is_served_at_root(client: TestClient) -> None:
    index = Path(__file__).resolve().parents[2] / "web" / "index.html"
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    if index.is_file():
        assert response.text == index.read_text(encoding="utf-8")
    else:
        assert 'href="/graphql"' in response.text


@pytest.mark.sqlite_only  # HTTP layer: no store answer involved
def test_ui_fallback_page_when_no_ui_is_installed(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIUBAI_WEB_DIR", str(tmp_path / "nowhere"))
    with TestClient(create_app(store=world.store)) as c:
        response = c.get("/")
        ide = c.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200 and "LIUBAI_WEB_DIR" in response.text
    assert response.headers["content-security-policy"] == CSP
    # never strawberry's own GraphiQL page, which loads scripts from a CDN that the CSP blocks
    assert ide.status_code == 404 and "<script" not in ide.text and "LIUBAI_WEB_DIR" in ide.text


def test_a_store_that_cannot_open_gives_503_and_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    url = f"sqlite:///{blocker / 'lineage.db'}"
    with TestClient(create_app(store_url=url)) as c:
        health = c.get("/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable" and health.json()["store"] == url
        ext = error(c, "{ stats { counts } }")
        assert ext["code"] == "STORE_UNAVAILABLE" and ext["retryable"] is True
        blocker.unlink()  # the store becomes reachable: the same app recovers without a restart
        assert c.get("/healthz").status_code == 200
        assert data(c, "{ stats { counts } }")["stats"]["counts"]["Commit"] == 0


def test_an_unreachable_neo4j_never_shows_its_password(unused_port: int) -> None:
    url = f"neo4j://neo4j:pw-{unused_port}-secret@127.0.0.1:{unused_port}"
    with TestClient(create_app(store_url=url)) as c:
        health = c.get("/healthz")
        ext = error(c, "{ stats { counts } }")
    assert health.status_code == 503
    assert f"pw-{unused_port}-secret" not in health.text
    assert health.json()["store"] == f"neo4j://neo4j:***@127.0.0.1:{unused_port}"
    assert ext["code"] == "STORE_UNAVAILABLE" and ext["retryable"] is True


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


def test_store_opened_by_url_is_the_one_queried(world: World) -> None:
    with TestClient(create_app(store_url=world.url)) as c:
        counts = data(c, "{ stats { counts } }")["stats"]["counts"]
    assert counts == world.store.counts()
