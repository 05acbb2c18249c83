"""The ``store`` fixture: one contract suite, run once per store implementation.

SQLite always runs; Neo4j runs against the real server started by ``tests/neo4j_server.py`` (skipped,
or failed under ``LIUBAI_REQUIRE_NEO4J=1``, where it cannot start).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from liubai.lineage.store import LineageStore, open_store

STORES = ["sqlite", "neo4j"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LineageStore]:
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'contract.db'}")
    else:
        url: str = request.getfixturevalue("neo4j_clean_url")
        s = open_store(url)
    try:
        yield s
    finally:
        s.close()
