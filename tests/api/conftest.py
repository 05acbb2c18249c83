"""A small but complete lineage graph in each store, and an HTTP client over the real app.

The graph is built the way production builds it: typed records -> ``join_records`` -> ``store.upsert``.
``World`` keeps the ids the tests ask about, derived from the same values the records were made from.
Every test using the ``store``, ``store_url`` or ``world`` fixture runs on SQLite and on a real Neo4j unless marked ``sqlite_only``
(tests/stores.py): the API sees only the store protocol, so the answers must not depend on the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from liubai.api.app import create_app
from liubai.lineage.join import join_records
from liubai.lineage.model import (
    audit_node_id,
    commit_node_id,
    file_node_id,
    log_node_id,
    parse_audit_id,
    process_node_id,
    run_node_id,
    trace_node_id,
    workload_node_id,
)
from liubai.lineage.records import (
    CommitRecord,
    FileAccessRecord,
    LogRecord,
    ManifestObjectRecord,
    ProcessRecord,
    Record,
    RunRecord,
)
from liubai.lineage.store import LineageStore, open_store
from tests.stores import blank_store_url, parametrize_store

HOSTILE_SUBJECT = "fix: '\"; DROP TABLE nodes; -- <script>alert(1)</script> [bold red]x[/]"
HOSTILE_BODY = "MATCH (n) DETACH DELETE n\n}{ $where: 1 } \\x00 ' OR '1'='1"
CONFIG_MAPS = 23  # enough for three search pages of 10


def _sha(label: str, prefix: str = "") -> str:
    digest = hashlib.sha1(label.encode(), usedforsecurity=False).hexdigest()
    return (prefix + digest)[:40]


def _at(minute: int) -> str:
    return f"2026-01-01T00:{minute:02d}:00.000000Z"


@dataclass
class World:
    store: LineageStore
    repo: str
    base: str  # root commit
    deploy: str  # the commit whose manifests carry the audit id
    hostile: str  # the commit with untrusted text in its message
    twin_a: str  # twin_a and twin_b share a 6-hex prefix
    twin_b: str
    trace: str
    audit_raw: str
    workloads: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)  # in time order
    run: str = ""
    processes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    config_maps: list[str] = field(default_factory=list)
    bad_annotation: str = ""
    url: str = ""  # what a user passes to --store; store.url is the display form, without a password

    @property
    def audit_node(self) -> str:
        return audit_node_id(parse_audit_id(self.audit_raw))

    @property
    def trace_node(self) -> str:
        return trace_node_id(self.trace)


def _commit(
    repo: str, sha: str, parents: tuple[str, ...], minute: int, subject: str, message: str = ""
) -> CommitRecord:
    return CommitRecord(
        repo=repo,
        sha=sha,
        parents=parents,
        author_name="Ada",
        author_email="ada@example.com",
        authored_at=_at(minute),
        committer_name="Bot",
        committer_email="bot@example.com",
        committed_at=_at(minute),
        subject=subject,
        message=message or subject,
        changed_paths=("deploy/web.yaml",),
    )


def build_world(store: LineageStore) -> World:
    repo = "https://git.example.com/platform/gitops.git"
    base, deploy, hostile = _sha("base"), _sha("deploy"), _sha("hostile")
    twin_a, twin_b = _sha("twin-a", "c0ffee"), _sha("twin-b", "c0ffee")
    trace = hashlib.md5(b"deploy-trace", usedforsecurity=False).hexdigest()
    audit_raw = f"trace:{trace}|git-sha256:{deploy.upper()}"  # out of order, upper case: must canonicalise
    w = World(store, repo, base, deploy, hostile, twin_a, twin_b, trace, audit_raw)

    records: list[Record] = [
        _commit(repo, base, (), 1, "init"),
        _commit(repo, deploy, (base,), 2, "deploy web 1.2"),
        _commit(repo, hostile, (deploy,), 3, HOSTILE_SUBJECT, f"{HOSTILE_SUBJECT}\n\n{HOSTILE_BODY}"),
        _commit(repo, twin_a, (hostile,), 4, "twin a"),
        _commit(repo, twin_b, (twin_a,), 5, "twin b"),
    ]
    for kind in ("Deployment", "Service"):
        records.append(
            ManifestObjectRecord(
                repo,
                deploy,
                "deploy/web.yaml",
                "apps/v1",
                kind,
                "prod",
                "web",
                (audit_raw,),
                document_index=len(w.workloads),
            )
        )
        w.workloads.append(workload_node_id(kind, "prod", "web"))
    w.bad_annotation = "git-sha256:not-hex|trace:x"
    records.append(
        ManifestObjectRecord(
            repo, hostile, "deploy/bad.yaml", "v1", "ConfigMap", "prod", "bad", (w.bad_annotation,)
        )
    )
    for i in range(CONFIG_MAPS):
        records.append(
            ManifestObjectRecord(
                repo, twin_a, f"cfg/settings-{i}.yaml", "v1", "ConfigMap", "ops", f"settings-{i:02d}"
            )
        )
        w.config_maps.append(workload_node_id("ConfigMap", "ops", f"settings-{i:02d}"))

    host, root_pid, start = "ci-runner-1", 4242, 1_000_000
    w.run = run_node_id(host, root_pid, start)
    records.append(
        RunRecord(
            host,
            root_pid,
            start,
            ("sh", "-c", "kubectl apply -f deploy/"),
            _at(6),
            ended_at=_at(7),
            exit_code=0,
            commit=deploy,
            audit_id=audit_raw,
            trace_id=trace,
        )
    )
    records.append(
        ProcessRecord(
            host, root_pid, start, root_pid, start, comm="sh", argv=("sh", "-c", "kubectl"), started_at=_at(6)
        )
    )
    records.append(
        ProcessRecord(
            host,
            4243,
            start + 5,
            root_pid,
            start,
            ppid=root_pid,
            parent_start_ns=start,
            comm="kubectl",
            binary="/usr/bin/kubectl",
            started_at=_at(6),
        )
    )
    w.processes = [process_node_id(host, root_pid, start), process_node_id(host, 4243, start + 5)]
    records.append(FileAccessRecord(host, 4243, start + 5, "/work/deploy/web.yaml", "read"))
    w.files = [file_node_id(host, "/work/deploy/web.yaml")]

    source = "app.jsonl"
    for i, (minute, message, carries) in enumerate(
        [(8, "rollout started", True), (9, "pod ready", False), (10, "rollout done", False)]
    ):
        records.append(
            LogRecord(
                source,
                f"r{i}",
                _at(minute),
                "INFO",
                "web",
                message,
                trace_id=trace,
                audit_id=audit_raw if carries else None,
            )
        )
        w.logs.append(log_node_id(source, f"r{i}"))
    store.upsert(join_records(records))
    return w


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_store(metafunc, "store_url", "function")


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a blank store, as a user passes it to ``--store`` (a Neo4j password included)."""
    return blank_store_url(request, request.param, tmp_path, "api.db")


@pytest.fixture
def store(store_url: str) -> Iterator[LineageStore]:
    s = open_store(store_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def world(store: LineageStore, store_url: str) -> World:
    w = build_world(store)
    w.url = store_url
    return w


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(store=world.store)) as c:
        yield c


def gql(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    """POST a query; return the whole GraphQL response body (data and errors)."""
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def data(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    """POST a query that must succeed; return its data."""
    body = gql(client, query, **variables)
    assert not body.get("errors"), body["errors"]
    result: dict[str, Any] = body["data"]
    return result


def error(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    """POST a query that must fail with exactly one error; return that error's extensions."""
    body = gql(client, query, **variables)
    errors = body.get("errors") or []
    assert len(errors) == 1, body
    ext: dict[str, Any] = errors[0]["extensions"]
    assert ext["message"] == errors[0]["message"]
    return ext


def commit_id(sha: str) -> str:
    return commit_node_id(sha)
