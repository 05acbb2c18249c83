"""The walking skeleton on Neo4j: a real GitOps repo and log file ingested with ``--store neo4j://…``,
then the end-to-end checks of ``tests/api/test_e2e_git.py`` run unchanged against that store."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests import neo4j_server
from tests.api import test_e2e_git as e2e
from tests.gitrepo import build_gitops_scenario

pytestmark = pytest.mark.neo4j


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, neo4j_url: str) -> Iterator[e2e.Ingested]:
    if shutil.which("git") is None:
        pytest.skip("the git CLI is not installed")
    neo4j_server.wipe(neo4j_url)
    root = tmp_path_factory.mktemp("e2e-neo4j")
    scenario = build_gitops_scenario(root / "gitops")
    e2e._cli(neo4j_url, "ingest", "git", str(scenario.path), "--cache-dir", str(root / "cache"))
    logs = root / "app.jsonl"
    messages: dict[str, list[str]] = {}
    with logs.open("w", encoding="utf-8") as out:
        for i, expected in enumerate(scenario.audits):
            for step in ("rollout started", "rollout finished"):
                line = {"time": f"2026-02-01T00:{i:02d}:{0 if 'started' in step else 30:02d}Z", "level": "INFO",
                        "service": "deployer", "message": f"{step} <b>{i}</b>", "trace_id": expected.trace}
                out.write(json.dumps(line) + "\n")
                messages.setdefault(expected.trace, []).append(line["message"])
    e2e._cli(neo4j_url, "ingest", "logs", str(logs))
    yield e2e.Ingested(scenario, neo4j_url, messages)


@pytest.fixture
def client(ingested: e2e.Ingested) -> Iterator[TestClient]:
    with TestClient(create_app(store_url=ingested.store_url)) as c:
        yield c


CLIENT_CHECKS: list[Callable[..., Any]] = [
    e2e.test_every_commit_of_the_repository_is_queryable_by_prefix,
    e2e.test_declaring_commits_reach_the_workloads_they_changed,
    e2e.test_audit_view_of_every_annotation,
    e2e.test_the_malformed_annotation_is_rejected_and_reported,
    e2e.test_path_from_a_log_line_to_the_commit_that_built_it,
]


@pytest.mark.parametrize("check", CLIENT_CHECKS, ids=lambda f: f.__name__.removeprefix("test_"))
def test_skeleton_checks_on_neo4j(check: Callable[..., Any], client: TestClient, ingested: e2e.Ingested) -> None:
    check(client, ingested)


@pytest.mark.parametrize("direction", ["DOWNSTREAM", "BOTH"])
def test_lineage_on_neo4j(client: TestClient, ingested: e2e.Ingested, direction: str) -> None:
    e2e.test_lineage_of_a_built_commit_reaches_its_workloads_trace_and_logs(client, ingested, direction)


def test_cli_lineage_on_neo4j(ingested: e2e.Ingested, tmp_path: Any) -> None:
    e2e.test_liubai_lineage_prints_the_real_tree(ingested, tmp_path)
