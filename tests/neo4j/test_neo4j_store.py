"""What teams querying Neo4j directly rely on: the layout, and writers that run side by side."""

from __future__ import annotations

import json
import threading

import neo4j
import pytest

from liubai.lineage.model import EdgeKind, GraphBatch, NodeKind
from liubai.lineage.store.neo4j import Neo4jStore
from tests.neo4j_server import driver_args

pytestmark = pytest.mark.neo4j


def _cypher(url: str, query: str, **params: object) -> list[dict[str, object]]:
    uri, auth = driver_args(url)
    with neo4j.GraphDatabase.driver(uri, auth=auth, notifications_min_severity="OFF") as d:
        records, _, _ = d.execute_query(query, params, database_="neo4j")
        return [r.data() for r in records]


def test_layout_labels_types_and_typed_props(neo4j_store: Neo4jStore, neo4j_clean_url: str) -> None:
    """Scalars and lists of scalars are Neo4j values Cypher can match; times are ``DATETIME``s Cypher
    compares natively, text that merely looks like a time under another name stays text; maps stay JSON
    text; nulls are absent."""
    b = GraphBatch()
    b.add_node(
        "proc:h:1:1",
        {
            "comm": "sh",
            "argv": ["sh", "-c", "x"],
            "exit_code": 2,
            "start": "2026-01-02T03:04:05.123456Z",
            "note": "2026-01-02T03:04:05.123456Z",
            "env": {"A": [{"b": 1}]},
            "ended_at": None,
            "seen_as": NodeKind.PROCESS,
        },
    )
    b.add_edge("proc:h:1:1", EdgeKind.READ, "file:h:/etc/passwd", {"count": 2})
    neo4j_store.upsert(b)
    rows = _cypher(
        neo4j_clean_url,
        "MATCH (p:Node:Process {comm: 'sh'})-[r:READ {count: 2}]->(f:Node:File:Placeholder) "
        "WHERE p.exit_code <> 0 AND p.start > datetime('2026-01-02T03:04:05Z') AND p.start.microsecond = 123456 "
        "AND 'x' IN p.argv AND p.seen_as = 'Process' "
        "RETURN p.id AS id, p.env_json AS env, p.props AS old, f.id AS fid, p:Placeholder AS placeholder, "
        "valueType(p.start) AS start_type, valueType(p.note) AS note_type, p.ended_at IS NULL AS unknown_end, "
        "keys(p) AS keys",
    )
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == "proc:h:1:1" and row["old"] is None
    assert json.loads(str(row["env"])) == {"A": [{"b": 1}]}
    assert row["start_type"] == "ZONED DATETIME NOT NULL" and row["note_type"] == "STRING NOT NULL"
    assert row["unknown_end"] is True
    assert isinstance(row["keys"], list) and sorted(row["keys"]) == [
        "_nulls",
        "_writer",
        "argv",
        "comm",
        "env_json",
        "exit_code",
        "id",
        "note",
        "search",
        "seen_as",
        "start",
    ]
    assert row["fid"] == "file:h:/etc/passwd" and row["placeholder"] is False


def test_duplicate_ids_are_impossible(neo4j_store: Neo4jStore, neo4j_clean_url: str) -> None:
    with pytest.raises(neo4j.exceptions.ConstraintError):
        _cypher(neo4j_clean_url, "CREATE (:Node {id: 'trace:x'}) CREATE (:Node {id: 'trace:x'})")


def test_concurrent_writers_merge_instead_of_overwriting(neo4j_clean_url: str) -> None:
    """Collectors write the same nodes at once (a commit named by git, eBPF and logs): no update is lost."""
    writers = 6
    stores = [Neo4jStore.from_url(neo4j_clean_url) for _ in range(writers)]
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            start.wait()
            for round_ in range(5):
                b = GraphBatch()
                b.add_node("commit:" + "a" * 40, {f"w{i}_{round_}": i, "last_seen": f"2026-01-0{1 + i}"})
                b.add_edge("run:h:1:1", EdgeKind.RAN, "proc:h:2:2", {f"w{i}_{round_}": round_})
                stores[i].upsert(b)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert not errors, errors
        node = stores[0].get("commit:" + "a" * 40)
        assert node is not None
        assert {k for k in node.props if k.startswith("w")} == {
            f"w{i}_{r}" for i in range(writers) for r in range(5)
        }
        assert node.props["last_seen"] == f"2026-01-0{writers}"
        edges = [e for batch in stores[0].iter_edges() for e in batch]
        assert len(edges) == 1 and len(edges[0].props) == writers * 5
        assert stores[0].counts()["edges"] == 1
    finally:
        for s in stores:
            s.close()


def test_a_datetime_written_by_cypher_reads_back_as_utc_text(
    neo4j_store: Neo4jStore, neo4j_clean_url: str
) -> None:
    b = GraphBatch()
    b.add_node("trace:t", {"trace_id": "t"})
    neo4j_store.upsert(b)
    _cypher(
        neo4j_clean_url,
        "MATCH (n:Node {id: 'trace:t'}) SET n.seen = datetime('2026-01-02T03:04:05.5+01:00'), "
        "n.seen_list = [datetime('2026-01-02T00:00:00Z')]",
    )
    node = neo4j_store.get("trace:t")
    assert node is not None
    assert node.props == {
        "trace_id": "t",
        "seen": "2026-01-02T02:04:05.500000Z",
        "seen_list": ["2026-01-02T00:00:00.000000Z"],
    }
