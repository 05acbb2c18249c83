"""Which stores a test area runs on: every real store, unless a test is marked ``sqlite_only``.

The API, the CLI and the export see only the store protocol, so every answer they give must come out the
same from SQLite and from a real Neo4j. A test area's conftest parametrizes its store fixture with
:func:`parametrize_store`; Neo4j runs against the session's server (``tests/neo4j_server.py``), emptied
before each use, and skips — or fails under ``LIUBAI_REQUIRE_NEO4J=1`` — where it cannot start.

``@pytest.mark.sqlite_only`` keeps a test on SQLite alone. Use it for tests about SQLite itself (file
paths, WAL, damaged files) and for tests of the HTTP layer that never reach the store's answers; say
which in the test module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest

StoreKind = Literal["sqlite", "neo4j"]

STORES: list[Any] = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("neo4j", id="neo4j", marks=pytest.mark.neo4j),
]


def store_params(definition: pytest.Item) -> list[Any]:
    """The store params for one test: SQLite alone where it is marked ``sqlite_only``, else every store."""
    if definition.get_closest_marker("sqlite_only") is not None:
        return [STORES[0]]
    return STORES


def parametrize_store(metafunc: pytest.Metafunc, fixture: str, scope: Literal["function", "module"]) -> None:
    """Call from ``pytest_generate_tests``: run each test using ``fixture`` once per store it may use."""
    if fixture in metafunc.fixturenames:
        metafunc.parametrize(fixture, store_params(metafunc.definition), indirect=True, scope=scope)


def blank_store_url(request: pytest.FixtureRequest, kind: StoreKind, directory: Path, name: str) -> str:
    """A blank store of ``kind``: a new SQLite file under ``directory``, or the session's Neo4j, wiped."""
    if kind == "sqlite":
        return f"sqlite:///{directory / name}"
    from tests import neo4j_server

    url: str = request.getfixturevalue("neo4j_url")
    neo4j_server.wipe(url)
    return url
