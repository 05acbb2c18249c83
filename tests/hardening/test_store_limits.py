"""One request cannot hold the store for long or fill memory: a GraphQL query past its time limit stops
its store work (not only the wait for it), and answers that grow with the data are bounded.

The graph is a hub file read by a few hundred thousand processes, written straight into the tables
with one SQL statement (seconds to build, where the ingest path would take minutes). A path search from
the hub walks every one of those edges: seconds of SQLite and Python work and hundreds of MB before the
store had bounds, which is what these tests ask the store to cut short.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from liubai.api.app import create_app
from liubai.api.limits import LimitSettings
from liubai.lineage.model import Direction
from liubai.lineage.store.base import DEFAULT_LINEAGE_LIMIT, AnswerTooLarge, StoreTimeout, Subgraph
from liubai.lineage.store.deadline import deadline
from liubai.lineage.store.sqlite import EDGES_PER_NODE, SqliteStore
from tests.hardening.conftest import limited_client

READERS = 400_000  # processes reading the hub; more than the path search may visit
HUB, FAR = "file:/usr/lib/libhub.so", "file:/etc/far.conf"
PATH_QUERY = f'{{ path(from: "{HUB}", to: "{FAR}", maxLength: 4) {{ nodes {{ id }} }} }}'


class WatchedStore(SqliteStore):
    """Records how its last ``path`` call ended (an answer or an error) and when."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.ended = threading.Event()
        self.outcome: object = None

    def path(self, *args: Any, **kwargs: Any) -> Subgraph | None:
        try:
            self.outcome = super().path(*args, **kwargs)
        except BaseException as exc:
            self.outcome = exc
            raise
        finally:
            self.ended.set()
        return self.outcome  # type: ignore[return-value]


@pytest.fixture(scope="module")
def hub_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HUB <-READ- process:p1..pN, and FAR <-READ- process:p1: a path HUB - p1 - FAR exists."""
    path = tmp_path_factory.mktemp("hub") / "hub.db"
    SqliteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO nodes(id, kind, props) VALUES (?, 'File', '{}')", [(HUB,), (FAR,)])
    conn.execute("INSERT INTO nodes(id, kind, props) VALUES ('process:p1', 'Process', '{}')")
    conn.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?) "
        "INSERT INTO edges(src, kind, dst, props) SELECT 'process:p' || x, 'READ', ?, '{}' FROM c",
        (READERS, HUB),
    )
    conn.execute("INSERT INTO edges VALUES ('process:p1', 'READ', ?, '{}')", (FAR,))
    conn.execute("COMMIT")
    conn.close()
    return path


@pytest.fixture
def watched(hub_db: Path) -> Iterator[WatchedStore]:
    store = WatchedStore(hub_db)
    try:
        yield store
    finally:
        store.close()


def test_query_timeout_stops_the_store_work_not_just_the_wait(watched: WatchedStore) -> None:
    client = limited_client(watched, LimitSettings(timeout_s=0.05))
    errors = client.post("/graphql", json={"query": PATH_QUERY}).json()["errors"]
    assert errors[0]["extensions"]["detail"]["limit"] == "timeout"
    # The store call ends in the worker thread with the deadline's error: stopped, not run to its end.
    assert watched.ended.wait(120), "the store call never returned"
    assert isinstance(watched.outcome, StoreTimeout), f"the store call ran on to {watched.outcome!r}"


def test_a_store_call_under_a_passed_deadline_stops_with_store_timeout(watched: WatchedStore) -> None:
    with deadline(0.02), pytest.raises(StoreTimeout, match="deadline"):
        watched.path(HUB, FAR, 4)
    # the thread's connection is usable again, without the deadline
    assert watched.get(FAR) is not None
    assert watched.lineage(FAR, Direction.BOTH, 1).depth == {FAR: 0, "process:p1": 1}


def test_path_search_through_a_hub_is_refused_instead_of_filling_memory(watched: WatchedStore) -> None:
    with pytest.raises(AnswerTooLarge, match="shorter maximum length"):
        watched.path(HUB, FAR, 4)
    client = limited_client(watched, LimitSettings(timeout_s=120))
    errors = client.post("/graphql", json={"query": PATH_QUERY}).json()["errors"]
    assert errors[0]["extensions"]["code"] == "BAD_INPUT"
    assert "shorter maximum length" in errors[0]["message"]


def test_lineage_edges_among_the_reached_nodes_are_bounded(tmp_path: Path) -> None:
    """A dense neighbourhood: every one of ``n`` nodes writes every other, n*(n-1) edges among n nodes."""
    n = 300  # 89,700 edges: more than the cap for a limit of n (at least 10,000 nodes' worth)
    path = tmp_path / "dense.db"
    SqliteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO nodes(id, kind, props) VALUES (?, 'File', '{}')", [(f"file:/f{i}",) for i in range(n)]
    )
    conn.execute(
        "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c LIMIT ?) "
        "INSERT INTO edges(src, kind, dst, props) SELECT 'file:/f' || a.x, 'WROTE', 'file:/f' || b.x, '{}' "
        "FROM c a CROSS JOIN c b WHERE a.x != b.x",
        (n,),
    )
    conn.execute("COMMIT")
    conn.close()
    store = SqliteStore(path)
    try:
        sub = store.lineage("file:/f0", Direction.BOTH, 1, limit=n)
    finally:
        store.close()
    assert len(sub.nodes) == n
    assert len(sub.edges) == DEFAULT_LINEAGE_LIMIT * EDGES_PER_NODE
    assert sub.truncated


def test_export_route_stops_a_walk_past_the_time_limit(
    watched: WatchedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIUBAI_QUERY_TIMEOUT_S", "0.01")
    with TestClient(create_app(store=watched)) as client:
        resp = client.get(
            "/export", params={"node": HUB, "depth": 2, "limit": 1_000_000, "direction": "both"}
        )
    assert resp.status_code == 400, resp.text[:200]
    assert "longer than the 0.01 s limit" in resp.json()["detail"]["message"]
