"""Store selection by URL scheme, so that no caller ever branches on the backend.

``sqlite:///path.db`` -> SqliteStore; ``neo4j://``, ``bolt://``, ``neo4j+s://`` ... -> Neo4jStore.
Implementations register a factory under their schemes; imports are lazy so that the embedded default
never loads the Neo4j driver.
"""

from __future__ import annotations

import importlib
from typing import Protocol
from urllib.parse import urlsplit

from liubai.lineage.store.base import LineageStore, StoreError

__all__ = ["open_store", "register_store", "known_schemes"]


class StoreFactory(Protocol):
    """Opens the store a URL names; without ``create`` a store that does not exist yet is
    ``StoreMissing``, and nothing is made."""

    def __call__(self, url: str, *, create: bool = True) -> LineageStore: ...


_FACTORIES: dict[str, StoreFactory] = {}
_LAZY: dict[str, str] = {
    "sqlite": "liubai.lineage.store.sqlite:SqliteStore.from_url",
    "neo4j": "liubai.lineage.store.neo4j:Neo4jStore.from_url",
    "neo4j+s": "liubai.lineage.store.neo4j:Neo4jStore.from_url",
    "neo4j+ssc": "liubai.lineage.store.neo4j:Neo4jStore.from_url",
    "bolt": "liubai.lineage.store.neo4j:Neo4jStore.from_url",
    "bolt+s": "liubai.lineage.store.neo4j:Neo4jStore.from_url",
    "bolt+ssc": "liubai.lineage.store.neo4j:Neo4jStore.from_url",
}

# the third-party module each optional store needs -> the extra that installs it
_EXTRAS = {"neo4j": "neo4j"}


def register_store(scheme: str, factory: StoreFactory) -> None:
    _FACTORIES[scheme] = factory


def known_schemes() -> list[str]:
    return sorted(set(_FACTORIES) | set(_LAZY))


def _resolve(scheme: str) -> StoreFactory:
    if scheme in _FACTORIES:
        return _FACTORIES[scheme]
    target = _LAZY.get(scheme)
    if target is None:
        raise StoreError(f"unknown store scheme {scheme!r}; use one of: {', '.join(known_schemes())}")
    module_name, _, attr = target.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        extra = _EXTRAS.get(exc.name.partition(".")[0] if exc.name else "")
        if extra is None:
            raise
        raise StoreError(
            f"the {scheme} store needs the {extra!r} extra ({exc.name} is not installed): "
            f"pip install 'liubai[{extra}]'"
        ) from None
    for part in attr.split("."):
        obj = getattr(obj, part)
    factory: StoreFactory = obj  # type: ignore[assignment]
    _FACTORIES[scheme] = factory
    return factory


def open_store(url: str, *, create: bool = True) -> LineageStore:
    """Open the store a URL names. A bare path is taken as an SQLite file. Readers pass
    ``create=False``: a mistyped URL is then ``StoreMissing``, not a new empty store."""
    try:
        scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    except ValueError as exc:
        raise StoreError(f"bad store URL ({exc})") from None
    if not scheme:
        url, scheme = f"sqlite:///{url}", "sqlite"
    return _resolve(scheme)(url, create=create)
