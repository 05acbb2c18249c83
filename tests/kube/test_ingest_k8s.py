"""``liubai ingest k8s`` on a real API server: the list and its join with Git, a watch, RBAC refusals.

Objects are applied with Debian's kubectl and the Python client; the controller-manager makes the
ReplicaSets and Pods; Pod status is written through the status subresource as a kubelet would. The
collector runs as the ``liubai`` command, in a process of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liubai.lineage.model import EdgeKind, pod_node_id, workload_node_id
from liubai.lineage.store import open_store
from tests.gitrepo import GitRepoBuilder
from tests.kube_cluster import KubeCluster, kubelet_status
from tests.kube_watch import Watcher, api_pods, apply, deployment, pods_in, run_liubai, wait_for, wait_pods

pytestmark = pytest.mark.kube

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
DIGEST = "sha256:" + "5" * 64


def test_once_joins_live_objects_with_what_git_declared(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path, store_url: str
) -> None:
    ns = kube_namespace
    repo = GitRepoBuilder(tmp_path / "fleet")
    web = deployment(ns, "web", 3, "registry.example/web:1.0")
    repo.write("apps/web.yaml", json.dumps(web))
    sha = repo.commit("deploy web 1.0")
    assert run_liubai(store_url, "ingest", "git", str(repo.path)).returncode == 0

    audit = f"git-sha1:{sha}|trace:{TRACE}"
    apply(
        kube_cluster,
        deployment(ns, "web", 3, "registry.example/web:1.0", audit_id=audit),
        deployment(ns, "rogue", 1, "registry.example/rogue:0.1"),  # applied by hand, no audit id
    )
    for pod in wait_pods(kube_cluster, ns, 3, "app=web"):
        kubelet_status(kube_cluster.api_client(), ns, pod.metadata.name, "node-a", images={"app": DIGEST})
    flux = "kustomize.toolkit.fluxcd.io/v1"
    apply(
        kube_cluster,
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "fleet", "namespace": ns},
            "spec": {"url": "https://git.example.com/fleet.git", "interval": "1m"},
        },
        {
            "apiVersion": flux,
            "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": ns},
            "spec": {
                "path": "./apps",
                "sourceRef": {"kind": "GitRepository", "name": "fleet", "namespace": ns},
            },
        },
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "shop", "namespace": ns},
            "spec": {"source": {"repoURL": "https://git.example.com/shop.git", "path": "deploy"}},
        },
    )
    for kind, status in (
        ("kustomization/apps", {"lastAppliedRevision": f"main@sha1:{sha}"}),
        ("application.argoproj.io/shop", {"sync": {"status": "Synced", "revision": sha}}),
    ):
        kube_cluster.kubectl(
            "patch",
            kind,
            "-n",
            ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )

    done = run_liubai(store_url, "ingest", "k8s", "--kubeconfig", kube_cluster.kubeconfig, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["pods"] >= 4 and report["forbidden"] == [] and report["rejected"] == 0

    store = open_store(store_url)
    try:
        dep = store.get(workload_node_id("Deployment", ns, "web"))
        assert dep is not None and dep.props["live"] is True
        assert dep.props["manifest_path"] == "apps/web.yaml"  # the node Git declared: one node for both
        assert dep.props["live_audit_id"] == audit and dep.props["replicas"] == 3
        rs_edges = store.neighbors(dep.id, edge_kinds=[EdgeKind.INSTANCE_OF]).edges
        (rs_edge,) = [e for e in rs_edges if e.dst == dep.id]
        assert rs_edge.props == {"revision": "1"}
        pods = {p.metadata.name: p for p in api_pods(kube_cluster.api_client(), ns, "app=web")}
        for name, pod in pods.items():
            node = store.get(pod_node_id(pod.metadata.uid))
            assert node is not None, name
            assert node.props["node_name"] == "node-a" and node.props["phase"] == "Running"
            assert node.props["image_ids"] == [f"registry.example/web@{DIGEST}"]
            assert node.props["container_ids"][0].startswith("containerd://")
            assert node.props["owner"] == f"ReplicaSet/{pod.metadata.owner_references[0].name}"
        ks = store.get(workload_node_id("Kustomization", ns, "apps"))
        assert ks is not None and ks.props["source_url"] == "https://git.example.com/fleet.git"
        assert ks.props["source_path"] == "./apps"
        for gitops in ("Kustomization/apps", "Application/shop"):
            kind, name = gitops.split("/")
            applies = store.neighbors(workload_node_id(kind, ns, name), edge_kinds=[EdgeKind.APPLIES]).edges
            assert [e.dst for e in applies] == [f"commit:{sha}"], gitops
    finally:
        store.close()

    lineage = run_liubai(store_url, "lineage", f"commit:{sha}", "--depth", "4", "--json")
    assert lineage.returncode == 0, lineage.stderr
    reached = {n["id"] for n in json.loads(lineage.stdout)["nodes"]}
    assert {pod_node_id(p.metadata.uid) for p in pods.values()} <= reached

    drift = run_liubai(store_url, "drift", "--json")
    mine = {d["name"]: d["reason"] for d in json.loads(drift.stdout) if d["namespace"] == ns}
    assert mine == {"rogue": "no-audit-id"}  # web runs the commit that declares it


def test_watch_picks_up_a_scale_up_and_stops_cleanly(
    kube_cluster: KubeCluster, kube_namespace: str, store_url: str
) -> None:
    ns = kube_namespace
    apply(kube_cluster, deployment(ns, "api", 2, "registry.example/api:2"))
    wait_pods(kube_cluster, ns, 2)
    with Watcher(store_url, kube_cluster.kubeconfig) as watcher:
        wait_for("the first sync", lambda: len(pods_in(store_url, ns)) == 2)
        kube_cluster.kubectl("scale", "deployment/api", "-n", ns, "--replicas=5")
        live = wait_for(
            "the scale-up in the store", lambda: p if len(p := pods_in(store_url, ns)) == 5 else None
        )
        assert set(live) == {p.metadata.name for p in api_pods(kube_cluster.api_client(), ns)}
        kube_cluster.kubectl("scale", "deployment/api", "-n", ns, "--replicas=1")
        wait_for("the scale-down in the store", lambda: len(pods_in(store_url, ns)) == 1)
        deleted = pods_in(store_url, ns, live=False)
        assert len(deleted) == 4 and all(p["deleted_at"] for p in deleted.values())
        summary = watcher.stop()
    assert summary["objects"] > 0 and summary["relists"] == 0
    store = open_store(store_url)
    try:
        dep = store.get(workload_node_id("Deployment", ns, "api"))
        assert dep is not None and dep.props["replicas"] == 1
    finally:
        store.close()


def test_rbac_refusals_are_one_line_each_and_the_rest_still_lands(
    kube_cluster: KubeCluster, kube_namespace: str, store_url: str, tmp_path: Path
) -> None:
    ns = kube_namespace
    apply(kube_cluster, deployment(ns, "web", 2, "registry.example/web:1"))
    wait_pods(kube_cluster, ns, 2)
    token = kube_cluster.service_account_token(
        ns,
        "reader",
        [
            {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list", "watch"]},
        ],
    )
    kubeconfig = kube_cluster.kubeconfig_for(token, tmp_path)
    done = run_liubai(store_url, "ingest", "k8s", "--kubeconfig", kubeconfig, "--json")
    assert done.returncode == 0, done.stderr
    refused = [line for line in done.stderr.splitlines() if "forbidden" in line]
    lacking = {
        "statefulsets.apps",
        "daemonsets.apps",
        "replicasets.apps",
        "cronjobs.batch",
        "jobs.batch",
        "gitrepositories.source.toolkit.fluxcd.io",
        "kustomizations.kustomize.toolkit.fluxcd.io",
        "helmreleases.helm.toolkit.fluxcd.io",
        "applications.argoproj.io",
    }
    assert len(refused) == len(lacking), done.stderr
    for resource in lacking:
        (line,) = [r for r in refused if f"cannot list {resource} " in r]
        assert line.startswith("warning: forbidden: cannot list ") and "reading the other resources" in line
    assert "system:serviceaccount:" in refused[0]  # the server's words name who was refused
    report = json.loads(done.stdout)
    assert len(report["forbidden"]) == len(lacking)
    assert set(pods_in(store_url, ns)) == {p.metadata.name for p in api_pods(kube_cluster.api_client(), ns)}
    store = open_store(store_url)
    try:
        assert store.get(workload_node_id("Deployment", ns, "web")) is not None
        assert store.rejected(source="k8s").total == len(lacking)  # kept, countable
    finally:
        store.close()
