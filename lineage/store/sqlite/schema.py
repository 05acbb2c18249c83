"""Schema and migrations of the SQLite store, and what opening a file checks: its schema and search-text
versions, whether it is writable here, and the translation of SQLite's errors into the store's.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from liubai.lineage.store.base import (
    StoreDamaged,
    StoreError,
    StoreReadOnly,
    StoreTimeout,
    StoreUnavailable,
)
from liubai.lineage.store.common import (
    loads_props,
)
from liubai.lineage.store.searchtext import SEARCH_TEXT_VERSION, search_text
from liubai.lineage.store.sqlite.rows import _NODE_KINDS

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "check_readable", "check_search_version", "store_error", "upgrade"]

log = logging.getLogger(__name__)


MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE nodes (
            rid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            props TEXT NOT NULL,
            placeholder INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX nodes_kind ON nodes(kind, id);
        CREATE TABLE edges (
            src TEXT NOT NULL,
            kind TEXT NOT NULL,
            dst TEXT NOT NULL,
            props TEXT NOT NULL,
            PRIMARY KEY (src, kind, dst)
        ) WITHOUT ROWID;
        CREATE INDEX edges_dst ON edges(dst, kind, src);
        CREATE VIRTUAL TABLE node_search USING fts5(text, tokenize = "unicode61 remove_diacritics 2");
        CREATE TABLE rejected (
            rid INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            location TEXT NOT NULL,
            reason TEXT NOT NULL,
            raw TEXT NOT NULL,
            UNIQUE (source, location, reason)
        );
        CREATE INDEX rejected_source ON rejected(source, rid);
        CREATE TABLE checkpoints (
            source TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (source, key)
        ) WITHOUT ROWID;
        """,
    ),
    # Node ids start with their kind, so the unique id index already answers per-kind lookups and
    # counts; a second (kind, id) index doubled the cost of every node insert.
    (2, "DROP INDEX IF EXISTS nodes_kind"),
    # A node's first bare IN_TRACE / CARRIES link lives on its row (see _LINKS); existing links move there.
    (
        3,
        """
        ALTER TABLE nodes ADD COLUMN trace TEXT;
        ALTER TABLE nodes ADD COLUMN audit TEXT;
        UPDATE nodes SET trace = (SELECT min(e.dst) FROM edges e WHERE e.src = nodes.id AND e.kind = 'IN_TRACE'
                                  AND e.props = '{}')
            WHERE id IN (SELECT src FROM edges WHERE kind = 'IN_TRACE' AND props = '{}');
        DELETE FROM edges WHERE kind = 'IN_TRACE' AND props = '{}'
            AND dst = (SELECT n.trace FROM nodes n WHERE n.id = edges.src);
        UPDATE nodes SET audit = (SELECT min(e.dst) FROM edges e WHERE e.src = nodes.id AND e.kind = 'CARRIES'
                                  AND e.props = '{}')
            WHERE id IN (SELECT src FROM edges WHERE kind = 'CARRIES' AND props = '{}');
        DELETE FROM edges WHERE kind = 'CARRIES' AND props = '{}'
            AND dst = (SELECT n.audit FROM nodes n WHERE n.id = edges.src);
        CREATE INDEX nodes_trace ON nodes(trace) WHERE trace IS NOT NULL;
        CREATE INDEX nodes_audit ON nodes(audit) WHERE audit IS NOT NULL
        """,
    ),
    # The search index keeps no copy of the texts (they are made from ``nodes.props`` again when needed):
    # a third of its write cost and two thirds of its size. ``_reindex`` refills it.
    (
        4,
        """
        DROP TABLE node_search;
        CREATE VIRTUAL TABLE node_search USING fts5(text, content = '', tokenize = "unicode61 remove_diacritics 2")
        """,
    ),
    # Provenance (lineage.provenance): the writer that owns each node (NULL: written before writers were
    # recorded), the keys other writers added (JSON, NULL while there are none: the insert path stays one
    # constant per row), and the claims that differ from the stored fact, one per (node, key, writer).
    (
        5,
        """
        ALTER TABLE nodes ADD COLUMN writer TEXT;
        ALTER TABLE nodes ADD COLUMN owners TEXT;
        CREATE TABLE claims (
            node TEXT NOT NULL,
            key TEXT NOT NULL,
            writer TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (node, key, writer)
        ) WITHOUT ROWID
        """,
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # with WAL: durable at checkpoints, never corrupt
    "PRAGMA busy_timeout=10000",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-65536",
    # Checkpoint the WAL every 64 MiB instead of every 4 MiB: hot pages (index interiors, full-text
    # segments) are copied back once per checkpoint, so a bulk ingest writes less and runs faster
    # (docs/performance.md); the file is cut back to that size after each checkpoint.
    "PRAGMA wal_autocheckpoint=16384",
    "PRAGMA journal_size_limit=67108864",
)

# What a read-only open may still set: nothing here writes to the file.
_READ_ONLY_PRAGMAS = ("PRAGMA busy_timeout=10000", "PRAGMA temp_store=MEMORY", "PRAGMA cache_size=-65536")


def _reindex(conn: sqlite3.Connection, where: str) -> None:
    """Rebuild the search index from every node's properties (after a schema upgrade, or a change to
    ``search_text``): the index cannot tell which of its entries are stale, so it starts empty."""
    count = conn.execute("SELECT count(*) FROM nodes").fetchone()[0]
    if count:  # other writers wait meanwhile: say why
        log.warning("re-indexing %s nodes of %s for search (once, after an upgrade)", f"{count:,}", where)
    conn.execute("INSERT INTO node_search(node_search) VALUES ('delete-all')")
    rows = conn.execute("SELECT rid, id, kind, props FROM nodes")
    while chunk := rows.fetchmany(10_000):
        conn.executemany(
            "INSERT INTO node_search(rowid, text) VALUES (?, ?)",
            [(rid, search_text(i, _NODE_KINDS[kind], loads_props(props))) for rid, i, kind, props in chunk],
        )
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('search_text', ?)", (str(SEARCH_TEXT_VERSION),)
    )


def _version(row: Sequence[Any] | None, key: str, db_path: str) -> int:
    """A version number kept in ``meta`` (0 if none); StoreError if it is not one."""
    if row is None:
        return 0
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise StoreError(f"{db_path} is not a usable liubai database: meta {key} is {row[0]!r}") from None


_DAMAGED = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def store_error(exc: sqlite3.Error, db_path: str) -> StoreError:
    """The one translation of SQLite's errors into the store's: by result code, never by message text."""
    code = (exc.sqlite_errorcode or 0) & 0xFF
    if code in _DAMAGED:
        return StoreDamaged(
            f"store {db_path} is damaged: {exc}; restore it from a backup, or move it aside and ingest again "
            "into a new one"
        )
    if code == sqlite3.SQLITE_INTERRUPT:
        return StoreTimeout(f"store {db_path}: the query ran past its deadline and was stopped")
    if code == sqlite3.SQLITE_READONLY:
        return StoreReadOnly(f"store {db_path} is read-only: {exc}")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN):
        return StoreUnavailable(f"SQLite database {db_path}: {exc}")
    return StoreError(f"SQLite database {db_path}: {exc}")


def _read_only_reason(db_path: str) -> str | None:
    """Why an existing database file cannot be written here (None if it can): read-only media or
    permissions. A WAL database also needs its directory writable, for the -wal and -shm files."""
    if db_path == ":memory:" or not os.path.exists(db_path):
        return None
    if not os.access(db_path, os.W_OK):
        return "its file is not writable"
    if not os.access(os.path.dirname(os.path.abspath(db_path)) or ".", os.W_OK):
        return "its directory is not writable"
    return None


def _read_only_uri(db_path: str) -> str:
    """How SQLite can read a database it may not write (https://sqlite.org/wal.html#readonly).

    A WAL database whose -wal and -shm files both exist is opened ``mode=ro``: SQLite reads the log
    through them. Otherwise nothing can make the -shm file, so the file is opened ``immutable=1``: no
    locks and no -shm; right when there is no -wal (the database was closed cleanly, the usual case for a
    copy on read-only media). A -wal without its -shm cannot be read at all: its writes are not seen."""
    path = os.path.abspath(db_path)
    base = f"file:{quote(path)}"
    wal, shm = f"{path}-wal", f"{path}-shm"
    if os.path.exists(wal) and os.path.exists(shm):
        return f"{base}?mode=ro"
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        log.warning(
            "%s is read-only and its write-ahead log %s has no -shm file beside it: the log's %s bytes of "
            "recent writes are not seen",
            db_path,
            wal,
            f"{os.path.getsize(wal):,}",
        )
    return f"{base}?mode=ro&immutable=1"


def check_search_version(conn: sqlite3.Connection, db_path: str) -> None:
    """Another liubai version re-indexed the search texts since this store was opened: writing ours
    would drop entries by texts the index never held (a long-running API server across an upgrade)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'search_text'").fetchone()
    if row is not None and row[0] == str(SEARCH_TEXT_VERSION):
        return
    if row is not None and _version(row, "search_text", db_path) > SEARCH_TEXT_VERSION:
        raise StoreError(
            f"{db_path} is indexed for search by a newer liubai (search text {row[0]}, this one "
            f"{SEARCH_TEXT_VERSION}); upgrade liubai to write to it"
        )
    raise StoreError(
        f"{db_path} was re-indexed by another liubai version since this process opened it (search "
        f"text {row[0] if row else 'none'}, this one {SEARCH_TEXT_VERSION}); restart this process"
    )


def check_readable(conn: sqlite3.Connection, db_path: str, read_only: str) -> None:
    """A read-only store cannot be upgraded: it must already be a liubai database this version reads."""
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        row = (
            conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if "meta" in tables
            else None
        )
    except sqlite3.Error as exc:
        raise store_error(exc, db_path) from exc
    if row is None:
        stranded = os.path.exists(f"{db_path}-wal") and not os.path.exists(f"{db_path}-shm")
        raise StoreReadOnly(
            f"store {db_path} is read-only ({read_only}) and holds no liubai data to read"
            + (
                "; what it holds is in its -wal file, unreadable here without its -shm file"
                if stranded
                else ""
            )
        )
    current = _version(row, "schema_version", db_path)
    if current != SCHEMA_VERSION:
        raise StoreReadOnly(
            f"store {db_path} is read-only ({read_only}) and has schema version {current}; this "
            f"liubai reads version {SCHEMA_VERSION}: open it once where it is writable"
            + (" to upgrade it" if current < SCHEMA_VERSION else " with a newer liubai")
        )


def upgrade(c: sqlite3.Connection, db_path: str) -> None:
    """Create liubai's tables, or run the migrations a database of an older version lacks; a database
    of another application or of a newer liubai is refused."""
    tables = {name for (name,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and "meta" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise StoreError(
            f"{db_path} is an SQLite database of another application (tables: {shown}); "
            "liubai will not add its tables to it"
        )
    c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    current = _version(row, "schema_version", db_path)
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"{db_path} has schema version {current}, newer than this liubai ({SCHEMA_VERSION}); upgrade liubai"
        )
    for version, script in MIGRATIONS:
        if version > current:
            for statement in script.split(";"):
                if statement.strip():
                    c.execute(statement)
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(version),))
    indexed = c.execute("SELECT value FROM meta WHERE key = 'search_text'").fetchone()
    if indexed is None or _version(indexed, "search_text", db_path) < SEARCH_TEXT_VERSION:
        _reindex(c, db_path)
    # indexed by a newer liubai: reads work, writes stop with a clear line (check_search_version)
