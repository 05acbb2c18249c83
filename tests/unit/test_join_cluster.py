"""The cluster join: live objects meet what Git declared; Pods hang under their owner and their audit id;
admission decisions name who stamped what."""

from __future__ import annotations

from liubai.lineage.join import join_records
from liubai.lineage.model import (
    EdgeKind,
    NodeKind,
    admission_node_id,
    audit_node_id,
    commit_node_id,
    parse_audit_id,
    pod_node_id,
    workload_node_id,
)
from liubai.lineage.records import (
    AdmissionRecord,
    ClusterObjectRecord,
    ContainerStatus,
    ManifestObjectRecord,
    PodRecord,
)

SHA = "a" * 40
AUDIT = f"git-sha1:{SHA}|trace:{'1' * 32}"
AT = "2026-12-01T00:00:00.000000Z"


def _edges(records: list) -> set[tuple[str, EdgeKind, str]]:  # type: ignore[type-arg]
    return {(e.src, e.kind, e.dst) for e in join_records(records).edges}


def test_live_deployment_is_the_node_git_declared() -> None:
    declared = ManifestObjectRecord("r", SHA, "app.yaml", "apps/v1", "Deployment", "shop", "web")
    live = ClusterObjectRecord(None, "apps/v1", "Deployment", "shop", "web", "uid-1", AT, audit_id=AUDIT)
    batch = join_records([declared, live])
    wid = workload_node_id("Deployment", "shop", "web")
    assert {n.id for n in batch.nodes if n.kind is NodeKind.WORKLOAD} == {wid}
    live_props = next(n.props for n in batch.nodes if n.id == wid and n.props.get("live"))
    assert live_props["uid"] == "uid-1" and live_props["live_audit_id"] == AUDIT


def test_a_named_cluster_keeps_its_objects_apart() -> None:
    a = ClusterObjectRecord("prod", "apps/v1", "Deployment", "shop", "web", "u1", AT)
    b = ClusterObjectRecord("stage", "apps/v1", "Deployment", "shop", "web", "u2", AT)
    ids = {n.id for n in join_records([a, b]).nodes}
    assert ids == {"workload:prod:Deployment/shop/web", "workload:stage:Deployment/shop/web"}


def test_pod_hangs_under_its_replicaset_and_its_audit_record() -> None:
    rs = ClusterObjectRecord(
        None,
        "apps/v1",
        "ReplicaSet",
        "shop",
        "web-5d",
        "rs-uid",
        AT,
        owner_kind="Deployment",
        owner_name="web",
        revision="3",
    )
    pod = PodRecord(
        None,
        "shop",
        "web-5d-x",
        "pod-uid",
        AT,
        node_name="n1",
        phase="Running",
        owner_kind="ReplicaSet",
        owner_name="web-5d",
        audit_id=AUDIT,
        containers=(
            ContainerStatus("app", "nginx:1", "docker.io/nginx@sha256:" + "e" * 64, "containerd://c1"),
        ),
    )
    edges = _edges([rs, pod])
    rs_id = workload_node_id("ReplicaSet", "shop", "web-5d")
    audit = audit_node_id(parse_audit_id(AUDIT))
    assert (rs_id, EdgeKind.INSTANCE_OF, workload_node_id("Deployment", "shop", "web")) in edges
    assert (pod_node_id("pod-uid"), EdgeKind.INSTANCE_OF, rs_id) in edges
    assert (audit, EdgeKind.ANNOTATES, pod_node_id("pod-uid")) in edges
    assert (audit, EdgeKind.FOR_COMMIT, commit_node_id(SHA)) in edges
    node = next(n for n in join_records([pod]).nodes if n.kind is NodeKind.POD)
    assert node.props["container_ids"] == ["containerd://c1"]
    assert node.props["image_ids"] == ["docker.io/nginx@sha256:" + "e" * 64]


def test_deleted_pod_keeps_its_node_marked_deleted() -> None:
    pod = PodRecord(None, "shop", "p", "u", AT, phase="Running", deleted=True)
    node = next(n for n in join_records([pod]).nodes)
    assert node.props["phase"] == "Deleted" and node.props["deleted_at"] == AT


def test_gitops_object_applies_its_commit() -> None:
    ks = ClusterObjectRecord(
        None,
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        "flux-system",
        "apps",
        "k-uid",
        AT,
        revision=f"main@sha1:{SHA}",
        commit=SHA,
    )
    edges = _edges([ks])
    assert (
        workload_node_id("Kustomization", "flux-system", "apps"),
        EdgeKind.APPLIES,
        commit_node_id(SHA),
    ) in edges


def test_malformed_live_audit_id_is_rejected_and_the_object_still_lands() -> None:
    live = ClusterObjectRecord(None, "apps/v1", "Deployment", "shop", "web", "u", AT, audit_id="git-sha1:zz")
    batch = join_records([live])
    assert [n.kind for n in batch.nodes] == [NodeKind.WORKLOAD]
    assert len(batch.rejected) == 1 and batch.rejected[0].location == "k8s:/Deployment/shop/web"


def test_admission_names_who_stamped_which_object() -> None:
    a = AdmissionRecord(
        "req-1",
        None,
        AT,
        "system:serviceaccount:argocd:argocd-application-controller",
        "CREATE",
        "Deployment",
        "shop",
        "web",
        "patched",
        audit_id=AUDIT,
        commit_source="argocd",
    )
    batch = join_records([a])
    edges = {(e.src, e.kind, e.dst) for e in batch.edges}
    aid = admission_node_id("req-1")
    assert (aid, EdgeKind.ADMITTED, workload_node_id("Deployment", "shop", "web")) in edges
    assert (aid, EdgeKind.STAMPED, audit_node_id(parse_audit_id(AUDIT))) in edges
    node = next(n for n in batch.nodes if n.id == aid)
    assert node.kind is NodeKind.ADMISSION
    assert node.props["username"].endswith("argocd-application-controller")


def test_refused_admission_stamps_nothing() -> None:
    a = AdmissionRecord(
        "req-2",
        None,
        AT,
        "alice",
        "CREATE",
        "Deployment",
        "shop",
        "web",
        "refused",
        audit_id="git-sha1:zz",
        reason="malformed audit id",
    )
    batch = join_records([a])
    assert not any(e.kind is EdgeKind.STAMPED for e in batch.edges)
    assert batch.rejected == []  # the refusal is the evidence; the bad id is not parsed as a stamp
