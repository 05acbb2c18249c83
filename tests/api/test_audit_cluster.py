"""The ``audit`` view reaches the cluster side of a change: the Pods that carry its id and the admission
decisions that stamped it (who applied what, when), on every store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from liubai.api.app import create_app
from liubai.lineage.join import join_records
from liubai.lineage.model import admission_node_id, pod_node_id
from liubai.lineage.records import AdmissionRecord, ClusterObjectRecord, CommitRecord, PodRecord, Record
from liubai.lineage.store import LineageStore
from tests.api.conftest import data

SHA = "4" * 40
AUDIT_ID = f"git-sha1:{SHA}|trace:{'cd' * 16}"
OTHER_ID = f"git-sha1:{SHA}|trace:{'ef' * 16}"
FLUX = "system:serviceaccount:flux-system:kustomize-controller"
AT = "2026-02-01T00:00:00.000000Z"
CREATED = "2026-01-31T23:58:00.000000Z"  # a Pod created before the collector listed it (at AT)
VIEW = """query($a: String!) { audit(auditId: $a) {
  workloads { id } pods { id properties } admissions { id properties } } }"""


def _admission(
    uid: str, time: str, decision: str, audit_id: str, operation: str = "CREATE"
) -> AdmissionRecord:
    return AdmissionRecord(
        uid,
        None,
        time,
        FLUX,
        operation,
        "Deployment",
        "shop",
        "payments",
        decision,
        audit_id,
        "flux-kustomization",
    )


def _pod(name: str, audit_id: str, created_at: str | None = None) -> PodRecord:
    return PodRecord(
        None,
        "shop",
        name,
        f"uid-{name}",
        AT,
        phase="Running",
        owner_kind="ReplicaSet",
        owner_name="payments-7f9",
        audit_id=audit_id,
        created_at=created_at,
    )


@pytest.fixture
def client(store: LineageStore) -> Iterator[TestClient]:
    records: list[Record] = [
        CommitRecord("https://git.example/shop.git", SHA, (), "A", "a@x", AT, "B", "b@x", AT, "deploy"),
        ClusterObjectRecord(
            None, "apps/v1", "Deployment", "shop", "payments", "uid-dep", AT, audit_id=AUDIT_ID
        ),
        _admission("req-2", "2026-02-01T00:05:00Z", "kept", AUDIT_ID, "UPDATE"),
        _admission("req-1", "2026-02-01T00:01:00Z", "patched", AUDIT_ID),
        _admission("req-3", "2026-02-01T00:09:00Z", "patched", OTHER_ID, "UPDATE"),  # the next rollout
        _admission("req-4", "2026-02-01T00:10:00Z", "refused", "git-sha1:nothex"),
        _pod("payments-7f9-a", AUDIT_ID, created_at=CREATED),
        _pod("payments-7f9-b", AUDIT_ID),
        _pod("payments-8c1-a", OTHER_ID),
    ]
    store.upsert(join_records(records))
    with TestClient(create_app(store=store)) as c:
        yield c


def test_audit_view_lists_the_pods_carrying_the_id_and_who_stamped_it(client: TestClient) -> None:
    view = data(client, VIEW, a=AUDIT_ID)["audit"]
    assert {p["id"] for p in view["pods"]} == {
        pod_node_id("uid-payments-7f9-a"),
        pod_node_id("uid-payments-7f9-b"),
    }
    assert [a["id"] for a in view["admissions"]] == [admission_node_id("req-1"), admission_node_id("req-2")]
    first = view["admissions"][0]["properties"]
    assert (first["username"], first["decision"], first["operation"]) == (FLUX, "patched", "CREATE")
    assert [w["id"] for w in view["workloads"]] == ["workload:Deployment/shop/payments"]
    rolled = data(client, VIEW, a=OTHER_ID)["audit"]
    assert [p["id"] for p in rolled["pods"]] == [pod_node_id("uid-payments-8c1-a")]
    assert [a["id"] for a in rolled["admissions"]] == [admission_node_id("req-3")]


def test_the_audit_trail_places_a_pod_at_its_creation_not_when_it_was_listed(client: TestClient) -> None:
    trail = data(client, "query($id: ID!) { auditTrail(id: $id) { time node { id } } }", id=AUDIT_ID)
    times = {t["node"]["id"]: t["time"] for t in trail["auditTrail"]}
    assert times[pod_node_id("uid-payments-7f9-a")] == CREATED
    assert times[pod_node_id("uid-payments-7f9-b")] == AT  # no creation time known: when it was listed
    node = data(client, "query($id: ID!) { node(id: $id) { time } }", id=pod_node_id("uid-payments-7f9-a"))
    assert node["node"]["time"] == CREATED
