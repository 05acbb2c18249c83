"""The resource types the cluster collector reads, and which of the GitOps ones a cluster serves.

Built-in types are always read. Flux's Kustomization, HelmRelease and GitRepository and Argo CD's
Application exist only where their CRDs are installed; ``discover`` asks the API server's discovery
document of each group version and keeps those it serves.
"""

from __future__ import annotations

from dataclasses import dataclass

from liubai.collector.k8s.api import KubeApi, KubeForbidden

__all__ = ["BUILTIN", "GITOPS", "Resource", "discover"]


@dataclass(frozen=True, slots=True)
class Resource:
    """One resource type: where it is listed and watched, and the name its checkpoint goes under."""

    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """The checkpoint key: ``apps/v1/deployments``, ``v1/pods``."""
        return f"{self.api_version}/{self.plural}"

    @property
    def path(self) -> str:
        """Every object of the type, across namespaces."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{base}/{self.plural}"

    @property
    def label(self) -> str:
        """As RBAC names it in messages: ``deployments.apps``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


# Listed in this order: namespaces and GitOps sources before what refers to them, Pods last (the most).
BUILTIN = (
    Resource("Namespace", "", "v1", "namespaces", namespaced=False),
    Resource("Deployment", "apps", "v1", "deployments"),
    Resource("StatefulSet", "apps", "v1", "statefulsets"),
    Resource("DaemonSet", "apps", "v1", "daemonsets"),
    Resource("ReplicaSet", "apps", "v1", "replicasets"),
    Resource("CronJob", "batch", "v1", "cronjobs"),
    Resource("Job", "batch", "v1", "jobs"),
    Resource("Pod", "", "v1", "pods"),
)

GITOPS = (
    Resource("GitRepository", "source.toolkit.fluxcd.io", "v1", "gitrepositories"),
    Resource("Kustomization", "kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
    Resource("HelmRelease", "helm.toolkit.fluxcd.io", "v2", "helmreleases"),
    Resource("Application", "argoproj.io", "v1alpha1", "applications"),
)


def discover(api: KubeApi) -> tuple[list[Resource], list[KubeForbidden]]:
    """The GitOps resource types the server serves, and the discovery requests RBAC refused."""
    found: list[Resource] = []
    refused: list[KubeForbidden] = []
    for r in GITOPS:
        try:
            doc = api.get(
                f"/apis/{r.group}/{r.version}", {}, verb="get", resource=f"discovery of {r.api_version}"
            )
        except KubeForbidden as exc:
            refused.append(exc)
            continue
        names = {res.get("name") for res in (doc or {}).get("resources", []) if isinstance(res, dict)}
        if r.plural in names:
            found.append(r)
    return found, refused
