"""End to end: a real GitOps repository (git CLI) and a JSON-lines log file, ingested with the real CLI,
queried over GraphQL and with ``liubai lineage``, once per store (the embedded SQLite and a real Neo4j).

Expectations come from ``tests.gitrepo.Scenario``, which records them while the history is built.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from liubai.api.app import create_app
from liubai.api.cli.main import app as cli
from liubai.lineage.model import audit_node_id, commit_node_id, parse_audit_id, trace_node_id
from liubai.lineage.store import open_store
from tests.api.conftest import data, error
from tests.gitrepo import Scenario, build_gitops_scenario

runner = CliRunner()

LINEAGE = """query($id: ID!, $dir: Direction) {
  lineage(from: $id, direction: $dir, depth: 3) { nodes { id kind } edges { source target kind } depths } }"""
AUDIT = """query($a: String!) { audit(auditId: $a) {
  auditId record { id } commit { id } workloads { id } trace { id } logs { id properties } } }"""


@dataclass
class Ingested:
    scenario: Scenario
    store_url: str
    log_ids: dict[str, list[str]]  # trace id -> messages written for it


def _cli(store_url: str, *args: str) -> str:
    result = runner.invoke(cli, ["--store", store_url, *args], env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert result.exit_code == 0, f"liubai {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module", params=["sqlite", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def ingested(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    if shutil.which("git") is None:
        pytest.skip("the git CLI is not installed")
    root = tmp_path_factory.mktemp("e2e")
    if request.param == "neo4j":
        from tests import neo4j_server

        store_url: str = request.getfixturevalue("neo4j_url")
        neo4j_server.wipe(store_url)
    else:
        store_url = f"sqlite:///{root / 'lineage.db'}"
    scenario = build_gitops_scenario(root / "gitops")
    _cli(store_url, "ingest", "git", str(scenario.path), "--cache-dir", str(root / "cache"))

    logs = root / "app.jsonl"
    messages: dict[str, list[str]] = {}
    with logs.open("w", encoding="utf-8") as out:
        for i, expected in enumerate(scenario.audits):
            for step in ("rollout started", "rollout finished"):
                line = {
                    "time": f"2026-02-01T00:{i:02d}:{0 if 'started' in step else 30:02d}Z",
                    "level": "INFO",
                    "service": "deployer",
                    "message": f"{step} <b>{i}</b>",
                    "trace_id": expected.trace,
                }
                out.write(json.dumps(line) + "\n")
                messages.setdefault(expected.trace, []).append(line["message"])
    _cli(store_url, "ingest", "logs", str(logs))
    yield Ingested(scenario, store_url, messages)


@pytest.fixture
def client(ingested: Ingested) -> Iterator[TestClient]:
    with TestClient(create_app(store_url=ingested.store_url)) as c:
        yield c


def test_every_commit_of_the_repository_is_queryable_by_prefix(
    client: TestClient, ingested: Ingested
) -> None:
    shas = ingested.scenario.repo.git("rev-list", ingested.scenario.branch).split()
    assert len(shas) == ingested.scenario.commit_count
    for sha in shas:
        found = data(client, "query($s: String!) { commit(sha: $s) { id placeholder } }", s=sha[:12])[
            "commit"
        ]
        assert found == {"id": commit_node_id(sha), "placeholder": False}
    counts = data(client, "{ stats { counts } }")["stats"]["counts"]
    assert counts["Commit"] - counts["placeholders"] <= len(shas) <= counts["Commit"]


@pytest.mark.parametrize("direction", ["DOWNSTREAM", "BOTH"])
def test_lineage_of_a_built_commit_reaches_its_workloads_trace_and_logs(
    client: TestClient, ingested: Ingested, direction: str
) -> None:
    for expected in ingested.scenario.audits:
        graph = data(client, LINEAGE, id=commit_node_id(expected.commit), dir=direction)["lineage"]
        ids = set(graph["depths"])
        assert set(expected.workloads) <= ids, expected.raw
        assert trace_node_id(expected.trace) in ids
        assert graph["depths"][trace_node_id(expected.trace)] == 2
        logs = {n["id"] for n in graph["nodes"] if n["kind"] == "LogEvent"}
        assert len(logs) >= len(ingested.log_ids[expected.trace])


def test_declaring_commits_reach_the_workloads_they_changed(client: TestClient, ingested: Ingested) -> None:
    on_branch = set(ingested.scenario.repo.git("rev-list", ingested.scenario.branch).split())
    checked = 0
    for sha, workloads in ingested.scenario.declares.items():
        if sha not in on_branch:  # the unmerged side branch is not ingested without --all
            continue
        checked += 1
        graph = data(client, LINEAGE, id=sha, dir="DOWNSTREAM")["lineage"]
        declared = {
            e["target"]
            for e in graph["edges"]
            if e["kind"] == "DECLARES" and e["source"] == commit_node_id(sha)
        }
        assert workloads <= declared, sha
    assert checked >= 5


def test_audit_view_of_every_annotation(client: TestClient, ingested: Ingested) -> None:
    for expected in ingested.scenario.audits:
        view = data(client, AUDIT, a=expected.raw)["audit"]
        canonical = parse_audit_id(expected.raw).canonical
        assert view["auditId"] == canonical
        assert view["record"]["id"] == audit_node_id(parse_audit_id(expected.raw))
        assert view["commit"]["id"] == commit_node_id(expected.commit)
        assert set(expected.workloads) <= {w["id"] for w in view["workloads"]}
        assert view["trace"]["id"] == trace_node_id(expected.trace)
        assert sorted(log["properties"]["message"] for log in view["logs"]) == sorted(
            ingested.log_ids[expected.trace]
        )


def test_the_malformed_annotation_is_rejected_and_reported(client: TestClient, ingested: Ingested) -> None:
    for rejected in ingested.scenario.rejects:
        if not rejected.raw_fragment:
            continue
        ext = error(client, AUDIT, a=rejected.raw_fragment)
        assert ext["code"] == "BAD_AUDIT_ID" and ext["detail"]["reason"]
    out = _cli(ingested.store_url, "rejected")
    for rejected in ingested.scenario.rejects:
        assert rejected.path in out and rejected.reason_fragment in out


def test_path_from_a_log_line_to_the_commit_that_built_it(client: TestClient, ingested: Ingested) -> None:
    expected = ingested.scenario.audits[0]
    hits = data(
        client,
        "query($t: String!) { search(text: $t, kinds: [LogEvent], first: 50) { edges { node { id properties } } } }",
        t="rollout",
    )["search"]["edges"]
    log = next(h["node"]["id"] for h in hits if h["node"]["properties"]["trace_id"] == expected.trace)
    path = data(
        client,
        "query($a: ID!, $b: ID!) { path(from: $a, to: $b) { nodes { id } } }",
        a=log,
        b=commit_node_id(expected.commit),
    )["path"]
    order = [n["id"] for n in path["nodes"]]
    assert order[0] == log and order[-1] == commit_node_id(expected.commit)
    assert trace_node_id(expected.trace) in order


def test_liubai_lineage_prints_the_real_tree(ingested: Ingested, tmp_path: Path) -> None:
    expected = ingested.scenario.audits[0]
    out = _cli(ingested.store_url, "lineage", expected.commit[:10], "--depth", "3")
    assert out.splitlines()[0].rstrip().endswith(commit_node_id(expected.commit))
    for workload in expected.workloads:
        assert workload in out
    assert f"-CORRELATES-> Trace {expected.trace}" in out
    assert "<b>0</b>" in out  # a log line's text, shown as text
    store = open_store(ingested.store_url)
    try:
        assert store.get(commit_node_id(expected.commit)) is not None
    finally:
        store.close()
