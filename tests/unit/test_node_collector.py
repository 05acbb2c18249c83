"""The node agent's windows: what each window records of a container's processes and files, what the
filters and caps leave out (and count), and how the graph hangs it under the Pod."""

from __future__ import annotations

from liubai.collector.node import NodeCollector
from liubai.collector.node_options import NodeCollectorOptions, excluded_path, static_namespaces
from liubai.ebpf.procfs import ProcInfo
from liubai.lineage.join import join_records
from liubai.lineage.model import (
    EdgeKind,
    RejectedRecord,
    container_file_node_id,
    container_node_id,
    pod_node_id,
    process_node_id,
)
from liubai.lineage.records import (
    ContainerOpensRecord,
    ContainerRecord,
    FileAccessRecord,
    ProcessRecord,
    Record,
)
from tests.node.fakes import CID_A, CID_B, HOST, O_WRONLY_CREAT, POD_A, POD_B, REF_A, REF_B, Item, Story

AUDIT = "git-sha1:" + "ab" * 20 + "|trace:" + "0123456789abcdef" * 2


def _collector(**kw: object) -> NodeCollector:
    return NodeCollector(NodeCollectorOptions(host=HOST, **kw), boot_offset_ns=0)  # type: ignore[arg-type]


def _feed(nc: NodeCollector, items: list[Item]) -> None:
    for item in items:
        nc.add(item)


def _of(records: list[Record], kind: type) -> list:  # type: ignore[type-arg]
    return [r for r in records if isinstance(r, kind)]


def _shell_story(s: Story) -> list[Item]:
    """sh (pid 10, its parent outside the container) forks cat (11), which reads a file, writes one, exits."""
    return [
        s.exec(10, 500, "/bin/sh", AUDIT),
        s.fork(10, 500, 11, 600),
        s.exec(11, 600, "/bin/cat"),
        s.open(11, 600, "/etc/passwd"),
        s.open(11, 600, "/etc/passwd"),
        s.open(11, 600, "/tmp/out", O_WRONLY_CREAT, fd=4),
        s.open(11, 600, "/proc/self/status", fd=5),
        s.exit(11, 600),
    ]


def test_a_window_hangs_the_containers_processes_and_files_under_its_pod() -> None:
    nc = _collector()
    _feed(nc, _shell_story(Story(REF_A)))
    records = nc.flush(2_000_000_000)
    procs = {p.pid: p for p in _of(records, ProcessRecord)}
    assert set(procs) == {10, 11}
    assert procs[10].container_top and not procs[11].container_top
    assert procs[10].audit_id == AUDIT and procs[11].audit_id is None
    assert {p.container_id for p in procs.values()} == {CID_A}
    reads = {(f.pid, f.path, f.mode): f.count for f in _of(records, FileAccessRecord)}
    assert reads[(11, "/etc/passwd", "read")] == 2 and reads[(11, "/tmp/out", "write")] == 1
    assert not any(path.startswith("/proc") for _, path, _ in reads)  # excluded by default, counted
    (container,) = _of(records, ContainerRecord)
    assert container.excluded_opens == 1 and container.processes == 2 and container.running == 1

    batch = join_records(records)
    edges = {(e.src, e.kind, e.dst) for e in batch.edges}
    sh, cat = process_node_id(HOST, 10, 500), process_node_id(HOST, 11, 600)
    passwd = container_file_node_id(HOST, CID_A, "/etc/passwd")
    assert (pod_node_id(POD_A), EdgeKind.RAN, sh) in edges
    assert (pod_node_id(POD_A), EdgeKind.RAN, cat) not in edges  # its parent is in the container
    assert (cat, EdgeKind.CHILD_OF, sh) in edges
    assert (cat, EdgeKind.READ, passwd) in edges
    assert (container_node_id(CID_A), EdgeKind.READ, passwd) in edges
    assert (pod_node_id(POD_A), EdgeKind.RAN, container_node_id(CID_A)) in edges
    annotates = [e for e in batch.edges if e.kind is EdgeKind.ANNOTATES]
    assert [e.dst for e in annotates] == [sh]
    assert not any(n.id.startswith("run:") for n in batch.nodes)


def test_two_containers_see_the_same_path_as_two_files() -> None:
    nc = _collector()
    a, b = Story(REF_A), Story(REF_B)
    _feed(nc, [a.exec(10, 500, "/bin/cat"), b.exec(10, 700, "/bin/cat"), a.open(10, 500, "/etc/passwd")])
    _feed(nc, [b.open(10, 700, "/etc/passwd")])
    batch = join_records(nc.flush(2_000_000_000))
    files = {n.id for n in batch.nodes if n.id.startswith("file:") and n.props.get("path") == "/etc/passwd"}
    assert files == {
        container_file_node_id(HOST, CID_A, "/etc/passwd"),
        container_file_node_id(HOST, CID_B, "/etc/passwd"),
    }
    pods = {e.src for e in batch.edges if e.kind is EdgeKind.RAN and e.dst.startswith("proc:")}
    assert pods == {pod_node_id(POD_A), pod_node_id(POD_B)}


def test_opens_are_counted_per_image_and_window_and_only_changes_are_re_sent() -> None:
    nc = _collector()
    s = Story(REF_A)
    _feed(nc, [s.exec(10, 500, "/bin/app")] + [s.open(10, 500, "/data/x") for _ in range(5)])
    first = nc.flush(2_000_000_000)
    (opens,) = [o for o in _of(first, ContainerOpensRecord) if o.path == "/data/x"]
    assert opens.counts == {"/bin/app": 5} and opens.totals == {"/bin/app": 5}
    _feed(nc, [s.open(10, 500, "/data/x") for _ in range(3)])
    second = nc.flush(3_000_000_000)
    (opens,) = _of(second, ContainerOpensRecord)
    assert opens.counts == {"/bin/app": 3} and opens.totals == {"/bin/app": 8}
    (access,) = _of(second, FileAccessRecord)
    assert access.count == 8 and access.path == "/data/x"  # totals per process: an upsert replaces
    assert opens.window_start < opens.window_end
    assert nc.flush(4_000_000_000) == []  # nothing happened: nothing to say


def test_the_path_cap_folds_the_excess_and_counts_it() -> None:
    nc = _collector(max_paths=3)
    s = Story(REF_A)
    _feed(nc, [s.exec(10, 500, "/bin/app")] + [s.open(10, 500, f"/data/{i}") for i in range(6)])
    records = nc.flush(2_000_000_000)
    paths = {f.path for f in _of(records, FileAccessRecord)}
    assert paths == {"/bin/app", "/data/0", "/data/1"}  # the exec's image is one of the three
    (container,) = _of(records, ContainerRecord)
    assert container.folded_opens == 4


def test_the_process_cap_folds_the_excess_and_counts_it() -> None:
    nc = _collector(max_processes=2)
    s = Story(REF_A)
    items = [s.exec(10, 500, "/bin/sh")]
    for i in range(4):
        items += [s.fork(10, 500, 20 + i, 600 + i), s.exit(20 + i, 600 + i)]
    _feed(nc, items)
    records = nc.flush(2_000_000_000)
    assert len(_of(records, ProcessRecord)) == 2
    (container,) = _of(records, ContainerRecord)
    assert container.processes == 5 and container.folded_processes == 3
    # the cap is per window: the next window records new processes again
    _feed(nc, [s.fork(10, 500, 30, 900)])
    assert [p.pid for p in _of(nc.flush(3_000_000_000), ProcessRecord)] == [10, 30]


def test_namespace_filters_leave_a_container_out_and_say_why() -> None:
    namespaces = static_namespaces({POD_A: "kube-system", POD_B: "shop"})
    nc = _collector(exclude_namespaces=frozenset({"kube-system"}), namespace_of=namespaces)
    a, b = Story(REF_A), Story(REF_B)
    _feed(nc, [a.exec(10, 500, "/bin/x"), a.open(10, 500, "/etc/hosts"), b.exec(10, 700, "/bin/y")])
    records = nc.flush(2_000_000_000)
    assert {p.container_id for p in _of(records, ProcessRecord)} == {CID_B}
    by_id = {c.container_id: c for c in _of(records, ContainerRecord)}
    assert by_id[CID_A].excluded == "namespace kube-system excluded" and by_id[CID_A].excluded_events == 2
    assert by_id[CID_B].namespace == "shop" and by_id[CID_B].excluded is None


def test_an_include_list_does_not_pass_an_unknown_namespace() -> None:
    nc = _collector(include_namespaces=frozenset({"shop"}), namespace_of=static_namespaces({POD_B: "shop"}))
    _feed(nc, [Story(REF_A).exec(10, 500, "/bin/x"), Story(REF_B).exec(10, 700, "/bin/y")])
    records = nc.flush(2_000_000_000)
    assert {p.container_id for p in _of(records, ProcessRecord)} == {CID_B}
    (left_out,) = [c for c in _of(records, ContainerRecord) if c.excluded]
    assert left_out.container_id == CID_A and "unknown" in (left_out.excluded or "")


def test_events_without_a_container_are_a_visible_count() -> None:
    nc = _collector()
    _feed(nc, [Story(None).exec(10, 500, "/bin/x"), Story(None).exec(11, 501, "/bin/y")])
    (reject,) = nc.flush(2_000_000_000)
    assert isinstance(reject, RejectedRecord) and reject.reason.startswith("2 events")


def test_a_restarted_container_is_a_new_container_of_the_same_pod() -> None:
    nc = _collector()
    first = Story(REF_A)
    _feed(nc, [first.exec(10, 500, "/bin/app"), first.exit(10, 500, 137)])
    old = nc.flush(2_000_000_000)
    again = Story(type(REF_A)("c" * 64, POD_A), t0=3_000_000_000)
    _feed(nc, [again.exec(10, 3_500, "/bin/app")])
    new = nc.flush(4_000_000_000)
    batch = join_records(old + new)
    containers = {e.dst for e in batch.edges if e.kind is EdgeKind.RAN and e.dst.startswith("container:")}
    assert containers == {container_node_id(CID_A), container_node_id("c" * 64)}
    procs = {e.dst for e in batch.edges if e.kind is EdgeKind.RAN and e.dst.startswith("proc:")}
    assert procs == {process_node_id(HOST, 10, 500), process_node_id(HOST, 10, 3_500)}
    (ended,) = [c for c in _of(old, ContainerRecord)]
    assert ended.running == 0


def test_a_malformed_audit_id_is_rejected_and_the_process_still_lands() -> None:
    nc = _collector()
    _feed(nc, [Story(REF_A).exec(10, 500, "/bin/app", "git-sha1:nothex")])
    batch = join_records(nc.flush(2_000_000_000))
    assert any(n.id == process_node_id(HOST, 10, 500) for n in batch.nodes)
    (reject,) = batch.rejected
    assert "malformed audit id" in reject.reason and reject.raw == "git-sha1:nothex"


def test_excluded_path_prefixes_are_whole_components() -> None:
    prefixes = ("/proc", "/sys/")
    assert excluded_path("/proc", prefixes) and excluded_path("/proc/1/stat", prefixes)
    assert excluded_path("/sys/kernel", prefixes)
    assert not excluded_path("/process", prefixes) and not excluded_path("/system", prefixes)


def test_a_process_the_tracer_adopts_mid_run_is_recorded_as_adopted_with_what_proc_showed() -> None:
    from liubai.ebpf.events import AdoptEvent

    nc = _collector()
    s = Story(REF_A)
    found = AdoptEvent(
        30, 30, 0, s.t + 10, 800, reason=2, ppid=None, comm="server", argv=None, binary="/bin/server"
    )
    _feed(nc, [Item(found, REF_A, AUDIT), s.open(30, 800, "/data/x")])
    (proc,) = _of(nc.flush(2_000_000_000), ProcessRecord)
    assert proc.adopted and proc.container_top and proc.audit_id == AUDIT
    assert (proc.comm, proc.binary, proc.ppid, proc.argv_status) == ("server", "/bin/server", None, "unknown")


def test_the_gap_is_on_containers_running_across_it_not_on_later_ones() -> None:
    nc = NodeCollector(NodeCollectorOptions(host=HOST), gap=("t0", "t1"), boot_offset_ns=0)
    info = ProcInfo(
        pid=10, ppid=1, start_ns=500, uid=0, comm="app", argv=("app",), binary="/bin/app", cwd="/"
    )
    nc.adopt(info, REF_A)
    nc.adopted_all()
    _feed(nc, [Story(REF_B).exec(20, 900, "/bin/new")])
    gaps = {c.container_id: c.gaps for c in _of(nc.flush(2_000_000_000), ContainerRecord)}
    assert gaps == {CID_A: ({"from": "t0", "to": "t1"},), CID_B: ()}
