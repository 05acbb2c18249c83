"""Each node kind is its own GraphQL type implementing ``Node``, with typed fields read from what the
join stored: checked against a real Git repository ingested with the CLI, and against records of every
other kind joined the way collectors join them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from strawberry.utils.str_converters import to_camel_case
from typer.testing import CliRunner

from liubai.api.app import create_app
from liubai.api.cli.main import app as cli
from liubai.api.schema_nodes import NODE_FIELDS
from liubai.lineage.batch import GraphBatch
from liubai.lineage.join import join_records
from liubai.lineage.model import (
    NodeKind,
    admission_node_id,
    commit_node_id,
    container_node_id,
    pod_node_id,
    process_node_id,
)
from liubai.lineage.records import (
    AdmissionRecord,
    ContainerStatus,
    PodRecord,
    Record,
    SpanRecord,
)
from liubai.lineage.store import LineageStore, open_store
from tests.api.conftest import World, data
from tests.gitrepo import Scenario, build_gitops_scenario

runner = CliRunner()

NODE = """query($id: ID!) { node(id: $id) { __typename id kind ...Typed } }
fragment Typed on Node {
  ... on Commit { sha subject message author authorEmail authoredAt committer committedAt parents
                  changedPathCount pr signed branch repo firstSeen }
  ... on Repo { url }
  ... on Workload { apiVersion objectKind namespace name manifestPath }
  ... on AuditRecord { raw canonical commit trace }
  ... on Trace { traceId }
  ... on LogEvent { source level service message traceId auditId time }
  ... on PipelineRun { host rootPid startNs command startedAt endedAt exitCode commit auditId traceId }
  ... on Process { host pid ppid comm binary argv argvStatus startedAt execFailed escalation }
  ... on File { host path }
  ... on Pod { uid namespace name phase auditId containerNames images imageIds restarts owner }
  ... on Container { containerId name image imageId podUid restartCount }
  ... on Admission { requestUid username operation objectKind namespace name decision auditId groups time }
  ... on Span { traceId spanId parentSpanId root name spanKind service start end status statusMessage
                attributes }
  ... on Resource { service attributes }
}"""


def _node(client: TestClient, node_id: str) -> dict[str, Any]:
    found: dict[str, Any] = data(client, NODE, id=node_id)["node"]
    assert found is not None, node_id
    assert found["__typename"] == found["kind"]
    return found


# --------------------------------------------------------------------------- a real repository


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def ingested_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scenario, TestClient]]:
    if shutil.which("git") is None:
        pytest.skip("the git CLI is not installed")
    root = tmp_path_factory.mktemp("typed")
    url = f"sqlite:///{root / 'lineage.db'}"
    scenario = build_gitops_scenario(root / "gitops")
    result = runner.invoke(cli, ["--store", url, "ingest", "git", str(scenario.path)])
    assert result.exit_code == 0, result.stdout
    store = open_store(url)
    try:
        with TestClient(create_app(store=store)) as client:
            yield scenario, client
    finally:
        store.close()


def test_commit_fields_are_what_git_says(ingested_repo: tuple[Scenario, TestClient]) -> None:
    scenario, client = ingested_repo
    for sha in (scenario.squash_sha, scenario.merge_sha):
        commit = _node(client, commit_node_id(sha))
        fmt = "%H%x00%an%x00%ae%x00%cn%x00%s%x00%P"
        full, author, email, committer, subject, parents = _git(
            scenario.path, "show", "-s", f"--format={fmt}", sha
        ).split("\x00")
        assert commit["__typename"] == "Commit"
        assert (commit["sha"], commit["author"], commit["authorEmail"], commit["committer"]) == (
            full,
            author,
            email,
            committer,
        )
        assert commit["subject"] == subject and commit["message"].startswith(subject)
        assert commit["parents"] == parents.split()
        assert commit["committedAt"] and commit["authoredAt"] and commit["firstSeen"] == commit["committedAt"]
        changed = _git(scenario.path, "show", "--format=", "--name-only", "-m", "--first-parent", sha).split()
        assert commit["changedPathCount"] == len(changed)
    assert _node(client, commit_node_id(scenario.squash_sha))["pr"] == scenario.squash_pr
    assert _node(client, commit_node_id(scenario.merge_sha))["pr"] == scenario.merge_pr


def test_rejected_records_page_through_every_one(ingested_repo: tuple[Scenario, TestClient]) -> None:
    scenario, client = ingested_repo
    query = """query($after: String) { rejected(first: 1, after: $after) {
      totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { source location reason raw } } } }"""
    seen: list[dict[str, str]] = []
    after: str | None = None
    while True:
        page = data(client, query, after=after)["rejected"]
        assert page["totalCount"] == len(scenario.rejects)
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        seen += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(scenario.rejects) >= 2
    assert len({(r["location"], r["reason"]) for r in seen}) == len(seen)
    for expected in scenario.rejects:
        hits = [r for r in seen if r["location"].startswith(f"{expected.commit[:12]}:{expected.path}")]
        assert len(hits) == 1 and expected.reason_fragment in hits[0]["reason"].lower(), (expected, seen)
        assert expected.raw_fragment in hits[0]["raw"]


# --------------------------------------------------------------------------- the api world


def test_process_run_file_and_log_fields(client: TestClient, world: World) -> None:
    root, child = (_node(client, p) for p in world.processes)
    assert root["__typename"] == "Process"
    assert (root["comm"], root["pid"], root["argv"], root["argvStatus"]) == (
        "sh",
        4242,
        ["sh", "-c", "kubectl"],
        "complete",
    )
    assert (child["pid"], child["ppid"], child["binary"], child["execFailed"]) == (
        4243,
        4242,
        "/usr/bin/kubectl",
        False,
    )
    run = _node(client, world.run)
    assert run["command"] == ["sh", "-c", "kubectl apply -f deploy/"]
    assert (run["rootPid"], run["startNs"], run["exitCode"], run["commit"]) == (
        4242,
        "1000000",
        0,
        world.deploy,
    )
    assert _node(client, world.files[0])["path"] == "/work/deploy/web.yaml"
    log = _node(client, world.logs[0])
    assert (log["level"], log["message"], log["traceId"], log["service"]) == (
        "INFO",
        "rollout started",
        world.trace,
        "web",
    )
    assert log["time"] == "2026-01-01T00:08:00.000000Z"
    assert _node(client, world.trace_node)["traceId"] == world.trace
    audit = _node(client, world.audit_node)
    assert audit["commit"] == world.deploy and audit["trace"] == world.trace
    workload = _node(client, world.workloads[0])
    assert (workload["objectKind"], workload["namespace"], workload["name"], workload["apiVersion"]) == (
        "Deployment",
        "prod",
        "web",
        "apps/v1",
    )
    assert _node(client, f"repo:{world.repo}")["url"] == world.repo


def test_a_property_of_another_type_reads_null_and_stays_in_properties(
    client: TestClient, world: World
) -> None:
    """A value that is not of the field's type (an older or foreign writer's) is not coerced into a guess."""
    node_id = process_node_id("odd-host", 7, 1)
    batch = GraphBatch()
    batch.add_node(node_id, {"host": "odd-host", "pid": "seven", "argv": "sh -c x", "exit_code": 2**40})
    world.store.upsert(batch)
    found = data(
        client,
        "query($id: ID!) { node(id: $id) { properties ... on Process { host pid argv exitCode } } }",
        id=node_id,
    )["node"]
    assert (found["host"], found["pid"], found["argv"], found["exitCode"]) == ("odd-host", None, None, None)
    assert found["properties"]["pid"] == "seven" and found["properties"]["exit_code"] == 2**40


# --------------------------------------------------------------------------- cluster, node and telemetry kinds

SPAN_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
AT = "2026-03-01T00:00:00Z"


@pytest.fixture
def telemetry(store: LineageStore) -> Iterator[TestClient]:
    records: list[Record] = [
        PodRecord(
            "prod-eu",
            "shop",
            "payments-1",
            "uid-p1",
            AT,
            phase="Running",
            owner_kind="ReplicaSet",
            owner_name="payments-7f9",
            containers=(
                ContainerStatus(
                    "app", "shop/payments:1.2", "sha256:" + "ab" * 32, "containerd://" + "cd" * 32, True, 2
                ),
            ),
        ),
        AdmissionRecord(
            "req-9",
            "prod-eu",
            AT,
            "system:serviceaccount:flux-system:kustomize-controller",
            "CREATE",
            "Deployment",
            "shop",
            "payments",
            "passed",
            None,
            None,
            groups=("system:serviceaccounts",),
        ),
        SpanRecord(
            "otlp",
            SPAN_TRACE,
            "00f067aa0ba902b7",
            name="POST /charge",
            kind="SERVER",
            service="payments",
            start=AT,
            end="2026-03-01T00:00:01Z",
            status="ERROR",
            status_message="card declined",
            attributes={"http.status_code": 402},
            resource={"service.name": "payments", "k8s.pod.uid": "uid-p1"},
        ),
    ]
    store.upsert(join_records(records))
    with TestClient(create_app(store=store)) as c:
        yield c


def test_pod_container_admission_span_and_resource_fields(telemetry: TestClient) -> None:
    pod = _node(telemetry, pod_node_id("uid-p1"))
    assert (pod["name"], pod["namespace"], pod["phase"], pod["owner"], pod["restarts"]) == (
        "payments-1",
        "shop",
        "Running",
        "ReplicaSet/payments-7f9",
        2,
    )
    assert (pod["containerNames"], pod["images"], pod["imageIds"]) == (
        ["app"],
        ["shop/payments:1.2"],
        ["sha256:" + "ab" * 32],
    )
    container = _node(telemetry, container_node_id("cd" * 32))
    assert (container["name"], container["image"], container["podUid"], container["restartCount"]) == (
        "app",
        "shop/payments:1.2",
        "uid-p1",
        2,
    )
    admission = _node(telemetry, admission_node_id("req-9"))
    assert (admission["objectKind"], admission["decision"], admission["groups"], admission["time"]) == (
        "Deployment",
        "passed",
        ["system:serviceaccounts"],
        AT,
    )
    spans = data(
        telemetry,
        """{ search(text: "charge", kinds: [Span]) { edges { node { __typename ...on Span {
          traceId spanId parentSpanId root name spanKind service status statusMessage attributes } } } } }""",
    )["search"]["edges"]
    assert [e["node"] for e in spans] == [
        {
            "__typename": "Span",
            "traceId": SPAN_TRACE,
            "spanId": "00f067aa0ba902b7",
            "parentSpanId": None,
            "root": True,
            "name": "POST /charge",
            "spanKind": "SERVER",
            "service": "payments",
            "status": "ERROR",
            "statusMessage": "card declined",
            "attributes": {"http.status_code": 402},
        }
    ]
    resources = data(
        telemetry,
        '{ search(text: "payments", kinds: [Resource]) { edges { node { ...on Resource { service attributes } } } } }',
    )["search"]["edges"]
    assert [e["node"] for e in resources] == [
        {"service": "payments", "attributes": {"service.name": "payments", "k8s.pod.uid": "uid-p1"}}
    ]


# --------------------------------------------------------------------------- the interface


def test_every_node_kind_is_a_type_implementing_node(client: TestClient) -> None:
    found = data(client, '{ __type(name: "Node") { kind possibleTypes { name interfaces { name } } } }')[
        "__type"
    ]
    assert found["kind"] == "INTERFACE"
    assert sorted(t["name"] for t in found["possibleTypes"]) == sorted(k.value for k in NodeKind)
    assert all(t["interfaces"] == [{"name": "Node"}] for t in found["possibleTypes"])


def test_lists_of_nodes_answer_each_as_its_kind(client: TestClient, world: World) -> None:
    """Interface fragments work in every answer that holds nodes, and the shared fields still read as before."""
    found = data(
        client,
        """query($id: ID!) { lineage(from: $id, depth: 6) { nodes { __typename id kind label
             ... on Commit { sha } ... on Process { pid } ... on LogEvent { level } } } }""",
        id=commit_node_id(world.deploy),
    )["lineage"]["nodes"]
    by_id = {n["id"]: n for n in found}
    assert all(n["__typename"] == n["kind"] for n in found)
    assert by_id[commit_node_id(world.deploy)]["sha"] == world.deploy
    assert by_id[world.processes[0]]["pid"] == 4242
    assert by_id[world.logs[0]]["level"] == "INFO"
    assert "pid" not in by_id[commit_node_id(world.deploy)]


def test_one_query_may_ask_every_typed_field_of_every_kind(client: TestClient, world: World) -> None:
    """Same-named fields of different kinds have one type, so fragments on all kinds merge in one selection."""
    fragments = " ".join(
        f"... on {kind.value} {{ {' '.join(to_camel_case(f.name) for f in fields)} }}"
        for kind, fields in NODE_FIELDS.items()
    )
    found = data(
        client,
        f"query($id: ID!) {{ lineage(from: $id, depth: 6) {{ nodes {{ id kind {fragments} }} }} }}",
        id=commit_node_id(world.deploy),
    )["lineage"]["nodes"]
    kinds = {n["kind"] for n in found}
    assert {
        "Commit",
        "Workload",
        "AuditRecord",
        "PipelineRun",
        "Process",
        "File",
        "LogEvent",
        "Trace",
    } <= kinds
    for node in found:
        assert set(node) == {"id", "kind"} | {
            to_camel_case(f.name) for f in NODE_FIELDS[NodeKind(node["kind"])]
        }


def test_every_property_the_joins_write_has_a_typed_field(world: World, telemetry: TestClient) -> None:
    """A property added to a join without a typed field is still in ``properties``; this names it, so the
    typed schema keeps up (``time`` is the interface's own field; ``x_*`` are an audit id's free keys)."""
    untyped: set[tuple[str, str]] = set()
    seen: set[NodeKind] = set()
    for nodes in world.store.iter_nodes():
        for node in nodes:
            typed = {f.prop for f in NODE_FIELDS[node.kind]} | {"time"}
            untyped |= {(node.kind.value, k) for k in node.props if k not in typed and not k.startswith("x_")}
            seen.add(node.kind)
    assert seen == set(NodeKind)
    assert untyped == set()
