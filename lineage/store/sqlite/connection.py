"""Connections of the SQLite store: one per thread (WAL lets readers run beside one writer), each
stopped at its caller's deadline; write transactions begin IMMEDIATE, which serialises writers across
processes.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, ParamSpec, Self, TypeVar
from urllib.parse import unquote, urlsplit

from liubai.lineage.store import deadline
from liubai.lineage.store.base import (
    StoreDamaged,
    StoreError,
    StoreMissing,
    StoreReadOnly,
    StoreTimeout,
    StoreUnavailable,
)
from liubai.lineage.store.sqlite.schema import (
    _PRAGMAS,
    _READ_ONLY_PRAGMAS,
    _read_only_reason,
    _read_only_uri,
    _version,
    check_readable,
    check_search_version,
    store_error,
    upgrade,
)

__all__ = ["SqliteConnections", "reads", "streams"]

# VM steps between two looks at a call's deadline: each look takes the GIL, so not too often (about
# every 10 ms of SQLite work), yet a statement past its deadline stops within that.
_DEADLINE_STEPS = 200_000

_P = ParamSpec("_P")
_R = TypeVar("_R")
_S = TypeVar("_S", bound="SqliteConnections")


def reads(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
    """A read method whose SQLite errors leave as the store's errors (damaged, timed out, ...)."""

    @functools.wraps(method)
    def call(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise store_error(exc, self.db_path) from exc

    return call


def streams(
    method: Callable[Concatenate[_S, _P], Iterator[_R]],
) -> Callable[Concatenate[_S, _P], Iterator[_R]]:
    """``reads`` for a method that yields its answer in batches."""

    @functools.wraps(method)
    def call(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> Iterator[_R]:
        try:
            yield from method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise store_error(exc, self.db_path) from exc

    return call


class SqliteConnections:
    """The store's file and its per-thread connections: opening (with the schema upgrade or the
    read-only checks), deadlines, read snapshots and write transactions."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        """Open the database at ``path``; without ``create`` a missing file is ``StoreMissing`` and
        nothing is made (no file, no directory)."""
        self.db_path = str(path)
        self.url = f"sqlite:///{self.db_path}"
        if "\0" in self.db_path:
            raise StoreError(f"SQLite path {self.db_path!r} holds a NUL character")
        if not create and self.db_path != ":memory:" and not Path(self.db_path).expanduser().is_file():
            raise StoreMissing(f"no store at {self.db_path}")
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
                self._migrate()
            else:
                check_readable(self._conn(), self.db_path, self.read_only)
        except BaseException:
            self.close()  # a refused file is let go of at once (a read-only mount can then be unmounted)
            raise

    @classmethod
    def from_url(cls, url: str, *, create: bool = True) -> Self:
        parts = urlsplit(url)
        path = unquote(parts.path if not parts.netloc else f"{parts.netloc}{parts.path}")
        if path.startswith("//"):
            path = path[1:]
        if path in ("", "/"):
            raise StoreError(f"sqlite URL names no file: {url!r} (want sqlite:///path/to/lineage.db)")
        if path == "/:memory:":
            path = ":memory:"
        return cls(path, create=create)

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
            error = store_error(exc, self.db_path)
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
            error = store_error(exc, self.db_path)
            if isinstance(error, StoreDamaged):
                raise error from exc
            raise StoreUnavailable(f"SQLite database {self.db_path} is busy or read-only: {exc}") from exc
        try:
            if not migrating:
                check_search_version(conn, self.db_path)
            yield conn
        except sqlite3.Error as exc:
            if conn.in_transaction:  # some errors (corruption, a full disk) end the transaction themselves
                conn.execute("ROLLBACK")
            raise store_error(exc, self.db_path) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"commit to {self.db_path} failed: {exc}") from exc

    def _migrate(self) -> None:
        """Create or upgrade liubai's schema; a database that is not liubai's is refused, never extended."""
        try:
            with self._write(migrating=True) as c:
                upgrade(c, self.db_path)
        except StoreError as exc:  # a meta table of another shape, tables missing: SQLite's reason
            if type(exc) is StoreError and isinstance(exc.__cause__, sqlite3.DatabaseError):
                raise StoreError(f"cannot use {self.db_path} as a liubai database: {exc.__cause__}") from None
            raise

    @reads
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
