"""End to end: spans and log lines whose only link is their OpenTelemetry resource reach the commit a
real cluster runs.

The cluster side is what a real API server held after the demo's deploy (``api/demo_data``'s recording,
ingested with ``liubai ingest k8s --from-file``): Deployments, ReplicaSets and Pods stamped with the audit
id of the deployed commit. The telemetry is records as an OTLP decoder makes them, in a trace of their
own and with no audit id: only ``k8s.pod.uid`` / ``container.id`` or the Deployment's name tie them to the
cluster. ``liubai lineage`` from the commit must reach them, and the GraphQL audit trail must show the
failed span.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from liubai.api.app import create_app
from liubai.api.cli.main import app as cli
from liubai.api.demo_cluster import RECORDED_CLUSTER
from liubai.lineage.join import join_records
from liubai.lineage.model import log_node_id, parse_audit_id, span_node_id, trace_node_id
from liubai.lineage.records import LogRecord, SpanRecord
from liubai.lineage.store import open_store
from tests.api.conftest import data

runner = CliRunner()
TRACE = "5" * 32  # not the trace of any audit id: the spans' own request
AT = "2026-03-01T10:00:00.000000Z"
TRAIL = "query($id: ID!) { auditTrail(id: $id) { via node { id kind properties } } }"
AUDIT = "query($a: String!) { audit(auditId: $a) { errorSpans { id properties } resources { id } } }"


@dataclass
class Deployed:
    store_url: str
    commit: str
    audit_id: str
    payments_pod: str
    payments_container: str


def _cli(store_url: str, *args: str) -> str:
    result = runner.invoke(cli, ["--store", store_url, *args], env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert result.exit_code == 0, f"liubai {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _recorded_pod(items: list[dict], prefix: str) -> tuple[str, str]:  # type: ignore[type-arg]
    """(uid, runtime container id) of the recorded Pod whose name starts with ``prefix`` and whose container
    the kubelet reported."""
    for obj in items:
        meta = obj["metadata"]
        statuses = obj.get("status", {}).get("containerStatuses") or []
        if obj["kind"] == "Pod" and meta["name"].startswith(prefix) and statuses:
            return meta["uid"], statuses[0]["containerID"].partition("://")[2]
    raise AssertionError(f"the recording has no running {prefix} Pod")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    store_url = f"sqlite:///{tmp_path_factory.mktemp('e2e-resource') / 'lineage.db'}"
    _cli(store_url, "ingest", "k8s", "--from-file", str(RECORDED_CLUSTER))
    items = json.loads(RECORDED_CLUSTER.read_text())["items"]
    audit_id = next(
        o["metadata"]["annotations"]["x-gitops-audit-id"]
        for o in items
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "payments"
    )
    commit = parse_audit_id(audit_id).commit
    assert commit is not None
    pod, container = _recorded_pod(items, "payments-")
    yield Deployed(store_url, commit, audit_id, pod, container)


def _telemetry(d: Deployed) -> list[SpanRecord | LogRecord]:
    payments = {
        "service.name": "payments",
        "service.version": "1.2.0",
        "deployment.environment.name": "demo",
        "k8s.namespace.name": "shop",
        "k8s.pod.uid": d.payments_pod,
        "container.id": d.payments_container,
    }
    web = {  # no uid: reached through the Deployment, the Pod only flagged by name
        "service.name": "web",
        "k8s.namespace.name": "shop",
        "k8s.deployment.name": "web",
        "k8s.pod.name": "web-65fbfcf5c7-47xs4",
    }
    return [
        SpanRecord("otlp", TRACE, "a" * 16, name="POST /charge", kind="SERVER", service="payments", start=AT,
                   end=AT, resource=payments),
        SpanRecord("otlp", TRACE, "b" * 16, "a" * 16, "ledger.write", "CLIENT", "payments", AT, AT,
                   status="ERROR", status_message="ledger unavailable", resource=payments),
        LogRecord("otlp", "charge-1", time=AT, level="ERROR", service="payments", message="charge failed",
                  trace_id=TRACE, span_id="b" * 16, resource=payments),
        LogRecord("otlp", "web-1", time=AT, level="INFO", service="web", message="GET / 200", resource=web),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def ingested(deployed: Deployed) -> Deployed:
    store = open_store(deployed.store_url)
    try:
        store.upsert(join_records(_telemetry(deployed)))
    finally:
        store.close()
    return deployed


def test_liubai_lineage_of_the_deployed_commit_reaches_telemetry_through_pod_and_workload(
    ingested: Deployed,
) -> None:
    out = json.loads(
        _cli(ingested.store_url, "lineage", f"commit:{ingested.commit}", "--json")  # the default depth
    )
    depths = out["depths"]
    # commit <-FOR_COMMIT- audit -ANNOTATES-> Pod -RAN-> Resource -EMITTED-> span / log line
    assert depths[span_node_id(TRACE, "a" * 16)] == 4
    assert depths[span_node_id(TRACE, "b" * 16)] == 4
    assert depths[log_node_id("otlp", "charge-1")] == 4
    # commit <-FOR_COMMIT- audit -ANNOTATES-> Deployment <-INSTANCE_OF- Resource -EMITTED-> log line
    assert depths[log_node_id("otlp", "web-1")] == 4
    assert trace_node_id(TRACE) not in depths  # the spans' trace is not the deploy's: only the resource links
    nodes = {n["id"]: n for n in out["nodes"]}
    web = nodes[log_node_id("otlp", "web-1")]["properties"]
    assert web["pod_link"] == "name only"
    failed = nodes[span_node_id(TRACE, "b" * 16)]["properties"]
    assert (failed["status"], failed["service_version"], failed["environment"]) == ("ERROR", "1.2.0", "demo")


def test_the_pod_the_cluster_reported_is_the_one_the_spans_name(ingested: Deployed) -> None:
    store = open_store(ingested.store_url)
    try:
        pod = store.get(f"pod:{ingested.payments_pod}")
    finally:
        store.close()
    assert pod is not None and not pod.placeholder and pod.props["name"].startswith("payments-")


def test_graphql_audit_trail_of_the_commit_shows_the_failed_span(ingested: Deployed) -> None:
    with TestClient(create_app(store_url=ingested.store_url)) as client:
        trail = data(client, TRAIL, id=f"commit:{ingested.commit}")["auditTrail"]
    by_id = {t["node"]["id"]: t for t in trail}
    failed = by_id[span_node_id(TRACE, "b" * 16)]
    assert failed["via"] == "EMITTED" and failed["node"]["kind"] == "Span"
    assert failed["node"]["properties"]["status_message"] == "ledger unavailable"


def test_graphql_audit_view_lists_failed_spans_of_its_trace(ingested: Deployed, tmp_path: Path) -> None:
    """A span of the audit id's own trace (the deploy's) that failed is listed by the audit view."""
    deploy_trace = parse_audit_id(ingested.audit_id).trace
    assert deploy_trace is not None
    store = open_store(ingested.store_url)
    try:
        store.upsert(
            join_records(
                [
                    SpanRecord("otlp", deploy_trace, "c" * 16, name="rollout", start=AT, status="ERROR"),
                    SpanRecord("otlp", deploy_trace, "d" * 16, name="healthcheck", start=AT),
                ]
            )
        )
    finally:
        store.close()
    with TestClient(create_app(store_url=ingested.store_url)) as client:
        view = data(client, AUDIT, a=ingested.audit_id)["audit"]
    assert [s["id"] for s in view["errorSpans"]] == [span_node_id(deploy_trace, "c" * 16)]
