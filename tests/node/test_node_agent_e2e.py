"""``liubai agent --ebpf`` end to end: two Deployments from two commits in a real API server, their Pods'
containers run by runc in kubelet-style cgroups, the agent's real BPF, shipping to a real API.

Every process and file lands under the right Pod, workload and commit; a host process never appears;
a container restart is a new container of the same Pod; a deleted Pod keeps its history; kill -9 of the
agent loses nothing it journaled, and its restart records the gap and adopts what still runs.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from liubai.collector.node_journal import JOURNAL_NAME, NodeJournalSource
from liubai.lineage.model import (
    Direction,
    EdgeKind,
    NodeKind,
    commit_node_id,
    container_file_node_id,
    container_node_id,
    pod_node_id,
)
from liubai.lineage.records import ContainerRecord, FileAccessRecord, ProcessRecord, Record
from liubai.lineage.store import LineageStore, open_store
from tests.gitrepo import GitRepoBuilder
from tests.hardening.conftest import ROOT, ApiServer, agent_argv
from tests.kube_cluster import KubeCluster
from tests.kube_watch import apply, deployment, run_liubai, wait_pods
from tests.polling import wait_for
from tests.runc_pod import PodContainer

NODE = "node-e2e"
# the second commit's history holds the first: walk what each commit deployed, not its ancestors
FLOW = [k for k in EdgeKind if k is not EdgeKind.PARENT]
IMAGE = "busybox:1.36"


def _audit(sha: str) -> str:
    return f"git-sha1:{sha}|trace:{secrets.token_hex(16)}"


def _started(api: Any, namespace: str, pod: Any, container_id: str) -> None:
    """The Pod's status as the kubelet writes it once its container runs under ``container_id``."""
    from kubernetes import client

    status = {
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "app",
                    "image": IMAGE,
                    "imageID": "docker.io/library/busybox@sha256:" + "ab" * 32,
                    "containerID": f"containerd://{container_id}",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": "2026-12-06T00:00:00Z"}},
                }
            ],
        }
    }
    client.CoreV1Api(api).patch_namespaced_pod_status(pod.metadata.name, namespace, status)


class NodeAgent:
    """``liubai agent --ebpf --follow`` as its own process (root), writing its log to a file."""

    def __init__(self, server: str, state: Path, log: Path, trace_socket: str = "off") -> None:
        """``trace_socket``: where it takes ``liubai trace`` commands (off here: the default path is
        the machine's, and other tests' ``liubai trace`` must not reach this agent)."""
        self.state, self.log = state, log
        extra: tuple[str, ...] = ("--window", "0.5", "--poll", "0.2", "--node-name", NODE)
        extra += ("--send-deadline", "2", "--trace-socket", trace_socket)
        before = self.windows()  # a restarted agent appends to the journal of the one before
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                agent_argv(server, state, "--ebpf", extra=extra), cwd=ROOT, stdout=out, stderr=out
            )
        wait_for(
            "the node agent's first window", lambda: self.windows() > before or self._died(), timeout=120
        )

    def _died(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"node agent exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
        return False

    def windows(self) -> int:
        try:
            return (self.state / JOURNAL_NAME).read_bytes().count(b'{"window":')
        except FileNotFoundError:
            return 0

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def journal(state: Path) -> list[Record]:
    source = NodeJournalSource(str(state / JOURNAL_NAME))
    try:
        return [r for unit in source.units(None) for r in unit.records]
    finally:
        source.close()


@contextmanager
def _store(url: str) -> Iterator[LineageStore]:
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


def _landed(url: str, container_id: str, path: str) -> bool:
    """Whether the store has the container's file ``path`` and a process that opened it."""
    with _store(url) as store:
        fid = container_file_node_id(NODE, container_id, path)
        if store.get(fid) is None:
            return False
        edges = store.neighbors(fid, Direction.UPSTREAM, [EdgeKind.READ, EdgeKind.WROTE]).edges
        return any(e.src.startswith("proc:") for e in edges)


@pytest.fixture
def parts(pod_roots: list[str], kube_cluster: KubeCluster) -> KubeCluster:
    """The kernel and runc (through the node tests' pod roots) and the real cluster."""
    return kube_cluster


def test_pods_of_two_commits_their_processes_files_restart_deletion_and_kill9(
    parts: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    cluster, ns = parts, kube_namespace
    kube = cluster.api_client()
    repo = GitRepoBuilder(tmp_path / "gitops")
    commits: dict[str, str] = {}
    for app in ("pay-a", "pay-b"):
        repo.write(f"apps/{app}.yaml", yaml.safe_dump(deployment(ns, app, 1, IMAGE)))
        commits[app] = repo.commit(f"deploy {app}")
    audits = {app: _audit(sha) for app, sha in commits.items()}
    for app in commits:
        apply(cluster, deployment(ns, app, 1, IMAGE, audit_id=audits[app]))
    pods = {app: wait_pods(cluster, ns, 1, f"app={app}")[0] for app in commits}
    uids = {app: pod.metadata.uid for app, pod in pods.items()}

    api = ApiServer(f"sqlite:///{tmp_path / 'lineage.db'}", {}, tmp_path / "api.log")
    api.start()
    state = tmp_path / "agent"
    agent = NodeAgent(api.url, state, tmp_path / "agent.log")
    boxes: list[PodContainer] = []
    try:
        out = run_liubai(api.store_url, "ingest", "git", str(repo.path))
        assert out.returncode == 0, out.stderr
        # -- two pods, each a runc container running its own script ------------------------------------
        scripts = {
            "pay-a": "cat /data/config.txt > /tmp/a.txt; cat /tmp/a.txt; sleep 0.3",
            "pay-b": "ls /etc > /tmp/b.txt; echo $X_GITOPS_AUDIT_ID; sleep 0.3",
        }
        first: dict[str, PodContainer] = {}
        for app, script in scripts.items():
            box = first[app] = PodContainer(uids[app])
            boxes.append(box)
            box.start(script, {"X_GITOPS_AUDIT_ID": audits[app]})
        marker = tmp_path / f"host-only-{secrets.token_hex(4)}"
        marker.write_text("host\n")
        host = subprocess.run(["cat", str(marker)], capture_output=True, check=True)  # outside any pod
        assert host.stdout == b"host\n"
        for app, box in first.items():
            code, _, err = box.wait(60)
            assert code == 0, err
            _started(kube, ns, pods[app], box.container_id)
        out = run_liubai(api.store_url, "ingest", "k8s", "--kubeconfig", cluster.kubeconfig)
        assert out.returncode == 0, out.stderr
        wait_for(
            "pay-a's files in the API",
            lambda: _landed(api.store_url, first["pay-a"].container_id, "/tmp/a.txt"),
        )
        wait_for(
            "pay-b's files in the API",
            lambda: _landed(api.store_url, first["pay-b"].container_id, "/tmp/b.txt"),
        )

        # -- a restart of pay-a's container (new id, same Pod), and the agent killed while it runs -----
        again = PodContainer(uids["pay-a"])
        boxes.append(again)
        # it runs until the test says "go" (a file in its /tmp): across the kill and the restart
        script = "cat /data/config.txt; until cat /tmp/go; do sleep 0.2; done; touch /tmp/after-restart"
        again.start(script, {"X_GITOPS_AUDIT_ID": audits["pay-a"]})
        wait_for(
            "the restarted container in the journal",
            lambda: any(
                isinstance(r, ProcessRecord) and r.container_id == again.container_id for r in journal(state)
            ),
            timeout=60,
        )
        agent.kill9()
        journaled = journal(state)
        agent = NodeAgent(api.url, state, tmp_path / "agent-2.log")
        init = again.init_pid()
        assert init is not None, "the restarted container ended early"
        Path(f"/proc/{init}/root/tmp/go").write_text("go\n")
        code, _, err = again.wait(60)
        assert code == 0, err
        for box in first.values():
            box.delete()
        cluster.kubectl(
            "delete", "pod", "-n", ns, pods["pay-b"].metadata.name, "--wait=true", "--timeout=60s"
        )
        out = run_liubai(api.store_url, "ingest", "k8s", "--kubeconfig", cluster.kubeconfig)
        assert out.returncode == 0, out.stderr
        wait_for(
            "the restarted container's late write in the API",
            lambda: _landed(api.store_url, again.container_id, "/tmp/after-restart"),
            timeout=60,
        )
    finally:
        agent.stop()
        for box in boxes:
            box.delete()
        api.stop()

    with _store(api.store_url) as store:
        _check_graph(store, ns, commits, uids, first, again, marker)
        _check_runtime_setup_left_out(store, uids, first)
        _check_environment_links(store, audits, first)
        _check_nothing_journaled_is_lost(store, journaled)
        _check_gap_and_adoption(store, journal(state), again)


def _check_graph(
    store: LineageStore,
    ns: str,
    commits: dict[str, str],
    uids: dict[str, str],
    first: dict[str, PodContainer],
    again: PodContainer,
    marker: Path,
) -> None:
    everything = [n for page in store.iter_nodes() for n in page]
    procs = [n for n in everything if n.kind is NodeKind.PROCESS]
    assert procs and all(n.props.get("container_id") for n in procs), (
        "a process outside the pods was recorded"
    )
    assert not any(marker.name in str(n.props.get("path", "")) for n in everything)
    for app, sha in commits.items():
        other = "pay-b" if app == "pay-a" else "pay-a"
        down = store.lineage(
            commit_node_id(sha), Direction.DOWNSTREAM, depth=10, edge_kinds=FLOW, limit=10_000
        ).depth
        assert pod_node_id(uids[app]) in down and pod_node_id(uids[other]) not in down
        mine = {n.id for n in procs if n.props.get("pod_uid") == uids[app]}
        theirs = {n.id for n in procs if n.props.get("pod_uid") == uids[other]}
        assert mine and mine <= set(down), f"{app}: processes not under its commit: {mine - set(down)}"
        assert not theirs & set(down), f"{app}'s commit reaches {other}'s processes"
        cid = first[app].container_id
        assert {n.props.get("pod_uid") for n in procs if n.props.get("container_id") == cid} == {uids[app]}
        up = store.lineage(pod_node_id(uids[app]), Direction.UPSTREAM, depth=3).depth
        assert (
            f"workload:Deployment/{next(iter({n.props.get('namespace') for n in everything if n.id == pod_node_id(uids[app])}))}/{app}"
            in up
        )
        container = store.get(container_node_id(cid))
        assert container is not None and container.props.get("image") == IMAGE
        assert container.props.get("runtime") == "containerd"
    a, b = first["pay-a"].container_id, first["pay-b"].container_id
    down_a = set(
        store.lineage(
            commit_node_id(commits["pay-a"]), Direction.DOWNSTREAM, depth=10, edge_kinds=FLOW, limit=10_000
        ).depth
    )
    for path in ("/data/config.txt", "/tmp/a.txt"):
        assert container_file_node_id(NODE, a, path) in down_a
    assert container_file_node_id(NODE, b, "/tmp/b.txt") not in down_a
    writes = store.neighbors(container_node_id(a), Direction.DOWNSTREAM, [EdgeKind.WROTE]).edges
    assert container_file_node_id(NODE, a, "/tmp/a.txt") in {e.dst for e in writes}
    assert all(e.dst.startswith(f"file:{NODE}:container/{a}:") for e in writes)
    # pay-a's restarted container: a new Container of the same Pod, its processes under that Pod
    ran = {
        e.dst for e in store.neighbors(pod_node_id(uids["pay-a"]), Direction.DOWNSTREAM, [EdgeKind.RAN]).edges
    }
    assert {container_node_id(a), container_node_id(again.container_id)} <= ran
    restarted = [n for n in procs if n.props.get("container_id") == again.container_id]
    assert restarted and {n.props.get("pod_uid") for n in restarted} == {uids["pay-a"]}
    # pay-b's Pod was deleted: it says so, and its processes and files stay under it
    pod_b = store.get(pod_node_id(uids["pay-b"]))
    assert pod_b is not None and pod_b.props.get("phase") == "Deleted"
    assert any(n.props.get("container_id") == b for n in procs)
    assert container_file_node_id(NODE, b, "/tmp/b.txt") in set(
        store.lineage(pod_node_id(uids["pay-b"]), Direction.DOWNSTREAM, depth=3).depth
    )


def _check_runtime_setup_left_out(
    store: LineageStore, uids: dict[str, str], first: dict[str, PodContainer]
) -> None:
    """runc's setup (runc:[..] processes, host paths opened before pivot_root) is counted on the
    Container, never recorded as its processes or files; the entrypoint (its exec of sh) is the one
    process of the container the Pod RAN."""
    from liubai.api.pod_container import rootfs

    host_root = str(rootfs())
    everything = [n for page in store.iter_nodes() for n in page]
    comms = [n.props.get("comm") for n in everything if n.kind is NodeKind.PROCESS]
    assert not [c for c in comms if str(c).startswith("runc")], comms
    paths = [
        str(n.props.get("path")) for n in everything if n.props.get("container_id") and "path" in n.props
    ]
    assert not [p for p in paths if p.startswith(host_root)], paths
    for app, box in first.items():
        container = store.get(container_node_id(box.container_id))
        assert container is not None
        assert container.props.get("runtime_setup_events", 0) > 0, container.props
        assert container.props.get("runtime_setup_processes", 0) >= 2, container.props
        ran = store.neighbors(pod_node_id(uids[app]), Direction.DOWNSTREAM, [EdgeKind.RAN]).edges
        tops = [
            n
            for n in store.get_many(sorted(e.dst for e in ran if e.dst.startswith("proc:")))
            if n.props.get("container_id") == box.container_id
        ]
        assert len(tops) == 1, [n.props for n in tops]  # the entrypoint; busybox sh may exec its last command
        executed = store.neighbors(tops[0].id, Direction.DOWNSTREAM, [EdgeKind.EXECUTED]).edges
        assert container_file_node_id(NODE, box.container_id, "/bin/sh") in {e.dst for e in executed}


def _check_environment_links(
    store: LineageStore, audits: dict[str, str], first: dict[str, PodContainer]
) -> None:
    """X_GITOPS_AUDIT_ID of the container's environment, read at exec: AuditRecord -ANNOTATES-> Process."""
    from liubai.lineage.model import audit_node_id, parse_audit_id

    for app, raw in audits.items():
        audit = audit_node_id(parse_audit_id(raw))
        annotated = {
            e.dst
            for e in store.neighbors(audit, Direction.DOWNSTREAM, [EdgeKind.ANNOTATES], first=1000).edges
        }
        mine = {n.id for n in store.get_many(sorted(annotated)) if n.kind is NodeKind.PROCESS}
        assert mine, f"{app}: no process linked to its audit id from the environment"
        cids = {n.props.get("container_id") for n in store.get_many(sorted(mine))}
        assert first[app].container_id in cids and all(
            store.get(m) is not None and store.get(m).props.get("audit_id") == raw  # type: ignore[union-attr]
            for m in mine
        )


def _check_nothing_journaled_is_lost(store: LineageStore, journaled: list[Record]) -> None:
    from liubai.lineage.model import process_node_id

    assert journaled
    for r in journaled:
        if isinstance(r, ProcessRecord):
            assert store.get(process_node_id(r.host, r.pid, r.start_ns)) is not None, r
        elif isinstance(r, FileAccessRecord) and r.container_id:
            assert store.get(container_file_node_id(r.host, r.container_id, r.path)) is not None, r
        elif isinstance(r, ContainerRecord):
            assert store.get(container_node_id(r.container_id)) is not None, r


def _check_gap_and_adoption(store: LineageStore, records: list[Record], again: PodContainer) -> None:
    container = store.get(container_node_id(again.container_id))
    assert container is not None
    gaps = container.props.get("gaps")
    assert gaps and all(g["from"] < g["to"] for g in gaps), container.props
    adopted = [
        r
        for r in records
        if isinstance(r, ProcessRecord) and r.container_id == again.container_id and r.adopted
    ]
    assert adopted, "the process running across the restart was not adopted"
