"""Where the commit of an admitted object comes from, and the short-lived cache in front of the API server."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from liubai.collector.admission.cluster_reader import CachedReader
from liubai.collector.admission.revision import (
    Commit,
    GitOpsSettings,
    ObjectRef,
    ReadFailed,
    parse_commit,
    parse_flux_revision,
    resolve_commit,
)

SHA = "3f" * 20
SHA256 = "9a" * 32
ARGO = "system:serviceaccount:argocd:argocd-application-controller"
FLUX = "system:serviceaccount:flux-system:kustomize-controller"
SETTINGS = GitOpsSettings()


class Cluster:
    """Objects by (kind, namespace, name); counts reads; ``fail`` makes every read fail."""

    def __init__(self, objects: dict[tuple[str, str, str], Mapping[str, Any]] | None = None) -> None:
        self.objects = objects or {}
        self.reads: list[ObjectRef] = []
        self.fail: str | None = None

    def get(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        self.reads.append(ref)
        if self.fail:
            raise ReadFailed(self.fail)
        return self.objects.get((ref.kind, ref.namespace, ref.name))


def obj(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "web", "labels": labels or {}, "annotations": annotations or {}}}


@pytest.mark.parametrize(
    ("text", "git_source", "want"),
    [
        (f"main@sha1:{SHA}", True, Commit(SHA, "git-sha1")),
        (f"sha1:{SHA.upper()}", True, Commit(SHA, "git-sha1")),
        (f"v1.2.3@sha1:{SHA}", True, Commit(SHA, "git-sha1")),
        (f"main@sha256:{SHA256}", True, Commit(SHA256, "git-sha256")),
        (f"latest@sha256:{SHA256}", False, None),  # an OCI artifact digest, not a commit
        (f"main/{SHA}", True, Commit(SHA, "git-sha1")),  # Flux before 2.0
        (SHA, True, Commit(SHA, "git-sha1")),
        ("6.0.1", True, None),  # a chart version
        ("0.1.0+3f3f3f3f3f3f", True, None),  # a chart version with a short source digest
        (f"main@sha1:{SHA[:12]}", True, None),
        ("", True, None),
        (None, True, None),
    ],
)
def test_flux_revisions(text: Any, git_source: bool, want: Commit | None) -> None:
    assert parse_flux_revision(text, git_source=git_source) == want


def test_parse_commit_wants_a_full_id() -> None:
    assert parse_commit(f" {SHA} ") == Commit(SHA, "git-sha1")
    assert parse_commit(SHA256) == Commit(SHA256, "git-sha256")
    assert parse_commit(SHA[:39]) is None and parse_commit("1.2.3") is None and parse_commit(7) is None


def test_argocd_tracking_id_names_the_application_and_its_sync_revision() -> None:
    app = {"status": {"sync": {"revision": SHA}}}
    cluster = Cluster({("Application", "argocd", "shop"): app, ("Application", "team-a", "pay"): app})
    got = resolve_commit(
        obj(annotations={"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:prod/web"}),
        None,
        ARGO,
        cluster,
        SETTINGS,
    )
    assert got.commit == Commit(SHA, "git-sha1") and got.source == "argocd"
    got = resolve_commit(
        obj(annotations={"argocd.argoproj.io/tracking-id": "team-a_pay:apps/Deployment:prod/web"}),
        None,
        ARGO,
        cluster,
        SETTINGS,
    )
    assert got.commit == Commit(SHA, "git-sha1")
    got = resolve_commit(obj(labels={"app.kubernetes.io/instance": "shop"}), None, ARGO, cluster, SETTINGS)
    assert got.commit == Commit(SHA, "git-sha1")


def test_argocd_prefers_the_revision_of_the_sync_running_now() -> None:
    older, newer = "11" * 20, "22" * 20
    app = {
        "status": {
            "sync": {"revision": older},
            "operationState": {"phase": "Running", "operation": {"sync": {"revision": newer}}},
        }
    }
    cluster = Cluster({("Application", "argocd", "shop"): app})
    got = resolve_commit(obj(labels={"app.kubernetes.io/instance": "shop"}), None, ARGO, cluster, SETTINGS)
    assert got.commit == Commit(newer, "git-sha1")


def test_flux_kustomization_and_helmrelease() -> None:
    cluster = Cluster(
        {
            ("Kustomization", "flux-system", "apps"): {
                "spec": {"sourceRef": {"kind": "GitRepository", "name": "repo"}},
                "status": {"lastAttemptedRevision": f"main@sha1:{SHA}"},
            },
            ("Kustomization", "flux-system", "oci"): {
                "spec": {"sourceRef": {"kind": "OCIRepository", "name": "art"}},
                "status": {"lastAttemptedRevision": f"latest@sha256:{SHA256}"},
            },
            ("HelmRelease", "flux-system", "chart"): {"status": {"lastAttemptedRevision": "6.0.1"}},
        }
    )

    def labels(prefix: str, name: str) -> dict[str, Any]:
        return obj(
            labels={
                f"{prefix}.toolkit.fluxcd.io/name": name,
                f"{prefix}.toolkit.fluxcd.io/namespace": "flux-system",
            }
        )

    got = resolve_commit(labels("kustomize", "apps"), None, FLUX, cluster, SETTINGS)
    assert (got.commit, got.source) == (Commit(SHA, "git-sha1"), "flux-kustomization")
    got = resolve_commit(labels("kustomize", "oci"), None, FLUX, cluster, SETTINGS)
    assert got.commit is None and "is not a Git commit" in got.notes[0]
    got = resolve_commit(
        labels("helm", "chart"), None, "system:serviceaccount:flux-system:helm-controller", cluster, SETTINGS
    )
    assert got.commit is None and got.notes == (
        "HelmRelease flux-system/chart revision '6.0.1' is not a Git commit",
    )
    got = resolve_commit(labels("kustomize", "gone"), None, FLUX, cluster, SETTINGS)
    assert got.notes == ("Kustomization flux-system/gone not found",)


HELM = "system:serviceaccount:flux-system:helm-controller"


def helm_labelled() -> dict[str, Any]:
    return obj(labels={"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": "apps"})


def helm_release(version: str, chart: str | None = "flux-system/apps-web") -> dict[str, Any]:
    """A HelmRelease's status as helm-controller writes it: the chart version it is applying and the
    HelmChart (``<namespace>/<name>``) it had source-controller build."""
    status: dict[str, Any] = {"lastAttemptedRevision": version}
    if chart is not None:
        status["helmChart"] = chart
    return {"spec": {"chart": {"spec": {"chart": "./charts/web"}}}, "status": status}


def helm_chart(source_kind: str, observed: str) -> dict[str, Any]:
    return {
        "spec": {"chart": "./charts/web", "sourceRef": {"kind": source_kind, "name": "fleet"}},
        "status": {"observedSourceArtifactRevision": observed},
    }


def test_a_helmrelease_of_a_chart_built_per_git_revision_names_the_full_commit() -> None:
    # reconcileStrategy: Revision puts the commit's first 12 hex in the chart version (with valuesFiles,
    # then ".<generation>"); the HelmChart holds the full revision it was built from
    for version in (f"1.4.0+{SHA[:12]}", f"1.4.0+{SHA[:12]}.3"):
        cluster = Cluster(
            {
                ("HelmRelease", "apps", "web"): helm_release(version),
                ("HelmChart", "flux-system", "apps-web"): helm_chart("GitRepository", f"main@sha1:{SHA}"),
            }
        )
        got = resolve_commit(helm_labelled(), None, HELM, cluster, SETTINGS)
        assert (got.commit, got.source) == (Commit(SHA, "git-sha1"), "flux-helmrelease"), version
        assert [(r.group, r.kind, r.namespace, r.name) for r in cluster.reads] == [
            ("helm.toolkit.fluxcd.io", "HelmRelease", "apps", "web"),
            ("source.toolkit.fluxcd.io", "HelmChart", "flux-system", "apps-web"),
        ]


def test_a_helmrelease_names_no_commit_unless_its_chart_was_built_from_that_commit() -> None:
    newer = "7c" * 20
    version = f"1.4.0+{SHA[:12]}"
    cases = {
        # the default reconcileStrategy (ChartVersion): a chart version alone, no HelmChart read
        "1.4.0": (
            helm_chart("GitRepository", f"main@sha1:{SHA}"),
            "HelmRelease apps/web revision '1.4.0' is not a Git commit",
        ),
        # the HelmChart moved on to the next commit while the release still applies the previous chart
        version: (
            helm_chart("GitRepository", f"main@sha1:{newer}"),
            f"HelmRelease apps/web revision '{version}' is not a Git commit; HelmChart flux-system/apps-web "
            f"source revision 'main@sha1:{newer}' is not the commit {SHA[:12]} the chart was built from",
        ),
    }
    for given, (chart, note) in cases.items():
        cluster = Cluster(
            {
                ("HelmRelease", "apps", "web"): helm_release(given),
                ("HelmChart", "flux-system", "apps-web"): chart,
            }
        )
        got = resolve_commit(helm_labelled(), None, HELM, cluster, SETTINGS)
        assert got.commit is None and got.notes == (note,), given
    # a Bucket's revision is a digest, not a commit, even where its first 12 hex match
    cluster = Cluster(
        {
            ("HelmRelease", "apps", "web"): helm_release(version),
            ("HelmChart", "flux-system", "apps-web"): helm_chart("Bucket", f"sha256:{SHA}{'0' * 24}"),
        }
    )
    got = resolve_commit(helm_labelled(), None, HELM, cluster, SETTINGS)
    assert got.commit is None and got.notes[0].endswith("is not built from a GitRepository")
    cluster = Cluster({("HelmRelease", "apps", "web"): helm_release(version, chart=None)})
    got = resolve_commit(helm_labelled(), None, HELM, cluster, SETTINGS)
    assert got.commit is None and "names no HelmChart" in got.notes[0]
    # what the webhook does then: a commit annotation the render set still names the commit
    with_annotation = helm_labelled()
    with_annotation["metadata"]["annotations"]["liubai.dev/commit"] = SHA
    got = resolve_commit(with_annotation, None, HELM, cluster, SETTINGS)
    assert (got.commit, got.source) == (Commit(SHA, "git-sha1"), "annotation")


def test_a_person_editing_a_labelled_object_is_not_credited_with_the_controllers_commit() -> None:
    cluster = Cluster({("Application", "argocd", "shop"): {"status": {"sync": {"revision": SHA}}}})
    got = resolve_commit(obj(labels={"app.kubernetes.io/instance": "shop"}), None, "alice", cluster, SETTINGS)
    assert got.commit is None and cluster.reads == []
    assert "alice is not a GitOps controller" in got.notes[0]
    trusting = GitOpsSettings(controller_users=("*",))
    assert resolve_commit(
        obj(labels={"app.kubernetes.io/instance": "shop"}), None, "alice", cluster, trusting
    ).commit


def test_the_commit_annotation_counts_only_when_the_request_sets_it() -> None:
    new = obj(annotations={"liubai.dev/commit": SHA})
    got = resolve_commit(new, None, "ci-bot", None, SETTINGS)
    assert (got.commit, got.source) == (Commit(SHA, "git-sha1"), "annotation")
    # an update that only carries the stored value along (kubectl set image) deploys no commit
    got = resolve_commit(new, obj(annotations={"liubai.dev/commit": SHA}), "alice", None, SETTINGS)
    assert got.commit is None
    got = resolve_commit(new, obj(annotations={"liubai.dev/commit": "44" * 20}), "ci-bot", None, SETTINGS)
    assert got.commit == Commit(SHA, "git-sha1")
    got = resolve_commit(obj(annotations={"liubai.dev/commit": "HEAD"}), None, "ci-bot", None, SETTINGS)
    assert got.commit is None and "is not a 40- or 64-hex commit id" in got.notes[0]


def test_a_failed_read_is_a_note_and_the_next_source_is_asked() -> None:
    cluster = Cluster()
    cluster.fail = "API server unreachable"
    both = obj(
        labels={"app.kubernetes.io/instance": "shop"},
        annotations={"liubai.dev/commit": SHA},
    )
    got = resolve_commit(both, None, ARGO, cluster, SETTINGS)
    assert got.commit == Commit(SHA, "git-sha1") and got.source == "annotation"
    got = resolve_commit(obj(labels={"app.kubernetes.io/instance": "shop"}), None, ARGO, cluster, SETTINGS)
    assert got.notes == ("Application argocd/shop: API server unreachable",)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


REF = ObjectRef("argoproj.io", "v1alpha1", "applications", "Application", "argocd", "shop")


def settled(cache: CachedReader) -> None:
    deadline = time.monotonic() + 10
    while cache.refreshing:
        assert time.monotonic() < deadline, "the background read did not finish"
        time.sleep(0.01)


def test_cache_reuses_answers_for_the_ttl_and_then_reads_again() -> None:
    cluster = Cluster({("Application", "argocd", "shop"): {"v": 1}})
    clock = Clock()
    cache = CachedReader(cluster, ttl=2.0, error_ttl=5.0, clock=clock)
    assert cache.get(REF) == {"v": 1}
    cluster.objects[("Application", "argocd", "shop")] = {"v": 2}
    clock.now += 0.9
    assert cache.get(REF) == {"v": 1} and len(cluster.reads) == 1
    clock.now += 1.2  # past the ttl and not asked for since: read on the admission path
    assert cache.get(REF) == {"v": 2} and len(cluster.reads) == 2
    cluster.fail = "forbidden"
    clock.now += 2.1
    for _ in range(3):
        with pytest.raises(ReadFailed, match="forbidden"):
            cache.get(REF)
    assert len(cluster.reads) == 3  # one failed read, then the failure is reused for error_ttl


def test_an_answer_in_use_is_read_again_in_the_background_before_it_expires() -> None:
    cluster = Cluster({("Application", "argocd", "shop"): {"v": 1}})
    clock = Clock()
    cache = CachedReader(cluster, ttl=2.0, clock=clock)
    assert cache.get(REF) == {"v": 1}
    cluster.objects[("Application", "argocd", "shop")] = {"v": 2}
    clock.now += 1.5  # past half the ttl: served as it is, and read again meanwhile
    assert cache.get(REF) == {"v": 1}
    settled(cache)
    assert len(cluster.reads) == 2
    clock.now += 1.0  # the first answer would have expired; the second is 1 s old
    assert cache.is_fresh(REF) and cache.get(REF) == {"v": 2} and len(cluster.reads) == 2

    cluster.fail = "API server unreachable"  # a failed background read keeps the answer until it expires
    clock.now += 0.5
    assert cache.get(REF) == {"v": 2}
    settled(cache)
    assert cache.get(REF) == {"v": 2}
    clock.now += 0.6  # now past its ttl: the failure is found on the admission path
    with pytest.raises(ReadFailed, match="unreachable"):
        cache.get(REF)


def test_concurrent_requests_for_one_object_share_one_read() -> None:
    class Slow(Cluster):
        def get(self, ref: ObjectRef) -> Mapping[str, Any] | None:
            time.sleep(0.2)
            return super().get(ref)

    cluster = Slow({("Application", "argocd", "shop"): {"v": 1}})
    cache = CachedReader(cluster, ttl=60)
    answers: list[Any] = []
    threads = [threading.Thread(target=lambda: answers.append(cache.get(REF))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [{"v": 1}] * 8 and len(cluster.reads) == 1
