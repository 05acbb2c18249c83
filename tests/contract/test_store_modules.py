"""The store packages keep the public names other code imports, and each part keeps to its job."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from liubai.lineage.store import registry
from liubai.lineage.store.base import RowStore


def test_sqlite_package_keeps_its_public_names() -> None:
    from liubai.lineage.store.sqlite import (
        EDGES_PER_NODE,
        MIGRATIONS,
        PATH_VISIT_LIMIT,
        SCHEMA_VERSION,
        SqliteRows,
        SqliteStore,
        prepare_rows,
        row_texts,
    )

    assert SCHEMA_VERSION == MIGRATIONS[-1][0] and EDGES_PER_NODE > 0 and PATH_VISIT_LIMIT > 0
    store = SqliteStore(":memory:")
    try:
        assert isinstance(store, RowStore) and store.prepare_rows is prepare_rows
        assert store.schema_version() == SCHEMA_VERSION
        assert row_texts(SqliteRows([], [], [], [], [], [], [], [], [])) == []
    finally:
        store.close()


def test_neo4j_package_keeps_its_public_names() -> None:
    pytest.importorskip("neo4j")
    from liubai.lineage.store.neo4j import SCHEMA_STATEMENTS, Neo4jStore

    assert SCHEMA_STATEMENTS and callable(Neo4jStore.from_url)


def test_every_registry_target_resolves_to_a_store_class() -> None:
    """The registry names stores as ``module:Class.from_url`` text: the split must keep each resolvable."""
    pytest.importorskip("neo4j")
    for target in set(registry._LAZY.values()):
        module, _, attr = target.partition(":")
        cls_name, _, method = attr.partition(".")
        cls = getattr(importlib.import_module(module), cls_name)
        assert callable(getattr(cls, method)) and cls.__module__ == module, target
    store = registry.open_store("sqlite:///:memory:")
    assert type(store).__name__ == "SqliteStore"
    store.close()


@pytest.mark.parametrize("package", ["sqlite", "neo4j"])
def test_no_store_module_grows_past_its_job(package: str) -> None:
    """A rule of thumb, kept so the split does not grow back into one file."""
    folder = Path(importlib.import_module(f"liubai.lineage.store.{package}").__file__ or "").parent
    sizes = {p.name: len(p.read_text().splitlines()) for p in folder.glob("*.py")}
    assert len(sizes) >= 5 and max(sizes.values()) <= 420, sizes
