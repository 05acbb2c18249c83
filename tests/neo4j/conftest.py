"""Fixtures for the Neo4j-only tests: a blank graph on the session's real Neo4j."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from liubai.lineage.store.neo4j import Neo4jStore

pytestmark = pytest.mark.neo4j


@pytest.fixture
def neo4j_store(neo4j_clean_url: str) -> Iterator[Neo4jStore]:
    store = Neo4jStore.from_url(neo4j_clean_url)
    try:
        yield store
    finally:
        store.close()
