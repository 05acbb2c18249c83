"""Connections of the Neo4j store: one driver per server and database, shared by every store
object of the process; URL parsing and the translation of driver errors into the store's."""

from __future__ import annotations

import atexit
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self, TypeVar
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

import neo4j
from neo4j import Driver, GraphDatabase, ManagedTransaction
from neo4j.exceptions import (
    AuthError,
    ConfigurationError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
)

from liubai.lineage.config import Settings
from liubai.lineage.store import deadline
from liubai.lineage.store.base import (
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from liubai.lineage.store.neo4j.queries import _OLD_LAYOUT, _PROBE, SCHEMA_STATEMENTS
from liubai.lineage.urls import redact_url

__all__ = ["Neo4jConnections"]

# The server ends a transaction past its timeout with one of these codes.
_TIMED_OUT = (
    "Neo.ClientError.Transaction.TransactionTimedOut",
    "Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration",
)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Target:
    """What a store URL names: the driver URI (no credentials), the login and the database."""

    uri: str
    user: str | None
    password: str | None
    database: str

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.user or "neo4j", self.password) if self.password is not None else None


def _parse_url(url: str) -> _Target:
    """Credentials from the URL, else ``LIUBAI_NEO4J_PASSWORD``; database from the path, ``?database=``
    or ``LIUBAI_NEO4J_DATABASE`` (default ``neo4j``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # an unclosed IPv6 bracket, a port that is no number or out of range
        raise StoreError(f"bad Neo4j URL ({exc}): want neo4j://user:pass@host:7687[/database]") from None
    if not parts.hostname:
        raise StoreError(
            f"Neo4j URL names no host: want neo4j://user:pass@host:7687[/database], got {parts.scheme}://…"
        )
    settings = Settings()
    query = parse_qs(parts.query)
    database = unquote(parts.path.strip("/")) or (query.pop("database", [""])[0]) or settings.neo4j_database
    password = unquote(parts.password) if parts.password is not None else settings.neo4j_password
    user = unquote(parts.username) if parts.username else None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{port}" if port else host
    uri = urlunsplit((parts.scheme, netloc, "", urlencode(query, doseq=True), ""))
    return _Target(uri, user, password, database)


class _Drivers:
    """One driver per (URI, login) per process, shared by every store object opened on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drivers: dict[tuple[str, tuple[str, str] | None], tuple[Driver, int]] = {}
        self._ready: set[tuple[str, str]] = set()

    def acquire(self, target: _Target) -> Driver:
        key = (target.uri, target.auth)
        with self._lock:
            found = self._drivers.get(key)
            if found is not None:
                self._drivers[key] = (found[0], found[1] + 1)
                return found[0]
            try:
                driver = GraphDatabase.driver(
                    target.uri,
                    auth=target.auth,
                    connection_timeout=10.0,
                    max_transaction_retry_time=30.0,
                    notifications_min_severity="OFF",
                    user_agent="liubai",
                )
            except (ConfigurationError, ValueError) as exc:
                raise StoreError(f"bad Neo4j URL {target.uri}: {exc}") from None
            self._drivers[key] = (driver, 1)
            return driver

    def release(self, target: _Target) -> None:
        key = (target.uri, target.auth)
        with self._lock:
            found = self._drivers.get(key)
            if found is None:
                return
            if found[1] > 1:
                self._drivers[key] = (found[0], found[1] - 1)
                return
            del self._drivers[key]
        found[0].close()

    def schema_ready(self, target: _Target) -> bool:
        return (target.uri, target.database) in self._ready

    def mark_schema_ready(self, target: _Target) -> None:
        self._ready.add((target.uri, target.database))

    def close_all(self) -> None:
        with self._lock:
            drivers = [d for d, _ in self._drivers.values()]
            self._drivers.clear()
        for d in drivers:
            d.close()


_DRIVERS = _Drivers()
atexit.register(_DRIVERS.close_all)


def _unavailable(target: _Target, exc: Exception) -> StoreError:
    """One line a user can act on, for the errors that mean 'cannot reach or log in to Neo4j'."""
    where = f"{target.uri} (database {target.database!r})"
    if isinstance(exc, AuthError):
        who = target.user or "neo4j"
        how = (
            "no password given (set it in the URL or LIUBAI_NEO4J_PASSWORD)"
            if target.password is None
            else "wrong user or password"
        )
        return StoreUnavailable(f"Neo4j at {where} refused the login for user {who!r}: {how}")
    if isinstance(exc, (ServiceUnavailable, SessionExpired, OSError)):
        return StoreUnavailable(f"Neo4j at {where} is unreachable: {_first_line(exc)}")
    if isinstance(exc, Neo4jError) and (exc.code or "").endswith("DatabaseNotFound"):
        return StoreUnavailable(f"Neo4j at {target.uri} has no database {target.database!r}")
    return StoreError(f"Neo4j at {where}: {_first_line(exc)}")


_REASON = re.compile(r"\[Errno -?\d+\] ([^)\]]+)")


def _first_line(exc: Exception) -> str:
    """The driver's messages span lines; keep the OS reason (e.g. 'Connection refused') if there is one."""
    text = str(exc).strip() or type(exc).__name__
    reason = _REASON.search(text)
    if reason:
        return reason.group(1).strip().rstrip(".").lower()
    return text.splitlines()[0].rstrip(":")


class Neo4jConnections:
    """The store's shared driver and sessions: opening (with the schema, once per server and
    database), read transactions under the caller's deadline, the health probe and closing."""

    def __init__(self, target: _Target, display_url: str, *, upgrading: bool = False) -> None:
        """``upgrading`` opens a database still in the old layout, for ``upgrade_layout`` only."""
        self._target = target
        self.url = display_url
        self.database = target.database
        self._driver = _DRIVERS.acquire(target)
        self._closed = False
        try:
            self._driver.verify_connectivity()
            if not _DRIVERS.schema_ready(target):
                self._create_schema()
                _DRIVERS.mark_schema_ready(target)
            if not upgrading:
                self._refuse_old_layout()
        except (Neo4jError, DriverError, OSError) as exc:
            self.close()
            raise _unavailable(target, exc) from None
        except StoreError:
            self.close()
            raise

    @classmethod
    def from_url(cls, url: str, *, create: bool = True) -> Self:
        """``create`` is there for ``open_store``: a Neo4j database is the server's, so a mistyped
        address or database name fails to connect instead of making an empty store."""
        del create
        target = _parse_url(url)
        return cls(target, redact_url(url))

    @classmethod
    def for_upgrade(cls, url: str) -> Self:
        """The store opened whatever its layout, to upgrade it in place."""
        return cls(_parse_url(url), redact_url(url), upgrading=True)

    def _refuse_old_layout(self) -> None:
        """Reading the old layout as the new one would show every node without properties. Checked at
        every open (one index seek), so a process that opened the database before an upgrade started
        elsewhere cannot miss it."""
        with self._session(write=False) as s:
            rec = s.run(_OLD_LAYOUT).single()
        if rec is not None and rec["old"]:
            raise StoreError(
                f"Neo4j database {self.database!r} at {self._target.uri} keeps properties as JSON text "
                f"(the layout before typed properties): upgrade it in place with "
                f"`liubai migrate --upgrade {self.url}`"
            )

    def _create_schema(self) -> None:
        with self._session() as s:
            for statement in SCHEMA_STATEMENTS:
                s.run(statement).consume()
            s.run("CALL db.awaitIndexes(120)").consume()

    def _session(self, write: bool = True) -> neo4j.Session:
        if self._closed:
            raise StoreError(f"store {self.url} is closed")
        mode = neo4j.WRITE_ACCESS if write else neo4j.READ_ACCESS
        return self._driver.session(database=self.database, default_access_mode=mode)

    def _read(self, query: str, **params: Any) -> list[Any]:
        def work(tx: ManagedTransaction) -> list[Any]:
            return list(tx.run(query, params))

        return self._run_read(work)

    def _run_read(self, work: Callable[[ManagedTransaction], _T]) -> _T:
        """One read transaction; under a caller's deadline (``liubai.lineage.store.deadline``) it carries the time
        left as its timeout, so the server itself ends the transaction when the caller gives up."""
        left = deadline.remaining()
        if left is not None:
            if left <= 0:
                raise StoreTimeout(f"store {self.url}: the query ran past its deadline and was stopped")
            work = neo4j.unit_of_work(timeout=left)(work)
        try:
            with self._session(write=False) as s:
                return s.execute_read(work)
        except Neo4jError as exc:
            if exc.code in _TIMED_OUT:
                raise StoreTimeout(
                    f"store {self.url}: the query ran past its deadline and was stopped"
                ) from None
            raise _unavailable(self._target, exc) from None
        except (DriverError, OSError) as exc:
            raise _unavailable(self._target, exc) from None

    def probe(self) -> None:
        self._read(_PROBE)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _DRIVERS.release(self._target)
