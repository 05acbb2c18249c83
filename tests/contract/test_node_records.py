"""The node agent's records on every store: a Pod's container processes and files in lineage from the
commit, with or without the cluster collector, and window totals that a later window replaces."""

from __future__ import annotations

from liubai.lineage.join import join_records
from liubai.lineage.model import (
    Direction,
    EdgeKind,
    commit_node_id,
    container_file_node_id,
    container_node_id,
    pod_node_id,
    process_node_id,
)
from liubai.lineage.records import (
    ClusterObjectRecord,
    ContainerOpensRecord,
    ContainerRecord,
    ContainerStatus,
    FileAccessRecord,
    PodRecord,
    ProcessRecord,
    Record,
)
from liubai.lineage.store import LineageStore

SHA = "c" * 40
AUDIT = f"git-sha1:{SHA}|trace:{'7' * 32}"
AT = "2026-12-01T00:00:00.000000Z"
HOST = "node-1"
POD = "0f0f0f0f-1111-2222-3333-444444444444"
CID = "d" * 64


def _node_side(pod: str = POD, cid: str = CID, audit: str | None = None) -> list[Record]:
    sh = ProcessRecord(HOST, 40, 900, 0, 0, comm="sh", binary="/bin/sh", started_at=AT)
    sh.container_id, sh.pod_uid, sh.container_top, sh.audit_id = cid, pod, True, audit
    cat = ProcessRecord(HOST, 41, 950, 0, 0, ppid=40, parent_start_ns=900, comm="cat", started_at=AT)
    cat.container_id, cat.pod_uid = cid, pod
    read = FileAccessRecord(
        HOST, 41, 950, "/etc/passwd", "read", count=2, container_id=cid, first_at=AT, last_at=AT
    )
    container = ContainerRecord(HOST, cid, "containerd", "/kubepods.slice/x.scope", pod, AT, AT, processes=2)
    return [container, sh, cat, read]


def test_downstream_of_a_commit_reaches_its_pods_processes_and_their_files(store: LineageStore) -> None:
    cluster: list[Record] = [
        ClusterObjectRecord(None, "apps/v1", "Deployment", "shop", "web", "u0", AT, audit_id=AUDIT),
        ClusterObjectRecord(
            None,
            "apps/v1",
            "ReplicaSet",
            "shop",
            "web-1",
            "u1",
            AT,
            owner_kind="Deployment",
            owner_name="web",
        ),
        PodRecord(
            None,
            "shop",
            "web-1-a",
            POD,
            AT,
            owner_kind="ReplicaSet",
            owner_name="web-1",
            audit_id=AUDIT,
            containers=(ContainerStatus("app", "busybox:1.36", "sha256:" + "e" * 64, f"containerd://{CID}"),),
        ),
    ]
    store.upsert(join_records(_node_side()))  # the node agent first: the Pod is a placeholder until then
    store.upsert(join_records(cluster))
    cat = process_node_id(HOST, 41, 950)
    passwd = container_file_node_id(HOST, CID, "/etc/passwd")
    g = store.lineage(commit_node_id(SHA), Direction.DOWNSTREAM, depth=6)
    assert g.depth[pod_node_id(POD)] == 2
    assert g.depth[process_node_id(HOST, 40, 900)] == 3 and g.depth[cat] == 4 and g.depth[passwd] == 5
    container = store.get(container_node_id(CID))
    assert container is not None and not container.placeholder
    assert container.props["image"] == "busybox:1.36" and container.props["runtime"] == "containerd"
    up = store.lineage(passwd, Direction.UPSTREAM, depth=6)
    assert "workload:Deployment/shop/web" in up.depth and commit_node_id(SHA) in up.depth


def test_without_the_cluster_collector_the_environment_links_processes_to_their_commit(
    store: LineageStore,
) -> None:
    store.upsert(join_records(_node_side(audit=AUDIT)))
    g = store.lineage(commit_node_id(SHA), Direction.DOWNSTREAM, depth=4)
    assert (
        process_node_id(HOST, 40, 900) in g.depth
        and container_file_node_id(HOST, CID, "/etc/passwd") in g.depth
    )
    pod = store.get(pod_node_id(POD))
    assert pod is not None and pod.placeholder  # known by uid alone


def test_two_containers_and_the_host_keep_apart_files_of_the_same_path(store: LineageStore) -> None:
    other = "9" * 64
    store.upsert(join_records(_node_side() + _node_side(pod="p2", cid=other)))
    a = store.get(container_file_node_id(HOST, CID, "/etc/passwd"))
    b = store.get(container_file_node_id(HOST, other, "/etc/passwd"))
    assert a is not None and b is not None and a.id != b.id
    assert store.get(f"file:{HOST}:/etc/passwd") is None


def _opens(count: int, total: int, end: str) -> ContainerOpensRecord:
    return ContainerOpensRecord(
        HOST, CID, "/data/x", "read", AT, end, {"/bin/app": count}, {"/bin/app": total}, AT, end
    )


def test_a_later_windows_totals_replace_the_earlier_ones(store: LineageStore) -> None:
    """Windows reach the API in the order they were written (the agent ships and spools in order, and the
    API applies a re-sent batch once), so each window's totals replace the last ones."""
    store.upsert(join_records([_opens(5, 5, "2026-12-01T00:00:10.000000Z")]))
    store.upsert(join_records([_opens(3, 8, "2026-12-01T00:00:20.000000Z")]))
    page = store.neighbors(container_node_id(CID), Direction.DOWNSTREAM, [EdgeKind.READ])
    (edge,) = page.edges
    assert edge.props["count"] == 8 and edge.props["by_image"] == {"/bin/app": 8}
    assert edge.props["last_window"]["by_image"] == {"/bin/app": 3}
    assert edge.props["first_seen"] == AT and edge.props["last_seen"] == "2026-12-01T00:00:20.000000Z"
