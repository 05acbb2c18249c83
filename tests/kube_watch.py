"""What is shared by the cluster collector's tests and ``bench/k8s_ingest.py``: ``liubai ingest k8s`` run
as a real process (so it can be stopped with SIGTERM or killed with SIGKILL), waits on the store it
writes, a store's whole graph as comparable data, and Deployments with many Pods.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from liubai.lineage.store import open_store
from tests.kube_cluster import KubeCluster
from tests.polling import wait_for

Dump = tuple[dict[str, Any], dict[tuple[str, str, str], Any]]


def liubai_cmd(store_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "liubai.api.cli.main", "--store", store_url, *args]


def run_liubai(
    store_url: str, *args: str, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        liubai_cmd(store_url, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


class Watcher:
    """``liubai ingest k8s --watch --json`` in a process of its own; stderr goes to a file to read."""

    def __init__(
        self, store_url: str, kubeconfig: str, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.err = tempfile.NamedTemporaryFile("w+", prefix="liubai-watch-", suffix=".log")
        self.proc = subprocess.Popen(
            liubai_cmd(store_url, "ingest", "k8s", "--kubeconfig", kubeconfig, "--watch", "--json", *extra),
            stdout=subprocess.PIPE,
            stderr=self.err,
            text=True,
            env={**os.environ, **(env or {})},
        )

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 60) -> dict[str, Any]:
        """SIGTERM (as an operator stops a running watcher, once it says it watches) and the JSON summary it
        prints on the way out. A SIGTERM before then would only meet Python starting up."""
        deadline = time.monotonic() + timeout
        while self.alive() and "watching " not in self.stderr() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout)
        self.err.close()
        if self.proc.returncode != 0:
            raise AssertionError(f"watcher exited {self.proc.returncode}: {self.stderr_tail(out)}")
        summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return summary

    def stderr_tail(self, out: str = "") -> str:
        try:
            return (out + self.stderr())[-3000:]
        except ValueError:  # closed
            return out[-3000:]

    def kill(self) -> None:
        """SIGKILL: no signal handler, no last batch, no summary."""
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.err.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=30)
        if not self.err.closed:
            self.err.close()


def wait_synced(store_url: str, timeout: float = 120.0) -> None:
    """Wait until a watcher's first list of every resource type is stored (each has its checkpoint):
    from then on it sees every version of every object, as a watcher that ran all along would."""
    from liubai.collector.k8s import BUILTIN, GITOPS

    keys = {r.key for r in (*BUILTIN, *GITOPS)}  # the test clusters serve the GitOps CRDs

    def synced() -> bool:
        store = open_store(store_url)
        try:
            return keys <= {key for (_, key) in store.checkpoints("k8s")}
        finally:
            store.close()

    wait_for(f"the first sync into {store_url}", synced, timeout)


def dump(store_url: str, namespace: str | None = None) -> Dump:
    """Every node (kind, placeholder, props) and edge (props) of a store, for comparing whole graphs; with
    ``namespace``, the nodes of that namespace and every edge that touches one of them. (Two watchers
    started moments apart see objects that changed in between at different first versions, so their
    ``first_seen`` differs; a namespace created after both started was seen whole by both.)"""
    store = open_store(store_url)
    try:
        nodes = {
            n.id: (n.kind.value, n.placeholder, n.props)
            for batch in store.iter_nodes()
            for n in batch
            if namespace is None or n.props.get("namespace") == namespace
        }
        edges = {
            (e.src, e.kind.value, e.dst): e.props
            for batch in store.iter_edges()
            for e in batch
            if namespace is None or e.src in nodes or e.dst in nodes
        }
        return nodes, edges
    finally:
        store.close()


def dump_diff(a: Dump, b: Dump, limit: int = 8) -> str:
    """Where two dumps differ, in a few lines (empty when they are equal)."""
    lines: list[str] = []
    pairs: tuple[tuple[str, Mapping[Any, Any], Mapping[Any, Any]], ...] = (
        ("node", a[0], b[0]),
        ("edge", a[1], b[1]),
    )
    for label, x, y in pairs:
        for key in sorted(set(x) | set(y), key=str):
            if x.get(key) != y.get(key):
                lines.append(f"{label} {key}: {x.get(key)!r} != {y.get(key)!r}")
    more = f"\n... {len(lines) - limit} more" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more


def pods_in(store_url: str, namespace: str, *, live: bool = True) -> dict[str, dict[str, Any]]:
    """Pod nodes of ``namespace`` (live ones, or the deleted ones with ``live=False``) by pod name."""
    store = open_store(store_url)
    try:
        out = {}
        for batch in store.iter_nodes():
            for n in batch:
                if n.kind.value != "Pod" or n.props.get("namespace") != namespace:
                    continue
                if (n.props.get("phase") != "Deleted") == live:
                    out[str(n.props.get("name"))] = n.props
        return out
    finally:
        store.close()


def deployment(
    namespace: str,
    name: str,
    replicas: int,
    image: str,
    *,
    audit_id: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment manifest whose rollouts replace every Pod at once (no kubelet makes any ready)."""
    template_meta: dict[str, Any] = {"labels": {"app": name}}
    if audit_id:
        template_meta["annotations"] = {"x-gitops-audit-id": audit_id}
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {}}
    if audit_id:
        meta["annotations"] = {"x-gitops-audit-id": audit_id}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "100%"},
            },
            "template": {
                "metadata": template_meta,
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def api_pods(api: Any, namespace: str, selector: str | None = None) -> list[Any]:
    from kubernetes import client

    return list(client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items)


def names(pods: Sequence[Any]) -> set[str]:
    return {p.metadata.name for p in pods}


def apply(cluster: KubeCluster, *docs: dict[str, Any]) -> None:
    """``kubectl apply`` of ``docs``, as a user applies manifests."""
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))


def wait_pods(cluster: KubeCluster, namespace: str, count: int, selector: str | None = None) -> list[Any]:
    """The Pods of ``namespace`` (matching ``selector``) once there are exactly ``count``."""
    api = cluster.api_client()
    return wait_for(
        f"{count} pods in {namespace}",
        lambda: found if len(found := api_pods(api, namespace, selector)) == count else None,
    )
