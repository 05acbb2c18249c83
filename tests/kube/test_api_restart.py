"""``liubai ingest k8s`` when the API server goes away: an unreachable server said on one line, a watch that
carries on once it is back, and ``410 Gone`` on a resourceVersion the restarted server no longer keeps.

These tests stop and restart the API server, so they run on a control plane of their own
(``own_cluster``); etcd and the controller-manager stay up throughout, as in a real control-plane restart.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from liubai.lineage.model import workload_node_id
from liubai.lineage.store import open_store
from tests.kube_cluster import ClusterControl, KubeCluster
from tests.kube_watch import (
    Watcher,
    apply,
    deployment,
    names,
    pods_in,
    run_liubai,
    wait_for,
    wait_pods,
)

pytestmark = pytest.mark.kube

FAST_RETRY = {"LIUBAI_RETRY_INITIAL": "0.2", "LIUBAI_RETRY_MAX_WAIT": "1"}


@pytest.fixture
def ns(own_cluster: KubeCluster) -> Iterator[str]:
    name = own_cluster.create_namespace(f"t-restart-{secrets.token_hex(3)}")
    yield name
    own_cluster.delete_namespace(name)


@pytest.fixture
def control(own_cluster: KubeCluster) -> Iterator[ClusterControl]:
    """Stops and starts the API server; a test that leaves it stopped gets it started again."""
    assert own_cluster.control is not None
    yield own_cluster.control
    own_cluster.control.ensure_apiserver()


def test_an_unreachable_api_server_is_retried_then_said_on_one_line(
    own_cluster: KubeCluster, control: ClusterControl, store_url: str
) -> None:
    control.stop_apiserver()
    done = run_liubai(
        store_url,
        "ingest",
        "k8s",
        "--kubeconfig",
        own_cluster.kubeconfig,
        "--retry-deadline",
        "3",
        env=FAST_RETRY,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    retries = [line for line in lines if "retrying" in line]
    assert retries, done.stderr  # each retry said, on a line of its own
    assert all(own_cluster.server in line for line in retries)
    last = lines[-1]
    assert last.startswith("error: ") and own_cluster.server in last and "unreachable" in last, last
    assert "Traceback" not in done.stderr


def test_a_watch_rides_out_an_api_server_restart(
    own_cluster: KubeCluster, control: ClusterControl, ns: str, store_url: str
) -> None:
    apply(own_cluster, deployment(ns, "api", 2, "registry.example/api:1"))
    wait_pods(own_cluster, ns, 2)
    with Watcher(store_url, own_cluster.kubeconfig, env=FAST_RETRY) as watcher:
        wait_for("the first sync", lambda: len(pods_in(store_url, ns)) == 2)
        control.stop_apiserver()
        wait_for("the watcher to notice", lambda: "retrying" in watcher.stderr() or not watcher.alive())
        assert watcher.alive(), watcher.stderr_tail()
        control.start_apiserver()
        own_cluster.kubectl("scale", "deployment/api", "-n", ns, "--replicas=4")
        wanted = names(wait_pods(own_cluster, ns, 4))
        wait_for("the scale-up after the restart", lambda: set(pods_in(store_url, ns)) == wanted)
        warnings = [line for line in watcher.stderr().splitlines() if own_cluster.server in line]
        assert warnings and all("\n" not in w for w in warnings)
        watcher.stop()


def test_410_gone_after_a_restart_lists_again_and_loses_nothing(
    own_cluster: KubeCluster, control: ClusterControl, ns: str, store_url: str
) -> None:
    """The checkpoint of a run is older than what the restarted server's watch cache holds: the watch
    answers 410, the collector lists again, and what changed meanwhile (Pods added, a Deployment and
    its Pods deleted) all lands; the deletions as deleted nodes, their history kept."""
    apply(
        own_cluster,
        deployment(ns, "web", 2, "registry.example/web:1"),
        deployment(ns, "old", 2, "registry.example/old:1"),
    )
    wait_pods(own_cluster, ns, 4)
    once = run_liubai(store_url, "ingest", "k8s", "--kubeconfig", own_cluster.kubeconfig, "--json")
    assert once.returncode == 0, once.stderr
    before = pods_in(store_url, ns)
    assert len(before) == 4

    own_cluster.kubectl("scale", "deployment/web", "-n", ns, "--replicas=5")
    own_cluster.kubectl("delete", "deployment/old", "-n", ns, "--wait=true")
    now = names(wait_pods(own_cluster, ns, 5))
    control.stop_apiserver()
    control.start_apiserver()  # a fresh watch cache: the stored resourceVersions are older than it keeps

    with Watcher(store_url, own_cluster.kubeconfig, env=FAST_RETRY) as watcher:
        wait_for("the relist to land", lambda: set(pods_in(store_url, ns)) == now)
        said = watcher.stderr()
        summary = watcher.stop()
    assert summary["relists"] >= 1, summary
    assert "too old (410 Gone): listing again" in said, said
    gone = {n for n in before if n.startswith("old-")}
    deleted = pods_in(store_url, ns, live=False)
    assert set(deleted) == gone and all(p["deleted_at"] for p in deleted.values())
    assert summary["deleted_while_unwatched"] >= len(gone) + 1  # the Pods, and their Deployment
    store = open_store(store_url)
    try:
        dep = store.get(workload_node_id("Deployment", ns, "old"))
        assert dep is not None
        assert dep.props["live"] is False and dep.props["deleted_at"]
        assert dep.props["images"] == ["registry.example/old:1"]  # its history is kept
    finally:
        store.close()
    again = run_liubai(store_url, "ingest", "k8s", "--kubeconfig", own_cluster.kubeconfig, "--json")
    assert json.loads(again.stdout)["deleted_while_unwatched"] == 0  # nothing was left to find
