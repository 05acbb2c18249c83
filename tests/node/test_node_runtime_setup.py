"""runc's own setup runs in the container's cgroup: against a real runc container, none of it lands in
the graph as the container's (no ``runc:`` process, no host rootfs path), the entrypoint is the
container's top process, and what was left out is counted on the Container."""

from __future__ import annotations

import subprocess

from liubai.api.pod_container import STATE, rootfs
from liubai.collector.node import NodeCollector
from liubai.collector.node_options import NodeCollectorOptions
from liubai.lineage.join import join_records
from liubai.lineage.model import EdgeKind, pod_node_id, process_node_id
from liubai.lineage.records import ContainerRecord, FileAccessRecord, ProcessRecord, Record
from tests.node.conftest import Recorder, exited, run_pod
from tests.runc_pod import PodContainer, new_pod_uid


def _records(node: Recorder, box: PodContainer) -> list[Record]:
    nc = NodeCollector(NodeCollectorOptions(host="node-rt", exclude_paths=()))
    for item in node.of(box):
        nc.add(item)
    return nc.flush(max(e.event.ts for e in node.of(box)) + 1)


def test_runc_setup_is_counted_on_the_container_not_recorded_as_its_processes(node: Recorder) -> None:
    box = PodContainer(new_pod_uid())
    code, out, err = run_pod(box, "cat /data/config.txt; echo end")
    assert code == 0, err
    assert out == "setting=1\nend\n"
    node.wait_for(exited(box))
    # the raw stream does hold runc's setup: what the collector must keep out of the graph
    raw = {getattr(e.event, "comm", None) for e in node.of(box)}
    assert any(c and c.startswith("runc:[") for c in raw), raw

    records = _records(node, box)
    procs = [r for r in records if isinstance(r, ProcessRecord)]
    assert procs, "no process of the container was recorded"
    assert not [p.comm for p in procs if p.comm and p.comm.startswith("runc")]
    host_root = str(rootfs())
    accesses = {(f.path, f.mode) for f in records if isinstance(f, FileAccessRecord)}
    paths = {path for path, _ in accesses}
    assert not [p for p in paths if p.startswith(host_root)], paths
    # runc init reads the host's /proc/self/{mountinfo,status,setgroups,fd}; busybox sh runs its
    # applets by exec of /proc/self/exe, which is the workload's own
    assert not [a for a in accesses if a[0].startswith("/proc/self/") and a[1] != "exec"], accesses
    assert "/data/config.txt" in paths

    # the entrypoint (runc:[2:INIT] after its exec of sh) is the one top process, under the Pod
    (top,) = [p for p in procs if p.container_top]
    assert top.binary == "/bin/sh" and top.parent_start_ns is None
    edges = {(e.src, e.kind, e.dst) for e in join_records(records).edges}
    top_id = process_node_id("node-rt", top.pid, top.start_ns)
    assert (pod_node_id(box.pod_uid), EdgeKind.RAN, top_id) in edges
    ran = [e for e in edges if e[0] == pod_node_id(box.pod_uid) and e[1] is EdgeKind.RAN and e[2] != top_id]
    assert all(not dst.startswith("process:") for _, _, dst in ran), ran
    cat = [p for p in procs if p.pid != top.pid]
    assert cat and all(p.ppid == top.pid for p in cat)

    # what was left out is visible on the Container
    (container,) = [r for r in records if isinstance(r, ContainerRecord)]
    assert container.runtime_setup_processes >= 2  # runc:[1:CHILD] and runc:[2:INIT] at least
    assert container.runtime_setup_events > 10
    assert container.processes == len(procs)


def test_runc_exec_into_a_running_container_records_the_command_not_runc(node: Recorder) -> None:
    """``kubectl exec``'s path: runc's exec init joins the running container's cgroup, then execs."""
    box = PodContainer(new_pod_uid())
    box.start("until cat /tmp/go 2>/dev/null; do sleep 0.1; done", detach=True)
    try:
        done = subprocess.run(
            ["runc", "--root", STATE, "exec", box.container_id, "cat", "/data/config.txt"],
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0 and done.stdout == b"setting=1\n", done.stderr
        subprocess.run(
            ["runc", "--root", STATE, "exec", box.container_id, "touch", "/tmp/go"], check=True, timeout=60
        )
        node.wait_for(exited(box))
    finally:
        box.delete()
    records = _records(node, box)
    procs = [r for r in records if isinstance(r, ProcessRecord)]
    assert not [p.comm for p in procs if p.comm and p.comm.startswith("runc")]
    (cat,) = [p for p in procs if p.argv == ("cat", "/data/config.txt")]
    assert cat.container_top and cat.parent_start_ns is None  # its parent is runc, outside the view
    reads = {(f.pid, f.path) for f in records if isinstance(f, FileAccessRecord) and f.mode == "read"}
    assert (cat.pid, "/data/config.txt") in reads
    assert not [path for _, path in reads if path.startswith(str(rootfs()))]
    (container,) = [r for r in records if isinstance(r, ContainerRecord)]
    assert container.runtime_setup_processes >= 3  # the container's own start and the two execs
