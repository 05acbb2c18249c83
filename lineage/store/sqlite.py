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
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import quote, unquote, urlsplit

import orjson

from liubai.lineage.model import (
    Direction,
    Edge,
    EdgeKind,
    GraphBatch,
    Node,
    NodeKind,
    RejectedRecord,
    merge_props,
)
from liubai.lineage.provenance import Claim, Provenance, merge_owned
from liubai.lineage.store import deadline
from liubai.lineage.store.base import (
    DEFAULT_LINEAGE_LIMIT,
    ONCE_APPLIED,
    AnswerTooLarge,
    NeighborPage,
    NodePage,
    RejectedPage,
    StoreDamaged,
    StoreError,
    StoreReadOnly,
    StoreTimeout,
    StoreUnavailable,
    Subgraph,
    UpsertResult,
)
from liubai.lineage.store.common import (
    chunks,
    decode_cursor,
    dumps_props,
    encode_cursor,
    loads_props,
    prepare_batch,
)
from liubai.lineage.store.searchtext import SEARCH_TEXT_VERSION, search_text

__all__ = ["EDGES_PER_NODE", "PATH_VISIT_LIMIT", "SCHEMA_VERSION", "SqliteRows", "SqliteStore", "prepare_rows",
           "row_texts"]

log = logging.getLogger(__name__)

_CHUNK = 500  # ids per IN (...) list; well under SQLite's variable limit
_BULK_MIN_ROWS = 64  # below this, per-row statements hand the GIL over too rarely to matter

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

# VM steps between two looks at a call's deadline: each look takes the GIL, so not too often (about
# every 10 ms of SQLite work), yet a statement past its deadline stops within that.
_DEADLINE_STEPS = 200_000
# A lineage answer holds at most this many edges per node its limit allows (at least DEFAULT_LINEAGE_LIMIT);
# edges past that are cut and the answer marked truncated: a dense neighbourhood cannot fill memory.
EDGES_PER_NODE = 8
# A path search holding more nodes than this (both sides' visited sets) stops with AnswerTooLarge.
PATH_VISIT_LIMIT = 200_000

_TOKEN = re.compile(r"\w+", re.UNICODE)

_NODE_KINDS = {k.value: k for k in NodeKind}
_KIND_VALUES = {k: k.value for k in NodeKind}
_EDGE_KINDS = {k.value: k for k in EdgeKind}

# Edge kind -> the nodes column that holds a node's bare link of that kind. A link is put in the column
# only when its source node is created, so it never also sits in ``edges``; further links of the kind, and
# any such link that gains properties, are ordinary ``edges`` rows.
_LINKS: dict[str, str] = {EdgeKind.IN_TRACE.value: "trace", EdgeKind.CARRIES.value: "audit"}
_SLOT = {"trace": 3, "audit": 4}  # where _fetch_nodes puts each column


# rid, props, placeholder, links, stored kind, writer, owners
_Existing = tuple[int, dict[str, Any], bool, "str | None", "str | None", NodeKind, "str | None", dict[str, str]]


@dataclass(slots=True)
class SqliteRows:
    """A batch's nodes and edges as ``SqliteStore`` writes them, worked out from the batch alone
    (``prepare_rows``), so that a reader process can do this part while the writing process only writes.

    Nodes come each once, in id order, with their JSON properties and the first bare ``IN_TRACE`` /
    ``CARRIES`` link of each: it goes on the node's row if the node is new. Search texts are not here: the
    writer makes them from the JSON (``row_texts``), as a later re-index does."""

    ids: list[str]
    kinds: list[str]
    props: list[str]
    placeholders: list[bool]
    traces: list[str | None]
    audits: list[str | None]
    bare: list[tuple[str, str, str]]  # every other edge without properties
    with_props: list[tuple[str, str, str, str]]  # (src, kind, dst, JSON properties)


def prepare_rows(batch: GraphBatch) -> SqliteRows:
    """The rows of ``batch``'s nodes and edges; its rejected records and checkpoints are not included."""
    nodes, edges = prepare_batch(batch)
    first: dict[str, dict[str, str]] = {column: {} for column in _LINKS.values()}
    bare: list[tuple[str, str, str]] = []
    with_props: list[tuple[str, str, str, str]] = []
    for key, e in edges.items():
        if e.props:
            with_props.append((*key, dumps_props(e.props)))
            continue
        column = _LINKS.get(key[1])
        if column is not None and e.src not in first[column]:
            first[column][e.src] = e.dst
            continue
        bare.append(key)
    ids = [n.id for n in nodes]
    traces, audits = first["trace"], first["audit"]
    return SqliteRows(
        ids=ids,
        kinds=[_KIND_VALUES[n.kind] for n in nodes],
        props=[dumps_props(n.props) for n in nodes],
        placeholders=[n.placeholder for n in nodes],
        traces=[traces.get(i) for i in ids] if traces else [None] * len(ids),
        audits=[audits.get(i) for i in ids] if audits else [None] * len(ids),
        bare=bare,
        with_props=with_props,
    )


def _text(rows: SqliteRows, i: int) -> str:
    """The search text of node ``i``, made from its JSON properties: what a re-index would make, so that
    a value a JSON round trip changes (a datetime) can never leave stale words in the index."""
    return search_text(rows.ids[i], _NODE_KINDS[rows.kinds[i]], loads_props(rows.props[i]))


def row_texts(rows: SqliteRows) -> list[str]:
    """The search text of every node of ``rows``, as ``SqliteStore`` indexes it."""
    return [_text(rows, i) for i in range(len(rows.ids))]


def _links(kinds: Iterable[str]) -> list[tuple[str, str]]:
    """(edge kind, nodes column) of the given kinds that live on node rows."""
    return [(k, _LINKS[k]) for k in kinds if k in _LINKS]


def _edge(row: tuple[str, str, str, str]) -> Edge:
    return Edge(row[0], _EDGE_KINDS[row[1]], row[2], loads_props(row[3]))


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    return chunks(items, size)


def _qmarks(n: int) -> str:
    return ",".join("?" * n)


def _col(i: int) -> str:
    return f"json_extract(j.value, '$[{i}]')"


def _bulk(target: str, width: int, *extra: str) -> tuple[str, str]:
    """(one statement reading every row from a JSON array, the per-row form) for ``INSERT ... target``."""
    cols = ", ".join([*(_col(i) for i in range(width)), *extra])
    marks = ", ".join(["?"] * width + list(extra))
    return f"{target} SELECT {cols} FROM json_each(?) j", f"{target} VALUES ({marks})"


# table -> (key columns, columns read back) for ``SqliteStore._fetch``
_FETCHED = {
    "nodes": (("id",), ("id", "rid", "props", "placeholder", "trace", "audit", "kind", "writer", "owners")),
    "edges": (("src", "kind", "dst"), ("src", "kind", "dst", "props")),
}
_INSERT_NODES = _bulk("INSERT INTO nodes(rid, id, kind, props, placeholder, trace, audit, writer)", 8)
_CLEAR_LINKS = {
    column: (
        f"UPDATE nodes SET {column} = NULL FROM json_each(?) j WHERE nodes.rid = {_col(0)}",
        f"UPDATE nodes SET {column} = NULL WHERE rid = ?",
    )
    for column in _LINKS.values()
}
_UPDATE_NODES = (
    f"UPDATE nodes SET props = {_col(0)}, placeholder = {_col(1)}, writer = {_col(2)}, owners = {_col(3)} "
    f"FROM json_each(?) j WHERE nodes.rid = {_col(4)}",
    "UPDATE nodes SET props = ?, placeholder = ?, writer = ?, owners = ? WHERE rid = ?",
)
_PUT_CLAIMS = "INSERT OR REPLACE INTO claims(node, key, writer, value) VALUES (?, ?, ?, ?)"
_DROP_CLAIMS = "DELETE FROM claims WHERE node = ? AND key = ? AND writer = ?"
_INSERT_SEARCH = _bulk("INSERT INTO node_search(rowid, text)", 2)
# The index holds no texts, so a row leaves it by naming the very text it was indexed with.
_UNINDEX_SEARCH = _bulk("INSERT INTO node_search(rowid, text, node_search)", 2, "'delete'")
_INSERT_BARE_EDGES = _bulk("INSERT OR IGNORE INTO edges(src, kind, dst, props)", 3, "'{}'")
_INSERT_EDGES = _bulk("INSERT INTO edges(src, kind, dst, props)", 4)
_UPDATE_EDGES = (
    f"UPDATE edges SET props = {_col(0)} FROM json_each(?) j "
    f"WHERE edges.src = {_col(1)} AND edges.kind = {_col(2)} AND edges.dst = {_col(3)}",
    "UPDATE edges SET props = ? WHERE src = ? AND kind = ? AND dst = ?",
)
_INSERT_REJECTED = _bulk("INSERT OR IGNORE INTO rejected(source, location, reason, raw)", 4)
_PUT_CHECKPOINTS = _bulk("INSERT OR REPLACE INTO checkpoints(source, key, value)", 3)


@dataclass(slots=True)
class _Claims:
    """Claims a write keeps beside the facts and those that became facts, written with the batch."""

    put: list[tuple[str, str, str, str]]
    drop: list[tuple[str, str, str]]
    conflicts: int = 0


def _json_array(rows: Sequence[Any]) -> bytes | None:
    """``rows`` as one JSON array, or None when SQLite's JSON functions cannot carry them exactly: lone
    surrogates (file names that are not UTF-8) and NUL characters (SQLite's JSON text ends at one)."""
    try:
        payload = orjson.dumps(rows)
    except orjson.JSONEncodeError:
        return None
    return None if b"\\u0000" in payload else payload


def _beside_busy_threads() -> bool:
    """Whether a write here competes for the GIL with busy Python: the case on a worker thread (a
    background ingest writer beside its parser, an API worker beside other requests). The main thread's
    other threads, if any, are helpers such as a progress bar's refresher, which per-row statements bear."""
    return threading.current_thread() is not threading.main_thread()


def _apply(conn: sqlite3.Connection, statements: tuple[str, str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Apply a statement to every row; on a worker thread, with ONE ``sqlite3_step``.

    Each step releases and re-takes the GIL, so ``executemany`` (a step per row) makes a store write queue
    behind any busy Python thread, row after row, and beside a busy thread a write takes many times as long
    as alone. Unpacking the rows from one JSON array inside SQLite costs a little more per row (JSON
    parsing) but hands the GIL over once, so it is used on worker threads (the ingest writer thread, the
    API's workers). The main thread keeps ``executemany``: ``liubai ingest logs`` with its progress bar
    stores faster that way. Figures: docs/performance.md.
    """
    if not rows:
        return
    payload = _json_array(rows) if len(rows) >= _BULK_MIN_ROWS and _beside_busy_threads() else None
    if payload is None:
        conn.executemany(statements[1], rows)
    else:
        conn.execute(statements[0], (payload,))


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


def _fts_query(text: str) -> str | None:
    """User text -> an FTS5 query of quoted prefix tokens, so no character of it is query syntax."""
    tokens = _TOKEN.findall(text)
    if not tokens:
        return None
    return " ".join(f'"{t}"*' for t in tokens[:16])


def _version(row: Sequence[Any] | None, key: str, db_path: str) -> int:
    """A version number kept in ``meta`` (0 if none); StoreError if it is not one."""
    if row is None:
        return 0
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise StoreError(f"{db_path} is not a usable liubai database: meta {key} is {row[0]!r}") from None


_DAMAGED = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def _store_error(exc: sqlite3.Error, db_path: str) -> StoreError:
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


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _reads(method: Callable[Concatenate[SqliteStore, _P], _R]) -> Callable[Concatenate[SqliteStore, _P], _R]:
    """A read method whose SQLite errors leave as the store's errors (damaged, timed out, ...)."""

    @functools.wraps(method)
    def call(self: SqliteStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.db_path) from exc

    return call


def _streams(
    method: Callable[Concatenate[SqliteStore, _P], Iterator[_R]],
) -> Callable[Concatenate[SqliteStore, _P], Iterator[_R]]:
    """``_reads`` for a method that yields its answer in batches."""

    @functools.wraps(method)
    def call(self: SqliteStore, /, *args: _P.args, **kwargs: _P.kwargs) -> Iterator[_R]:
        try:
            yield from method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.db_path) from exc

    return call


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
            "recent writes are not seen", db_path, wal, f"{os.path.getsize(wal):,}",
        )
    return f"{base}?mode=ro&immutable=1"


class SqliteStore:
    """``LineageStore`` on an SQLite file (``sqlite:///abs/path.db``, ``sqlite:///:memory:`` for tests)."""

    def __init__(self, path: str | Path) -> None:
        self.db_path = str(path)
        self.url = f"sqlite:///{self.db_path}"
        if "\0" in self.db_path:
            raise StoreError(f"SQLite path {self.db_path!r} holds a NUL character")
        if self.db_path != ":memory:":
            try:
                Path(self.db_path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create the directory for {self.db_path}: {exc}") from exc
        self.read_only = _read_only_reason(self.db_path)
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []  # with the thread that opened it
        self._lock = threading.Lock()
        self._armed: dict[sqlite3.Connection, float | None] = {}  # the deadline each connection checks
        try:
            if self.read_only is None:
                self._migrate(self._conn())
            else:
                self._check_readable(self._conn())
        except BaseException:
            self.close()  # a refused file is let go of at once (a read-only mount can then be unmounted)
            raise

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        parts = urlsplit(url)
        path = unquote(parts.path if not parts.netloc else f"{parts.netloc}{parts.path}")
        if path.startswith("//"):
            path = path[1:]
        if path in ("", "/"):
            raise StoreError(f"sqlite URL names no file: {url!r} (want sqlite:///path/to/lineage.db)")
        if path == "/:memory:":
            path = ":memory:"
        return cls(path)

    # ------------------------------------------------------------------ connections

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, set to stop at the caller's deadline (``liubai.lineage.store.deadline``)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.db_path == ":memory:" and self._all:
                conn = self._all[0][1]  # one shared in-memory database
            else:
                conn = self._connect()
                with self._lock:
                    self._all.append((threading.current_thread(), conn))
            self._local.conn = conn
        self._arm(conn, deadline.current())
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.read_only is None:
                conn = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
                pragmas: tuple[str, ...] = _PRAGMAS
            else:
                uri = _read_only_uri(self.db_path)
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
                pragmas = _READ_ONLY_PRAGMAS
            for pragma in pragmas:
                conn.execute(pragma)
        except sqlite3.Error as exc:
            error = _store_error(exc, self.db_path)
            if isinstance(error, StoreDamaged):
                raise error from exc
            raise StoreUnavailable(f"cannot open SQLite database {self.db_path}: {exc}") from exc
        return conn

    def _arm(self, conn: sqlite3.Connection, at: float | None) -> None:
        """Make ``conn``'s statements stop at ``at`` (a progress handler: SQLite interrupts the running
        statement, which then fails with SQLITE_INTERRUPT), or run unbounded for None. A call that starts
        past its deadline does no work at all."""
        if at is not None and time.monotonic() >= at:
            raise StoreTimeout(f"store {self.db_path}: the query ran past its deadline and was stopped")
        if self._armed.get(conn) == at:
            return
        self._armed[conn] = at
        if at is None:
            conn.set_progress_handler(None, 0)
        else:
            conn.set_progress_handler(lambda: time.monotonic() >= at, _DEADLINE_STEPS)

    @contextmanager
    def _snapshot(self, conn: sqlite3.Connection) -> Iterator[None]:
        """One read transaction: every statement inside sees the same snapshot. A failure (an interrupt
        rolls the transaction back itself) leaves the connection outside any transaction."""
        conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                self._arm(conn, None)  # the rollback must not be interrupted in turn
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _write(self, *, migrating: bool = False) -> Iterator[sqlite3.Connection]:
        if self.read_only is not None:
            raise StoreReadOnly(
                f"store {self.db_path} is read-only ({self.read_only}): it can be read, not written"
            )
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            error = _store_error(exc, self.db_path)
            if isinstance(error, StoreDamaged):
                raise error from exc
            raise StoreUnavailable(f"SQLite database {self.db_path} is busy or read-only: {exc}") from exc
        try:
            if not migrating:
                self._check_search_version(conn)
            yield conn
        except sqlite3.Error as exc:
            if conn.in_transaction:  # some errors (corruption, a full disk) end the transaction themselves
                conn.execute("ROLLBACK")
            raise _store_error(exc, self.db_path) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"commit to {self.db_path} failed: {exc}") from exc

    def _check_search_version(self, conn: sqlite3.Connection) -> None:
        """Another liubai version re-indexed the search texts since this store was opened: writing ours
        would drop entries by texts the index never held (a long-running API server across an upgrade)."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'search_text'").fetchone()
        if row is not None and row[0] == str(SEARCH_TEXT_VERSION):
            return
        if row is not None and _version(row, "search_text", self.db_path) > SEARCH_TEXT_VERSION:
            raise StoreError(
                f"{self.db_path} is indexed for search by a newer liubai (search text {row[0]}, this one "
                f"{SEARCH_TEXT_VERSION}); upgrade liubai to write to it"
            )
        raise StoreError(
            f"{self.db_path} was re-indexed by another liubai version since this process opened it (search "
            f"text {row[0] if row else 'none'}, this one {SEARCH_TEXT_VERSION}); restart this process"
        )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Create or upgrade liubai's schema; a database that is not liubai's is refused, never extended."""
        try:
            with self._write(migrating=True) as c:
                self._upgrade(c)
        except StoreError as exc:  # a meta table of another shape, tables missing: SQLite's reason
            if type(exc) is StoreError and isinstance(exc.__cause__, sqlite3.DatabaseError):
                raise StoreError(f"cannot use {self.db_path} as a liubai database: {exc.__cause__}") from None
            raise

    def _check_readable(self, conn: sqlite3.Connection) -> None:
        """A read-only store cannot be upgraded: it must already be a liubai database this version reads."""
        try:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() if "meta" in tables else None
        except sqlite3.Error as exc:
            raise _store_error(exc, self.db_path) from exc
        if row is None:
            stranded = os.path.exists(f"{self.db_path}-wal") and not os.path.exists(f"{self.db_path}-shm")
            raise StoreReadOnly(
                f"store {self.db_path} is read-only ({self.read_only}) and holds no liubai data to read"
                + ("; what it holds is in its -wal file, unreadable here without its -shm file" if stranded else "")
            )
        current = _version(row, "schema_version", self.db_path)
        if current != SCHEMA_VERSION:
            raise StoreReadOnly(
                f"store {self.db_path} is read-only ({self.read_only}) and has schema version {current}; this "
                f"liubai reads version {SCHEMA_VERSION}: open it once where it is writable"
                + (" to upgrade it" if current < SCHEMA_VERSION else " with a newer liubai")
            )

    def _upgrade(self, c: sqlite3.Connection) -> None:
        tables = {name for (name,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
            raise StoreError(
                f"{self.db_path} is an SQLite database of another application (tables: {shown}); "
                "liubai will not add its tables to it"
            )
        c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        current = _version(row, "schema_version", self.db_path)
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{self.db_path} has schema version {current}, newer than this liubai ({SCHEMA_VERSION}); upgrade liubai"
            )
        for version, script in MIGRATIONS:
            if version > current:
                for statement in script.split(";"):
                    if statement.strip():
                        c.execute(statement)
                c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(version),))
        indexed = c.execute("SELECT value FROM meta WHERE key = 'search_text'").fetchone()
        if indexed is None or _version(indexed, "search_text", self.db_path) < SEARCH_TEXT_VERSION:
            _reindex(c, self.db_path)
        # indexed by a newer liubai: reads work, writes stop with a clear line (_check_search_version)

    @_reads
    def schema_version(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return _version(row, "schema_version", self.db_path)

    def close(self) -> None:
        """Close the connections of this thread and of threads that have ended; the last one to close
        checkpoints the WAL into the database file and removes it. A connection of a thread still running
        is only let go of: closing it while that thread steps through a query (an API worker finishing a
        request its client gave up on) would crash the process. It closes when garbage-collected (its
        statement cache refers back to it, so not before)."""
        me = threading.current_thread()
        with self._lock:
            owned, self._all = self._all, []
            self._local = threading.local()  # no thread reaches the old connections through the store now
            self._armed = {}
        for thread, conn in owned:
            if self.db_path != ":memory:" and (thread is me or not thread.is_alive()):
                conn.close()

    # ------------------------------------------------------------------ writes

    prepare_rows = staticmethod(prepare_rows)

    def upsert(self, batch: GraphBatch) -> UpsertResult:
        return self.upsert_rows(self.prepare_rows(batch), batch)

    def upsert_rows(self, rows: SqliteRows, batch: GraphBatch) -> UpsertResult:
        """Write ``rows`` (from ``prepare_rows``) with ``batch``'s rejected records and checkpoints; the
        batch's own nodes and edges are not looked at. What ``upsert`` does, in two halves."""
        result = UpsertResult()
        with self._write() as conn:
            if batch.once is not None and conn.execute(
                "SELECT 1 FROM checkpoints WHERE source = ? AND key = ?", batch.once
            ).fetchone():
                result.duplicate = True  # decided under the write lock: another process applied it
                return result
            existing = self._fetch_nodes(conn, rows.ids)
            claims = _Claims([], [])
            bare = self._write_nodes(conn, rows, existing, result, batch.writer, claims)
            if claims.put or claims.drop:
                conn.executemany(_DROP_CLAIMS, claims.drop)
                conn.executemany(_PUT_CLAIMS, claims.put)
            result.conflicts = claims.conflicts
            # An edge without properties has nothing to merge: insert-or-ignore, no read-back needed.
            before = conn.total_changes
            _apply(conn, _INSERT_BARE_EDGES, bare)
            result.edges_created += conn.total_changes - before
            self._write_edges_with_props(conn, rows.with_props, existing, result)
            before = conn.total_changes
            _apply(conn, _INSERT_REJECTED, [(r.source, r.location, r.reason, r.raw) for r in batch.rejected])
            result.rejected_added = conn.total_changes - before
            checkpoints = dict(batch.checkpoints)
            if batch.once is not None:
                checkpoints.setdefault(batch.once, ONCE_APPLIED)
            _apply(conn, _PUT_CHECKPOINTS, [(s, k, v) for (s, k), v in checkpoints.items()])
        return result

    @staticmethod
    def _write_nodes(
        conn: sqlite3.Connection,
        rows: SqliteRows,
        existing: dict[str, _Existing],
        result: UpsertResult,
        writer: str,
        claims: _Claims,
    ) -> list[tuple[str, str, str]]:
        """Insert the new nodes (with their links, owned by ``writer``) and merge into the existing ones;
        returns the bare edges to write: ``rows.bare`` plus the links an existing node's row does not
        already hold. Claims the merges keep or settle go to ``claims``."""
        next_rid = conn.execute("SELECT coalesce(max(rid), 0) + 1 FROM nodes").fetchone()[0]
        bare = rows.bare
        updates: list[tuple[str, int, str | None, str | None, int]] = []
        search_gone: list[tuple[int, str]] = []
        if not existing:  # a batch of new nodes only (most log lines): whole columns, no loop
            rids = range(next_rid, next_rid + len(rows.ids))
            inserts: list[tuple[Any, ...]] = list(
                zip(
                    rids, rows.ids, rows.kinds, rows.props, rows.placeholders, rows.traces, rows.audits,
                    repeat(writer, len(rows.ids)), strict=True,
                )
            )
            search_new: list[tuple[int, str]] = list(zip(rids, row_texts(rows), strict=True))
        else:
            inserts, search_new, bare = [], [], list(bare)
            for i, node_id in enumerate(rows.ids):
                old = existing.get(node_id)
                trace, audit = rows.traces[i], rows.audits[i]
                if old is None:
                    row = (next_rid, node_id, rows.kinds[i], rows.props[i], rows.placeholders[i], trace, audit, writer)
                    inserts.append(row)
                    search_new.append((next_rid, _text(rows, i)))
                    next_rid += 1
                    continue
                rid, old_props, old_placeholder, old_trace, old_audit, kind, old_writer, old_owners = old
                if trace is not None and trace != old_trace:
                    bare.append((node_id, EdgeKind.IN_TRACE.value, trace))
                if audit is not None and audit != old_audit:
                    bare.append((node_id, EdgeKind.CARRIES.value, audit))
                placeholder = old_placeholder and rows.placeholders[i]
                new_writer, owners = old_writer, old_owners
                if old_writer == writer and not old_owners:  # one writer: the plain merge rule
                    merged = merge_props(old_props, loads_props(rows.props[i]))
                else:
                    m = merge_owned(
                        old_props, old_writer, old_owners, old_placeholder,
                        loads_props(rows.props[i]), writer, rows.placeholders[i],
                    )
                    merged, new_writer, owners = m.props, m.writer, m.owners
                    claims.put.extend((node_id, c.key, c.writer, dumps_props({"v": c.value})) for c in m.put)
                    claims.drop.extend((node_id, key, w) for key, w in m.drop)
                    claims.conflicts += m.conflicts
                if (
                    merged != old_props
                    or placeholder != old_placeholder
                    or new_writer != old_writer
                    or owners != old_owners
                ):
                    updates.append(
                        (dumps_props(merged), int(placeholder), new_writer, dumps_props(owners) if owners else None, rid)
                    )
                    text, old_text = search_text(node_id, kind, merged), search_text(node_id, kind, old_props)
                    if text != old_text:  # re-indexing costs a delete + insert
                        search_gone.append((rid, old_text))
                        search_new.append((rid, text))
        result.nodes_created, result.nodes_updated = len(inserts), len(updates)
        result.edges_created += sum(1 for r in inserts if r[5] is not None) + sum(1 for r in inserts if r[6] is not None)
        _apply(conn, _INSERT_NODES, inserts)
        _apply(conn, _UPDATE_NODES, updates)
        _apply(conn, _UNINDEX_SEARCH, search_gone)
        _apply(conn, _INSERT_SEARCH, search_new)
        return bare

    def _write_edges_with_props(
        self,
        conn: sqlite3.Connection,
        with_props: list[tuple[str, str, str, str]],
        existing: dict[str, _Existing],
        result: UpsertResult,
    ) -> None:
        if not with_props:
            return
        old_edges = self._fetch_edges(conn, [(src, kind, dst) for src, kind, dst, _ in with_props])
        inserts: list[tuple[str, str, str, str]] = []
        updates: list[tuple[str, str, str, str]] = []
        unlink: dict[str, list[tuple[int]]] = {}
        for src, kind, dst, props in with_props:
            prev = old_edges.get((src, kind, dst))
            if prev is not None:
                merged = merge_props(prev, loads_props(props))
                if merged != prev:
                    updates.append((dumps_props(merged), src, kind, dst))
                continue
            inserts.append((src, kind, dst, props))
            column = _LINKS.get(kind)
            old = existing.get(src) if column is not None else None
            if column is not None and old is not None and old[_SLOT[column]] == dst:
                unlink.setdefault(column, []).append((old[0],))  # the bare link on the row gains properties
                result.edges_updated += 1
            else:
                result.edges_created += 1
        result.edges_updated += len(updates)
        for column, rids in unlink.items():
            _apply(conn, _CLEAR_LINKS[column], rids)
        _apply(conn, _INSERT_EDGES, inserts)
        _apply(conn, _UPDATE_EDGES, updates)

    @staticmethod
    def _stage(conn: sqlite3.Connection, table: str, columns: str, rows: Iterable[tuple[str, ...]]) -> None:
        """Fill a per-connection temp table; joining against it beats long IN (...) lists."""
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({columns})")
        conn.execute(f"DELETE FROM {table}")
        width = columns.count(",") + 1
        conn.executemany(f"INSERT INTO {table} VALUES ({_qmarks(width)})", rows)

    def _fetch_nodes(self, conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, _Existing]:
        """id -> (rid, props, placeholder, trace link, audit link, kind, writer, owners) of the ids that exist."""
        rows = self._fetch(conn, "nodes", ids)
        return {
            node_id: (rid, loads_props(props), bool(ph), trace, audit, _NODE_KINDS[kind], writer, loads_props(owners))
            for node_id, rid, props, ph, trace, audit, kind, writer, owners in rows
        }

    def _fetch_edges(
        self, conn: sqlite3.Connection, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        rows = self._fetch(conn, "edges", keys)
        return {(src, kind, dst): loads_props(props) for src, kind, dst, props in rows}

    def _fetch(self, conn: sqlite3.Connection, table: str, keys: Sequence[Any]) -> list[Sequence[Any]]:
        """The ``_FETCHED`` columns of the rows of ``table`` whose key equals one of ``keys`` (node ids, or
        (src, kind, dst) edge keys)."""
        key_columns, columns = _FETCHED[table]
        select = ", ".join(f"t.{c}" for c in columns)
        payload = _json_array(keys)
        if payload is not None:
            # One row of JSON back instead of a row (a GIL hand-off, see _apply) per match.
            on = " AND ".join(
                f"t.{c} = {_col(i) if len(key_columns) > 1 else 'j.value'}" for i, c in enumerate(key_columns)
            )
            found: list[Sequence[Any]] = orjson.loads(
                conn.execute(
                    f"SELECT json_group_array(json_array({select})) FROM json_each(?) j CROSS JOIN {table} t ON {on}",
                    (payload,),
                ).fetchone()[0]
            )
            return found
        stage = f"_stage_{table}"
        self._stage(
            conn, stage, ", ".join(f"{c} TEXT" for c in key_columns), keys if len(key_columns) > 1 else [(k,) for k in keys]
        )
        on = " AND ".join(f"t.{c} = s.{c}" for c in key_columns)
        return conn.execute(f"SELECT {select} FROM {stage} s CROSS JOIN {table} t ON {on}").fetchall()

    # ------------------------------------------------------------------ point reads

    @staticmethod
    def _node(row: tuple[str, str, str, int]) -> Node:
        return Node(row[0], _NODE_KINDS[row[1]], loads_props(row[2]), bool(row[3]))

    @_reads
    def get(self, node_id: str) -> Node | None:
        row = self._conn().execute(
            "SELECT id, kind, props, placeholder FROM nodes WHERE id = ?", (node_id,)
        ).fetchone()
        return self._node(row) if row else None

    @_reads
    def get_many(self, node_ids: Sequence[str]) -> list[Node]:
        found: dict[str, Node] = {}
        conn = self._conn()
        for chunk in _chunks(list(dict.fromkeys(node_ids))):
            for row in conn.execute(
                f"SELECT id, kind, props, placeholder FROM nodes WHERE id IN ({_qmarks(len(chunk))})", tuple(chunk)
            ):
                found[row[0]] = self._node(row)
        return [found[i] for i in dict.fromkeys(node_ids) if i in found]

    @_reads
    def find_by_prefix(self, kind: NodeKind, key_prefix: str, limit: int = 10) -> list[Node]:
        lo = f"{kind.prefix}:{key_prefix}"
        hi = lo + "\U0010ffff"
        rows = self._conn().execute(
            "SELECT id, kind, props, placeholder FROM nodes WHERE id >= ? AND id < ? AND kind = ? ORDER BY id LIMIT ?",
            (lo, hi, kind.value, limit),
        )
        return [self._node(r) for r in rows]

    # ------------------------------------------------------------------ traversal

    @_reads
    def neighbors(
        self,
        node_id: str,
        direction: Direction = Direction.BOTH,
        edge_kinds: Sequence[EdgeKind] | None = None,
        first: int = 100,
        after: str | None = None,
    ) -> NeighborPage:
        offset = decode_cursor(after)
        kinds = [k.value for k in (edge_kinds or list(EdgeKind))]
        parts, params = [], []
        if direction in (Direction.DOWNSTREAM, Direction.BOTH):
            parts.append(
                f"SELECT 0 AS d, kind, dst AS other, src, dst, props FROM edges WHERE src = ? AND kind IN ({_qmarks(len(kinds))})"
            )
            params += [node_id, *kinds]
            for kind, column in _links(kinds):
                parts.append(
                    f"SELECT 0, '{kind}', {column}, id, {column}, '{{}}' FROM nodes WHERE id = ? AND {column} IS NOT NULL"
                )
                params.append(node_id)
        if direction in (Direction.UPSTREAM, Direction.BOTH):
            parts.append(
                f"SELECT 1 AS d, kind, src AS other, src, dst, props FROM edges WHERE dst = ? AND kind IN ({_qmarks(len(kinds))})"
            )
            params += [node_id, *kinds]
            for kind, column in _links(kinds):
                parts.append(f"SELECT 1, '{kind}', id, id, {column}, '{{}}' FROM nodes WHERE {column} = ?")
                params.append(node_id)
        sql = " UNION ALL ".join(parts) + " ORDER BY d, kind, other LIMIT ? OFFSET ?"
        rows = self._conn().execute(sql, (*params, first + 1, offset)).fetchall()
        more = len(rows) > first
        rows = rows[:first]
        edges = [Edge(r[3], _EDGE_KINDS[r[1]], r[4], loads_props(r[5])) for r in rows]
        nodes = self.get_many([r[2] for r in rows])
        return NeighborPage(edges, nodes, encode_cursor(offset + first) if more else None)

    @_reads
    def lineage(
        self,
        node_id: str,
        direction: Direction = Direction.DOWNSTREAM,
        depth: int = 2,
        edge_kinds: Sequence[EdgeKind] | None = None,
        limit: int = DEFAULT_LINEAGE_LIMIT,
    ) -> Subgraph:
        """Runs in one read transaction: every level sees the same snapshot, and the temp-table steps
        do not each pay for a transaction of their own."""
        conn = self._conn()
        with self._snapshot(conn):
            return self._lineage(conn, node_id, direction, max(0, depth), edge_kinds, limit)

    def _lineage(
        self,
        conn: sqlite3.Connection,
        node_id: str,
        direction: Direction,
        depth: int,
        edge_kinds: Sequence[EdgeKind] | None,
        limit: int,
    ) -> Subgraph:
        if conn.execute("SELECT 1 FROM nodes WHERE id = ?", (node_id,)).fetchone() is None:
            return Subgraph()
        kinds = list(edge_kinds) if edge_kinds else list(EdgeKind)
        along = [k.value for k in kinds if not k.flow_reversed]
        against = [k.value for k in kinds if k.flow_reversed]
        if direction is Direction.UPSTREAM:
            along, against = against, along
        elif direction is Direction.BOTH:
            along = against = [k.value for k in kinds]
        # Level-synchronous breadth-first walk inside SQLite: out-edges of kinds in `along` and in-edges of
        # kinds in `against` lead one hop further. Unlike a recursive CTE, which expands every (node, depth)
        # pair before any limit applies, this stops as soon as `limit` nodes are reached, so a hub (a shared
        # library every process reads) costs one index range scan instead of an explosion.
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS _seen (id TEXT PRIMARY KEY, d INTEGER NOT NULL) WITHOUT ROWID")
        conn.execute("DELETE FROM _seen")
        conn.execute("INSERT INTO _seen VALUES (?, 0)", (node_id,))
        steps: list[tuple[str, list[str]]] = []
        if along:
            steps.append(
                (
                    "INSERT OR IGNORE INTO _seen SELECT e.dst, ? FROM _seen w CROSS JOIN edges e ON e.src = w.id "
                    f"WHERE w.d = ? AND e.kind IN ({_qmarks(len(along))}) LIMIT ?",
                    along,
                )
            )
        if against:
            steps.append(
                (
                    "INSERT OR IGNORE INTO _seen SELECT e.src, ? FROM _seen w CROSS JOIN edges e INDEXED BY edges_dst "
                    f"ON e.dst = w.id WHERE w.d = ? AND e.kind IN ({_qmarks(len(against))}) LIMIT ?",
                    against,
                )
            )
        for _, column in _links(along):
            steps.append(
                (
                    f"INSERT OR IGNORE INTO _seen SELECT n.{column}, ? FROM _seen w CROSS JOIN nodes n ON n.id = w.id "
                    f"WHERE w.d = ? AND n.{column} IS NOT NULL LIMIT ?",
                    [],
                )
            )
        for _, column in _links(against):
            steps.append(
                (
                    f"INSERT OR IGNORE INTO _seen SELECT n.id, ? FROM _seen w CROSS JOIN nodes n INDEXED BY nodes_{column} "
                    f"ON n.{column} = w.id WHERE w.d = ? LIMIT ?",
                    [],
                )
            )
        seen, truncated = 1, False
        for level in range(1, depth + 1):
            grew = 0
            for sql, kinds_ in steps:
                room = limit + 1 - seen - grew
                if room <= 0:
                    break
                # LIMIT counts rows offered, duplicates included: offer generously, trim below
                grew += conn.execute(sql, (level, level - 1, *kinds_, room * 8 + 64)).rowcount
            seen += grew
            if seen > limit:
                truncated = True
                break
            if grew == 0:
                break
        if truncated:
            conn.execute("DELETE FROM _seen WHERE id NOT IN (SELECT id FROM _seen ORDER BY d, id LIMIT ?)", (limit,))
        rows = conn.execute(
            "SELECT n.id, n.kind, n.props, n.placeholder, s.d FROM _seen s CROSS JOIN nodes n ON n.id = s.id "
            "ORDER BY s.d, n.id"
        ).fetchall()
        kind_values = [k.value for k in kinds]
        # CROSS JOIN pins the small selection as the outer loop, which the planner otherwise guesses wrong
        edge_sql = [
            "SELECT e.src, e.kind, e.dst, e.props FROM _seen a CROSS JOIN edges e ON e.src = a.id "
            f"CROSS JOIN _seen b ON b.id = e.dst WHERE e.kind IN ({_qmarks(len(kind_values))})"
        ]
        for kind, column in _links(kind_values):
            edge_sql.append(
                f"SELECT n.id, '{kind}', n.{column}, '{{}}' FROM _seen a CROSS JOIN nodes n ON n.id = a.id "
                f"CROSS JOIN _seen b ON b.id = n.{column}"
            )
        max_edges = max(limit, DEFAULT_LINEAGE_LIMIT) * EDGES_PER_NODE
        edge_rows = conn.execute(
            " UNION ALL ".join(edge_sql) + " ORDER BY 1, 2, 3 LIMIT ?", (*kind_values, max_edges + 1)
        ).fetchall()
        if len(edge_rows) > max_edges:
            del edge_rows[max_edges:]
            truncated = True
        conn.execute("DELETE FROM _seen")
        return Subgraph(
            [self._node(r[:4]) for r in rows],
            [_edge(r) for r in edge_rows],
            {r[0]: r[4] for r in rows},
            truncated,
        )

    @_reads
    def path(
        self, src: str, dst: str, max_length: int = 6, edge_kinds: Sequence[EdgeKind] | None = None
    ) -> Subgraph | None:
        """Bidirectional breadth-first search, one set-based query per frontier and side."""
        conn = self._conn()
        if len(self.get_many([src, dst])) < len({src, dst}):
            return None
        if src == dst:
            return Subgraph(self.get_many([src]), [], {src: 0})
        kinds = [k.value for k in (edge_kinds or list(EdgeKind))]
        links = _links(kinds)
        # parent maps: node -> (previous node, edge) toward the side's start
        prev_a: dict[str, tuple[str, Edge] | None] = {src: None}
        prev_b: dict[str, tuple[str, Edge] | None] = {dst: None}
        front_a, front_b = [src], [dst]
        length = 0
        meet: str | None = None
        while front_a and front_b and length < max_length and meet is None:
            grow_a = len(front_a) <= len(front_b)
            front, prev, other = (front_a, prev_a, prev_b) if grow_a else (front_b, prev_b, prev_a)
            nxt: list[str] = []
            for chunk in _chunks(front):
                q = _qmarks(len(chunk))
                kq = _qmarks(len(kinds))
                parts = [
                    f"SELECT src, kind, dst, props, src AS here, dst AS there FROM edges WHERE src IN ({q}) AND kind IN ({kq})",
                    f"SELECT src, kind, dst, props, dst, src FROM edges WHERE dst IN ({q}) AND kind IN ({kq})",
                ]
                params: list[str] = [*chunk, *kinds, *chunk, *kinds]
                for kind, column in links:
                    parts.append(
                        f"SELECT id, '{kind}', {column}, '{{}}', id, {column} FROM nodes WHERE id IN ({q}) "
                        f"AND {column} IS NOT NULL"
                    )
                    parts.append(f"SELECT id, '{kind}', {column}, '{{}}', {column}, id FROM nodes WHERE {column} IN ({q})")
                    params += [*chunk, *chunk]
                # LIMIT bounds SQLite's sorter too; rows offered count duplicates, so offer generously
                offered = (PATH_VISIT_LIMIT - len(prev_a) - len(prev_b)) * 4 + 1024
                rows = conn.execute(" UNION ALL ".join(parts) + " ORDER BY 5, 2, 6 LIMIT ?", (*params, offered))
                for n, (s, k, d, props, here, there) in enumerate(rows, start=1):
                    if n == offered:
                        raise self._too_large(src, dst)
                    if there in prev:
                        continue
                    if len(prev_a) + len(prev_b) >= PATH_VISIT_LIMIT:
                        raise self._too_large(src, dst)
                    prev[there] = (here, Edge(s, _EDGE_KINDS[k], d, loads_props(props)))
                    nxt.append(there)
                    if there in other:
                        meet = there
                        break
                if meet is not None:
                    break
            length += 1
            if grow_a:
                front_a = nxt
            else:
                front_b = nxt
        if meet is None:
            return None
        order: list[str] = []
        edges: list[Edge] = []
        cur: str | None = meet
        while cur is not None:
            order.append(cur)
            step = prev_a[cur]
            if step is None:
                break
            edges.append(step[1])
            cur = step[0]
        order.reverse()
        edges.reverse()
        cur = meet
        while True:
            step = prev_b[cur]
            if step is None:
                break
            edges.append(step[1])
            cur = step[0]
            order.append(cur)
        if len(edges) > max_length:
            return None
        nodes = self.get_many(order)
        return Subgraph(nodes, edges, {n: i for i, n in enumerate(order)})

    @staticmethod
    def _too_large(src: str, dst: str) -> AnswerTooLarge:
        return AnswerTooLarge(
            f"a path from {src!r} to {dst!r} needs more than {PATH_VISIT_LIMIT:,} nodes searched; "
            "ask for a shorter maximum length"
        )

    # ------------------------------------------------------------------ search and bookkeeping

    @_reads
    def search(
        self, text: str, kinds: Sequence[NodeKind] | None = None, first: int = 20, after: str | None = None
    ) -> NodePage:
        offset = decode_cursor(after)
        conn = self._conn()
        kind_values = [k.value for k in kinds] if kinds else None
        kind_sql = f" AND n.kind IN ({_qmarks(len(kind_values))})" if kind_values else ""
        exact = conn.execute(
            "SELECT id, kind, props, placeholder FROM nodes n WHERE id = ?" + kind_sql,
            (text.strip(), *(kind_values or [])),
        ).fetchall()
        query = _fts_query(text)
        if query is None:
            hits: list[Node] = [self._node(r) for r in exact]
            return NodePage(hits[offset : offset + first], None, len(hits))
        params = (query, *(kind_values or []))
        total = conn.execute(
            "SELECT count(*) FROM node_search s JOIN nodes n ON n.rid = s.rowid WHERE node_search MATCH ?" + kind_sql,
            params,
        ).fetchone()[0]
        exact_ids = {r[0] for r in exact}
        head = [self._node(r) for r in exact]
        rows = conn.execute(
            "SELECT n.id, n.kind, n.props, n.placeholder FROM node_search s JOIN nodes n ON n.rid = s.rowid "
            "WHERE node_search MATCH ?" + kind_sql + " ORDER BY n.placeholder, s.rank, n.id LIMIT ? OFFSET ?",
            (*params, first + 1 + len(head), max(0, offset - len(head))),
        ).fetchall()
        ranked = [self._node(r) for r in rows if r[0] not in exact_ids]
        combined = (head[offset:] if offset < len(head) else []) + ranked
        more = len(combined) > first
        return NodePage(combined[:first], encode_cursor(offset + first) if more else None, total)

    @_reads
    def rejected(self, source: str | None = None, first: int = 100, after: str | None = None) -> RejectedPage:
        offset = decode_cursor(after)
        conn = self._conn()
        where, params = ("WHERE source = ?", (source,)) if source is not None else ("", ())
        total = conn.execute(f"SELECT count(*) FROM rejected {where}", params).fetchone()[0]
        rows = conn.execute(
            f"SELECT source, location, reason, raw FROM rejected {where} ORDER BY rid LIMIT ? OFFSET ?",
            (*params, first + 1, offset),
        ).fetchall()
        more = len(rows) > first
        records = [RejectedRecord(*r) for r in rows[:first]]
        return RejectedPage(records, encode_cursor(offset + first) if more else None, total)

    @_reads
    def provenance(self, node_ids: Sequence[str]) -> dict[str, Provenance]:
        found: dict[str, Provenance] = {}
        conn = self._conn()
        for chunk in _chunks(list(dict.fromkeys(node_ids))):
            marks = _qmarks(len(chunk))
            for node_id, writer, owners in conn.execute(
                f"SELECT id, writer, owners FROM nodes WHERE id IN ({marks})", tuple(chunk)
            ):
                found[node_id] = Provenance(writer, loads_props(owners))
            for node_id, key, writer, value in conn.execute(
                f"SELECT node, key, writer, value FROM claims WHERE node IN ({marks}) ORDER BY node, key, writer",
                tuple(chunk),
            ):
                if node_id in found:
                    found[node_id].claims.append(Claim(key, writer, loads_props(value).get("v")))
        return found

    def restore_provenance(self, found: dict[str, Provenance]) -> None:
        with self._write() as conn:
            conn.executemany(
                "UPDATE nodes SET writer = ?, owners = ? WHERE id = ?",
                [(p.writer, dumps_props(p.owners) if p.owners else None, i) for i, p in found.items()],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO claims(node, key, writer, value) SELECT id, ?, ?, ? FROM nodes WHERE id = ?",
                [(c.key, c.writer, dumps_props({"v": c.value}), i) for i, p in found.items() for c in p.claims],
            )

    @_reads
    def get_checkpoint(self, source: str, key: str) -> str | None:
        row = self._conn().execute(
            "SELECT value FROM checkpoints WHERE source = ? AND key = ?", (source, key)
        ).fetchone()
        return row[0] if row else None

    @_reads
    def checkpoints(self, source: str | None = None) -> dict[tuple[str, str], str]:
        where, params = ("WHERE source = ?", (source,)) if source is not None else ("", ())
        rows = self._conn().execute(f"SELECT source, key, value FROM checkpoints {where}", params)
        return {(s, k): v for s, k, v in rows}

    @_reads
    def counts(self) -> dict[str, int]:
        conn = self._conn()
        out: dict[str, int] = {}
        for kind in NodeKind:  # id ranges: every id starts with "<prefix>:", and ";" sorts right after ":"
            lo, hi = f"{kind.prefix}:", f"{kind.prefix};"
            out[kind.value] = conn.execute("SELECT count(*) FROM nodes WHERE id >= ? AND id < ?", (lo, hi)).fetchone()[0]
        out["placeholders"] = conn.execute("SELECT count(*) FROM nodes WHERE placeholder = 1").fetchone()[0]
        out["edges"] = conn.execute("SELECT count(*) FROM edges").fetchone()[0] + sum(
            conn.execute(f"SELECT count(*) FROM nodes WHERE {column} IS NOT NULL").fetchone()[0]
            for column in _LINKS.values()
        )
        out["rejected"] = conn.execute("SELECT count(*) FROM rejected").fetchone()[0]
        return out

    @_reads
    def probe(self) -> None:
        """Reads the schema and the first and last row of every table: pages a point read of one id may
        never touch, so a file damaged past its first pages fails here too. Cost is independent of size."""
        conn = self._conn()
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        for table, key in (("nodes", "rid"), ("edges", "src"), ("rejected", "rid"), ("checkpoints", "source")):
            for order in ("ASC", "DESC"):
                conn.execute(f"SELECT * FROM {table} ORDER BY {key} {order} LIMIT 1").fetchall()

    @_streams
    def iter_nodes(self, batch_size: int = 5000) -> Iterator[list[Node]]:
        conn = self._conn()
        last = ""
        while True:
            rows = conn.execute(
                "SELECT id, kind, props, placeholder FROM nodes WHERE id > ? ORDER BY id LIMIT ?", (last, batch_size)
            ).fetchall()
            if not rows:
                return
            yield [self._node(r) for r in rows]
            last = rows[-1][0]

    @_streams
    def iter_edges(self, batch_size: int = 5000) -> Iterator[list[Edge]]:
        """The ``edges`` table in key order, then each kind of link kept on node rows in source-id order."""
        conn = self._conn()
        last: tuple[str, str, str] = ("", "", "")
        while True:
            rows = conn.execute(
                "SELECT src, kind, dst, props FROM edges WHERE (src, kind, dst) > (?, ?, ?) "
                "ORDER BY src, kind, dst LIMIT ?",
                (*last, batch_size),
            ).fetchall()
            if not rows:
                break
            yield [_edge(r) for r in rows]
            last = (rows[-1][0], rows[-1][1], rows[-1][2])
        for kind, column in _LINKS.items():
            edge_kind, after = _EDGE_KINDS[kind], ""
            while True:
                pairs = conn.execute(
                    f"SELECT id, {column} FROM nodes WHERE id > ? AND {column} IS NOT NULL ORDER BY id LIMIT ?",
                    (after, batch_size),
                ).fetchall()
                if not pairs:
                    break
                yield [Edge(src, edge_kind, dst, {}) for src, dst in pairs]
                after = pairs[-1][0]
