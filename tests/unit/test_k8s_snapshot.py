"""``liubai ingest k8s --from-file``: objects saved from an API server, read as a live read would be.

The main file is the demo's recording: real ``kubectl get -o json`` output of a real kube-apiserver after
a Flux-style apply through the webhook (Deployments, ReplicaSets, Pods, a Kustomization).
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from liubai.api.cli.main import app
from liubai.api.demo_cluster import RECORDED_CLUSTER, recorded_audit_id
from liubai.lineage.model import Direction, EdgeKind, NodeKind, audit_node_id, parse_audit_id
from liubai.lineage.store import open_store


def _ingest(store_url: str, path: Path) -> dict[str, object]:
    out = CliRunner().invoke(app, ["--store", store_url, "ingest", "k8s", "--from-file", str(path), "--json"])
    assert out.exit_code == 0, out.output
    report: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


def test_a_saved_cluster_joins_pods_to_their_workload_and_audit_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    report = _ingest(url, RECORDED_CLUSTER)
    saved = json.loads(RECORDED_CLUSTER.read_text())["items"]
    assert report["pods"] == sum(1 for o in saved if o["kind"] == "Pod") == 5
    assert report["rejected"] == 0
    audit_id = recorded_audit_id(RECORDED_CLUSTER, "payments")
    store = open_store(url)
    try:
        down = store.lineage(audit_node_id(parse_audit_id(audit_id)), Direction.DOWNSTREAM, 1)
        pods = [n for n in down.nodes if n.kind is NodeKind.POD]
        assert len(pods) == 2 and all(p.props["namespace"] == "shop" for p in pods)
        up = store.lineage(pods[0].id, Direction.UPSTREAM, 2, [EdgeKind.INSTANCE_OF])
        assert "workload:Deployment/shop/payments" in {n.id for n in up.nodes}
        flux = store.get("workload:Kustomization/flux-system/apps")
        commit = parse_audit_id(audit_id).commit
        assert flux is not None and flux.props["applied_commit"] == commit
        assert flux.props["source_url"].startswith("file://")  # from its GitRepository, read first
        applies = store.lineage(flux.id, Direction.UPSTREAM, 1, [EdgeKind.APPLIES])
        assert f"commit:{commit}" in {n.id for n in applies.nodes}
    finally:
        store.close()
    again = _ingest(url, RECORDED_CLUSTER)  # the same object versions: nothing new
    assert (again["nodes_created"], again["edges_created"]) == (0, 0)


def test_unusable_documents_are_rejected_with_where_and_the_rest_lands(tmp_path: Path) -> None:
    pod = next(o for o in json.loads(RECORDED_CLUSTER.read_text())["items"] if o["kind"] == "Pod")
    nameless = {**pod, "metadata": {"namespace": "shop"}}
    lines = [
        json.dumps(pod),
        "not json {",
        json.dumps({"apiVersion": "v1", "kind": "Secret"}),
        json.dumps(nameless),
    ]
    path = tmp_path / "saved.jsonl"
    path.write_text("\n".join(lines) + "\n")
    url = f"sqlite:///{tmp_path / 'g.db'}"
    report = _ingest(url, path)
    assert (report["pods"], report["rejected"]) == (1, 3)
    store = open_store(url)
    try:
        where = sorted(r.location for r in store.rejected().records)
    finally:
        store.close()
    assert where == [f"{path}:2", f"{path}:3", f"{path}:4"]
