"""A watcher killed with SIGKILL in the middle of a rollout resumes from its stored checkpoints: after the
restart its graph is the one a watcher that was never interrupted wrote, nothing lost or doubled.

Two watchers follow the same cluster into two stores; one is killed while a 200-Pod Deployment rolls
to a new image (every old Pod deleted, every new one created) and started again. Both are synced before
the test's namespace gets its Deployment, and everything of that namespace is compared, node by node
and edge by edge. (``bench/k8s_ingest.py`` runs a bigger rollout.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube_cluster import KubeCluster
from tests.kube_watch import (
    Watcher,
    api_pods,
    deployment,
    dump,
    dump_diff,
    names,
    pods_in,
    wait_for,
    wait_synced,
)

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

    def stored_all(url: str, live: set[str], deleted: set[str] | None = None) -> None:
        def check() -> bool:
            if set(pods_in(url, ns)) != live:
                return False
            return deleted is None or set(pods_in(url, ns, live=False)) == deleted

        wait_for(f"{len(live)} live pods in {url}", check)

    def rolled() -> set[str] | None:
        now = settled(PODS)
        return now if now and not now & first else None

    with Watcher(steady, kube_cluster.kubeconfig) as a, Watcher(killed, kube_cluster.kubeconfig) as b:
        for url in (steady, killed):  # so both see the Deployment's every version, from its first
            wait_synced(url)
        kube_cluster.kubectl(
            "apply", "-f", "-", stdin=yaml.safe_dump(deployment(ns, "fleet", PODS, "registry.example/f:1"))
        )
        first: set[str] = wait_for(f"{PODS} pods", lambda: settled(PODS))
        for url in (steady, killed):
            stored_all(url, first)

        kube_cluster.kubectl("set", "image", "deployment/fleet", "-n", ns, "app=registry.example/f:2")
        template = wait_for("the new ReplicaSet", lambda: new_replicaset(kube_cluster, ns, exclude=first))
        wait_for("the rollout to reach the killed watcher", lambda: new_pods(killed, ns, template) > 0)
        b.kill()  # no signal handler runs: whatever batch was being built is lost with it
        b_again = Watcher(killed, kube_cluster.kubeconfig)
        with b_again:
            second = wait_for("the rollout", rolled)
            for url in (steady, killed):
                stored_all(url, second, deleted=first)
            try:  # the controllers' last status updates may still be arriving
                wait_for(
                    "both graphs to hold the API server's last versions",
                    lambda: caught_up(kube_cluster, ns, steady) and caught_up(kube_cluster, ns, killed),
                    timeout=60,
                )
            except AssertionError:
                pass  # the comparison below says where they differ
            summary_b = b_again.stop()
        summary_a = a.stop()

    assert summary_b["relists"] == 0, summary_b  # resumed from the stored resourceVersions
    assert summary_a["relists"] == 0, summary_a
    one, other = dump(steady, ns), dump(killed, ns)
    assert one == other, dump_diff(one, other)
    pods = [n for n in one[0].values() if n[0] == "Pod" and n[2].get("namespace") == ns]
    assert len(pods) == 2 * PODS  # every Pod once: the 200 deleted and the 200 running


def caught_up(cluster: KubeCluster, ns: str, store_url: str) -> bool:
    """The store holds the resourceVersion the API server now has for the Deployment and its ReplicaSets:
    no status update of theirs is still on its way to this watcher."""
    from kubernetes import client

    apps = client.AppsV1Api(cluster.api_client())
    live = {
        f"Deployment/{d.metadata.name}": d.metadata.resource_version
        for d in apps.list_namespaced_deployment(ns).items
    }
    live |= {
        f"ReplicaSet/{r.metadata.name}": r.metadata.resource_version
        for r in apps.list_namespaced_replica_set(ns).items
    }
    nodes = dump(store_url, ns)[0]
    stored = {
        f"{props.get('kind')}/{props.get('name')}": props.get("resource_version")
        for kind, _, props in nodes.values()
        if props.get("kind") in ("Deployment", "ReplicaSet")
    }
    return all(stored.get(key) == rv for key, rv in live.items())


def new_replicaset(cluster: KubeCluster, ns: str, *, exclude: set[str]) -> str | None:
    """The pod-template-hash of the Deployment's newest ReplicaSet, once it differs from the first one."""
    from kubernetes import client

    sets: list[Any] = client.AppsV1Api(cluster.api_client()).list_namespaced_replica_set(ns).items
    newest = max(sets, key=lambda r: int(r.metadata.annotations["deployment.kubernetes.io/revision"]))
    found: str = newest.metadata.labels["pod-template-hash"]
    return found if not any(found in name for name in exclude) else None
