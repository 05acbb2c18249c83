"""Graph stores behind one protocol (``base.LineageStore``); open one by URL with ``open_store``."""

from liubai.lineage.store.base import LineageStore, StoreError, StoreUnavailable, Subgraph, UpsertResult
from liubai.lineage.store.registry import open_store, register_store

__all__ = [
    "LineageStore",
    "StoreError",
    "StoreUnavailable",
    "Subgraph",
    "UpsertResult",
    "open_store",
    "register_store",
]
