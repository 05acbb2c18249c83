"""The test cluster itself: a real API server whose controller-manager turns a Deployment into Pods.

Every other kube test relies on this chain (and on writing Pod status as a kubelet would), so it is
checked here on its own, through both clients the tests use: Debian's kubectl and the Python client.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.kube_cluster import KubeCluster, kubelet_status
from tests.polling import wait_for

pytestmark = pytest.mark.kube

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: NS}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "registry.example/web:1.0"}]
"""


def test_deployment_gets_replicaset_and_pods(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    from kubernetes import client

    kube_cluster.kubectl("apply", "-f", "-", stdin=DEPLOYMENT.replace("NS", kube_namespace))
    core = client.CoreV1Api(kube_cluster.api_client())

    def pods() -> list[Any]:
        found = core.list_namespaced_pod(kube_namespace).items
        return found if len(found) == 3 else []

    found = wait_for("3 pods of the deployment", pods)
    rs = json.loads(kube_cluster.kubectl("get", "rs", "-n", kube_namespace, "-o", "json").stdout)["items"]
    assert len(rs) == 1
    assert rs[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert rs[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    for pod in found:
        owner = pod.metadata.owner_references[0]
        assert (owner.kind, owner.name) == ("ReplicaSet", rs[0]["metadata"]["name"])
        assert pod.status.phase == "Pending"  # no kubelet runs

    name = found[0].metadata.name
    status = kubelet_status(
        kube_cluster.api_client(), kube_namespace, name, "node-a", images={"web": "sha256:" + "a" * 64}
    )
    assert status["status"]["phase"] == "Running"
    pod = core.read_namespaced_pod(name, kube_namespace)
    assert pod.spec.node_name == "node-a"
    assert pod.status.container_statuses[0].image_id == "registry.example/web@sha256:" + "a" * 64


GITOPS_KINDS = [
    ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization", "lastAppliedRevision"),
    ("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease", "lastAttemptedRevision"),
    ("source.toolkit.fluxcd.io", "v1", "gitrepositories", "GitRepository", "artifact"),
    ("source.toolkit.fluxcd.io", "v1", "helmcharts", "HelmChart", "observedSourceArtifactRevision"),
    ("argoproj.io", "v1alpha1", "applications", "Application", "sync"),
]


@pytest.mark.parametrize(("group", "version", "plural", "kind", "field"), GITOPS_KINDS)
def test_gitops_crds_take_status(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    group: str,
    version: str,
    plural: str,
    kind: str,
    field: str,
) -> None:
    """Each CRD keeps fields it does not declare, and takes status only through /status (as a
    controller writes it): what the cluster collector reads revisions from."""
    from kubernetes import client

    api = client.CustomObjectsApi(kube_cluster.api_client())
    value: Any = {"revision": "b" * 40} if field in ("artifact", "sync") else "main@sha1:" + "b" * 40
    api.create_namespaced_custom_object(
        group,
        version,
        kube_namespace,
        plural,
        {
            "apiVersion": f"{group}/{version}",
            "kind": kind,
            "metadata": {"name": "apps"},
            "spec": {"path": "./apps", "sourceRef": {"kind": "GitRepository", "name": "repo"}},
            "status": {field: "ignored on create"},
        },
    )
    got = api.get_namespaced_custom_object(group, version, kube_namespace, plural, "apps")
    assert field not in got.get("status", {})  # status is a subresource: the main resource drops it
    kube_cluster.kubectl(
        "patch",
        f"{plural}.{group}",
        "apps",
        "-n",
        kube_namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {field: value}}),
    )
    got = api.get_namespaced_custom_object(group, version, kube_namespace, plural, "apps")
    assert got["status"][field] == value
    assert got["spec"]["path"] == "./apps"
