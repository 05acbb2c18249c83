"""tests/stores.py: which stores a test runs on, the switch that keeps SQLite-only tests off Neo4j."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.stores import blank_store_url, store_params


def _ids(params: list[Any]) -> list[str]:
    return [p.id for p in params]


def test_an_unmarked_test_runs_on_every_store_and_neo4j_carries_its_marker(
    request: pytest.FixtureRequest,
) -> None:
    params = store_params(request.node)
    assert _ids(params) == ["sqlite", "neo4j"]
    neo4j = params[1]
    assert [m.name for m in neo4j.marks] == ["neo4j"]


@pytest.mark.sqlite_only
def test_a_sqlite_only_test_runs_on_sqlite_alone(request: pytest.FixtureRequest) -> None:
    assert _ids(store_params(request.node)) == ["sqlite"]


def test_a_blank_sqlite_store_is_a_new_file_under_the_directory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    assert blank_store_url(request, "sqlite", tmp_path, "x.db") == f"sqlite:///{tmp_path / 'x.db'}"
