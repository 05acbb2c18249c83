"""The runtime's setup is not the workload's: a synthetic stream shaped like crun's (its setup child
keeps the name ``crun`` until it execs the entrypoint; ``crun exec`` joins later under the same name),
runc's staged names, and gVisor's self re-exec."""

from __future__ import annotations

import pytest

from liubai.collector.node import NodeCollector
from liubai.collector.node_options import NodeCollectorOptions
from liubai.collector.node_runtime import is_runtime_comm
from liubai.ebpf.events import ADOPT_FORK, AdoptEvent, ChdirEvent, ExecArgsEvent
from liubai.ebpf.procfs import ProcInfo
from liubai.lineage.join import join_records
from liubai.lineage.model import EdgeKind, pod_node_id, process_node_id
from liubai.lineage.records import ContainerRecord, FileAccessRecord, ProcessRecord, Record
from tests.node.fakes import HOST, POD_A, REF_A, Item, Story

ROOTFS = "/var/lib/containers/storage/overlay/0f3a/merged"


def _collector() -> NodeCollector:
    return NodeCollector(NodeCollectorOptions(host=HOST, exclude_paths=()), boot_offset_ns=0)


def _adopt(s: Story, pid: int, start: int, comm: str | None) -> Item:
    s.t += 1000
    event = AdoptEvent(pid, pid, 0, s.t, start, reason=ADOPT_FORK, ppid=None, comm=comm)
    return Item(event, REF_A)


def _args(s: Story, pid: int, start: int, filename: str) -> Item:
    s.t += 1000
    return Item(ExecArgsEvent(pid, pid, 0, s.t, start, filename=filename, argv=(filename,)), REF_A)


def _chdir(s: Story, pid: int, start: int, path: str) -> Item:
    s.t += 1000
    return Item(ChdirEvent(pid, pid, 0, s.t, start, path=path), REF_A)


def _of(records: list[Record], kind: type) -> list:  # type: ignore[type-arg]
    return [r for r in records if isinstance(r, kind)]


def _crun_story(s: Story) -> list[Item]:
    """crun's setup child (100) in the container's cgroup: host paths, a helper (101), pivot, exec of the
    entrypoint ``server``, which runs ``sh`` (102); later ``crun exec`` (200) runs ``date``."""
    return [
        _adopt(s, 100, 500, None),  # gone before /proc answered: first in a new container, the runtime
        s.open(100, 500, "/run/crun/0f3a/config.json"),
        s.open(100, 500, f"{ROOTFS}/dev/null"),
        s.fork(100, 500, 101, 510),
        s.open(101, 510, "/proc/self/uid_map"),
        s.exit(101, 510),
        _chdir(s, 100, 500, ROOTFS),
        _args(s, 100, 500, "/app/server"),
        s.exec(100, 500, "/app/server"),
        s.open(100, 500, "/etc/app.conf"),
        s.fork(100, 500, 102, 600),
        _args(s, 102, 600, "/bin/sh"),
        s.exec(102, 600, "/bin/sh"),
        s.exit(102, 600),
        _adopt(s, 200, 900, "crun"),  # crun exec: the container runs, so it is known by its name
        s.open(200, 900, "/proc/self/ns/mnt"),
        _args(s, 200, 900, "/bin/date"),
        s.exec(200, 900, "/bin/date"),
        s.open(200, 900, "/etc/localtime"),
    ]


def test_crun_setup_is_counted_and_its_entrypoint_is_the_top_process() -> None:
    nc = _collector()
    for item in _crun_story(Story(REF_A)):
        nc.add(item)
    records = nc.flush(2_000_000_000)
    procs = {p.pid: p for p in _of(records, ProcessRecord)}
    assert {p.comm for p in procs.values()} == {"server", "sh", "date"}
    assert set(procs) == {100, 102, 200}
    assert procs[100].container_top and procs[100].parent_start_ns is None
    assert procs[200].container_top and procs[200].parent_start_ns is None
    assert not procs[102].container_top and procs[102].ppid == 100
    assert procs[100].binary == "/app/server" and procs[100].argv == ("/app/server",)
    paths = {f.path for f in _of(records, FileAccessRecord)}
    assert paths == {"/app/server", "/etc/app.conf", "/bin/sh", "/bin/date", "/etc/localtime"}
    (container,) = _of(records, ContainerRecord)
    # 100: adopt, 2 opens, fork, chdir; 101: open, exit; 200: adopt, open
    assert (container.runtime_setup_processes, container.runtime_setup_events) == (3, 9)
    assert container.processes == 3

    edges = {(e.src, e.kind, e.dst) for e in join_records(records).edges}
    ran = {dst for src, kind, dst in edges if src == pod_node_id(POD_A) and kind is EdgeKind.RAN}
    assert process_node_id(HOST, 100, 500) in ran and process_node_id(HOST, 200, 900) in ran
    assert process_node_id(HOST, 102, 600) not in ran
    props = {n.id: n.props for n in join_records(records).nodes}
    assert props[f"container:{container.container_id}"]["runtime_setup_events"] == 9


def test_a_created_container_s_waiting_runtime_init_is_not_adopted_as_the_workload() -> None:
    """The agent starts while a container is created but not started (runc's init waits on its fifo)."""
    nc = _collector()
    waiting = ProcInfo(
        pid=40,
        ppid=1,
        start_ns=700,
        uid=0,
        comm="runc:[2:INIT]",
        argv=("runc", "init"),
        binary="/usr/bin/runc",
        cwd="/",
    )
    nc.adopt(waiting, REF_A)
    nc.adopted_all()
    s = Story(REF_A)
    nc.add(s.open(40, 700, "/proc/self/fd"))
    nc.add(s.exec(40, 700, "/bin/app"))
    nc.add(s.open(40, 700, "/data/in"))
    records = nc.flush(2_000_000_000)
    (proc,) = _of(records, ProcessRecord)
    assert (proc.comm, proc.container_top, proc.adopted) == ("app", True, False)
    assert {f.path for f in _of(records, FileAccessRecord)} == {"/bin/app", "/data/in"}
    (container,) = _of(records, ContainerRecord)
    assert (container.runtime_setup_processes, container.runtime_setup_events) == (1, 2)


def test_a_runtime_re_executing_itself_stays_setup() -> None:
    """gVisor's sandbox runs ``/proc/self/exe`` from its setup process: the runtime, not a workload."""
    nc = _collector()
    s = Story(REF_A)
    for item in (
        _adopt(s, 50, 800, "runsc"),
        _args(s, 50, 800, "/proc/self/exe"),
        s.exec(50, 800, "/proc/self/exe"),
    ):
        nc.add(item)
    nc.add(s.open(50, 800, "/var/run/runsc/state"))
    records = nc.flush(2_000_000_000)
    assert not _of(records, ProcessRecord) and not _of(records, FileAccessRecord)
    (container,) = _of(records, ContainerRecord)
    assert container.runtime_setup_events == 4 and container.processes == 0


@pytest.mark.parametrize(
    ("comm", "runtime"),
    [
        ("runc", True),
        ("runc:[0:PARENT]", True),
        ("runc:[2:INIT]", True),
        ("crun", True),
        ("youki:[1:INTER]", True),
        ("runsc-gofer", True),
        ("exe", False),  # busybox runs its applets as /proc/self/exe: not a runtime by name
        ("runcible", False),
        ("sh", False),
        (None, False),
    ],
)
def test_runtime_names(comm: str | None, runtime: bool) -> None:
    assert is_runtime_comm(comm) is runtime
