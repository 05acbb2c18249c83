"""The store contract: what every ``LineageStore`` must do, run unchanged against each implementation."""

from __future__ import annotations

import base64
import inspect
import re
from typing import Any

import pytest

from liubai.lineage.errors import ErrorCode
from liubai.lineage.join import join_records
from liubai.lineage.model import (
    Direction,
    EdgeKind,
    GraphBatch,
    Node,
    NodeKind,
    RejectedRecord,
    commit_node_id,
    file_node_id,
    log_node_id,
    process_node_id,
    run_node_id,
    trace_node_id,
    workload_node_id,
)
from liubai.lineage.records import (
    CommitRecord,
    FileAccessRecord,
    LogRecord,
    ManifestObjectRecord,
    ProcessRecord,
    RunRecord,
)
from liubai.lineage.store import LineageStore, StoreError, open_store
from liubai.lineage.store.base import InvalidCursor, StoreTimeout
from liubai.lineage.store.deadline import deadline
from liubai.lineage.store.sqlite import SqliteStore

C1 = "1" * 40
C2 = "2" * 40
C3 = "3" * 40
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
AUDIT = f"git-sha256:{C1}|trace:{TRACE}"
HOST = "build-1"


def commit(
    sha: str, parents: tuple[str, ...] = (), subject: str = "change", when: str = "2026-01-01T00:00:00Z"
) -> CommitRecord:
    return CommitRecord(
        repo="https://git.example/ops.git",
        sha=sha,
        parents=parents,
        author_name="Ada",
        author_email="ada@example.com",
        authored_at=when,
        committer_name="Ada",
        committer_email="ada@example.com",
        committed_at=when,
        subject=subject,
    )


def scenario() -> GraphBatch:
    """commit C1 <- C2 (parent); C2 declares api with C1's audit id; run of C2 ran sh -> cat, which read a
    and wrote b; two log lines in the trace, one carrying the audit id."""
    records = [
        commit(C1, subject="build image"),
        commit(C2, (C1,), subject="deploy api", when="2026-01-02T00:00:00Z"),
        ManifestObjectRecord(
            "https://git.example/ops.git",
            C2,
            "apps/api.yaml",
            "apps/v1",
            "Deployment",
            "prod",
            "api",
            (AUDIT,),
        ),
        RunRecord(
            HOST, 100, 5, ("make", "build"), "2026-01-03T00:00:00Z", "2026-01-03T00:01:00Z", 9, 0, commit=C2
        ),
        ProcessRecord(HOST, 100, 5, 100, 5, comm="sh", argv=("sh", "-c", "cat a > b"), uid=1000),
        ProcessRecord(HOST, 101, 6, 100, 5, ppid=100, parent_start_ns=5, comm="cat", uid=0, parent_uid=1000),
        FileAccessRecord(HOST, 101, 6, "/w/a", "read", count=2),
        FileAccessRecord(HOST, 101, 6, "/w/b", "write"),
        FileAccessRecord(HOST, 101, 6, "/usr/bin/cat", "exec", sha256="ab" * 32),
        LogRecord(
            "app", "r1", "2026-01-03T00:02:00Z", "INFO", "api", "started", trace_id=TRACE, audit_id=AUDIT
        ),
        LogRecord("app", "r2", "2026-01-03T00:03:00Z", "ERROR", "api", "boom", trace_id=TRACE),
    ]
    return join_records(records)


P_SH = process_node_id(HOST, 100, 5)
P_CAT = process_node_id(HOST, 101, 6)
RUN = run_node_id(HOST, 100, 5)
API = workload_node_id("Deployment", "prod", "api")
LOG1 = log_node_id("app", "r1")
LOG2 = log_node_id("app", "r2")


def all_nodes(store: LineageStore) -> dict[str, tuple[str, dict[str, object], bool]]:
    return {n.id: (n.kind.value, n.props, n.placeholder) for batch in store.iter_nodes(3) for n in batch}


def all_edges(store: LineageStore) -> dict[tuple[str, str, str], dict[str, object]]:
    return {e.key: e.props for batch in store.iter_edges(3) for e in batch}


# ---------------------------------------------------------------- protocol


def test_implements_whole_protocol(store: LineageStore) -> None:
    assert isinstance(store, LineageStore)
    for name, member in inspect.getmembers(LineageStore, inspect.isfunction):
        if name.startswith("_"):
            continue
        impl = getattr(type(store), name, None)
        assert callable(impl), f"{type(store).__name__} lacks {name}"
        want = [p for p in inspect.signature(member).parameters]
        got = [p for p in inspect.signature(impl).parameters]
        assert got == want, f"{type(store).__name__}.{name}{got} differs from the protocol {want}"


# ---------------------------------------------------------------- writes


def test_upsert_then_get(store: LineageStore) -> None:
    result = store.upsert(scenario())
    assert result.nodes_created == len(all_nodes(store))
    assert result.edges_created == len(all_edges(store)) > 10
    node = store.get(commit_node_id(C2))
    assert node is not None and node.kind is NodeKind.COMMIT and not node.placeholder
    assert node.props["subject"] == "deploy api" and node.props["parents"] == [C1]
    assert store.get("commit:" + "9" * 40) is None
    counts = store.counts()
    assert (
        counts["Commit"] == 2 and counts["Process"] == 2 and counts["LogEvent"] == 2 and counts["File"] == 3
    )
    assert counts["edges"] == len(all_edges(store))


def test_replayed_batch_changes_nothing(store: LineageStore) -> None:
    store.upsert(scenario())
    nodes, edges = all_nodes(store), all_edges(store)
    again = store.upsert(scenario())
    assert (again.nodes_created, again.nodes_updated, again.edges_created, again.edges_updated) == (
        0,
        0,
        0,
        0,
    )
    assert again.rejected_added == 0
    assert all_nodes(store) == nodes and all_edges(store) == edges


def test_properties_merge_and_seen_times_widen(store: LineageStore) -> None:
    b = GraphBatch()
    b.add_node("trace:t1", {"trace_id": "t1", "first_seen": "2026-01-02", "last_seen": "2026-01-02", "a": 1})
    store.upsert(b)
    b = GraphBatch()
    b.add_node("trace:t1", {"first_seen": "2026-01-01", "last_seen": "2026-01-01", "a": None, "b": 2})
    b.add_node("trace:t1", {"first_seen": "2026-01-05", "last_seen": "2026-01-05"})
    r = store.upsert(b)
    assert r.nodes_created == 0 and r.nodes_updated == 1
    node = store.get("trace:t1")
    assert node is not None
    assert node.props == {
        "trace_id": "t1",
        "first_seen": "2026-01-01",
        "last_seen": "2026-01-05",
        "a": 1,
        "b": 2,
    }


def test_placeholder_is_filled_and_never_reverts(store: LineageStore) -> None:
    store.upsert(join_records([commit(C2, (C1,))]))
    parent = store.get(commit_node_id(C1))
    assert parent is not None and parent.placeholder and parent.props == {"sha": C1}
    store.upsert(join_records([commit(C1, subject="root")]))
    parent = store.get(commit_node_id(C1))
    assert parent is not None and not parent.placeholder and parent.props["subject"] == "root"
    store.upsert(join_records([commit(C3, (C1,))]))  # names C1 as a placeholder again
    parent = store.get(commit_node_id(C1))
    assert parent is not None and not parent.placeholder and parent.props["subject"] == "root"
    assert store.counts()["placeholders"] == 0


def test_edge_to_unknown_node_creates_placeholder(store: LineageStore) -> None:
    b = GraphBatch()
    b.add_edge(P_CAT, EdgeKind.READ, file_node_id(HOST, "/etc/hosts"), {"count": 1})
    store.upsert(b)
    src, dst = store.get(P_CAT), store.get(file_node_id(HOST, "/etc/hosts"))
    assert src is not None and src.placeholder and src.kind is NodeKind.PROCESS
    assert dst is not None and dst.placeholder and dst.kind is NodeKind.FILE


def test_edge_props_merge(store: LineageStore) -> None:
    b = GraphBatch()
    b.add_edge(P_CAT, EdgeKind.READ, "file:h:/a", {"count": 1})
    store.upsert(b)
    b = GraphBatch()
    b.add_edge(P_CAT, EdgeKind.READ, "file:h:/a", {"count": 3, "flags": 0})
    r = store.upsert(b)
    assert (r.edges_created, r.edges_updated) == (0, 1)
    assert all_edges(store)[(P_CAT, "READ", "file:h:/a")] == {"count": 3, "flags": 0}


def test_untrusted_text_round_trips_exactly(store: LineageStore) -> None:
    nasty = "'; DROP TABLE nodes; -- \" MATCH (n) DETACH DELETE n // {x} $p \\ <script>alert(1)</script> 留白 \u0000?"
    b = GraphBatch()
    b.add_node(f"file:h:/tmp/{nasty}", {"path": f"/tmp/{nasty}", "note": nasty})
    store.upsert(b)
    node = store.get(f"file:h:/tmp/{nasty}")
    assert node is not None and node.props["note"] == nasty
    assert store.counts()["File"] == 1


# Every shape of value a property can hold, the names a store might keep for itself, and times in and
# near the form collectors write: each reads back exactly as written.
EVERY_VALUE: dict[str, Any] = {
    "text": "plain",
    "unicode": "留白 ✓ \U0001f600 \u00e9\u0301 \u0000 nul",
    "empty_text": "",
    "int": 7,
    "negative": -3,
    "past_2_53": 2**53 + 1,
    "int64_max": 2**63 - 1,
    "int64_min": -(2**63),
    "past_int64": 2**63,
    "past_u64": 2**70,
    "very_negative": -(2**80),
    "past_u64_odd": 2**64 + 1,
    "below_int64_odd": -(2**63) - 3,
    "nanoseconds": 1767225600123456789,
    "float": 0.1,
    "negative_zero": -0.0,
    "huge_float": 1.7976931348623157e308,
    "tiny_float": 5e-324,
    "yes": True,
    "no": False,
    "null": None,
    "time": "2026-01-02T03:04:05.123456Z",
    "epoch_time": "1970-01-01T00:00:00.000000Z",
    "time_no_fraction": "2026-01-02T03:04:05Z",
    "time_with_offset": "2026-01-02T03:04:05.123456+00:00",
    "not_a_day": "2026-02-30T03:04:05.123456Z",
    "times": ["2026-01-02T03:04:05.123456Z", "2026-01-03T00:00:00.000001Z"],
    "words": ["a", "b", "留白"],
    "ints": [1, 2**62, -5],
    "floats": [0.5, 1.25],
    "flags": [True, False],
    "empty_list": [],
    "mixed": [1, "a", 2.5, True],
    "ints_and_floats": [1, 2.0],
    "with_null": ["a", None],
    "big_ints": [1, 2**64],
    "nested_lists": [[1, 2], [3]],
    "list_of_maps": [{"a": 1}, {"b": [2, {"c": None}]}],
    "map": {"z": 1, "a": {"deep": [1, "x", None]}, "t": "2026-01-02T03:04:05.123456Z"},
    "empty_map": {},
    "id": "a property named like the store's key",
    "search": "another",
    "props": {"was": "the old layout's key"},
    "_writer": "not the writer",
    "_private": 1,
    "env_json": "a name ending in _json",
    "env": {"A": "1"},
    "": "the empty name",
    "with space and `tick`": 3,
}


def test_every_kind_of_value_reads_back_exactly(store: LineageStore) -> None:
    node, other = "trace:every", "trace:other"
    b = GraphBatch()
    b.add_node(node, dict(EVERY_VALUE))
    b.add_node(other, {"trace_id": "other"})
    b.add_edge(node, EdgeKind.CORRELATES, other, dict(EVERY_VALUE))
    store.upsert(b)
    got = store.get(node)
    assert got is not None and got.props == EVERY_VALUE
    assert list(got.props) == sorted(EVERY_VALUE), "keys come back in one order in every store"
    assert all_nodes(store)[node][1] == EVERY_VALUE
    assert all_edges(store)[(node, "CORRELATES", other)] == EVERY_VALUE
    page = store.neighbors(node, Direction.DOWNSTREAM)
    assert [e.props for e in page.edges] == [EVERY_VALUE]
    sub = store.path(other, node)
    assert sub is not None
    assert {n.id: n.props for n in sub.nodes}[node] == EVERY_VALUE
    assert [e.props for e in sub.edges] == [EVERY_VALUE]
    assert {n.id: n.props for n in store.lineage(other, Direction.BOTH).nodes}[node] == EVERY_VALUE
    for value in EVERY_VALUE.values():
        if type(value) is float:
            assert str(value) in {str(v) for v in got.props.values() if type(v) is float}  # -0.0 stays -0.0
    replay = store.upsert(b)
    assert (replay.nodes_updated, replay.edges_updated) == (0, 0)


def test_values_json_would_rewrite_read_back_as_json_gives_them(store: LineageStore) -> None:
    b = GraphBatch()
    b.add_node(
        "trace:json",
        {
            "pair": (1, "a"),
            "nan": float("nan"),
            "inf": float("inf"),
            "kind": NodeKind.POD,
            "kinds": [NodeKind.POD],
        },
    )
    b.add_node("trace:keys", {"keys": {1: "x"}})
    store.upsert(b)
    got, keys = store.get("trace:json"), store.get("trace:keys")
    assert got is not None and keys is not None
    assert got.props == {"pair": [1, "a"], "nan": None, "inf": None, "kind": "Pod", "kinds": ["Pod"]}
    assert type(got.props["kind"]) is str
    assert keys.props == {"keys": {"1": "x"}}


def test_typed_values_merge_on_reingest(store: LineageStore) -> None:
    """Times widen by their order, a value may change its type both ways, and a replay changes nothing."""
    t0, t1, t2 = "2026-01-01T00:00:00.000001Z", "2026-01-02T00:00:00.000000Z", "2026-01-03T12:00:00.500000Z"
    b = GraphBatch()
    b.add_node("trace:m", {"first_seen": t1, "last_seen": t1, "n": 1, "env": {"a": 1}, "tags": ["x"]})
    b.add_node("trace:n", {})
    b.add_edge("trace:m", EdgeKind.CORRELATES, "trace:n", {"count": 1, "at": t1})
    store.upsert(b)
    b = GraphBatch()
    b.add_node("trace:m", {"first_seen": t0, "last_seen": t2, "n": {"now": "a map"}, "env": 5, "tags": None})
    b.add_edge("trace:m", EdgeKind.CORRELATES, "trace:n", {"count": 2**64, "at": t0})
    r = store.upsert(b)
    assert (r.nodes_updated, r.edges_updated) == (1, 1)
    b = GraphBatch()
    b.add_node("trace:m", {"first_seen": t2, "last_seen": t0, "n": 3})
    b.add_edge("trace:m", EdgeKind.CORRELATES, "trace:n", {"count": 4})
    store.upsert(b)
    got = store.get("trace:m")
    assert got is not None
    assert got.props == {"first_seen": t0, "last_seen": t2, "n": 3, "env": 5, "tags": ["x"]}
    assert all_edges(store)[("trace:m", "CORRELATES", "trace:n")] == {"count": 4, "at": t0}
    again = store.upsert(b)
    assert (again.nodes_updated, again.edges_updated) == (0, 0)


# ---------------------------------------------------------------- rejected records and checkpoints


def test_rejected_records_are_kept_once_and_paged(store: LineageStore) -> None:
    b = GraphBatch(
        rejected=[RejectedRecord("git:r", f"abc:f{i}.yaml", "bad yaml", f"raw{i}") for i in range(5)]
    )
    b.rejected.append(RejectedRecord("logs:x", "x.jsonl:3", "not JSON", "{"))
    assert store.upsert(b).rejected_added == 6
    assert store.upsert(b).rejected_added == 0
    page = store.rejected(first=4)
    assert page.total == 6 and len(page.records) == 4 and page.end_cursor
    rest = store.rejected(first=4, after=page.end_cursor)
    assert rest.end_cursor is None
    seen = [(r.source, r.location) for r in page.records + rest.records]
    assert len(set(seen)) == 6
    only = store.rejected(source="logs:x")
    assert only.total == 1 and only.records[0] == RejectedRecord("logs:x", "x.jsonl:3", "not JSON", "{")
    assert store.counts()["rejected"] == 6


def test_checkpoints_move_with_their_batch(store: LineageStore) -> None:
    assert store.get_checkpoint("sls:p/l", "shard:0") is None
    b = scenario()
    b.checkpoints[("sls:p/l", "shard:0")] = "cursor-1"
    b.checkpoints[("git:r", "ref:main")] = C2
    store.upsert(b)
    assert store.get_checkpoint("sls:p/l", "shard:0") == "cursor-1"
    store.upsert(GraphBatch(checkpoints={("sls:p/l", "shard:0"): "cursor-2"}))
    assert store.get_checkpoint("sls:p/l", "shard:0") == "cursor-2"
    assert store.checkpoints("git:r") == {("git:r", "ref:main"): C2}
    assert len(store.checkpoints()) == 2


# ---------------------------------------------------------------- point reads


def test_get_many_keeps_order_and_skips_missing(store: LineageStore) -> None:
    store.upsert(scenario())
    got = store.get_many([LOG2, "log:app:nope", RUN, LOG2])
    assert [n.id for n in got] == [LOG2, RUN]


def test_find_by_prefix(store: LineageStore) -> None:
    store.upsert(join_records([commit(C1), commit("1" * 8 + "f" * 32), commit(C2)]))
    hits = store.find_by_prefix(NodeKind.COMMIT, "1111")
    assert [n.id for n in hits] == sorted([commit_node_id(C1), commit_node_id("1" * 8 + "f" * 32)])
    assert store.find_by_prefix(NodeKind.COMMIT, "11111111f", limit=5)[0].id == commit_node_id(
        "1" * 8 + "f" * 32
    )
    assert store.find_by_prefix(NodeKind.WORKLOAD, "1111") == []


# ---------------------------------------------------------------- neighbors


def test_neighbors_by_direction_kind_and_page(store: LineageStore) -> None:
    store.upsert(scenario())
    out = store.neighbors(P_CAT, Direction.DOWNSTREAM)
    assert {(e.kind, e.dst) for e in out.edges} == {
        (EdgeKind.READ, file_node_id(HOST, "/w/a")),
        (EdgeKind.WROTE, file_node_id(HOST, "/w/b")),
        (EdgeKind.EXECUTED, file_node_id(HOST, "/usr/bin/cat")),
        (EdgeKind.CHILD_OF, P_SH),
    }
    inc = store.neighbors(P_CAT, Direction.UPSTREAM)
    assert [(e.src, e.kind) for e in inc.edges] == [(RUN, EdgeKind.RAN)]
    reads = store.neighbors(P_CAT, Direction.BOTH, [EdgeKind.READ])
    assert [e.dst for e in reads.edges] == [file_node_id(HOST, "/w/a")] and reads.edges[0].props["count"] == 2
    assert {n.id for n in reads.nodes} == {file_node_id(HOST, "/w/a")}
    seen, cursor = [], None
    while True:
        page = store.neighbors(P_CAT, Direction.BOTH, first=2, after=cursor)
        assert len(page.edges) <= 2
        seen += [e.key for e in page.edges]
        cursor = page.end_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5


# ---------------------------------------------------------------- lineage


def test_downstream_of_commit_reaches_execution_and_logs(store: LineageStore) -> None:
    store.upsert(scenario())
    g = store.lineage(commit_node_id(C1), Direction.DOWNSTREAM, depth=3)
    audit = next(n.id for n in g.nodes if n.kind is NodeKind.AUDIT_RECORD)
    assert g.depth[commit_node_id(C1)] == 0
    assert g.depth[audit] == 1  # AuditRecord -FOR_COMMIT-> Commit, walked along the flow
    assert g.depth[commit_node_id(C2)] == 1  # child commit (PARENT walked backwards)
    assert g.depth[API] == 2 and g.depth[trace_node_id(TRACE)] == 2 and g.depth[LOG1] == 2
    assert g.depth[RUN] == 2 and g.depth[LOG2] == 3 and g.depth[P_SH] == 3 and g.depth[P_CAT] == 3
    assert file_node_id(HOST, "/w/b") not in g.depth  # 4 hops away
    assert "repo:https://git.example/ops.git" not in g.depth  # upstream of the commit
    assert {n.id for n in g.nodes} == set(g.depth)
    keys = {e.key for e in g.edges}
    assert (audit, "FOR_COMMIT", commit_node_id(C1)) in keys and (
        LOG2,
        "IN_TRACE",
        trace_node_id(TRACE),
    ) in keys
    assert all(e.src in g.depth and e.dst in g.depth for e in g.edges)
    assert not g.truncated


def test_upstream_of_a_log_line_reaches_its_commit(store: LineageStore) -> None:
    store.upsert(scenario())
    g = store.lineage(LOG2, Direction.UPSTREAM, depth=3)
    assert g.depth[trace_node_id(TRACE)] == 1
    assert g.depth[commit_node_id(C1)] == 3
    assert API not in g.depth and LOG1 not in g.depth  # siblings are not upstream


def test_lineage_depth_zero_edge_filter_and_unknown_start(store: LineageStore) -> None:
    store.upsert(scenario())
    g = store.lineage(RUN, Direction.DOWNSTREAM, depth=0)
    assert set(g.depth) == {RUN} and g.edges == []
    g = store.lineage(RUN, Direction.DOWNSTREAM, depth=5, edge_kinds=[EdgeKind.RAN, EdgeKind.WROTE])
    assert set(g.depth) == {RUN, P_SH, P_CAT, file_node_id(HOST, "/w/b")}
    assert {e.kind for e in g.edges} == {EdgeKind.RAN, EdgeKind.WROTE}
    assert store.lineage("run:nowhere:1:1", Direction.BOTH, 3).nodes == []


def test_lineage_both_directions_and_cycles(store: LineageStore) -> None:
    store.upsert(scenario())
    cyc = GraphBatch()
    cyc.add_edge(P_SH, EdgeKind.CHILD_OF, P_CAT)  # a cycle CHILD_OF P_CAT <-> P_SH
    store.upsert(cyc)
    g = store.lineage(P_CAT, Direction.BOTH, depth=10)
    assert g.depth[P_CAT] == 0 and g.depth[P_SH] == 1
    assert g.depth[commit_node_id(C1)] >= 3 and LOG2 in g.depth
    assert len(g.nodes) == len(all_nodes(store))


def test_lineage_limit_truncates_nearest_first(store: LineageStore) -> None:
    b = GraphBatch()
    for i in range(50):
        b.add_edge(P_CAT, EdgeKind.READ, file_node_id(HOST, f"/f/{i:02d}"), {"count": 1})
    b.add_edge(P_SH, EdgeKind.RAN, P_CAT)  # P_SH upstream only
    store.upsert(b)
    g = store.lineage(P_CAT, Direction.DOWNSTREAM, depth=3, limit=10)
    assert g.truncated and len(g.nodes) == 10 and g.depth[P_CAT] == 0
    full = store.lineage(P_CAT, Direction.DOWNSTREAM, depth=3)
    assert not full.truncated and len(full.nodes) == 51


# ---------------------------------------------------------------- path


def test_shortest_path_from_log_to_commit(store: LineageStore) -> None:
    store.upsert(scenario())
    p = store.path(LOG2, commit_node_id(C1), max_length=6)
    assert p is not None
    order = sorted(p.depth, key=p.depth.__getitem__)
    assert order[0] == LOG2 and order[-1] == commit_node_id(C1) and len(order) == 4
    assert [n.id for n in p.nodes] == order
    assert len(p.edges) == 3
    for (a, b), e in zip(zip(order, order[1:], strict=False), p.edges, strict=True):
        assert {e.src, e.dst} == {a, b}
    assert store.path(LOG2, commit_node_id(C1), max_length=2) is None
    assert store.path(LOG2, "commit:" + "9" * 40) is None
    same = store.path(LOG2, LOG2)
    assert same is not None and [n.id for n in same.nodes] == [LOG2] and same.edges == []


def test_path_respects_edge_kinds_and_disconnection(store: LineageStore) -> None:
    store.upsert(scenario())
    b = GraphBatch()
    b.add_node("file:other:/x", {"path": "/x"})
    store.upsert(b)
    assert store.path(LOG1, "file:other:/x", 10) is None
    assert store.path(P_CAT, commit_node_id(C2), 6, edge_kinds=[EdgeKind.READ]) is None
    p = store.path(P_CAT, commit_node_id(C2), 6, edge_kinds=[EdgeKind.RAN, EdgeKind.TRIGGERED])
    assert p is not None and [e.kind for e in p.edges] == [EdgeKind.RAN, EdgeKind.TRIGGERED]


# ---------------------------------------------------------------- search


def test_search_by_words_prefix_and_kind(store: LineageStore) -> None:
    store.upsert(scenario())
    words = {n.id for n in store.search("deploy api").nodes}
    assert commit_node_id(C2) in words and commit_node_id(C1) not in words  # every word must match
    hits = {n.id for n in store.search("1111111").nodes}
    assert commit_node_id(C1) in hits
    cat = store.search("cat", kinds=[NodeKind.PROCESS])
    assert {n.id for n in cat.nodes} == {P_CAT, P_SH} and cat.total == 2  # comm of one, argv of the other
    assert {n.kind for n in store.search("api", kinds=[NodeKind.WORKLOAD, NodeKind.LOG_EVENT]).nodes} <= {
        NodeKind.WORKLOAD,
        NodeKind.LOG_EVENT,
    }
    assert store.search(API).nodes[0].id == API  # an exact id comes first
    assert store.search("/w/b").nodes[0].id == file_node_id(HOST, "/w/b")


def test_log_lines_are_found_by_text_source_and_whole_id(store: LineageStore) -> None:
    store.upsert(scenario())
    assert {n.id for n in store.search("boom").nodes} == {LOG2}
    assert {LOG1, LOG2} <= {n.id for n in store.search("app", kinds=[NodeKind.LOG_EVENT]).nodes}  # the source
    assert [n.id for n in store.search(LOG2).nodes][:1] == [LOG2]


def test_search_follows_a_changed_text(store: LineageStore) -> None:
    """A node found by words it no longer has would send an auditor to the wrong commit."""
    commits = [NodeKind.COMMIT]
    store.upsert(scenario())
    assert {n.id for n in store.search("deploy", commits).nodes} == {commit_node_id(C2)}
    store.upsert(join_records([commit(C2, (C1,), subject="rollback web", when="2026-01-02T00:00:00Z")]))
    assert store.search("deploy", commits).total == 0
    assert [n.id for n in store.search("rollback").nodes] == [commit_node_id(C2)]
    store.upsert(join_records([commit(C2, (C1,), subject="deploy api", when="2026-01-02T00:00:00Z")]))
    assert store.search("rollback").total == 0 and store.search("deploy api", commits).total == 1


def test_search_forgets_words_of_values_that_json_rewrites(store: LineageStore) -> None:
    """A datetime is stored as ISO text ("...T03:04:05"), whose words differ from its str() ("... 03:04:05"):
    once the value changes, none of its words may still find the node."""
    from datetime import datetime

    node_id = commit_node_id(C1)
    store.upsert(
        GraphBatch(
            nodes=[Node(node_id, NodeKind.COMMIT, {"sha": C1, "subject": datetime(2026, 1, 2, 3, 4, 5)})]
        )
    )
    store.upsert(GraphBatch(nodes=[Node(node_id, NodeKind.COMMIT, {"subject": "plain words"})]))
    assert [n.id for n in store.search("plain").nodes] == [node_id]
    assert store.search("03").total == store.search("2026").total == 0


def test_sqlite_a_store_opened_before_a_reindex_refuses_to_write(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """After another liubai version re-indexed the file, a process that opened it before (an API server
    left running across an upgrade) would drop index entries by texts the index never held: its writes
    stop with a clear error; its reads go on."""
    import sqlite3

    from liubai.lineage.store.base import StoreError

    path = tmp_path / "shared.db"
    old = SqliteStore(path)
    old.upsert(scenario())
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'search_text'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer liubai.*upgrade liubai to write"):
        old.upsert(scenario())
    older = SqliteStore(path)  # reading a file a newer liubai indexed still works (export, migrate)
    assert older.counts() == old.counts() and older.search("deploy").total > 0
    with pytest.raises(StoreError, match="newer liubai"):
        older.upsert(scenario())
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'search_text'")  # an older one, since we opened it
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="re-indexed by another liubai version since this process opened it"):
        old.upsert(scenario())
    old.close()
    older.close()


def test_search_pages_with_cursor(store: LineageStore) -> None:
    b = GraphBatch()
    for i in range(25):
        b.add_node(file_node_id(HOST, f"/srv/report-{i:02d}.csv"), {"path": f"/srv/report-{i:02d}.csv"})
    store.upsert(b)
    seen, cursor = [], None
    for _ in range(10):
        page = store.search("report", first=10, after=cursor)
        assert page.total == 25
        seen += [n.id for n in page.nodes]
        cursor = page.end_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 25


@pytest.mark.parametrize(
    "text",
    [
        '"',
        "'",
        "{}",
        "a OR b",
        "x AND NOT y",
        "*",
        "commit:",
        ")",
        "MATCH (n) DETACH DELETE n",
        "'; DROP TABLE nodes; --",
        "\\",
        "~",
        "near/3",
        "a:b^2",
    ],
)
def test_search_text_is_data(store: LineageStore, text: str) -> None:
    store.upsert(scenario())
    before = store.counts()
    page = store.search(text)
    assert page.total >= 0
    assert store.counts() == before


# ---------------------------------------------------------------- trace and audit links

T2 = trace_node_id("a" * 32)


def _out(store: LineageStore, node_id: str, kind: EdgeKind) -> set[str]:
    return {e.dst for e in store.neighbors(node_id, Direction.DOWNSTREAM, [kind]).edges}


def test_second_and_late_trace_links_are_seen_once_everywhere(store: LineageStore) -> None:
    """A log line in a second trace, and a trace link that arrives after its node (the run): every read
    (neighbours both ways, lineage both ways, path, iterators, counts) sees each link exactly once."""
    store.upsert(scenario())
    b = GraphBatch()
    b.add_edge(LOG2, EdgeKind.IN_TRACE, T2)
    b.add_edge(RUN, EdgeKind.IN_TRACE, T2)
    first = store.upsert(b)
    assert (first.nodes_created, first.edges_created) == (1, 2)
    assert _out(store, LOG2, EdgeKind.IN_TRACE) == {trace_node_id(TRACE), T2}
    assert _out(store, RUN, EdgeKind.IN_TRACE) == {T2}
    assert {e.src for e in store.neighbors(T2, Direction.UPSTREAM).edges} == {LOG2, RUN}
    assert {
        e.src for e in store.neighbors(trace_node_id(TRACE), Direction.UPSTREAM, [EdgeKind.IN_TRACE]).edges
    } == {
        LOG1,
        LOG2,
    }
    down = store.lineage(T2, Direction.DOWNSTREAM, depth=1)
    assert set(down.depth) == {T2, LOG2, RUN}
    assert {e.key for e in down.edges} == {(LOG2, "IN_TRACE", T2), (RUN, "IN_TRACE", T2)}
    up = store.lineage(LOG2, Direction.UPSTREAM, depth=1)
    assert set(up.depth) == {LOG2, trace_node_id(TRACE), T2}
    path = store.path(LOG1, T2)
    assert path is not None and [n.id for n in path.nodes] == [LOG1, trace_node_id(TRACE), LOG2, T2]
    keys = [e.key for batch in store.iter_edges(2) for e in batch]
    assert len(keys) == len(set(keys)) == store.counts()["edges"]
    assert {(LOG2, "IN_TRACE", T2), (RUN, "IN_TRACE", T2), (LOG1, "CARRIES", f"audit:{AUDIT}")} <= set(keys)
    edges = all_edges(store)
    again = store.upsert(b)
    assert (again.nodes_created, again.edges_created, again.edges_updated) == (0, 0, 0)
    assert all_edges(store) == edges


def test_a_batch_of_new_and_known_nodes_writes_each_rightly(store: LineageStore) -> None:
    """Most batches mix new nodes (written whole, each with its first trace and audit link) and known ones
    (merged): each side gets its rows, links, counts and search words, and nothing of the other's."""
    store.upsert(scenario())
    before = store.counts()
    t3 = "b" * 32
    result = store.upsert(
        join_records(
            [
                LogRecord("app", "r1", "2026-01-03T00:02:00Z", "INFO", "api", "resumed", trace_id=TRACE),
                LogRecord(
                    "app",
                    "r3",
                    "2026-01-03T00:04:00Z",
                    "WARN",
                    "api",
                    "sparkle",
                    trace_id=TRACE,
                    audit_id=AUDIT,
                ),
                LogRecord("app", "r4", "2026-01-03T00:05:00Z", "INFO", "web", "glimmer", trace_id=t3),
            ]
        )
    )
    log3, log4 = log_node_id("app", "r3"), log_node_id("app", "r4")
    after = store.counts()
    nodes = sum(after[k.value] - before[k.value] for k in NodeKind)
    assert result.nodes_created == nodes == 3  # two lines and their new trace
    assert result.edges_created == after["edges"] - before["edges"] == 3
    assert result.nodes_updated >= 1  # the known line's message
    assert _out(store, log3, EdgeKind.IN_TRACE) == {trace_node_id(TRACE)}
    assert _out(store, log3, EdgeKind.CARRIES) == _out(store, LOG1, EdgeKind.CARRIES) == {f"audit:{AUDIT}"}
    assert _out(store, log4, EdgeKind.IN_TRACE) == {trace_node_id(t3)}
    assert _out(store, LOG1, EdgeKind.IN_TRACE) == {trace_node_id(TRACE)}
    assert [n.id for n in store.search("sparkle").nodes] == [log3]
    assert [n.id for n in store.search("glimmer").nodes] == [log4]
    assert [n.id for n in store.search("resumed").nodes] == [LOG1]
    assert store.search("started").total == 0


def test_a_trace_link_that_gains_properties_stays_one_edge(store: LineageStore) -> None:
    store.upsert(scenario())
    before = store.counts()
    key = (LOG2, "IN_TRACE", trace_node_id(TRACE))
    b = GraphBatch()
    b.add_edge(LOG2, EdgeKind.IN_TRACE, trace_node_id(TRACE), {"via": "traceparent"})
    result = store.upsert(b)
    assert (result.edges_created, result.edges_updated) == (0, 1)
    assert [e.props for batch in store.iter_edges() for e in batch if e.key == key] == [
        {"via": "traceparent"}
    ]
    assert store.counts() == before
    (edge,) = store.neighbors(LOG2, Direction.DOWNSTREAM, [EdgeKind.IN_TRACE]).edges
    assert edge.props == {"via": "traceparent"}
    up = store.lineage(LOG2, Direction.UPSTREAM, depth=1, edge_kinds=[EdgeKind.IN_TRACE])
    assert [e.props for e in up.edges if e.key == key] == [{"via": "traceparent"}]
    assert store.upsert(b).edges_updated == 0


def test_sqlite_migrates_a_version_2_database_moving_links_onto_node_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Version 2 kept every link as an ``edges`` row; after the migration the graph reads back identical
    and the bare trace and audit links have left ``edges`` (a link with properties stays)."""
    import sqlite3

    from liubai.lineage.store.common import dumps_props, prepare_batch
    from liubai.lineage.store.searchtext import search_text
    from liubai.lineage.store.sqlite import MIGRATIONS

    graph = scenario()
    graph.add_edge(LOG2, EdgeKind.IN_TRACE, T2)
    graph.add_edge(RUN, EdgeKind.IN_TRACE, T2, {"via": "env"})
    fresh = SqliteStore(tmp_path / "fresh.db")
    fresh.upsert(graph)

    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0][1] + ";" + MIGRATIONS[1][1])
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    nodes, edges = prepare_batch(graph)
    for rid, n in enumerate(nodes, 1):
        conn.execute(
            "INSERT INTO nodes VALUES (?, ?, ?, ?, ?)",
            (rid, n.id, n.kind.value, dumps_props(n.props), n.placeholder),
        )
        conn.execute(
            "INSERT INTO node_search(rowid, text) VALUES (?, ?)", (rid, search_text(n.id, n.kind, n.props))
        )
    for (src, kind, dst), e in edges.items():
        conn.execute("INSERT INTO edges VALUES (?, ?, ?, ?)", (src, kind, dst, dumps_props(e.props)))
    conn.commit()
    conn.close()

    v2 = SqliteStore(path)
    assert all_nodes(v2) == all_nodes(fresh) and all_edges(v2) == all_edges(fresh)
    assert v2.counts() == fresh.counts()
    assert _out(v2, LOG2, EdgeKind.IN_TRACE) == {trace_node_id(TRACE), T2}
    assert v2.upsert(graph).edges_created == 0
    v2.close()
    fresh.close()
    left = sqlite3.connect(path).execute(
        "SELECT src, kind, dst FROM edges WHERE kind IN ('IN_TRACE', 'CARRIES')"
    )
    assert sorted(left) == [
        (LOG2, "IN_TRACE", T2),
        (RUN, "IN_TRACE", T2),
    ]  # the second link, the one with props


# ---------------------------------------------------------------- bulk reads


def test_iterators_cover_everything_once(store: LineageStore) -> None:
    store.upsert(scenario())
    node_ids = [n.id for batch in store.iter_nodes(4) for n in batch]
    edge_keys = [e.key for batch in store.iter_edges(4) for e in batch]
    counts = store.counts()
    assert len(node_ids) == len(set(node_ids)) == sum(counts[k.value] for k in NodeKind)
    assert len(edge_keys) == len(set(edge_keys)) == counts["edges"]


def test_sqlite_schema_version_recorded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = SqliteStore(tmp_path / "v.db")
    assert s.schema_version() >= 1
    s.close()
    again = SqliteStore(tmp_path / "v.db")  # reopening migrates nothing and loses nothing
    assert again.schema_version() == s.schema_version()
    again.close()


@pytest.mark.parametrize(
    ("setup", "said"),
    [
        ("CREATE TABLE orders (id INTEGER, total REAL)", "another application (tables: orders)"),
        ("CREATE TABLE meta (k, v)", "no such column: value"),
        (
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('schema_version', 'abc')",
            "meta schema_version is 'abc'",
        ),
        (
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('schema_version', '3')",
            "no such table",
        ),
    ],
    ids=["another-application", "foreign-meta", "bad-version", "tables-missing"],
)
def test_sqlite_refuses_a_database_that_is_not_liubais_and_leaves_it_as_it_was(
    tmp_path, setup: str, said: str
) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.executescript(setup)
    schema = conn.execute("SELECT * FROM sqlite_master").fetchall()
    conn.close()
    with pytest.raises(StoreError, match=f"{path}.*{re.escape(said)}"):
        SqliteStore(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT * FROM sqlite_master").fetchall() == schema  # nothing added to it
    conn.close()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("neo4j://localhost:99999", "bad Neo4j URL (Port out of range"),
        ("bolt://h:port", "bad Neo4j URL (Port could not be cast"),
        ("neo4j://[::1", "bad store URL (Invalid IPv6 URL)"),
        ("sqlite://[x", "bad store URL (Invalid IPv6 URL)"),
        ("sqlite:///a%00b.db", "holds a NUL character"),
    ],
)
def test_a_malformed_store_url_is_a_store_error_saying_what_is_wrong(url: str, said: str) -> None:
    with pytest.raises(StoreError, match=re.escape(said)):
        open_store(url)


def test_a_cursor_past_64_bits_is_refused(store: LineageStore) -> None:
    store.upsert(scenario())
    huge = base64.urlsafe_b64encode(b"o:99999999999999999999999").decode()
    for page in (lambda: store.search("deploy", after=huge), lambda: store.rejected(after=huge)):
        with pytest.raises(StoreError, match="invalid cursor"):
            page()


@pytest.mark.parametrize("cursor", ["not-a-cursor", base64.urlsafe_b64encode(b"x:3").decode(), "b:-1"])
def test_a_bad_cursor_raises_invalid_cursor_on_every_paged_read(store: LineageStore, cursor: str) -> None:
    """Callers answer "bad ``after``" by the error's type and code, never by its text."""
    store.upsert(scenario())
    pages = (
        lambda: store.search("deploy", after=cursor),
        lambda: store.rejected(after=cursor),
        lambda: store.neighbors(P_CAT, after=cursor),
    )
    for page in pages:
        with pytest.raises(InvalidCursor) as caught:
            page()
        assert caught.value.code is ErrorCode.BAD_INPUT and not caught.value.retryable


def test_sqlite_reindexes_when_the_search_text_changes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The index keeps no texts, so entries made by an older ``search_text`` could never be dropped: a
    database indexed by another version is re-indexed from the nodes when it is opened."""
    import sqlite3

    path = tmp_path / "older.db"
    s = SqliteStore(path)
    s.upsert(scenario())
    s.close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO node_search(node_search) VALUES ('delete-all')")
    conn.execute("INSERT INTO node_search(rowid, text) VALUES (1, 'stale words')")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'search_text'")
    conn.commit()
    conn.close()
    reopened = SqliteStore(path)
    assert reopened.search("stale").total == 0
    assert [n.id for n in reopened.search("deploy", [NodeKind.COMMIT]).nodes] == [commit_node_id(C2)]
    reopened.close()


def test_sqlite_migrates_a_version_1_database_without_losing_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from liubai.lineage.store.sqlite import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0][1])
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    old = commit_node_id("ab" * 20)
    conn.execute(
        "INSERT INTO nodes VALUES (1, ?, 'Commit', '{\"subject\": \"written by version 1\"}', 0)", (old,)
    )
    conn.execute("INSERT INTO node_search(rowid, text) VALUES (1, ?)", (f"{old} written by version 1",))
    conn.commit()
    conn.close()
    v1 = SqliteStore(path)
    assert v1.schema_version() == SCHEMA_VERSION
    assert [n.id for n in v1.search("version 1").nodes] == [old]
    v1.upsert(scenario())
    counts = v1.counts()
    v1.close()
    indexes = {
        r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    assert "nodes_kind" not in indexes
    reopened = SqliteStore(path)
    assert reopened.counts() == counts and counts[NodeKind.COMMIT.value] > 0
    reopened.close()


@pytest.mark.parametrize("on_worker", [False, True], ids=["main-thread", "bulk-json"])
def test_sqlite_bulk_writes_keep_every_text_exactly(tmp_path, monkeypatch, on_worker: bool) -> None:  # type: ignore[no-untyped-def]
    """On a worker thread SqliteStore writes whole batches through one JSON statement; text that SQLite's
    JSON functions cannot carry exactly (NUL) must still round-trip, on either path, for inserts, replays
    and updates (changed properties, changed search text)."""
    import threading

    import liubai.lineage.store.sqlite.writes as sqlite_module

    def batches(version: str) -> list[GraphBatch]:
        out = []
        for odd in (
            ["tab\tand\nnewline", "plain", 'quote" and \\ backslash', "留白"],
            ["nul\u0000inside", "plain"],
        ):
            b = GraphBatch()  # the first goes through JSON; a NUL sends the second down the per-row path
            for i in range(80):
                text = odd[i % len(odd)]
                path = f"/w/{len(out)}/{i}/{text}"
                b.add_node(file_node_id(HOST, path), {"path": path, "note": f"{text} {version}", "n": i})
                b.add_edge(P_CAT, EdgeKind.READ, file_node_id(HOST, path), {"count": i, "v": version})
                sha = f"{len(out):02x}{i:038x}"
                b.add_node(commit_node_id(sha), {"sha": sha, "subject": f"{text} {version}"})
            out.append(b)
        return out

    paths: list[bool] = []
    decide = sqlite_module._beside_busy_threads
    monkeypatch.setattr(sqlite_module, "_beside_busy_threads", lambda: paths.append(decide()) or paths[-1])
    first, second = batches("first"), batches("second")
    results: list[Any] = []

    def write_and_read() -> None:
        store = SqliteStore(tmp_path / "bulk.db")
        for b in first:
            store.upsert(b)
            store.upsert(b)  # replayed: nothing changes
        for b in second:
            store.upsert(b)  # every node and edge updated, every commit's search text changed
        nodes = [n for b in second for n in b.nodes]
        got = {n.id: n.props for n in store.get_many([n.id for n in nodes])}
        found = store.search("second", kinds=[NodeKind.COMMIT], first=1).total
        found += 1000 * store.search("first", first=1).total  # the replaced texts left the index
        results.extend([nodes, got, all_edges(store), store.counts(), found])
        store.close()

    if on_worker:
        worker = threading.Thread(target=write_and_read)
        worker.start()
        worker.join()
    else:
        write_and_read()
    nodes, got, edges, counts, found = results
    assert paths and all(p is on_worker for p in paths), "the write path is the one this case is about"
    assert all(got[n.id] == n.props for n in nodes) and counts["File"] == counts["Commit"] == 160
    assert all(edges[(P_CAT, "READ", e.dst)] == e.props for b in second for e in b.edges)
    assert found == 160


_CLOSE_WHILE_QUERYING = """
import sys, threading, time
from liubai.lineage.model import GraphBatch
from liubai.lineage.store.sqlite import SqliteStore

for rep in range(12):
    store = SqliteStore(f"{sys.argv[1]}/race-{rep}.db")
    batch = GraphBatch()
    for i in range(10_000):
        batch.add_node(f"trace:t{i}", {"trace_id": f"t{i}"})
    store.upsert(batch)
    stop = threading.Event()

    def query() -> None:
        while not stop.is_set():
            try:
                store.counts()
                store.search("t1")
            except Exception:
                pass

    workers = [threading.Thread(target=query) for _ in range(3)]
    for w in workers:
        w.start()
    time.sleep(0.03)
    store.close()
    stop.set()
    for w in workers:
        w.join()
"""


def test_sqlite_close_checkpoints_and_removes_the_wal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Closing the store after an ingest (writes from this thread and from a writer thread that has ended)
    leaves one self-contained database file, as a user copying it or a backup expects."""
    import threading

    path = tmp_path / "closed.db"
    store = SqliteStore(path)
    store.upsert(scenario())
    writer = threading.Thread(target=lambda: store.upsert(join_records([commit("e" * 40, subject="later")])))
    writer.start()
    writer.join()
    counts = store.counts()
    assert (tmp_path / "closed.db-wal").exists()
    store.close()
    assert not (tmp_path / "closed.db-wal").exists(), "the WAL was left for garbage collection"
    reopened = SqliteStore(path)
    assert reopened.counts() == counts
    reopened.close()


def test_sqlite_close_while_other_threads_query_does_not_crash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An API worker may still be stepping through a query (its client gave up) when the store is closed;
    closing its connection under it crashed the whole process (SIGSEGV). Run apart, so a crash is a
    failure and not the end of the test run."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", _CLOSE_WHILE_QUERYING, str(tmp_path)],
        cwd=root,
        capture_output=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]


# ---------------------------------------------------------------- health and deadlines


def test_probe_passes_on_an_empty_and_a_filled_store(store: LineageStore) -> None:
    store.probe()
    store.upsert(scenario())
    store.probe()


def test_a_read_under_a_passed_deadline_stops_and_the_store_stays_usable(store: LineageStore) -> None:
    store.upsert(scenario())
    with deadline(0), pytest.raises(StoreTimeout, match="deadline"):
        store.lineage(P_CAT, Direction.BOTH, depth=5)
    with deadline(0), pytest.raises(StoreTimeout, match="deadline"):
        store.search("deploy")
    assert store.lineage(P_CAT, Direction.BOTH, depth=5).nodes  # the deadline ended with its block
    with deadline(60):
        assert store.get(commit_node_id(C2)) is not None


# ---------------------------------------------------------------- provenance: writers, claims, exactly once

FORGER = "token:forger"
FORGED = {"author_name": "Mallory", "subject": "forged"}
REAL = {"author_name": "Ada", "subject": "real change"}


def _write(
    store: LineageStore, writer: str, node_id: str, props: dict[str, Any], *, placeholder: bool = False
) -> Any:
    batch = GraphBatch(writer=writer)
    batch.add_node(node_id, props, placeholder=placeholder)
    return store.upsert(batch)


def test_a_node_records_its_writer_and_another_writer_cannot_change_its_values(store: LineageStore) -> None:
    cid = commit_node_id(C1)
    _write(store, "git", cid, {**REAL, "first_seen": "2026-01-02", "last_seen": "2026-01-02"})
    result = _write(
        store, FORGER, cid, {**FORGED, "committer_name": "Ada", "note": "added", "last_seen": "2026-02-01"}
    )
    assert result.conflicts == 2
    node = store.get(cid)
    assert node is not None
    assert node.props["author_name"] == "Ada" and node.props["subject"] == "real change"
    assert (
        node.props["note"] == "added" and node.props["last_seen"] == "2026-02-01"
    )  # new keys and seen times land
    prov = store.provenance([cid, "commit:" + "9" * 40])
    assert list(prov) == [cid]
    assert prov[cid].writer == "git" and prov[cid].owners == {"committer_name": FORGER, "note": FORGER}
    assert [(c.key, c.writer, c.value) for c in prov[cid].claims] == [
        ("author_name", FORGER, "Mallory"),
        ("subject", FORGER, "forged"),
    ]
    again = _write(store, "git", cid, {"subject": "amended"})  # the owner still moves its own values
    assert again.conflicts == 0 and store.get(cid).props["subject"] == "amended"  # type: ignore[union-attr]


def test_a_forger_writing_first_does_not_own_what_a_local_collector_writes_later(store: LineageStore) -> None:
    cid, placeholder_id = commit_node_id(C1), commit_node_id(C2)
    _write(store, FORGER, cid, {**FORGED, "extra": "x"})
    _write(store, FORGER, placeholder_id, FORGED, placeholder=True)
    for node_id in (cid, placeholder_id):
        _write(store, "git", node_id, REAL)
    prov = store.provenance([cid, placeholder_id])
    for node_id in (cid, placeholder_id):
        node = store.get(node_id)
        assert node is not None and not node.placeholder
        assert {k: node.props[k] for k in REAL} == REAL
        assert prov[node_id].writer == "git"
        assert {(c.key, c.writer, c.value) for c in prov[node_id].claims} == {
            ("author_name", FORGER, "Mallory"),
            ("subject", FORGER, "forged"),
        }
    assert prov[cid].owners == {"extra": FORGER}  # what only the forger said stays marked as its own
    # later forgeries change nothing either
    assert _write(store, FORGER, cid, FORGED).conflicts == 2
    assert store.get(cid).props["subject"] == "real change"  # type: ignore[union-attr]


def test_equal_writers_keep_the_first_value_and_one_writer_keeps_todays_rule(store: LineageStore) -> None:
    tid = trace_node_id(TRACE)
    _write(store, "logs", tid, {"service": "api"})
    _write(store, "logs", tid, {"service": "api-v2"})
    assert store.get(tid).props["service"] == "api-v2"  # type: ignore[union-attr]
    assert _write(store, "ebpf", tid, {"service": "other"}).conflicts == 1
    assert _write(store, "token:a", tid, {"service": "remote"}).conflicts == 1
    assert store.get(tid).props["service"] == "api-v2"  # type: ignore[union-attr]
    assert [(c.writer, c.value) for c in store.provenance([tid])[tid].claims] == [
        ("ebpf", "other"),
        ("token:a", "remote"),
    ]


def test_restored_provenance_reads_back_as_given(store: LineageStore) -> None:
    from liubai.lineage.provenance import Claim, Provenance

    cid = commit_node_id(C1)
    _write(store, "local", cid, REAL)
    want = Provenance("git", {"note": FORGER}, [Claim("subject", FORGER, {"nested": ["v", 1]})])
    store.restore_provenance({cid: want, "commit:" + "9" * 40: Provenance("git")})
    assert store.provenance([cid]) == {cid: want}
    assert store.get("commit:" + "9" * 40) is None


def test_a_once_batch_is_applied_once_by_concurrent_writers(store: LineageStore) -> None:
    import threading

    def batch() -> GraphBatch:
        b = scenario()
        b.writer, b.once = FORGER, ("ingest", "b" * 64)
        return b

    start = threading.Barrier(4, timeout=30)
    results: list[Any] = []

    def send() -> None:
        start.wait()
        results.append(store.upsert(batch()))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 4
    assert sorted(r.duplicate for r in results) == [False, True, True, True]
    applied = next(r for r in results if not r.duplicate)
    assert applied.nodes_created == len(all_nodes(store))
    assert store.get_checkpoint("ingest", "b" * 64) == "applied"
    assert store.checkpoints("ingest") == {("ingest", "b" * 64): "applied"}


def test_downstream_of_a_commit_reaches_its_admission_workload_and_pods(store: LineageStore) -> None:
    """The cluster half of the chain: commit -> audit record -> (admission, deployment, pod)."""
    from liubai.lineage.join import join_records
    from liubai.lineage.model import admission_node_id, pod_node_id
    from liubai.lineage.records import AdmissionRecord, ClusterObjectRecord, PodRecord

    sha, at = "b" * 40, "2026-12-01T00:00:00.000000Z"
    audit = f"git-sha1:{sha}|trace:{'2' * 32}"
    store.upsert(
        join_records(
            [
                AdmissionRecord(
                    "r1", None, at, "flux", "CREATE", "Deployment", "ns", "web", "patched", audit
                ),
                ClusterObjectRecord(None, "apps/v1", "Deployment", "ns", "web", "u0", at, audit_id=audit),
                ClusterObjectRecord(
                    None,
                    "apps/v1",
                    "ReplicaSet",
                    "ns",
                    "web-1",
                    "u1",
                    at,
                    owner_kind="Deployment",
                    owner_name="web",
                ),
                PodRecord(
                    None,
                    "ns",
                    "web-1-a",
                    "p1",
                    at,
                    owner_kind="ReplicaSet",
                    owner_name="web-1",
                    audit_id=audit,
                ),
            ]
        )
    )
    g = store.lineage(commit_node_id(sha), Direction.DOWNSTREAM, depth=2)
    assert g.depth[admission_node_id("r1")] == 2  # Admission -STAMPED-> AuditRecord, walked along the flow
    assert g.depth[pod_node_id("p1")] == 2
    assert g.depth["workload:Deployment/ns/web"] == 2
    up = store.lineage(pod_node_id("p1"), Direction.UPSTREAM, depth=2)
    assert up.depth["workload:ReplicaSet/ns/web-1"] == 1 and up.depth["workload:Deployment/ns/web"] == 2


def test_spans_and_logs_linked_only_by_resource_reach_a_pod_written_later(store: LineageStore) -> None:
    """A Pod first named by a span's resource is a bare placeholder; the cluster collector's record fills it
    and the commit then reaches the span and the log line through it. Re-ingesting changes nothing."""
    from liubai.lineage.model import log_node_id, pod_node_id, span_node_id
    from liubai.lineage.records import LogRecord, PodRecord, SpanRecord

    sha, at, trace = "d" * 40, "2026-12-01T00:00:00.000000Z", "3" * 32
    resource = {"k8s.pod.uid": "p9", "k8s.namespace.name": "ns", "service.name": "cart"}
    telemetry = [
        SpanRecord("otlp", trace, "a" * 16, name="GET /", kind="SERVER", start=at, resource=resource),
        SpanRecord("otlp", trace, "b" * 16, "a" * 16, "SELECT", start=at, status="ERROR", resource=resource),
        LogRecord(
            "otlp", "l1", time=at, message="deadlock", trace_id=trace, span_id="b" * 16, resource=resource
        ),
    ]
    first = store.upsert(join_records(telemetry))
    pod = store.get(pod_node_id("p9"))
    assert pod is not None and pod.placeholder and pod.props == {}
    again = store.upsert(join_records(telemetry))
    assert first.nodes_created > 0
    assert (again.nodes_created, again.nodes_updated, again.edges_created, again.edges_updated) == (
        0,
        0,
        0,
        0,
    )
    store.upsert(join_records([PodRecord(None, "ns", "cart-1", "p9", at, audit_id=f"git-sha1:{sha}")]))
    g = store.lineage(commit_node_id(sha), Direction.DOWNSTREAM, depth=4)
    assert g.depth[span_node_id(trace, "b" * 16)] == 4 and g.depth[log_node_id("otlp", "l1")] == 4
    up = store.lineage(log_node_id("otlp", "l1"), Direction.UPSTREAM, depth=2, edge_kinds=[EdgeKind.IN_SPAN])
    assert set(up.depth) == {log_node_id("otlp", "l1"), span_node_id(trace, "b" * 16)}
