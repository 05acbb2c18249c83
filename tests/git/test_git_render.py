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


APP = """apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
  namespace: argocd
spec:
  destination: {{server: https://kubernetes.default.svc, namespace: storefront}}
  source: {{repoURL: "{url}", path: {path}, targetRevision: main}}
"""


def _app(name: str, url: str, path: str) -> str:
    return APP.format(name=name, url=url, path=path)


def _cm(name: str, namespace: str | None = None) -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{ns}\ndata: {{a: b}}\n"


def test_argo_application_of_another_repository_is_not_rendered(tmp_path: Path, store: LineageStore) -> None:
    """repoURL is compared with this repository's remotes whatever its form (scp-like or ssh:// or https,
    .git or not, trailing slash, case); an Application of another repository is declared, not rendered,
    and the directory it names is read as this repository's own manifests."""
    repo = GitRepoBuilder(tmp_path / "r")
    repo.git("remote", "add", "origin", "git@github.com:Acme/GitOps.git")
    repo.write("web/cm.yaml", _cm("web"))
    repo.write("jobs/cm.yaml", _cm("jobs"))
    repo.write("other/cm.yaml", _cm("other"))
    repo.write("argo/web.yaml", _app("web", "https://github.com/acme/gitops/", "web"))
    repo.write("argo/jobs.yaml", _app("jobs", "ssh://git@github.com:22/acme/gitops.git", "jobs"))
    repo.write("argo/other.yaml", _app("other", "https://github.com/acme/gitops-other.git", "other"))
    sha = repo.commit("three applications, one of another repository")
    summary = run_ingest(store, repo.path, render=True)
    assert summary.notices == []
    assert _declares(store, sha) == {
        "workload:ConfigMap/storefront/web": (False, "Application/argocd/web"),
        "workload:ConfigMap/storefront/jobs": (False, "Application/argocd/jobs"),
        "workload:ConfigMap/default/other": (False, ""),
        "workload:Application/argocd/web": (False, ""),
        "workload:Application/argocd/jobs": (False, ""),
        "workload:Application/argocd/other": (False, ""),
    }


@pytest.mark.parametrize(
    ("url", "same"),
    [
        ("https://github.com/acme/gitops", True),
        ("https://github.com/acme/gitops.git", True),
        ("https://user@GitHub.com/Acme/GitOps.git/", True),
        ("git@github.com:acme/gitops.git", True),
        ("ssh://git@github.com/acme/gitops", True),
        ("https://github.com/acme/gitops-infra", False),
        ("https://gitlab.com/acme/gitops", False),
        ("git@github.com:other/gitops.git", False),
    ],
)
def test_repository_key_names_one_repository_in_every_url_form(url: str, same: bool) -> None:
    from liubai.collector.git.deployers import repository_key

    assert (repository_key(url) == repository_key("https://github.com/acme/gitops")) is same


def test_argo_destination_namespace_fills_only_objects_without_one(
    tmp_path: Path, store: LineageStore
) -> None:
    """Argo CD sets destination.namespace only on namespaced objects that set no metadata.namespace: an
    explicit `namespace: default` (written in a manifest, or by a kustomize overlay) stays."""
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("web/kustomization.yaml", "resources: [none.yaml, default.yaml, ops.yaml]\n")
    repo.write("web/none.yaml", _cm("none"))
    repo.write("web/default.yaml", _cm("pinned", "default"))
    repo.write("web/ops.yaml", _cm("ops", "ops"))
    repo.write("overlay/kustomization.yaml", "namespace: default\nresources: [cm.yaml]\n")
    repo.write("overlay/cm.yaml", _cm("overlaid"))
    repo.write("argo/web.yaml", _app("web", "https://example.invalid/gitops.git", "web"))
    repo.write("argo/overlay.yaml", _app("overlay", "https://example.invalid/gitops.git", "overlay"))
    sha = repo.commit("objects with and without a namespace")
    run_ingest(store, repo.path, render=True)
    web, overlay = "Application/argocd/web", "Application/argocd/overlay"
    assert _declares(store, sha) == {
        "workload:ConfigMap/storefront/none": (False, web),
        "workload:ConfigMap/default/pinned": (False, web),
        "workload:ConfigMap/ops/ops": (False, web),
        "workload:ConfigMap/default/overlaid": (False, overlay),
        "workload:Application/argocd/web": (False, ""),
        "workload:Application/argocd/overlay": (False, ""),
    }


def test_a_renderer_that_cannot_start_is_a_notice(
    tmp_path: Path, store: LineageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LIUBAI_HELM naming no file: the chart is not rendered (a notice), the ingest goes on."""
    monkeypatch.setenv("LIUBAI_HELM", str(tmp_path / "no-such-helm"))
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
    repo.write("charts/web/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n")
    repo.write("argo/web.yaml", _app("web", "https://example.invalid/gitops.git", "charts/web"))
    sha = repo.commit("a chart through argo")
    repo.write("raw.yaml", _cm("raw"))
    after = repo.commit("a raw manifest")
    summary = run_ingest(store, repo.path, render=True)
    assert summary.commits == 2
    assert [n.location for n in summary.notices] == [f"{sha[:12]}:argo/web.yaml"]
    assert "cannot run helm template" in summary.notices[0].message
    assert _declares(store, sha) == {"workload:Application/argocd/web": (False, "")}
    assert _declares(store, after) == {"workload:ConfigMap/default/raw": (False, "")}
