"""``liubai migrate --upgrade``: a database written in the old layout (each node's and edge's properties as
one JSON text) becomes typed in place, reads back what a SQLite store holding the same facts reads, and
answers Cypher on its properties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import neo4j
import pytest
from typer.testing import CliRunner

from liubai.api.cli.main import app
from liubai.lineage.join import join_records
from liubai.lineage.model import EdgeKind, GraphBatch, NodeKind
from liubai.lineage.records import CommitRecord, FileAccessRecord, LogRecord, ProcessRecord, Record, RunRecord
from liubai.lineage.store import LineageStore, StoreError, open_store
from liubai.lineage.store.common import dumps_props, prepare_batch
from liubai.lineage.store.neo4j.rows import _words
from tests.neo4j_server import driver_args

pytestmark = pytest.mark.neo4j

runner = CliRunner()
SHA = "c0ffee" + "0" * 34
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRICKY: dict[str, Any] = {
    "env": {"PATH": "/bin", "nested": [{"a": None}]},
    "big": 2**64 + 1,
    "mixed": [1, "a"],
    "id": "a property named id",
    "props": "a property named props",
    "at": "2026-01-02T03:04:05.123456Z",
    "unicode": "留白 \U0001f600",
    "ratio": 0.25,
    "ok": True,
}


def _records() -> list[Record]:
    recs: list[Record] = [
        CommitRecord(
            "repo:x",
            SHA,
            (),
            "A",
            "a@x",
            "2026-01-01T00:00:00.000000Z",
            "A",
            "a@x",
            "2026-01-01T00:00:00.000000Z",
            "ship it",
        ),
        RunRecord(
            "h",
            100,
            5,
            ("make", "all"),
            "2026-01-01T00:01:00.000000Z",
            commit=SHA,
            trace_id=TRACE,
            exit_code=2,
        ),
    ]
    for pid, code in ((101, 0), (102, 1), (103, 0)):
        recs.append(ProcessRecord("h", pid, 100, 100, 5, comm="cc", argv=("cc", "x.c"), exit_code=code))
        recs.append(FileAccessRecord("h", pid, 100, f"/out/{pid}.o", "write", count=2))
    recs.append(LogRecord("app", "1", "2026-01-01T00:02:00.000000Z", "ERROR", "svc", "boom", trace_id=TRACE))
    return recs


def _old_layout_write(url: str, batch: GraphBatch) -> None:
    """What the store wrote before typed properties: ``props`` JSON text on every node, on edges only
    when there are properties."""
    nodes, edges = prepare_batch(batch)
    uri, auth = driver_args(url)
    with neo4j.GraphDatabase.driver(uri, auth=auth, notifications_min_severity="OFF") as driver:
        driver.execute_query(
            "UNWIND $rows AS row CREATE (n:Node:$(row.labels)) "
            "SET n.id = row.id, n.props = row.props, n.search = row.search, n._writer = 'local'",
            rows=[
                {
                    "id": n.id,
                    "labels": [n.kind.value, "Placeholder"] if n.placeholder else [n.kind.value],
                    "props": dumps_props(n.props),
                    "search": _words(n.id, n.kind, n.props),
                }
                for n in nodes
            ],
        )
        driver.execute_query(
            "UNWIND $rows AS row MATCH (a:Node {id: row.src}), (b:Node {id: row.dst}) "
            "CREATE (a)-[r:$(row.kind)]->(b) SET r.props = row.props",
            rows=[
                {
                    "src": e.src,
                    "dst": e.dst,
                    "kind": e.kind.value,
                    "props": dumps_props(e.props) if e.props else None,
                }
                for e in edges.values()
            ],
        )


def _cypher(url: str, query: str, **params: Any) -> list[dict[str, Any]]:
    uri, auth = driver_args(url)
    with neo4j.GraphDatabase.driver(uri, auth=auth, notifications_min_severity="OFF") as driver:
        records, _, _ = driver.execute_query(query, params)
    return [r.data() for r in records]


def _everything(store: LineageStore) -> tuple[dict[str, Any], dict[Any, Any]]:
    nodes = {n.id: (n.kind, n.props, n.placeholder) for b in store.iter_nodes(7) for n in b}
    edges = {e.key: e.props for b in store.iter_edges(7) for e in b}
    return nodes, edges


def test_an_old_layout_database_is_refused_then_upgraded_in_place(
    neo4j_clean_url: str, tmp_path: Path
) -> None:
    batch = join_records(_records())
    batch.add_node("trace:tricky", TRICKY)
    batch.add_edge("trace:tricky", EdgeKind.CORRELATES, f"trace:{TRACE}", TRICKY)
    _old_layout_write(neo4j_clean_url, batch)
    reference = open_store(f"sqlite:///{tmp_path / 'same.db'}")
    reference.upsert(batch)

    with pytest.raises(StoreError, match="liubai migrate --upgrade"):
        open_store(neo4j_clean_url)

    out = runner.invoke(app, ["migrate", "--upgrade", neo4j_clean_url, "--batch-size", "4"])
    assert out.exit_code == 0, out.output
    nodes, edges = _everything(reference)
    assert f"upgraded {len(nodes)} of {len(nodes)} nodes and {sum(1 for p in edges.values() if p)} edges" in (
        out.stdout
    )

    store = open_store(neo4j_clean_url)
    try:
        assert _everything(store) == (nodes, edges)
        tricky = store.get("trace:tricky")
        assert tricky is not None and tricky.props == TRICKY
        assert store.counts() == reference.counts()
        assert [n.id for n in store.search("boom").nodes] == [n.id for n in reference.search("boom").nodes]
    finally:
        store.close()
        reference.close()

    assert _cypher(
        neo4j_clean_url,
        "MATCH (c:Commit {sha: $sha})-[:TRIGGERED]->(:PipelineRun)-[:RAN]->(p:Process) WHERE p.exit_code <> 0 "
        "RETURN p.pid AS pid, datetime(c.committed_at).year AS year",
        sha=SHA,
    ) == [{"pid": 102, "year": 2026}]
    assert _cypher(
        neo4j_clean_url,
        "MATCH (n) WHERE n.props IS NOT NULL RETURN count(n) AS n "
        "UNION ALL MATCH ()-[r]->() WHERE r.props IS NOT NULL RETURN count(r) AS n",
    ) == [{"n": 0}, {"n": 0}]
    assert _cypher(
        neo4j_clean_url, "MATCH (t:Trace {id: 'trace:tricky'}) RETURN t.big_json AS big, t.ok AS ok"
    ) == [{"big": str(2**64 + 1), "ok": True}]

    again = runner.invoke(app, ["migrate", "--upgrade", neo4j_clean_url])
    assert again.exit_code == 0, again.output
    assert (
        f"upgraded 0 of {len(nodes)} nodes and 0 edges" in again.stdout
        and "already up to date" in again.stdout
    )


def test_upgrade_takes_one_store_alone(neo4j_clean_url: str) -> None:
    out = runner.invoke(app, ["migrate", "--upgrade", neo4j_clean_url, "--to", "sqlite:///x.db"])
    assert out.exit_code == 1 and "give it alone" in out.stderr
    out = runner.invoke(app, ["migrate", "--to", "sqlite:///x.db"])
    assert out.exit_code == 1 and "give --from and --to" in out.stderr


def test_a_new_database_is_never_taken_for_the_old_layout(neo4j_clean_url: str) -> None:
    store = open_store(neo4j_clean_url)
    try:
        b = GraphBatch()
        b.add_node("trace:n", {"props": "named like the old key", "trace_id": "n"})
        store.upsert(b)
    finally:
        store.close()
    again = open_store(neo4j_clean_url)
    try:
        node = again.get("trace:n")
        assert (
            node is not None
            and node.kind is NodeKind.TRACE
            and node.props["props"] == "named like the old key"
        )
    finally:
        again.close()
