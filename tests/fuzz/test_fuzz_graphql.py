"""Schema-valid GraphQL queries (hypothesis-graphql) against the real schema over a real SQLite graph.

Whatever the arguments, the API answers with data or with structured, expected errors: never an
INTERNAL error (an unhandled exception) and never an error without a message and a code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis_graphql import queries

from api.errors import StructuredErrors
from api.limits import LimitSettings, graphql_extensions
from api.schema import ApiContext, LineageSchema, Query
from lineage.join import join_records
from lineage.records import CommitRecord, LogRecord
from lineage.store import LineageStore, open_store
from tests.fuzz.conftest import FUZZ

pytestmark = pytest.mark.fuzz

SCHEMA = LineageSchema(query=Query, extensions=[*graphql_extensions(LimitSettings(timeout_s=30)), StructuredErrors])
SHA = "5d" * 20


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LineageStore]:
    s = open_store(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'g.db'}")
    s.upsert(join_records([
        CommitRecord(repo="r", sha=SHA, parents=(), author_name="a", author_email="a@x",
                     authored_at="2026-01-01T00:00:00Z", committer_name="a", committer_email="a@x",
                     committed_at="2026-01-01T00:00:00Z", subject="deploy ' \" { } MATCH (n)"),
        LogRecord(source="app", record_id="r1", time="2026-01-01T00:00:01Z", message="hello",
                  trace_id="ab" * 16, audit_id=f"git-sha256:{SHA}|trace:{'ab' * 16}"),
    ]))
    yield s
    s.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def test_fuzz_store_is_not_empty(store: LineageStore) -> None:
    assert store.counts()["Commit"] == 1 and store.counts()["LogEvent"] == 1


@FUZZ
@given(query=queries(SCHEMA.as_str()))
def test_schema_valid_queries_never_fail_unexpectedly(
    query: str, store: LineageStore, loop: asyncio.AbstractEventLoop
) -> None:
    result = loop.run_until_complete(SCHEMA.execute(query, context_value=ApiContext(lambda: store)))
    for error in result.errors or []:
        ext = error.extensions or {}
        assert error.message.strip() and ext.get("code"), error
        assert ext["code"] != "INTERNAL", f"{error.message} for query {query}"
