"""What a repository deploys through Flux and Argo CD, rendered: overlays with their namespaces, Flux
targetNamespace and postBuild.substitute, Argo CD destination.namespace, a local Helm chart, and a base
that cannot be fetched. Each on a generated repository, with the exact expected graph."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from liubai.lineage.declared import declared_at
from liubai.lineage.model import Direction, EdgeKind, commit_node_id
from liubai.lineage.store import LineageStore
from tests._real import missing
from tests.git.conftest import run_ingest
from tests.gitrepo import GitRepoBuilder


@pytest.fixture(autouse=True)
def _kubectl() -> None:
    if shutil.which("kubectl") is None:
        missing("kubectl", "kubectl is not installed: overlays cannot be rendered (scripts/setup-system)")


def _declares(store: LineageStore, sha: str) -> dict[str, tuple[bool, str]]:
    page = store.neighbors(commit_node_id(sha), Direction.DOWNSTREAM, [EdgeKind.DECLARES], first=1000)
    return {e.dst: (bool(e.props["deleted"]), str(e.props.get("rendered_by") or "")) for e in page.edges}


def _declared(store: LineageStore, sha: str) -> set[str]:
    view = declared_at(store, sha)
    assert view.complete
    return {o.node.id for o in view.objects}


DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "web:${version:=1.0}"}]}
"""
SERVICE = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n"
CONF = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf-${tier}\ndata: {a: b}\n"


def _base(repo: GitRepoBuilder) -> None:
    repo.write("apps/base/kustomization.yaml", "resources: [deploy.yaml, svc.yaml, conf.yaml]\n")
    repo.write("apps/base/deploy.yaml", DEPLOY)
    repo.write("apps/base/svc.yaml", SERVICE)
    repo.write("apps/base/conf.yaml", CONF)
    repo.write("apps/overlays/prod/kustomization.yaml", "namespace: prod\nresources: [../../base]\n")


FLUX = """apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  path: ./apps/overlays/prod
  targetNamespace: shop
  postBuild:
    substitute: {tier: gold}
  sourceRef: {kind: GitRepository, name: flux-system}
"""


def test_flux_kustomization_with_target_namespace(tmp_path: Path, store: LineageStore) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    _base(repo)
    repo.write("clusters/prod/apps.yaml", FLUX)
    first = repo.commit("apps through flux")
    repo.write("apps/base/deploy.yaml", DEPLOY.replace("1.0", "1.1"))
    bump = repo.commit("web 1.1")
    repo.write("apps/base/kustomization.yaml", "resources: [deploy.yaml, conf.yaml]\n")
    drop = repo.commit("service retired")
    repo.write("README.md", "docs\n")
    docs = repo.commit("docs only")
    run_ingest(store, repo.path, render=True)
    by = "Kustomization/flux-system/apps"
    web, svc, conf = (
        "workload:Deployment/shop/web",
        "workload:Service/shop/web",
        "workload:ConfigMap/shop/conf-gold",
    )
    flux = "workload:Kustomization/flux-system/apps"
    assert _declares(store, first) == {
        web: (False, by),
        svc: (False, by),
        conf: (False, by),
        flux: (False, ""),
    }
    assert _declares(store, bump) == {web: (False, by), svc: (False, by), conf: (False, by)}
    assert _declares(store, drop) == {web: (False, by), svc: (True, by), conf: (False, by)}
    assert _declares(store, docs) == {}
    assert _declared(store, docs) == {web, conf, flux}
    node = store.get(conf)
    assert node is not None and node.props["manifest_path"] == "apps/overlays/prod"
    assert store.get("workload:Deployment/default/web") is None, "the base is not declared on its own"


ARGO = """apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: web
  namespace: argocd
spec:
  destination: {server: https://kubernetes.default.svc, namespace: storefront}
  source: {repoURL: https://example.invalid/gitops.git, path: PATH, targetRevision: main}
"""


def test_argo_application_over_kustomize_with_destination_namespace(
    tmp_path: Path, store: LineageStore
) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("web/kustomization.yaml", "resources: [deploy.yaml, ns.yaml]\n")
    repo.write("web/deploy.yaml", DEPLOY)
    repo.write("web/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: storefront\n")
    repo.write("argo/web.yaml", ARGO.replace("PATH", "web"))
    sha = repo.commit("web through argo")
    run_ingest(store, repo.path, render=True)
    by = "Application/argocd/web"
    assert _declares(store, sha) == {
        "workload:Deployment/storefront/web": (False, by),
        "workload:Namespace//storefront": (False, by),
        "workload:Application/argocd/web": (False, ""),
    }


def test_unfetchable_base_is_a_notice_and_removes_nothing(tmp_path: Path, store: LineageStore) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    _base(repo)
    repo.write("clusters/prod/apps.yaml", FLUX)
    repo.commit("apps through flux")
    repo.write(
        "apps/overlays/prod/kustomization.yaml",
        "namespace: prod\nresources: [../../base, https://127.0.0.1:9/no/such/base?ref=v1]\n",
    )
    broken = repo.commit("a remote base nobody can fetch")
    summary = run_ingest(store, repo.path, render=True)
    assert [n.location for n in summary.notices] == [f"{broken[:12]}:clusters/prod/apps.yaml"]
    assert "cannot render Kustomization/flux-system/apps" in summary.notices[0].message
    assert _declares(store, broken) == {}
    assert len(_declared(store, broken)) == 4


def test_argo_application_over_a_local_helm_chart(tmp_path: Path, store: LineageStore) -> None:
    helm = os.environ.get("LIUBAI_HELM") or shutil.which("helm")
    if helm is None:
        missing("helm", "helm is not installed: build it with scripts/helm and set LIUBAI_HELM")
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
    repo.write("charts/web/values.yaml", "replicas: 2\n")
    repo.write(
        "charts/web/templates/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-web\n"
        "spec:\n  replicas: {{ .Values.replicas }}\n",
    )
    repo.write(
        "charts/web/templates/sa.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {{ .Release.Name }}\n"
        "  namespace: {{ .Release.Namespace }}\n",
    )
    app = ARGO.replace("PATH", "charts/web").replace("targetRevision: main}", "helm: {releaseName: shop}}")
    repo.write("argo/web.yaml", app)
    sha = repo.commit("web chart through argo")
    run_ingest(store, repo.path, render=True)
    by = "Application/argocd/web"
    assert _declares(store, sha) == {
        "workload:Deployment/storefront/shop-web": (False, by),
        "workload:ServiceAccount/storefront/shop": (False, by),
        "workload:Application/argocd/web": (False, ""),
    }


def test_flux_plain_directory_builds_nested_kustomizations(tmp_path: Path, store: LineageStore) -> None:
    """A Flux path with no kustomization: its manifests, and each subdirectory's (built by kustomize
    where it has a kustomization, never read file by file)."""
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("apps/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n")
    repo.write("apps/web/kustomization.yaml", "namespace: shop\nnamePrefix: prod-\nresources: [svc.yaml]\n")
    repo.write("apps/web/svc.yaml", SERVICE)
    repo.write(
        "apps/jobs/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: jobs\n  namespace: ops\n"
    )
    flux = FLUX.replace("./apps/overlays/prod", "./apps").replace("  targetNamespace: shop\n", "")
    repo.write("clusters/prod/apps.yaml", flux)
    sha = repo.commit("plain directory with a kustomization inside")
    run_ingest(store, repo.path, render=True)
    by = "Kustomization/flux-system/apps"
    assert _declares(store, sha) == {
        "workload:Namespace//shop": (False, by),
        "workload:Service/shop/prod-web": (False, by),
        "workload:ConfigMap/ops/jobs": (False, by),
        "workload:Kustomization/flux-system/apps": (False, ""),
    }
