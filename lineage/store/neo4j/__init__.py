"""The team store: the lineage graph in Neo4j (5.26 LTS or newer), over Bolt with the official driver.

Layout: every graph node is ``(:Node:<Kind> {id, search, ...properties})`` plus ``:Placeholder`` while
only referenced; ``search`` is the lower-cased word list the full-text index reads. Relationship type =
``EdgeKind`` value. Properties are typed Neo4j values, so Cypher matches them as they are
(``liubai.lineage.store.neo4j.props``: times as ``DATETIME``, converted from and to liubai's UTC text
in Cypher; what Neo4j cannot hold as ``<name>_json`` text; docs/cypher.md shows the queries). A
database of the older layout, every property map as JSON text in ``props``, is refused until
``liubai migrate --upgrade`` rewrites it (``upgrade``, which also turns the time text of the layout
before ``DATETIME`` into ``DATETIME``). Rejected
records are ``(:Rejected)`` and checkpoints ``(:Checkpoint)``, outside ``:Node`` so they never show up as
graph facts.

Provenance (``liubai.lineage.provenance``): a node's owner is its ``_writer`` property, the keys other writers
added are ``_owners`` (JSON, absent while there are none), and a value another writer gave that differs
from the fact is a ``(:Claim {node, name, writer, value})``, also outside ``:Node``. A batch with a
``once`` checkpoint MERGEs that checkpoint first in its transaction: the uniqueness constraint makes a
concurrent writer of the same batch wait, then find it and apply nothing.

Every write of a batch is one managed transaction (``execute_write``, retried on transient errors) of
``UNWIND`` statements with constant text (labels and types from closed enums): one lookup of which
nodes exist, CREATE for the rest and for every edge touching them, MERGE only between existing nodes.
Property merging happens in Python with ``merge_props`` on rows the transaction has locked, so Neo4j
and SQLite merge identically. Lineage is a level-by-level breadth-first walk (one query per level)
rather than a variable-length pattern: a pattern enumerates every path, which explodes around hubs (a
shared binary, a busy trace), while the answer needs only each node's minimum hop count.

The store is one class made of one part per job: ``connection`` (driver, sessions), ``queries`` (schema
and Cypher texts), ``props`` (typed properties), ``rows`` (row building), ``writes``, ``reads``,
``traversal`` and ``search``; ``upgrade`` rewrites a database of an older layout.
"""

from __future__ import annotations

from liubai.lineage.store.neo4j.connection import Neo4jConnections
from liubai.lineage.store.neo4j.queries import ROWS_PER_STATEMENT, SCHEMA_STATEMENTS
from liubai.lineage.store.neo4j.search import Neo4jSearch
from liubai.lineage.store.neo4j.traversal import Neo4jTraversal
from liubai.lineage.store.neo4j.writes import Neo4jWrites

__all__ = ["ROWS_PER_STATEMENT", "SCHEMA_STATEMENTS", "Neo4jStore"]


class Neo4jStore(Neo4jWrites, Neo4jTraversal, Neo4jSearch, Neo4jConnections):
    """``LineageStore`` on Neo4j 5 (``neo4j://``, ``bolt://``, ``neo4j+s://`` ... ``user:pass@host:port/db``)."""
