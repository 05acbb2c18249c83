"""The embedded default store: one SQLite file in WAL mode, zero set-up.

Nodes and edges are keyed by their readable ids; properties are JSON text. A node's bare ``IN_TRACE`` and
``CARRIES`` links (every log line has one or both) are kept as indexed columns on its own row instead of
``edges`` rows: a log line then costs one row and three index entries instead of five rows, and every
read unions those columns back in as edges. Traversal is a breadth-first walk inside SQLite, search
uses an FTS5 index over ids and key properties. Every node row records the writer that owns it (see
``liubai.lineage.provenance``); values other writers gave that differ from the facts are ``claims`` rows, and
keys a second writer added are named in the row's ``owners`` JSON, NULL while there are none, so a batch
of new nodes stays a column-wise insert. A batch with a ``once`` checkpoint checks it after ``BEGIN
IMMEDIATE``, which serialises writers across processes. Each thread gets its own
connection (WAL lets readers run beside one writer), so the API can serve queries from a thread pool
and several worker processes can share one file.

The store is one class made of one part per job: ``connection`` (files, connections, transactions),
``schema`` (migrations), ``rows`` (row building), ``writes``, ``reads``, ``traversal`` and ``search``.
"""

from __future__ import annotations

from liubai.lineage.store.sqlite.connection import SqliteConnections
from liubai.lineage.store.sqlite.rows import SqliteRows, prepare_rows, row_texts
from liubai.lineage.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from liubai.lineage.store.sqlite.search import SqliteSearch
from liubai.lineage.store.sqlite.traversal import EDGES_PER_NODE, PATH_VISIT_LIMIT, SqliteTraversal
from liubai.lineage.store.sqlite.writes import SqliteWrites

__all__ = [
    "EDGES_PER_NODE",
    "MIGRATIONS",
    "PATH_VISIT_LIMIT",
    "SCHEMA_VERSION",
    "SqliteRows",
    "SqliteStore",
    "prepare_rows",
    "row_texts",
]


class SqliteStore(SqliteWrites, SqliteTraversal, SqliteSearch, SqliteConnections):
    """``LineageStore`` on an SQLite file (``sqlite:///abs/path.db``, ``sqlite:///:memory:`` for tests)."""
