"""Drift: running workloads Git does not account for, from the CLI (``liubai drift``) and GraphQL
(``drift``), on every store.

The graph is built as production builds it (records -> join -> store): a Git history where ``c1``
declares ``prod/web`` and ``prod/job``, ``c2`` changes something else and ``c3`` deletes ``prod/job``,
and live objects as the cluster collector writes them, one per way of drifting or not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from liubai.api.app import create_app
from liubai.api.cli.main import app
from liubai.lineage.join import join_records
from liubai.lineage.records import (
    ClusterObjectRecord,
    CommitRecord,
    ManifestObjectRecord,
    PodRecord,
    Record,
)
from liubai.lineage.store import LineageStore
from tests.api.conftest import data

REPO = "https://git.example.com/fleet.git"
C1, C2, C3, GHOST = ("1" * 40, "2" * 40, "3" * 40, "9" * 40)
TRACE = "ab" * 16
AT = "2026-02-01T00:00:00.000000Z"


def audit(commit: str) -> str:
    return f"git-sha1:{commit}|trace:{TRACE}"


def commit(sha: str, parents: tuple[str, ...]) -> CommitRecord:
    return CommitRecord(REPO, sha, parents, "A", "a@x", AT, "B", "b@x", AT, f"commit {sha[:4]}")


def live(
    kind: str,
    name: str,
    audit_id: str | None,
    *,
    cluster: str | None = None,
    owner: str | None = None,
    deleted: bool = False,
) -> ClusterObjectRecord:
    return ClusterObjectRecord(
        cluster,
        "apps/v1",
        kind,
        "prod",
        name,
        f"uid-{cluster}-{name}",
        AT,
        audit_id=audit_id,
        owner_kind=owner and owner.split("/")[0],
        owner_name=owner and owner.split("/")[1],
        deleted=deleted,
    )


# node id -> expected reason; absent from here: not drift
EXPECTED = {
    "workload:Deployment/prod/no-id": "no-audit-id",
    "workload:Deployment/prod/rogue": "undeclared",
    "workload:Deployment/prod/ghost": "unknown-commit",
    "workload:Job/prod/job": "undeclared",
    "workload:Deployment/prod/trace-only": "no-commit",
    "pod:uid-bare": "bad-audit-id",
}


def build(store: LineageStore) -> None:
    records: list[Record] = [commit(C1, ()), commit(C2, (C1,)), commit(C3, (C2,))]
    records += [
        ManifestObjectRecord(REPO, C1, "web.yaml", "apps/v1", "Deployment", "prod", "web"),
        ManifestObjectRecord(REPO, C1, "job.yaml", "batch/v1", "Job", "prod", "job"),
        ManifestObjectRecord(REPO, C3, "job.yaml", "batch/v1", "Job", "prod", "job", deleted=True),
        # declared by c1, running c2 (which did not touch it): declared through its ancestor
        live("Deployment", "web", audit(C2)),
        live("Deployment", "web", audit(C2), cluster="eu-1"),  # a named cluster meets Git's unnamed id
        live("ReplicaSet", "web-5d8", None, owner="Deployment/web"),  # owned: its Deployment answers
        live("Deployment", "no-id", None),
        live("Deployment", "rogue", audit(C2)),
        live("Deployment", "ghost", audit(GHOST)),
        live("Job", "job", audit(C3)),  # c3 deleted its manifest
        live("Deployment", "trace-only", f"trace:{TRACE}"),
        live("Deployment", "gone", None, deleted=True),  # deleted: no longer runs
        PodRecord(None, "prod", "bare", "uid-bare", AT, phase="Running", audit_id="git-sha1:zz"),
        PodRecord(None, "prod", "done", "uid-done", AT, phase="Succeeded"),
        PodRecord(
            None,
            "prod",
            "web-5d8-x",
            "uid-owned",
            AT,
            phase="Running",
            owner_kind="ReplicaSet",
            owner_name="web-5d8",
        ),
    ]
    store.upsert(join_records(records))


@pytest.fixture
def drift_store(store: LineageStore) -> LineageStore:
    build(store)
    return store


@pytest.fixture
def client(drift_store: LineageStore) -> Iterator[TestClient]:
    with TestClient(create_app(store=drift_store)) as c:
        yield c


def test_cli_lists_each_drifting_workload_with_its_reason(drift_store: LineageStore, store_url: str) -> None:
    result = CliRunner().invoke(app, ["--store", store_url, "drift", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert {d["node_id"]: d["reason"] for d in found} == EXPECTED
    ghost = next(d for d in found if d["name"] == "ghost")
    assert ghost["commit"] == GHOST and ghost["audit_id"] == audit(GHOST)
    assert "not in the store" in ghost["detail"]


def test_cli_table_and_cluster_filter(drift_store: LineageStore, store_url: str) -> None:
    result = CliRunner().invoke(app, ["--store", store_url, "drift"])
    assert result.exit_code == 0 and "rogue" in result.stdout and "undeclared" in result.stdout
    only_eu = CliRunner().invoke(app, ["--store", store_url, "drift", "--cluster", "eu-1"])
    assert only_eu.exit_code == 0 and "no drift" in only_eu.stdout


def test_graphql_drift_matches_the_cli(client: TestClient) -> None:
    got = data(client, "{ drift { id kind namespace name cluster reason detail auditId commit } }")["drift"]
    assert {d["id"]: d["reason"] for d in got} == EXPECTED
    rogue = next(d for d in got if d["name"] == "rogue")
    assert (rogue["kind"], rogue["namespace"], rogue["commit"], rogue["cluster"]) == (
        "Deployment",
        "prod",
        C2,
        None,
    )
    assert data(client, '{ drift(cluster: "eu-1") { id } }')["drift"] == []
