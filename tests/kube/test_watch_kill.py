"""A watcher killed with SIGKILL in the middle of a rollout resumes from its stored checkpoints: after the
restart its graph is the one a watcher that was never interrupted wrote, nothing lost or doubled.

Two watchers follow the same cluster into two stores; one is killed while a 200-Pod Deployment rolls
to a new image (every old Pod deleted, every new one created) and started again. The whole stores are
compared, node by node and edge by edge. (``bench/k8s_ingest.py`` runs bigger rollouts.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube_cluster import KubeCluster
from tests.kube_watch import Watcher, api_pods, deployment, dump, dump_diff, names, pods_in, wait_for

pytestmark = pytest.mark.kube

PODS = 200


def new_pods(store_url: str, ns: str, template_hash: str) -> int:
    return sum(1 for p in pods_in(store_url, ns).values() if template_hash in str(p.get("owner")))


def test_kill_9_mid_rollout_then_restart_writes_the_uninterrupted_graph(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    ns = kube_namespace
    steady, killed = f"sqlite:///{tmp_path / 'steady.db'}", f"sqlite:///{tmp_path / 'killed.db'}"
    api = kube_cluster.api_client()

    def settled(count: int) -> set[str] | None:
        found = api_pods(api, ns)
        return names(found) if len(found) == count else None

    def rolled() -> set[str] | None:
        now = settled(PODS)
        return now if now and not now & first else None

    with Watcher(steady, kube_cluster.kubeconfig) as a, Watcher(killed, kube_cluster.kubeconfig) as b:
        kube_cluster.kubectl(
            "apply", "-f", "-", stdin=yaml.safe_dump(deployment(ns, "fleet", PODS, "registry.example/f:1"))
        )
        first: set[str] = wait_for(f"{PODS} pods", lambda: settled(PODS))
        for url in (steady, killed):
            wait_for(f"{PODS} pods in {url}", lambda url=url: set(pods_in(url, ns)) == first)

        kube_cluster.kubectl("set", "image", "deployment/fleet", "-n", ns, "app=registry.example/f:2")
        template = wait_for("the new ReplicaSet", lambda: new_replicaset(kube_cluster, ns, exclude=first))
        wait_for("the rollout to reach the killed watcher", lambda: new_pods(killed, ns, template) > 0)
        b.kill()  # no signal handler runs: whatever batch was being built is lost with it
        b_again = Watcher(killed, kube_cluster.kubeconfig)
        with b_again:
            second = wait_for("the rollout", rolled)
            for url in (steady, killed):
                wait_for(f"the rollout in {url}", lambda url=url: set(pods_in(url, ns)) == second)
                wait_for(
                    f"old pods deleted in {url}", lambda url=url: set(pods_in(url, ns, live=False)) == first
                )
            try:  # the last status updates of other objects may still be arriving
                wait_for("both graphs to settle alike", lambda: dump(steady) == dump(killed), timeout=60)
            except AssertionError:
                pass  # the comparison below says where they differ
            summary_b = b_again.stop()
        summary_a = a.stop()

    assert summary_b["relists"] == 0, summary_b  # resumed from the stored resourceVersions
    assert summary_a["relists"] == 0, summary_a
    one, other = dump(steady), dump(killed)
    assert one == other, dump_diff(one, other)
    pods = [n for n in one[0].values() if n[0] == "Pod" and n[2].get("namespace") == ns]
    assert len(pods) == 2 * PODS  # every Pod once: the 200 deleted and the 200 running


def new_replicaset(cluster: KubeCluster, ns: str, *, exclude: set[str]) -> str | None:
    """The pod-template-hash of the Deployment's newest ReplicaSet, once it differs from the first one."""
    from kubernetes import client

    sets: list[Any] = client.AppsV1Api(cluster.api_client()).list_namespaced_replica_set(ns).items
    newest = max(sets, key=lambda r: int(r.metadata.annotations["deployment.kubernetes.io/revision"]))
    found: str = newest.metadata.labels["pod-template-hash"]
    return found if not any(found in name for name in exclude) else None
