"""The cluster collector: what a Kubernetes cluster runs, read through the official client.

Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, Pods and Namespaces, plus Flux
Kustomizations/HelmReleases/GitRepositories and Argo CD Applications where their CRDs exist, become
``ClusterObjectRecord`` and ``PodRecord`` records (``liubai.lineage.join_cluster`` joins them). Needs the
``k8s`` extra (``pip install 'liubai[k8s]'``).
"""

from liubai.collector.k8s.api import (
    KubeApi,
    KubeConfigError,
    KubeError,
    KubeForbidden,
    KubeGone,
    KubeUnreachable,
    connect,
)
from liubai.collector.k8s.collector import ClusterCollector, ClusterStats, checkpoint_source, ingest_cluster
from liubai.collector.k8s.resources import BUILTIN, GITOPS, Resource

__all__ = [
    "BUILTIN",
    "GITOPS",
    "ClusterCollector",
    "ClusterStats",
    "KubeApi",
    "KubeConfigError",
    "KubeError",
    "KubeForbidden",
    "KubeGone",
    "KubeUnreachable",
    "Resource",
    "checkpoint_source",
    "connect",
    "ingest_cluster",
]
