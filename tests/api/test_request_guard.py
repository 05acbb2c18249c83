"""Browser-borne requests through the real app: wrong Host, foreign Origin, non-JSON state changes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from liubai.api.app import create_app
from liubai.api.request_guard import GuardSettings
from liubai.lineage.model import GraphBatch
from liubai.lineage.store import LineageStore
from liubai.lineage.wire import encode_batch
from tests.api.conftest import World

# The HTTP layer in front of the store: what is tested never depends on which store answers.
pytestmark = pytest.mark.sqlite_only

QUERY = {"query": "{ stats { counts } }"}
PLANTED = "commit:" + "ad" * 20


def _batch() -> bytes:
    b = GraphBatch()
    b.add_node(PLANTED, {"subject": "planted"})
    return encode_batch(b, "attack")[1]


@pytest.fixture
def guarded(world: World) -> Iterator[TestClient]:
    app = create_app(
        store=world.store, guard=GuardSettings(allowed_hosts=["lineage.example", "other.example:8443"])
    )
    with TestClient(app) as c:
        yield c


def test_a_host_the_server_does_not_answer_to_is_refused(guarded: TestClient) -> None:
    evil = guarded.get("/healthz", headers={"Host": "evil.example:8000"})
    assert evil.status_code == 421
    assert "'evil.example:8000' is not a name this server answers to" in evil.json()["error"]["message"]
    rebound = guarded.post("/graphql", json=QUERY, headers={"Host": "evil.example"})
    assert rebound.status_code == 421 and "errors" in rebound.json()
    assert (
        guarded.get("/healthz", headers={"Host": "localhost"}).status_code == 200
    )  # the server's port is 80
    assert guarded.get("/healthz", headers={"Host": "localhost:8000"}).status_code == 421  # another port
    assert guarded.get("/healthz", headers={"Host": "lineage.example:443"}).status_code == 200  # any port
    assert guarded.get("/healthz", headers={"Host": "other.example:8443"}).status_code == 200
    assert guarded.get("/healthz", headers={"Host": "other.example"}).status_code == 421  # only that port


def test_a_long_host_is_quoted_capped(guarded: TestClient) -> None:
    answer = guarded.get("/healthz", headers={"Host": "a" * 5000 + ".example"})
    message = answer.json()["error"]["message"]
    assert answer.status_code == 421 and len(message) < 400 and "(5008 characters)" in message


def test_state_changes_want_json(guarded: TestClient, store: LineageStore) -> None:
    plain = guarded.post("/v1/ingest", content=_batch(), headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert plain.status_code == 415
    assert (
        plain.json()["error"]["message"]
        == "send Content-Type: application/json (got 'text/plain;charset=UTF-8')"
    )
    assert guarded.post("/v1/ingest", content=_batch()).status_code == 415  # none at all
    form = guarded.post("/graphql", data={"query": QUERY["query"]})
    assert form.status_code == 415 and form.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert guarded.delete("/v1/ingest").status_code == 415
    assert store.get(PLANTED) is None
    applied = guarded.post(
        "/v1/ingest", content=_batch(), headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert applied.status_code == 200 and store.get(PLANTED) is not None


def test_a_foreign_origin_cannot_change_or_query(guarded: TestClient, store: LineageStore) -> None:
    json_type = {"Content-Type": "application/json"}
    for origin in ("http://evil.example", "http://testserver:8080", "null"):
        ingest = guarded.post("/v1/ingest", content=_batch(), headers={**json_type, "Origin": origin})
        assert ingest.status_code == 403, origin
        assert ingest.json()["error"]["message"].startswith(
            f"cross-origin request refused: Origin {origin!r}"
        )
        assert guarded.post("/graphql", json=QUERY, headers={"Origin": origin}).status_code == 403
        assert guarded.get("/graphql", params=QUERY, headers={"Origin": origin}).status_code == 403
    assert store.get(PLANTED) is None
    no_origin = guarded.get(
        "/graphql", params=QUERY, headers={"Sec-Fetch-Site": "cross-site"}
    )  # <img src=...>
    assert no_origin.status_code == 403
    own = guarded.post(
        "/graphql", json=QUERY, headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    )
    assert own.status_code == 200 and "errors" not in own.json()
    assert guarded.get("/graphql", params=QUERY).status_code == 200
    assert (
        guarded.get("/healthz", headers={"Origin": "http://evil.example"}).status_code == 200
    )  # reads nothing
    proxied = guarded.post(
        "/graphql", json=QUERY, headers={"Origin": "https://lineage.example"}
    )  # an allowed name
    assert proxied.status_code == 200
