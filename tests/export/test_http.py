"""``GET /export`` through the API: the same bundles the CLI writes, streamed as downloads."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import networkx as nx
import pytest
import rfc8785
from fastapi import FastAPI
from fastapi.testclient import TestClient

from liubai.lineage.model import Direction, commit_node_id
from tests.export.conftest import Scenario


@pytest.fixture(scope="module")
def client(scenario: Scenario) -> TestClient:
    from liubai.api.app import create_app

    return TestClient(create_app(store=scenario.store))


def test_json_bundle_download(client: TestClient, scenario: Scenario) -> None:
    resp = client.get("/export", params={"commit": scenario.commit, "depth": 4, "format": "json"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert "attachment" in resp.headers["content-disposition"]
    doc = resp.json()
    canonical = rfc8785.dumps(doc["bundle"])
    assert hashlib.sha256(canonical).hexdigest() == doc["sha256"]
    sub = scenario.store.lineage(commit_node_id(scenario.commit), Direction.BOTH, 4)
    assert {n["id"] for n in doc["bundle"]["nodes"]} == {n.id for n in sub.nodes}
    assert len(doc["bundle"]["edges"]) == len(sub.edges)


def test_graphml_csv_and_slsa_downloads(client: TestClient, scenario: Scenario) -> None:
    resp = client.get("/export", params={"audit_id": scenario.audit_id, "depth": 2, "format": "graphml"})
    assert resp.status_code == 200, resp.text
    g = nx.read_graphml(io.BytesIO(resp.content), force_multigraph=True)
    assert f"audit:{scenario.audit_id}" in g.nodes

    resp = client.get("/export", params={"run": scenario.run_id, "depth": 1, "format": "csv"})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        assert zf.testzip() is None
        assert scenario.run_id in zf.read("nodes.csv").decode()

    resp = client.get("/export", params={"run": scenario.run_id, "format": "slsa"})
    assert resp.status_code == 200, resp.text
    statement = resp.json()
    assert statement["predicate"]["runDetails"]["metadata"]["invocationId"] == scenario.audit_id


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"commit": "0" * 40}, 404, "NOT_FOUND"),
        ({"commit": "abc", "trace": "x"}, 400, "BAD_INPUT"),
        ({}, 400, "BAD_INPUT"),
        ({"trace": "4bf92f3577b34da6a3ce929d0e0e4736", "format": "pdf"}, 400, "BAD_INPUT"),
        ({"node": "commit:x", "format": "slsa"}, 404, "NOT_FOUND"),
    ],
)
def test_bad_requests_get_structured_errors(
    client: TestClient, params: dict[str, str], status: int, code: str
) -> None:
    resp = client.get("/export", params=params)
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    assert detail["code"] == code and detail["message"] and detail["retryable"] is False


def test_router_on_a_bare_app_opens_and_closes_its_own_store(scenario: Scenario) -> None:
    """Mounted without the app factory, the router opens the store named by ``app.state.store_url`` per request."""
    from liubai.api.export_http import router

    app = FastAPI()
    app.include_router(router)
    app.state.store_url = scenario.store_url
    with TestClient(app) as c:
        resp = c.get(
            "/export", params={"trace": "4bf92f3577b34da6a3ce929d0e0e4736", "format": "jsonl", "depth": 1}
        )
    assert resp.status_code == 200, resp.text
    lines = [json.loads(x) for x in resp.text.splitlines()]
    assert lines[0]["type"] == "header" and lines[-1]["type"] == "summary"
    assert any(x.get("id") == "log:app:l1" for x in lines)
