"""The join: records become graph facts; placeholders for the not-yet-seen; bad audit ids kept as rejects."""

from __future__ import annotations

from liubai.lineage.join import join_records
from liubai.lineage.model import (
    EdgeKind,
    NodeKind,
    audit_node_id,
    commit_node_id,
    parse_audit_id,
    trace_node_id,
)
from liubai.lineage.records import LogRecord, ManifestObjectRecord, ProcessRecord, RunRecord

SHA = "c" * 40
TRACE = "0af7651916cd43dd8448eb211c80319c"


def test_log_before_commit_makes_a_placeholder_commit() -> None:
    b = join_records(
        [
            LogRecord(
                "app", "1", "2026-01-01T00:00:00Z", message="hi", audit_id=f"git-sha256:{SHA}|trace:{TRACE}"
            )
        ]
    )
    kinds = {n.id: (n.kind, n.placeholder) for n in b.nodes}
    assert kinds[commit_node_id(SHA)] == (NodeKind.COMMIT, True)
    assert kinds[trace_node_id(TRACE)] == (NodeKind.TRACE, False)
    audit = audit_node_id(parse_audit_id(f"git-sha256:{SHA}|trace:{TRACE}"))
    edges = {(e.src, e.kind, e.dst) for e in b.edges}
    assert ("log:app:1", EdgeKind.CARRIES, audit) in edges
    assert (audit, EdgeKind.FOR_COMMIT, commit_node_id(SHA)) in edges
    assert ("log:app:1", EdgeKind.IN_TRACE, trace_node_id(TRACE)) in edges


def test_malformed_audit_id_is_rejected_but_the_log_lands() -> None:
    b = join_records(
        [LogRecord("app", "7", message="x", audit_id="git-sha256:nothex", location="app.jsonl:7")]
    )
    assert [n.id for n in b.nodes] == ["log:app:7"]
    assert b.edges == []
    assert len(b.rejected) == 1
    r = b.rejected[0]
    assert (r.source, r.location, r.raw) == ("app", "app.jsonl:7", "git-sha256:nothex")
    assert "40 or 64 hex" in r.reason


def test_no_link_without_a_record_naming_both_ends() -> None:
    b = join_records([LogRecord("app", "1", message="only a message")])
    assert b.edges == [] and len(b.nodes) == 1


def test_manifest_audit_annotates_the_workload() -> None:
    m = ManifestObjectRecord(
        "r", SHA, "a.yaml", "apps/v1", "Deployment", "ns", "web", (f"git-sha1:{'d' * 40}",)
    )
    b = join_records([m])
    kinds = {e.kind for e in b.edges}
    assert kinds == {EdgeKind.DECLARES, EdgeKind.ANNOTATES, EdgeKind.FOR_COMMIT}


def test_process_tree_and_privilege_change() -> None:
    b = join_records(
        [
            RunRecord("h", 10, 1, ("make",), "2026-01-01T00:00:00Z", commit=SHA),
            ProcessRecord("h", 11, 2, 10, 1, ppid=10, parent_start_ns=1, uid=0, parent_uid=1000, comm="sudo"),
        ]
    )
    proc = next(n for n in b.nodes if n.id == "proc:h:11:2")
    assert proc.props["privilege_change"] is True
    edges = {(e.src, e.kind, e.dst) for e in b.edges}
    assert ("proc:h:11:2", EdgeKind.CHILD_OF, "proc:h:10:1") in edges
    assert ("run:h:10:1", EdgeKind.RAN, "proc:h:11:2") in edges
    assert (commit_node_id(SHA), EdgeKind.TRIGGERED, "run:h:10:1") in edges


def test_a_batch_knows_whether_its_facts_were_folded() -> None:
    """Stores skip their own folding only for a batch whose facts all came through ``add_*``."""
    from liubai.lineage.model import Edge, EdgeKind, GraphBatch, Node, NodeKind
    from liubai.lineage.store.common import prepare_batch

    b = GraphBatch()
    b.add_node("trace:t1", {"first_seen": "2026-01-02"})
    b.add_node("trace:t1", {"first_seen": "2026-01-01"})
    b.add_edge("log:s:1", EdgeKind.IN_TRACE, "trace:t1")
    b.add_edge("log:s:1", EdgeKind.IN_TRACE, "trace:t1", {"n": 1})
    assert b.folded and len(b.nodes) == 1 and len(b.edges) == 1
    b.extend(GraphBatch(nodes=[Node("trace:t1", NodeKind.TRACE, {"first_seen": "2026-01-05"})]))
    b.edges.append(Edge("log:s:1", EdgeKind.IN_TRACE, "trace:t1", {"m": 2}))
    assert not b.folded
    nodes, edges = prepare_batch(b)  # folded by the store's rule instead
    assert {n.id: n.props for n in nodes}["trace:t1"] == {"first_seen": "2026-01-01"}  # merged, not the last
    assert list(edges.values())[0].props == {"n": 1, "m": 2}
