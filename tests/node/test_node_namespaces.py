"""The node agent's namespace filter reads a Pod's namespace by its uid from the real API server."""

from __future__ import annotations

from liubai.collector.k8s.api import connect
from liubai.collector.node_namespaces import KubeNamespaces
from tests.kube_cluster import KubeCluster
from tests.kube_watch import apply, deployment, wait_pods


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_pods_namespace_by_uid_and_unknown_uids_relist_at_most_every_few_seconds(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    clock = Clock()
    lookup = KubeNamespaces(connect(kube_cluster.kubeconfig), relist_s=5.0, clock=clock)
    assert lookup("00000000-0000-0000-0000-000000000000") is None  # listed once: not there
    apply(kube_cluster, deployment(kube_namespace, "web", 1, "busybox:1.36"))
    (pod,) = wait_pods(kube_cluster, kube_namespace, 1, "app=web")
    assert lookup(pod.metadata.uid) is None  # created after the last list, which is too recent to repeat
    clock.t += 5.0
    assert lookup(pod.metadata.uid) == kube_namespace
