"""The team store: the lineage graph in Neo4j (5.26 LTS or newer), over Bolt with the official driver.

Layout: every graph node is ``(:Node:<Kind> {id, props, search})`` plus ``:Placeholder`` while only
referenced; ``props`` is the property map as JSON text (Neo4j cannot hold nested maps or lists of maps),
``search`` the lower-cased word list the full-text index reads. Relationship type = ``EdgeKind`` value,
with ``props`` as JSON too (absent when empty). Rejected records are ``(:Rejected)`` and checkpoints
``(:Checkpoint)``, outside ``:Node`` so they never show up as graph facts.

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
"""

from __future__ import annotations

import atexit
import json
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

import neo4j
from neo4j import Driver, GraphDatabase, ManagedTransaction
from neo4j.exceptions import (
    AuthError,
    ConfigurationError,
    ConstraintError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
)

from liubai.lineage.config import Settings
from liubai.lineage.model import (
    Direction,
    Edge,
    EdgeKind,
    GraphBatch,
    Node,
    NodeKind,
    RejectedRecord,
    merge_props,
    node_kind_of,
)
from liubai.lineage.provenance import Claim, Provenance, merge_owned
from liubai.lineage.store import deadline
from liubai.lineage.store.base import (
    DEFAULT_LINEAGE_LIMIT,
    ONCE_APPLIED,
    NeighborPage,
    NodePage,
    RejectedPage,
    StoreError,
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
from liubai.lineage.store.searchtext import search_text
from liubai.lineage.urls import redact_url

__all__ = ["Neo4jStore", "SCHEMA_STATEMENTS"]

ROWS_PER_STATEMENT = 5000
_CREATE_ATTEMPTS = 8
_CREATE_ROWS = 2000
_T = TypeVar("_T")
_MAX_PATH = 64
_EDGES_PER_NODE = 8  # as SQLite: a lineage answer holds at most this many edges per node its limit allows
# The server ends a transaction past its timeout with one of these codes.
_TIMED_OUT = ("Neo.ClientError.Transaction.TransactionTimedOut",
              "Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration")
_TOKEN = re.compile(r"\w+", re.UNICODE)
_LUCENE_SPECIAL = re.compile(r'([+\-!(){}\[\]^"~*?:\\/&|])')

SCHEMA_STATEMENTS: tuple[str, ...] = (
    "CREATE CONSTRAINT liubai_node_id IF NOT EXISTS FOR (n:Node) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT liubai_rejected_key IF NOT EXISTS FOR (x:Rejected) REQUIRE x.key IS UNIQUE",
    "CREATE CONSTRAINT liubai_checkpoint_key IF NOT EXISTS FOR (c:Checkpoint) REQUIRE c.key IS UNIQUE",
    "CREATE CONSTRAINT liubai_counter_name IF NOT EXISTS FOR (c:LiubaiCounter) REQUIRE c.name IS UNIQUE",
    "CREATE INDEX liubai_rejected_seq IF NOT EXISTS FOR (x:Rejected) ON (x.seq)",
    "CREATE INDEX liubai_rejected_source IF NOT EXISTS FOR (x:Rejected) ON (x.source, x.seq)",
    "CREATE INDEX liubai_checkpoint_source IF NOT EXISTS FOR (c:Checkpoint) ON (c.source)",
    "CREATE CONSTRAINT liubai_claim_key IF NOT EXISTS FOR (c:Claim) REQUIRE c.key IS UNIQUE",
    "CREATE INDEX liubai_claim_node IF NOT EXISTS FOR (c:Claim) ON (c.node)",
    # Words are split and lower-cased in Python (the same \w+ words SQLite's FTS5 sees), so the index
    # only needs to split on spaces. Eventually consistent: Lucene indexing runs in the background
    # instead of inside every write's commit (about a quarter of a batch's server time); search() waits
    # for it.
    "CREATE FULLTEXT INDEX liubai_node_search IF NOT EXISTS FOR (n:Node) ON EACH [n.search] "
    "OPTIONS {indexConfig: {`fulltext.analyzer`: 'whitespace', `fulltext.eventually_consistent`: true}}",
)

# ---------------------------------------------------------------------------------------------- queries
# Every statement text is a constant. Where a label or relationship type must be literal (relationship
# MERGE, counts), each kind gets its own statement, built once here from the closed enums; elsewhere the
# label or type comes from the row as data (``$(row.kind)``, Neo4j 5.26+), never from user text.

# Writes look nodes up once, by id, and then touch them only through their element ids: a seek by
# element id costs far less than a unique-index seek against a large transaction state. Existing nodes
# are locked by that lookup (``_lock`` set and removed), so the merge done in Python cannot lose a
# concurrent writer's update. Nodes the lookup did not find are CREATEd, skipping MERGE's per-row lock
# and property merge; a concurrent writer creating the same id makes the constraint fail and the whole
# batch is retried (then it finds the node). Bulk statements take column lists (``$ids[i]``) rather than
# a list of maps: far cheaper to encode and decode on both ends.
_NODE_LOOKUP = (
    "UNWIND $ids AS i MATCH (n:Node {id: i}) SET n._lock = true REMOVE n._lock "
    "RETURN i AS id, elementId(n) AS ref, n.props AS props, n:Placeholder AS placeholder, "
    "n._writer AS writer, n._owners AS owners"
)
# ``at`` and ``refs`` are collected from the same rows, so they pair up whatever order collect uses.
_NODE_CREATE = (
    "UNWIND range(0, size($ids) - 1) AS i "
    "CREATE (n:Node:$($labels[i]) {id: $ids[i], props: $props[i], search: $search[i], _writer: $writer}) "
    "RETURN collect(i) AS at, collect(elementId(n)) AS refs"
)
_NODE_UPDATE = (
    "UNWIND $rows AS row "
    "MATCH (n) WHERE elementId(n) = row.ref "
    "SET n.props = row.props, n.search = row.search, n._writer = row.writer, n._owners = row.owners "
    "FOREACH (_ IN CASE WHEN row.placeholder THEN [] ELSE [1] END | REMOVE n:Placeholder)"
)
# An edge touching a node this transaction created cannot exist yet: plain CREATE, no existence check,
# one statement for every kind (the type comes from the row). Empty properties are not stored.
_EDGE_CREATE = (
    "UNWIND range(0, size($src) - 1) AS i "
    "MATCH (a) WHERE elementId(a) = $src[i] MATCH (b) WHERE elementId(b) = $dst[i] "
    "CREATE (a)-[r:$($kinds[i])]->(b) SET r.props = $props[i]"
)
# Between two existing nodes MERGE stays per kind: a dynamic type there would scan all relationships
# instead of expanding between the two nodes. The ends are locked by the node lookup.
_EDGE_MERGE: dict[EdgeKind, str] = {
    kind: (
        "UNWIND $rows AS row "
        "MATCH (a) WHERE elementId(a) = row.src MATCH (b) WHERE elementId(b) = row.dst "
        f"MERGE (a)-[r:{kind.value}]->(b) "
        "ON CREATE SET r.props = row.props, r._new = true "
        "ON MATCH SET r._lock = true "
        "WITH r, row, r._new IS NOT NULL AS created "
        "REMOVE r._new, r._lock "
        "WITH r, row, created WHERE NOT created "
        "RETURN row.at AS at, elementId(r) AS ref, r.props AS props"
    )
    for kind in EdgeKind
}
_EDGE_UPDATE = "UNWIND $rows AS row MATCH ()-[r]->() WHERE elementId(r) = row.ref SET r.props = row.props"
_REJECTED_EXISTING = "UNWIND $keys AS k MATCH (x:Rejected {key: k}) RETURN x.key AS key"
_COUNTER_BUMP = (
    "MERGE (c:LiubaiCounter {name: $name}) ON CREATE SET c.value = 0 "
    "SET c.value = c.value + $n RETURN c.value AS value"
)
_REJECTED_CREATE = (
    "UNWIND $rows AS row CREATE (x:Rejected) "
    "SET x.key = row.key, x.seq = row.seq, x.source = row.source, x.location = row.location, "
    "x.reason = row.reason, x.raw = row.raw"
)
_ONCE = (
    "MERGE (c:Checkpoint {key: $key}) ON CREATE SET c._new = true "
    "WITH c, c._new IS NOT NULL AS created REMOVE c._new RETURN created"
)
_CLAIMS_DROP = "UNWIND $rows AS row MATCH (c:Claim {key: row.key}) DELETE c"
_CLAIMS_PUT = (
    "UNWIND $rows AS row MERGE (c:Claim {key: row.key}) "
    "SET c.node = row.node, c.name = row.name, c.writer = row.writer, c.value = row.value"
)
_PROVENANCE = (
    "UNWIND $ids AS i MATCH (n:Node {id: i}) "
    "RETURN i AS id, n._writer AS writer, n._owners AS owners, "
    "COLLECT { MATCH (c:Claim) WHERE c.node = i RETURN [c.name, c.writer, c.value] } AS claims"
)
_RESTORE = (
    "UNWIND $rows AS row MATCH (n:Node {id: row.id}) SET n._writer = row.writer, n._owners = row.owners "
    "WITH n, row UNWIND row.claims AS c "
    "MERGE (x:Claim {key: c.key}) SET x.node = row.id, x.name = c.name, x.writer = c.writer, x.value = c.value"
)
_CHECKPOINT_SET = (
    "UNWIND $rows AS row MERGE (c:Checkpoint {key: row.key}) "
    "SET c.source = row.source, c.name = row.name, c.value = row.value"
)

_NODE_FIELDS = "n.id AS id, n.props AS props, n:Placeholder AS placeholder"
_GET = f"MATCH (n:Node {{id: $id}}) RETURN {_NODE_FIELDS}"
_GET_MANY = f"UNWIND $ids AS i MATCH (n:Node {{id: i}}) RETURN {_NODE_FIELDS}"
_FIND_BY_PREFIX = (
    f"MATCH (n:Node) WHERE n.id STARTS WITH $prefix AND $label IN labels(n) "
    f"RETURN {_NODE_FIELDS} ORDER BY n.id LIMIT $limit"
)
_OUT = (
    "MATCH (s:Node {id: $id})-[r]->(n) WHERE type(r) IN $kinds "
    "RETURN 0 AS d, type(r) AS kind, s.id AS src, n.id AS dst, r.props AS rprops, "
    f"{_NODE_FIELDS}"
)
_IN = (
    "MATCH (s:Node {id: $id})<-[r]-(n) WHERE type(r) IN $kinds "
    "RETURN 1 AS d, type(r) AS kind, n.id AS src, s.id AS dst, r.props AS rprops, "
    f"{_NODE_FIELDS}"
)
_PAGE = " ORDER BY d, kind, id SKIP $skip LIMIT $limit"
_NEIGHBORS: dict[Direction, str] = {
    Direction.DOWNSTREAM: f"CALL () {{ {_OUT} }} RETURN *" + _PAGE,
    Direction.UPSTREAM: f"CALL () {{ {_IN} }} RETURN *" + _PAGE,
    Direction.BOTH: f"CALL () {{ {_OUT} UNION ALL {_IN} }} RETURN *" + _PAGE,
}
_EXISTS = "MATCH (n:Node {id: $id}) RETURN count(n) AS c"
# One breadth-first level: out-edges of the ``along`` kinds and in-edges of the ``against`` kinds.
_STEP = (
    "UNWIND $ids AS i MATCH (s:Node {id: i}) "
    "CALL (s) { MATCH (s)-[r]->(n) WHERE type(r) IN $along RETURN n "
    "UNION MATCH (s)<-[r]-(n) WHERE type(r) IN $against RETURN n } "
    "RETURN DISTINCT n.id AS id LIMIT $room"
)
_EDGES_AMONG = (
    "WITH $ids AS ids UNWIND ids AS i MATCH (a:Node {id: i})-[r]->(b) "
    "WHERE type(r) IN $kinds AND b.id IN ids "
    "RETURN a.id AS src, type(r) AS kind, b.id AS dst, r.props AS props ORDER BY src, kind, dst LIMIT $limit"
)
_PROBE = "MATCH (n:Node) RETURN n.id AS id LIMIT 1"
_SEARCH_IN = (
    "CALL db.index.fulltext.queryNodes('liubai_node_search', $lucene) YIELD node AS n, score "
    "WHERE $labels IS NULL OR any(l IN labels(n) WHERE l IN $labels) "
)
_SEARCH_PAGE = (
    _SEARCH_IN + f"RETURN {_NODE_FIELDS} ORDER BY placeholder, score DESC, id SKIP $skip LIMIT $limit"
)
_SEARCH_TOTAL = _SEARCH_IN + "RETURN count(n) AS total"
# The index is updated after commit, off the writers' path; a search waits for pending updates so it
# still sees every write that committed before it.
_SEARCH_REFRESH = "CALL db.index.fulltext.awaitEventuallyConsistentIndexRefresh()"
_SEARCH_EXACT = (
    "MATCH (n:Node {id: $id}) WHERE $labels IS NULL OR any(l IN labels(n) WHERE l IN $labels) "
    f"RETURN {_NODE_FIELDS}"
)
_REJECTED_PAGE = (
    "MATCH (x:Rejected) WHERE $source IS NULL OR x.source = $source "
    "RETURN x.source AS source, x.location AS location, x.reason AS reason, x.raw AS raw "
    "ORDER BY x.seq SKIP $skip LIMIT $limit"
)
_REJECTED_TOTAL = "MATCH (x:Rejected) WHERE $source IS NULL OR x.source = $source RETURN count(x) AS total"
_CHECKPOINT_GET = "MATCH (c:Checkpoint {key: $key}) RETURN c.value AS value"
_CHECKPOINTS = (
    "MATCH (c:Checkpoint) WHERE $source IS NULL OR c.source = $source "
    "RETURN c.source AS source, c.name AS name, c.value AS value"
)
_COUNT_LABEL: dict[str, str] = {
    label: f"MATCH (n:{label}) RETURN count(n) AS c"
    for label in [*(k.value for k in NodeKind), "Placeholder", "Rejected"]
}
_COUNT_EDGES = "MATCH ()-[r]->() RETURN count(r) AS c"
_ITER_NODES = f"MATCH (n:Node) WHERE n.id > $after RETURN {_NODE_FIELDS} ORDER BY n.id LIMIT $limit"
_ITER_EDGES = (
    "MATCH (a:Node) WHERE a.id > $after WITH a ORDER BY a.id LIMIT $limit "
    "RETURN a.id AS src, [(a)-[r]->(b) | [type(r), b.id, r.props]] AS out"
)


def _path_query(max_length: int, filtered: bool) -> str:
    """``shortestPath`` needs its length bound as a literal; it is an int clamped here, never user text."""
    where = " WHERE all(r IN relationships(p) WHERE type(r) IN $kinds)" if filtered else ""
    return (
        "MATCH (a:Node {id: $src}), (b:Node {id: $dst}) "
        f"MATCH p = shortestPath((a)-[*..{max_length}]-(b)){where} "
        "RETURN [n IN nodes(p) | [n.id, n.props, n:Placeholder]] AS nodes, "
        "[r IN relationships(p) | [startNode(r).id, type(r), endNode(r).id, r.props]] AS rels"
    )


# ---------------------------------------------------------------------------------------------- helpers


def _words(node_id: str, kind: NodeKind, props: dict[str, Any]) -> str:
    return " ".join(_TOKEN.findall(search_text(node_id, kind, props))).lower()


def _lucene_query(text: str) -> str | None:
    """Every word must match, as a whole word (ranked higher) or as a prefix; no user character is syntax."""
    words = [w.lower() for w in _TOKEN.findall(text)][:16]
    if not words:
        return None
    parts = []
    for w in words:
        esc = _LUCENE_SPECIAL.sub(r"\\\1", w)
        parts.append(f"+({esc}^4 {esc}*)")
    return " ".join(parts)


def _chunks(items: Sequence[_T], size: int = ROWS_PER_STATEMENT) -> Iterator[Sequence[_T]]:
    return chunks(items, size)


def _claim_key(node_id: str, key: str, writer: str) -> str:
    return json.dumps([node_id, key, writer], ensure_ascii=False)


def _claim_row(node_id: str, claim: Claim) -> dict[str, Any]:
    return {
        "key": _claim_key(node_id, claim.key, claim.writer),
        "node": node_id,
        "name": claim.key,
        "writer": claim.writer,
        "value": dumps_props({"v": claim.value}),
    }


def _claim_order(claim: Claim) -> tuple[str, str]:
    return (claim.key, claim.writer)


def _node(rec: Any) -> Node:
    node_id: str = rec["id"]
    return Node(node_id, node_kind_of(node_id), loads_props(rec["props"]), bool(rec["placeholder"]))


# ---------------------------------------------------------------------------------------------- driver


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
        raise StoreError(f"Neo4j URL names no host: want neo4j://user:pass@host:7687[/database], got {parts.scheme}://…")
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
        how = "no password given (set it in the URL or LIUBAI_NEO4J_PASSWORD)" if target.password is None else "wrong user or password"
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


# ---------------------------------------------------------------------------------------------- store


class Neo4jStore:
    """``LineageStore`` on Neo4j 5 (``neo4j://``, ``bolt://``, ``neo4j+s://`` ... ``user:pass@host:port/db``)."""

    def __init__(self, target: _Target, display_url: str) -> None:
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
        except (Neo4jError, DriverError, OSError) as exc:
            self.close()
            raise _unavailable(target, exc) from None

    @classmethod
    def from_url(cls, url: str) -> Neo4jStore:
        target = _parse_url(url)
        return cls(target, redact_url(url))

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
                raise StoreTimeout(f"store {self.url}: the query ran past its deadline and was stopped") from None
            raise _unavailable(self._target, exc) from None
        except (DriverError, OSError) as exc:
            raise _unavailable(self._target, exc) from None

    def probe(self) -> None:
        self._read(_PROBE)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _DRIVERS.release(self._target)

    # ------------------------------------------------------------------ writes

    def upsert(self, batch: GraphBatch) -> UpsertResult:
        nodes, keyed = prepare_batch(batch)
        edges = list(keyed.values())
        rejected: dict[str, RejectedRecord] = {}
        for r in batch.rejected:
            rejected.setdefault(json.dumps([r.source, r.location, r.reason], ensure_ascii=False), r)
        checkpoints = [
            {"key": json.dumps([s, k], ensure_ascii=False), "source": s, "name": k, "value": v}
            for (s, k), v in batch.checkpoints.items()
        ]
        if batch.once is not None and batch.once not in batch.checkpoints:
            src, name = batch.once
            checkpoints.append(
                {"key": json.dumps([src, name], ensure_ascii=False), "source": src, "name": name, "value": ONCE_APPLIED}
            )

        once = json.dumps(list(batch.once), ensure_ascii=False) if batch.once is not None else None
        writer = batch.writer

        def work(tx: ManagedTransaction) -> UpsertResult:
            result = UpsertResult()
            if once is not None and not tx.run(_ONCE, key=once).single(strict=True)["created"]:
                result.duplicate = True
                return result
            refs = self._lock_existing(tx, nodes, result, writer)
            created = [n for n in nodes if n.id not in refs]
            creating = self._create_nodes(tx, created, writer)
            result.nodes_created += len(created)
            new_ids = {n.id for n in created}
            fresh: list[Edge] = []  # touching a new node: created outright
            known: list[Edge] = []  # between existing nodes: merged
            for e in edges:
                (fresh if e.src in new_ids or e.dst in new_ids else known).append(e)
            # Built while the server creates the nodes.
            kinds = [e.kind.value for e in fresh]
            props = [dumps_props(e.props) if e.props else None for e in fresh]
            for res, chunk in creating:
                rec = res.single(strict=True)
                for i, ref in zip(rec["at"], rec["refs"], strict=True):
                    refs[chunk[i].id] = ref
            for lo in range(0, len(fresh), ROWS_PER_STATEMENT):
                part = fresh[lo : lo + ROWS_PER_STATEMENT]
                tx.run(
                    _EDGE_CREATE,
                    src=[refs[e.src] for e in part],
                    dst=[refs[e.dst] for e in part],
                    kinds=kinds[lo : lo + ROWS_PER_STATEMENT],
                    props=props[lo : lo + ROWS_PER_STATEMENT],
                )
            result.edges_created += len(fresh)
            self._merge_edges(tx, known, refs, result)
            self._write_rejected(tx, rejected, result)
            if checkpoints:
                tx.run(_CHECKPOINT_SET, rows=checkpoints).consume()
            return result

        if not (nodes or edges or rejected or checkpoints or once):
            return UpsertResult()
        attempt = 0
        while True:
            try:
                with self._session() as s:
                    result: UpsertResult = s.execute_write(work)
                    return result
            except ConstraintError as exc:
                # A concurrent writer created one of our new ids first; the next attempt finds it.
                attempt += 1
                if attempt >= _CREATE_ATTEMPTS:
                    raise _unavailable(self._target, exc) from None
            except (Neo4jError, DriverError, OSError) as exc:
                raise _unavailable(self._target, exc) from None

    @staticmethod
    def _lock_existing(
        tx: ManagedTransaction, nodes: list[Node], result: UpsertResult, writer: str
    ) -> dict[str, str]:
        """Lock and merge the nodes that exist already (as ``writer``, keeping claims); returns their
        element ids."""
        results = [tx.run(_NODE_LOOKUP, ids=[n.id for n in chunk]) for chunk in _chunks(nodes)]
        by_id = {n.id: n for n in nodes}
        refs: dict[str, str] = {}
        updates: list[dict[str, Any]] = []
        put: list[dict[str, Any]] = []
        drop: list[dict[str, Any]] = []
        for res in results:
            for rec in res:
                new = by_id[rec["id"]]
                refs[new.id] = rec["ref"]
                old_props = loads_props(rec["props"])
                old_placeholder = bool(rec["placeholder"])
                old_writer: str | None = rec["writer"]
                old_owners: dict[str, str] = loads_props(rec["owners"])
                placeholder = old_placeholder and new.placeholder
                new_writer, owners = old_writer, old_owners
                if old_writer == writer and not old_owners:  # one writer: the plain merge rule
                    merged = merge_props(old_props, new.props)
                else:
                    m = merge_owned(
                        old_props, old_writer, old_owners, old_placeholder, new.props, writer, new.placeholder
                    )
                    merged, new_writer, owners = m.props, m.writer, m.owners
                    drop.extend({"key": _claim_key(new.id, k, w)} for k, w in m.drop)
                    put.extend(_claim_row(new.id, c) for c in m.put)
                    result.conflicts += m.conflicts
                if (
                    merged != old_props
                    or placeholder != old_placeholder
                    or new_writer != old_writer
                    or owners != old_owners
                ):
                    updates.append(
                        {
                            "ref": rec["ref"],
                            "props": dumps_props(merged),
                            "search": _words(new.id, new.kind, merged),
                            "placeholder": placeholder,
                            "writer": new_writer,
                            "owners": dumps_props(owners) if owners else None,
                        }
                    )
        result.nodes_updated += len(updates)
        for rows in _chunks(updates):
            tx.run(_NODE_UPDATE, rows=list(rows)).consume()
        for rows in _chunks(drop):
            tx.run(_CLAIMS_DROP, rows=list(rows)).consume()
        for rows in _chunks(put):
            tx.run(_CLAIMS_PUT, rows=list(rows)).consume()
        return refs

    @staticmethod
    def _create_nodes(
        tx: ManagedTransaction, nodes: list[Node], writer: str
    ) -> list[tuple[neo4j.Result, Sequence[Node]]]:
        """Send the CREATEs and return their pending results, so the caller can work meanwhile. Small
        statements: each one's rows are built while the server runs the one before."""
        pending = []
        for chunk in _chunks(nodes, _CREATE_ROWS):
            res = tx.run(
                _NODE_CREATE,
                ids=[n.id for n in chunk],
                labels=[[n.kind.value, "Placeholder"] if n.placeholder else n.kind.value for n in chunk],
                props=[dumps_props(n.props) for n in chunk],
                search=[_words(n.id, n.kind, n.props) for n in chunk],
                writer=writer,
            )
            pending.append((res, chunk))
        return pending

    @staticmethod
    def _merge_edges(tx: ManagedTransaction, edges: list[Edge], refs: dict[str, str], result: UpsertResult) -> None:
        """Edges between two existing nodes: create the missing ones, merge properties into the rest."""
        by_kind: dict[EdgeKind, list[Edge]] = defaultdict(list)
        for e in edges:
            by_kind[e.kind].append(e)
        updates: list[dict[str, Any]] = []
        for kind, group in by_kind.items():
            for chunk in _chunks(group):
                rows = [
                    {"at": i, "src": refs[e.src], "dst": refs[e.dst], "props": dumps_props(e.props) if e.props else None}
                    for i, e in enumerate(chunk)
                ]
                existing = 0
                for rec in tx.run(_EDGE_MERGE[kind], rows=rows):
                    existing += 1
                    old = loads_props(rec["props"])
                    merged = merge_props(old, chunk[rec["at"]].props)
                    if merged != old:
                        updates.append({"ref": rec["ref"], "props": dumps_props(merged)})
                result.edges_created += len(rows) - existing
        result.edges_updated += len(updates)
        for part in _chunks(updates):
            tx.run(_EDGE_UPDATE, rows=list(part)).consume()

    @staticmethod
    def _write_rejected(tx: ManagedTransaction, rejected: dict[str, RejectedRecord], result: UpsertResult) -> None:
        if not rejected:
            return
        keys = list(rejected)
        present: set[str] = set()
        for chunk in _chunks(keys):
            present.update(rec["key"] for rec in tx.run(_REJECTED_EXISTING, keys=list(chunk)))
        new = [k for k in keys if k not in present]
        if not new:
            return
        top = tx.run(_COUNTER_BUMP, name="rejected", n=len(new)).single(strict=True)["value"]
        base = int(top) - len(new)
        rows = [
            {
                "key": k,
                "seq": base + i + 1,
                "source": rejected[k].source,
                "location": rejected[k].location,
                "reason": rejected[k].reason,
                "raw": rejected[k].raw,
            }
            for i, k in enumerate(new)
        ]
        for part in _chunks(rows):
            tx.run(_REJECTED_CREATE, rows=list(part)).consume()
        result.rejected_added += len(new)

    # ------------------------------------------------------------------ point reads

    def get(self, node_id: str) -> Node | None:
        recs = self._read(_GET, id=node_id)
        return _node(recs[0]) if recs else None

    def get_many(self, node_ids: Sequence[str]) -> list[Node]:
        wanted = list(dict.fromkeys(node_ids))
        found: dict[str, Node] = {}
        for chunk in _chunks(wanted):
            for rec in self._read(_GET_MANY, ids=list(chunk)):
                found[rec["id"]] = _node(rec)
        return [found[i] for i in wanted if i in found]

    def find_by_prefix(self, kind: NodeKind, key_prefix: str, limit: int = 10) -> list[Node]:
        recs = self._read(_FIND_BY_PREFIX, prefix=f"{kind.prefix}:{key_prefix}", label=kind.value, limit=limit)
        return [_node(r) for r in recs]

    # ------------------------------------------------------------------ traversal

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
        recs = self._read(_NEIGHBORS[Direction(direction)], id=node_id, kinds=kinds, skip=offset, limit=first + 1)
        more = len(recs) > first
        recs = recs[:first]
        edges = [Edge(r["src"], EdgeKind(r["kind"]), r["dst"], loads_props(r["rprops"])) for r in recs]
        nodes: dict[str, Node] = {}
        for r in recs:
            nodes.setdefault(r["id"], _node(r))
        return NeighborPage(edges, list(nodes.values()), encode_cursor(offset + first) if more else None)

    def lineage(
        self,
        node_id: str,
        direction: Direction = Direction.DOWNSTREAM,
        depth: int = 2,
        edge_kinds: Sequence[EdgeKind] | None = None,
        limit: int = DEFAULT_LINEAGE_LIMIT,
    ) -> Subgraph:
        depth = max(0, depth)
        kinds = list(edge_kinds) if edge_kinds else list(EdgeKind)
        along = [k.value for k in kinds if not k.flow_reversed]
        against = [k.value for k in kinds if k.flow_reversed]
        if direction is Direction.UPSTREAM:
            along, against = against, along
        elif direction is Direction.BOTH:
            along = against = [k.value for k in kinds]
        all_kinds = [k.value for k in kinds]

        def work(tx: ManagedTransaction) -> tuple[dict[str, int], bool, list[Any], list[Any]]:
            if tx.run(_EXISTS, id=node_id).single(strict=True)["c"] == 0:
                return {}, False, [], []
            depths = {node_id: 0}
            frontier = [node_id]
            level = 0
            while frontier and level < depth and len(depths) <= limit:
                level += 1
                reached: set[str] = set()
                for chunk in _chunks(frontier):
                    # limit + 1 distinct ids hold at least enough new ones to know the answer is cut
                    rows = tx.run(_STEP, ids=list(chunk), along=along, against=against, room=limit + 1)
                    reached.update(r["id"] for r in rows)
                    if len(reached.difference(depths)) + len(depths) > limit:
                        break
                frontier = sorted(i for i in reached if i not in depths)
                for i in frontier:
                    depths[i] = level
            truncated = len(depths) > limit
            if truncated:
                keep = sorted(depths, key=lambda i: (depths[i], i))[:limit]
                depths = {i: depths[i] for i in keep}
            ids = list(depths)
            nodes = [rec for chunk in _chunks(ids) for rec in tx.run(_GET_MANY, ids=list(chunk))]
            max_edges = max(limit, DEFAULT_LINEAGE_LIMIT) * _EDGES_PER_NODE
            edges = list(tx.run(_EDGES_AMONG, ids=ids, kinds=all_kinds, limit=max_edges + 1)) if ids else []
            if len(edges) > max_edges:
                del edges[max_edges:]
                truncated = True
            return depths, truncated, nodes, edges

        depths, truncated, node_recs, edge_recs = self._run_read(work)
        if not depths:
            return Subgraph()
        by_id = {r["id"]: _node(r) for r in node_recs}
        ordered = sorted(depths, key=lambda i: (depths[i], i))
        return Subgraph(
            [by_id[i] for i in ordered if i in by_id],
            [Edge(r["src"], EdgeKind(r["kind"]), r["dst"], loads_props(r["props"])) for r in edge_recs],
            depths,
            truncated,
        )

    def path(
        self, src: str, dst: str, max_length: int = 6, edge_kinds: Sequence[EdgeKind] | None = None
    ) -> Subgraph | None:
        if len(self.get_many([src, dst])) < len({src, dst}):
            return None
        if src == dst:
            return Subgraph(self.get_many([src]), [], {src: 0})
        if max_length < 1:
            return None
        query = _path_query(min(int(max_length), _MAX_PATH), edge_kinds is not None)
        kinds = [k.value for k in edge_kinds] if edge_kinds is not None else None
        recs = self._read(query, src=src, dst=dst, kinds=kinds)
        if not recs:
            return None
        order = [n[0] for n in recs[0]["nodes"]]
        nodes = [Node(i, node_kind_of(i), loads_props(p), bool(ph)) for i, p, ph in recs[0]["nodes"]]
        edges = [Edge(s, EdgeKind(k), d, loads_props(p)) for s, k, d, p in recs[0]["rels"]]
        return Subgraph(nodes, edges, {n: i for i, n in enumerate(order)})

    # ------------------------------------------------------------------ search and bookkeeping

    def search(
        self, text: str, kinds: Sequence[NodeKind] | None = None, first: int = 20, after: str | None = None
    ) -> NodePage:
        offset = decode_cursor(after)
        labels = [k.value for k in kinds] if kinds else None
        query = _lucene_query(text)

        def work(tx: ManagedTransaction) -> tuple[list[Any], list[Any], int]:
            exact = list(tx.run(_SEARCH_EXACT, id=text.strip(), labels=labels))
            if query is None:
                return exact, [], len(exact)
            tx.run(_SEARCH_REFRESH).consume()
            total = tx.run(_SEARCH_TOTAL, lucene=query, labels=labels).single(strict=True)["total"]
            ranked = list(
                tx.run(
                    _SEARCH_PAGE,
                    lucene=query,
                    labels=labels,
                    skip=max(0, offset - len(exact)),
                    limit=first + 1 + len(exact),
                )
            )
            return exact, ranked, int(total)

        exact, ranked, total = self._run_read(work)
        head = [_node(r) for r in exact]
        if query is None:
            return NodePage(head[offset : offset + first], None, len(head))
        exact_ids = {n.id for n in head}
        rest = [_node(r) for r in ranked if r["id"] not in exact_ids]
        combined = (head[offset:] if offset < len(head) else []) + rest
        more = len(combined) > first
        return NodePage(combined[:first], encode_cursor(offset + first) if more else None, total)

    def rejected(self, source: str | None = None, first: int = 100, after: str | None = None) -> RejectedPage:
        offset = decode_cursor(after)

        def work(tx: ManagedTransaction) -> tuple[int, list[Any]]:
            total = tx.run(_REJECTED_TOTAL, source=source).single(strict=True)["total"]
            rows = list(tx.run(_REJECTED_PAGE, source=source, skip=offset, limit=first + 1))
            return int(total), rows

        total, rows = self._run_read(work)
        more = len(rows) > first
        records = [RejectedRecord(r["source"], r["location"], r["reason"], r["raw"]) for r in rows[:first]]
        return RejectedPage(records, encode_cursor(offset + first) if more else None, total)

    def provenance(self, node_ids: Sequence[str]) -> dict[str, Provenance]:
        found: dict[str, Provenance] = {}
        for chunk in _chunks(list(dict.fromkeys(node_ids))):
            for rec in self._read(_PROVENANCE, ids=list(chunk)):
                claims = sorted((Claim(k, w, loads_props(v).get("v")) for k, w, v in rec["claims"]), key=_claim_order)
                found[rec["id"]] = Provenance(rec["writer"], loads_props(rec["owners"]), claims)
        return found

    def restore_provenance(self, found: dict[str, Provenance]) -> None:
        rows = [
            {
                "id": i,
                "writer": p.writer,
                "owners": dumps_props(p.owners) if p.owners else None,
                "claims": [_claim_row(i, c) for c in p.claims],
            }
            for i, p in found.items()
        ]

        def work(tx: ManagedTransaction) -> None:
            for part in _chunks(rows):
                tx.run(_RESTORE, rows=list(part)).consume()

        try:
            with self._session() as s:
                s.execute_write(work)
        except (Neo4jError, DriverError, OSError) as exc:
            raise _unavailable(self._target, exc) from None

    def get_checkpoint(self, source: str, key: str) -> str | None:
        recs = self._read(_CHECKPOINT_GET, key=json.dumps([source, key], ensure_ascii=False))
        return str(recs[0]["value"]) if recs else None

    def checkpoints(self, source: str | None = None) -> dict[tuple[str, str], str]:
        return {(r["source"], r["name"]): r["value"] for r in self._read(_CHECKPOINTS, source=source)}

    def counts(self) -> dict[str, int]:
        def work(tx: ManagedTransaction) -> dict[str, int]:
            found = {
                label: int(tx.run(q).single(strict=True)["c"]) for label, q in _COUNT_LABEL.items()
            }
            found["edges"] = int(tx.run(_COUNT_EDGES).single(strict=True)["c"])
            return found

        found: dict[str, int] = self._run_read(work)
        out = {kind.value: found[kind.value] for kind in NodeKind}
        out["placeholders"] = found["Placeholder"]
        out["edges"] = found["edges"]
        out["rejected"] = found["Rejected"]
        return out

    def iter_nodes(self, batch_size: int = 5000) -> Iterator[list[Node]]:
        last = ""
        while True:
            recs = self._read(_ITER_NODES, after=last, limit=batch_size)
            if not recs:
                return
            yield [_node(r) for r in recs]
            last = recs[-1]["id"]

    def iter_edges(self, batch_size: int = 5000) -> Iterator[list[Edge]]:
        last = ""
        pending: list[Edge] = []
        while True:
            recs = self._read(_ITER_EDGES, after=last, limit=batch_size)
            if not recs:
                break
            for r in recs:
                out = sorted(r["out"], key=lambda t: (t[0], t[1]))
                pending.extend(Edge(r["src"], EdgeKind(k), d, loads_props(p)) for k, d, p in out)
            last = recs[-1]["src"]
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
        if pending:
            yield pending
