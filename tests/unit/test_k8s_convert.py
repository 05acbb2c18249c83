"""Kubernetes objects as the API server sends them -> the records the join takes.

The objects here are shaped like real API answers (a Pod a kubelet reported on, a Deployment with its
template, a Flux Kustomization and an Argo CD Application with their status); the same conversion runs
on the real API server in tests/kube.
"""

from __future__ import annotations

from typing import Any

import pytest

from liubai.collector.k8s.convert import commit_of_revision, to_record
from liubai.collector.k8s.resources import BUILTIN, GITOPS, Resource
from liubai.lineage.records import ClusterObjectRecord, PodRecord

SHA = "0123456789abcdef0123456789abcdef01234567"
AUDIT = f"git-sha1:{SHA}|trace:{'ab' * 16}"


def resource(kind: str) -> Resource:
    return next(r for r in (*BUILTIN, *GITOPS) if r.kind == kind)


def meta(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "shop",
        "uid": f"uid-{name}",
        "resourceVersion": "42",
        "creationTimestamp": "2026-03-01T10:00:00Z",
        "managedFields": [
            {"manager": "kube-controller-manager", "time": "2026-03-01T10:00:05Z"},
            {"manager": "kubelet", "subresource": "status", "time": "2026-03-01T10:00:09Z"},
        ],
        **extra,
    }


def test_pod_as_a_kubelet_reported_it() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(
            "web-7d9-abc",
            annotations={"x-gitops-audit-id": AUDIT},
            ownerReferences=[
                {"kind": "ReplicaSet", "name": "web-7d9", "controller": True},
                {"kind": "Thing", "name": "other"},
            ],
        ),
        "spec": {"nodeName": "node-a", "containers": [{"name": "web", "image": "reg/web:1.2"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "web",
                    "image": "reg/web:1.2",
                    "imageID": "reg/web@sha256:" + "c" * 64,
                    "containerID": "containerd://" + "d" * 64,
                    "ready": True,
                    "restartCount": 2,
                }
            ],
        },
    }
    rec = to_record(resource("Pod"), pod, "prod")
    assert isinstance(rec, PodRecord)
    assert (rec.uid, rec.namespace, rec.name, rec.cluster) == (
        "uid-web-7d9-abc",
        "shop",
        "web-7d9-abc",
        "prod",
    )
    assert (rec.node_name, rec.phase, rec.audit_id) == ("node-a", "Running", AUDIT)
    assert (rec.owner_kind, rec.owner_name) == ("ReplicaSet", "web-7d9")  # the controller, not the first
    assert rec.created_at == "2026-03-01T10:00:00.000000Z"
    assert rec.observed_at == "2026-03-01T10:00:09.000000Z"  # the latest write the server recorded
    (c,) = rec.containers
    assert c.image_id == "reg/web@sha256:" + "c" * 64
    assert c.container_id == "containerd://" + "d" * 64
    assert (c.ready, c.restart_count) == (True, 2)


def test_pending_pod_keeps_its_images_without_statuses() -> None:
    pod = {"metadata": meta("p"), "spec": {"containers": [{"name": "a", "image": "x:1"}]}, "status": {}}
    rec = to_record(resource("Pod"), pod, None, deleted=True)
    assert isinstance(rec, PodRecord)
    assert rec.deleted and rec.phase is None
    assert [(c.name, c.image, c.image_id) for c in rec.containers] == [("a", "x:1", None)]


def test_deployment_takes_the_template_audit_id_and_revision() -> None:
    dep = {
        "apiVersion": "apps/v1",
        "metadata": meta("web", generation=3, annotations={"deployment.kubernetes.io/revision": "4"}),
        "spec": {
            "replicas": 3,
            "template": {
                "metadata": {"annotations": {"x-gitops-audit-id": AUDIT}},
                "spec": {"initContainers": [{"image": "init:1"}], "containers": [{"image": "reg/web:1.2"}]},
            },
        },
        "status": {"readyReplicas": 2},
    }
    rec = to_record(resource("Deployment"), dep, None)
    assert isinstance(rec, ClusterObjectRecord)
    assert (rec.kind, rec.api_version, rec.namespace, rec.name) == ("Deployment", "apps/v1", "shop", "web")
    assert (rec.audit_id, rec.revision, rec.generation) == (AUDIT, "4", 3)
    assert (rec.replicas, rec.ready_replicas, rec.images) == (3, 2, ("init:1", "reg/web:1.2"))
    assert rec.resource_version == "42"


def test_cronjob_images_come_from_its_job_template() -> None:
    cron = {
        "metadata": meta("nightly"),
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": "batch:7"}]}}}}},
    }
    rec = to_record(resource("CronJob"), cron, None)
    assert isinstance(rec, ClusterObjectRecord) and rec.images == ("batch:7",)


def test_namespace_is_cluster_scoped() -> None:
    rec = to_record(resource("Namespace"), {"metadata": {**meta("shop"), "namespace": "ignored"}}, None)
    assert isinstance(rec, ClusterObjectRecord) and (rec.kind, rec.namespace) == ("Namespace", "")


def test_flux_kustomization_names_the_commit_and_its_source() -> None:
    ks = {
        "metadata": meta("apps"),
        "spec": {
            "path": "./apps/prod",
            "sourceRef": {"kind": "GitRepository", "name": "fleet", "namespace": "flux"},
        },
        "status": {"lastAppliedRevision": f"main@sha1:{SHA.upper()}", "lastAttemptedRevision": "ignored"},
    }
    rec = to_record(
        resource("Kustomization"), ks, None, sources={"flux/fleet": "https://git.example/fleet.git"}
    )
    assert isinstance(rec, ClusterObjectRecord)
    assert (rec.revision, rec.commit) == (f"main@sha1:{SHA.upper()}", SHA)
    assert (rec.source_url, rec.source_path) == ("https://git.example/fleet.git", "./apps/prod")


def test_argo_application_sync_revision() -> None:
    app = {
        "metadata": meta("shop"),
        "spec": {"source": {"repoURL": "https://git.example/shop.git", "path": "deploy"}},
        "status": {"sync": {"status": "Synced", "revision": SHA}},
    }
    rec = to_record(resource("Application"), app, None)
    assert isinstance(rec, ClusterObjectRecord)
    assert (rec.commit, rec.source_url, rec.source_path) == (SHA, "https://git.example/shop.git", "deploy")


@pytest.mark.parametrize(
    ("revision", "commit"),
    [
        (f"main@sha1:{SHA}", SHA),
        (f"sha1:{SHA}", SHA),
        (f"main/{SHA}", SHA),
        (SHA.upper(), SHA),
        ("main@sha256:" + "e" * 64, "e" * 64),
        ("1.4.2", None),
        (f"main@sha1:{SHA[:-1]}", None),
        ("", None),
        (None, None),
    ],
)
def test_commit_of_revision(revision: str | None, commit: str | None) -> None:
    assert commit_of_revision(revision) == commit


@pytest.mark.parametrize(
    "broken", [{}, {"metadata": {"name": "x"}}, {"metadata": "nope"}, {"metadata": {"uid": "u"}}]
)
def test_an_object_without_name_or_uid_is_no_record(broken: dict[str, Any]) -> None:
    assert to_record(resource("Deployment"), broken, None) is None
