"""Times in Neo4j are ``DATETIME`` values Cypher compares and subtracts natively, and every read path
gives back exactly the text the collectors wrote."""

from __future__ import annotations

from typing import Any

import neo4j
import pytest
from typer.testing import CliRunner

from liubai.api.cli.main import app
from liubai.lineage.join import join_records
from liubai.lineage.model import Direction, EdgeKind, GraphBatch, NodeKind
from liubai.lineage.records import CommitRecord
from liubai.lineage.store.neo4j import Neo4jStore
from tests.neo4j_server import driver_args

pytestmark = pytest.mark.neo4j

WHOLE = "2026-01-02T03:04:00.000000Z"  # no fractional digit, zero seconds
FULL = "2026-01-02T03:04:05.123456Z"  # six significant fractional digits
TENTH = "1999-12-31T23:59:59.100000Z"  # trailing zeros
PROC = "proc:h:1:1"
FILE = "file:h:/etc/passwd"
PROC_PROPS: dict[str, Any] = {
    "comm": "sh",
    "started_at": WHOLE,
    "ended_at": FULL,
    "first_seen": TENTH,
    "last_seen": FULL,
    "end": "soon",  # a time name holding free text
    "start": "2026-13-02T03:04:05.123456Z",  # the form, but no real time
    "note": FULL,  # a time's form under another name
}
EDGE_PROPS: dict[str, Any] = {"first_seen": WHOLE, "last_seen": FULL, "time": TENTH, "count": 2}


def _cypher(url: str, query: str, **params: Any) -> list[dict[str, Any]]:
    uri, auth = driver_args(url)
    with neo4j.GraphDatabase.driver(uri, auth=auth, notifications_min_severity="OFF") as d:
        records, _, _ = d.execute_query(query, params, database_="neo4j")
        return [r.data() for r in records]


def _commit(sha: str, at: str) -> CommitRecord:
    return CommitRecord("repo:x", sha, (), "A", "a@x", at, "A", "a@x", at, f"subject {sha[:4]}")


def test_commit_times_compare_as_datetimes_in_cypher(neo4j_store: Neo4jStore, neo4j_clean_url: str) -> None:
    early, late = "a" * 40, "b" * 40
    neo4j_store.upsert(
        join_records(
            [_commit(early, "2026-01-01T00:00:00.000000Z"), _commit(late, "2026-02-01T12:30:00.250000Z")]
        )
    )
    rows = _cypher(
        neo4j_clean_url,
        "MATCH (c:Commit) WHERE c.committed_at > datetime('2026-01-15T00:00:00Z') "
        "RETURN c.sha AS sha, valueType(c.committed_at) AS type, c.committed_at.millisecond AS ms, "
        "duration.inDays(datetime('2026-01-01T00:00:00Z'), c.committed_at).days AS days",
    )
    assert rows == [{"sha": late, "type": "ZONED DATETIME NOT NULL", "ms": 250, "days": 31}]
    assert neo4j_store.get(f"commit:{late}").props["committed_at"] == "2026-02-01T12:30:00.250000Z"  # type: ignore[union-attr]


def test_times_round_trip_exactly_on_every_read_path(neo4j_store: Neo4jStore, neo4j_clean_url: str) -> None:
    b = GraphBatch()
    b.add_node(PROC, PROC_PROPS)
    b.add_edge(PROC, EdgeKind.READ, FILE, EDGE_PROPS)
    neo4j_store.upsert(b)

    stored = _cypher(
        neo4j_clean_url,
        "MATCH (p:Process)-[r:READ]->() RETURN [k IN ['started_at', 'ended_at', 'first_seen', 'end', 'start', "
        "'note'] | valueType(p[k])] AS node, [k IN ['first_seen', 'time', 'count'] | valueType(r[k])] AS edge",
    )
    dt, text = "ZONED DATETIME NOT NULL", "STRING NOT NULL"
    assert stored == [{"node": [dt, dt, dt, text, text, text], "edge": [dt, dt, "INTEGER NOT NULL"]}]

    def edge_props(edges: list[Any]) -> list[dict[str, Any]]:
        return [e.props for e in edges]

    assert neo4j_store.get(PROC).props == PROC_PROPS  # type: ignore[union-attr]
    assert [n.props for n in neo4j_store.get_many([PROC])] == [PROC_PROPS]
    assert [n.props for n in neo4j_store.find_by_prefix(NodeKind.PROCESS, "h:1")] == [PROC_PROPS]
    assert [n.props for n in neo4j_store.search("sh", [NodeKind.PROCESS]).nodes] == [PROC_PROPS]
    assert [n.props for batch in neo4j_store.iter_nodes() for n in batch if n.id == PROC] == [PROC_PROPS]
    assert [e.props for batch in neo4j_store.iter_edges() for e in batch] == [EDGE_PROPS]
    page = neo4j_store.neighbors(FILE, Direction.UPSTREAM)
    assert [n.props for n in page.nodes] == [PROC_PROPS] and edge_props(page.edges) == [EDGE_PROPS]
    graph = neo4j_store.lineage(PROC, Direction.BOTH, depth=1)
    assert {n.id: n.props for n in graph.nodes}[PROC] == PROC_PROPS and edge_props(graph.edges) == [
        EDGE_PROPS
    ]
    path = neo4j_store.path(PROC, FILE)
    assert path is not None and path.nodes[0].props == PROC_PROPS and edge_props(path.edges) == [EDGE_PROPS]


def test_reingest_keeps_the_earliest_first_seen_and_latest_last_seen(
    neo4j_store: Neo4jStore, neo4j_clean_url: str
) -> None:
    """The merge runs in Python on values read back, as text, and writes ``DATETIME``s again."""
    for first, last in ((FULL, FULL), (WHOLE, FULL), (FULL, "2026-06-01T00:00:00.000001Z")):
        b = GraphBatch()
        b.add_node(PROC, {"comm": "sh", "first_seen": first, "last_seen": last})
        b.add_node(FILE, {"path": "/etc/passwd"})
        b.add_edge(PROC, EdgeKind.READ, FILE, {"first_seen": first, "last_seen": last})
        neo4j_store.upsert(b)
    merged = {"first_seen": WHOLE, "last_seen": "2026-06-01T00:00:00.000001Z"}
    assert neo4j_store.get(PROC).props == {"comm": "sh", **merged}  # type: ignore[union-attr]
    assert [e.props for batch in neo4j_store.iter_edges() for e in batch] == [merged]
    assert _cypher(
        neo4j_clean_url,
        "MATCH (p:Process)-[r:READ]->() RETURN p.last_seen > r.first_seen AS later, "
        "valueType(p.first_seen) AS node, valueType(r.last_seen) AS edge",
    ) == [{"later": True, "node": "ZONED DATETIME NOT NULL", "edge": "ZONED DATETIME NOT NULL"}]


def test_upgrade_turns_time_text_of_the_previous_layout_into_datetimes(
    neo4j_store: Neo4jStore, neo4j_clean_url: str
) -> None:
    b = GraphBatch()
    b.add_node(PROC, PROC_PROPS)
    b.add_edge(PROC, EdgeKind.READ, FILE, EDGE_PROPS)
    neo4j_store.upsert(b)
    # What the previous release wrote: typed properties, times as their text.
    _cypher(
        neo4j_clean_url,
        "MATCH (p:Process)-[r:READ]->() SET p.started_at = $whole, p.ended_at = $full, p.first_seen = $tenth, "
        "r.first_seen = $whole, r.time = $tenth",
        whole=WHOLE,
        full=FULL,
        tenth=TENTH,
    )
    assert neo4j_store.get(PROC).props == PROC_PROPS  # type: ignore[union-attr]

    out = CliRunner().invoke(app, ["migrate", "--upgrade", neo4j_clean_url])
    assert out.exit_code == 0, out.output
    assert "upgraded 1 of 2 nodes and 1 edges" in out.stdout
    assert _cypher(
        neo4j_clean_url,
        "MATCH (p:Process)-[r:READ]->() RETURN [k IN ['started_at', 'ended_at', 'first_seen', 'start', 'note'] "
        "| valueType(p[k])] AS node, [k IN ['first_seen', 'time'] | valueType(r[k])] AS edge",
    ) == [
        {
            "node": ["ZONED DATETIME NOT NULL"] * 3 + ["STRING NOT NULL"] * 2,
            "edge": ["ZONED DATETIME NOT NULL"] * 2,
        }
    ]
    assert neo4j_store.get(PROC).props == PROC_PROPS  # type: ignore[union-attr]
    assert [e.props for batch in neo4j_store.iter_edges() for e in batch] == [EDGE_PROPS]

    again = CliRunner().invoke(app, ["migrate", "--upgrade", neo4j_clean_url])
    assert again.exit_code == 0 and "already up to date" in again.stdout, again.output
