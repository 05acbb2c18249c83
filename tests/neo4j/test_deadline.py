"""A Neo4j read under a caller's deadline is ended by the server itself when the deadline passes: the
transaction is gone from SHOW TRANSACTIONS, not left running after the caller gave up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import neo4j
import pytest

from liubai.lineage.store.base import StoreTimeout
from liubai.lineage.store.deadline import deadline
from liubai.lineage.store.neo4j import Neo4jStore
from tests.neo4j_server import driver_args

pytestmark = pytest.mark.neo4j

TAG = "liubai-deadline-test"
# Minutes of work for the server, none of it data: every read of the store runs through the same path.
SLOW = f"UNWIND range(1, 4000000000) AS x WITH x, '{TAG}' AS tag WHERE x = -1 RETURN count(x) AS c"


@pytest.fixture
def admin(neo4j_url: str) -> Iterator[neo4j.Driver]:
    uri, auth = driver_args(neo4j_url)
    with neo4j.GraphDatabase.driver(uri, auth=auth, notifications_min_severity="OFF") as driver:
        yield driver


def _running(driver: neo4j.Driver) -> list[str]:
    records, _, _ = driver.execute_query(
        "SHOW TRANSACTIONS YIELD transactionId, currentQuery WHERE currentQuery CONTAINS $tag "
        "AND NOT currentQuery STARTS WITH 'SHOW' RETURN transactionId",
        tag=TAG,
        database_="neo4j",
    )
    return [r["transactionId"] for r in records]


def test_a_read_past_its_deadline_is_ended_on_the_server(
    neo4j_store: Neo4jStore, admin: neo4j.Driver
) -> None:
    outcome: list[object] = []
    ended = threading.Event()

    def call() -> None:
        try:
            with deadline(1.0):
                outcome.append(neo4j_store._run_read(lambda tx: tx.run(SLOW).single()))
        except BaseException as exc:  # recorded for the assertions below
            outcome.append(exc)
        finally:
            ended.set()

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    try:
        for _ in range(100):  # it did start on the server
            if _running(admin) or ended.is_set():
                break
            time.sleep(0.05)
        assert ended.wait(60), "the read was still running a minute after its deadline"
        assert isinstance(outcome[0], StoreTimeout), outcome
        assert _running(admin) == []
    finally:
        for tx in _running(admin):
            admin.execute_query("TERMINATE TRANSACTION $id", id=tx, database_="neo4j")
