"""The store protocol: the only view of persistence that collectors, the API and the CLI get.

Every implementation (SQLite, Neo4j, ...) passes the same contract suite in
``tests/contract/test_store_contract.py``; new stores register a URL scheme in ``liubai.lineage.store.registry``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.model import Direction, Edge, EdgeKind, GraphBatch, Node, NodeKind, RejectedRecord
from liubai.lineage.provenance import Provenance

__all__ = [
    "EDGES_PER_NODE",
    "AnswerTooLarge",
    "InvalidCursor",
    "ONCE_APPLIED",
    "NeighborPage",
    "NodePage",
    "RejectedPage",
    "StoreDamaged",
    "StoreError",
    "StoreMissing",
    "StoreReadOnly",
    "StoreTimeout",
    "StoreUnavailable",
    "Subgraph",
    "UpsertResult",
    "LineageStore",
    "RowStore",
    "row_preparer",
    "write_batch",
]

DEFAULT_LINEAGE_LIMIT = 10_000
# A lineage answer holds at most this many edges per node its limit allows (at least DEFAULT_LINEAGE_LIMIT
# nodes' worth), then ``truncated``: one request's memory stays bounded on every store.
EDGES_PER_NODE = 8
ONCE_APPLIED = "applied"  # the value a batch's ``once`` checkpoint gets unless the batch sets one


class StoreError(LiubaiError, RuntimeError):
    """A store failed in a way the user must hear about; ``retryable`` says whether trying again may help."""

    code = ErrorCode.STORE_ERROR
    retryable = False


class StoreUnavailable(StoreError):
    """The store cannot be reached (down, wrong address, wrong credentials)."""

    code = ErrorCode.STORE_UNAVAILABLE
    retryable = True


class StoreMissing(StoreError):
    """A store opened only to be read does not exist: most likely a mistyped URL or path, which a read
    must not answer by creating an empty store and reporting nothing found."""

    code = ErrorCode.NOT_FOUND


class StoreDamaged(StoreError):
    """The store's files are corrupt (overwritten, truncated): only a backup brings the data back."""

    code = ErrorCode.STORE_DAMAGED


class StoreReadOnly(StoreError):
    """The store was opened read-only (read-only media or permissions): reads work, writes are refused."""

    code = ErrorCode.READ_ONLY


class StoreTimeout(StoreError):
    """A store call ran past the deadline its caller set (``liubai.lineage.store.deadline``) and was stopped."""

    code = ErrorCode.TIMEOUT


class AnswerTooLarge(StoreError):
    """An answer that cannot be cut short (a path) needed more work than one request may hold: the
    caller asked too much (a shorter maximum length helps), so it is bad input, not a store fault
    (answered to clients as BAD_INPUT, with this message)."""

    code = ErrorCode.TOO_LARGE


class InvalidCursor(StoreError):
    """A page cursor the store did not hand out (edited, truncated, from another query or version).
    Its own type so callers answer "bad ``after`` argument" without reading the message."""

    code = ErrorCode.BAD_INPUT


@dataclass(slots=True)
class UpsertResult:
    """What one batch changed. A replayed batch reports zeros in every ``*_created`` field.

    ``conflicts``: values the batch's writer gave that differ from another writer's stored fact, kept as
    claims instead (``liubai.lineage.provenance``). ``duplicate``: the batch's ``once`` checkpoint existed, so
    nothing was written."""

    nodes_created: int = 0
    nodes_updated: int = 0
    edges_created: int = 0
    edges_updated: int = 0
    rejected_added: int = 0
    conflicts: int = 0
    duplicate: bool = False


@dataclass(slots=True)
class Subgraph:
    """Nodes and edges of a lineage or path answer. ``depth`` maps node id -> hops from the start;
    for a path, ``nodes`` are in path order. ``truncated`` is set when a limit cut the answer."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    depth: dict[str, int] = field(default_factory=dict)
    truncated: bool = False


@dataclass(slots=True)
class NeighborPage:
    """Edges touching a node, in a stable order; ``end_cursor`` is opaque, None on the last page."""

    edges: list[Edge]
    nodes: list[Node]
    end_cursor: str | None


@dataclass(slots=True)
class NodePage:
    nodes: list[Node]
    end_cursor: str | None
    total: int


@dataclass(slots=True)
class RejectedPage:
    records: list[RejectedRecord]
    end_cursor: str | None
    total: int


@runtime_checkable
class LineageStore(Protocol):
    """Idempotent graph persistence plus the queries the product needs.

    Node ids are ``<kind>:<key>``. ``upsert`` merges properties with ``liubai.lineage.model.merge_props`` while
    one writer writes a node, and with ``liubai.lineage.provenance.merge_owned`` where writers meet: a node
    records the writer that created it, another writer's differing value is kept as a claim beside the
    fact unless it outranks the fact's writer. ``upsert`` turns placeholders into real nodes when their
    own record arrives; it never makes a real node a placeholder again. Everything in one batch (facts,
    rejects, checkpoints) lands or none of it does; a batch whose ``once`` checkpoint exists lands not
    at all (``UpsertResult.duplicate``), decided inside the write transaction.
    """

    url: str

    def upsert(self, batch: GraphBatch) -> UpsertResult: ...

    def get(self, node_id: str) -> Node | None: ...

    def get_many(self, node_ids: Sequence[str]) -> list[Node]: ...

    def find_by_prefix(self, kind: NodeKind, key_prefix: str, limit: int = 10) -> list[Node]:
        """Nodes of ``kind`` whose key (the id after ``<prefix>:``) starts with ``key_prefix``, id order."""
        ...

    def neighbors(
        self,
        node_id: str,
        direction: Direction = Direction.BOTH,
        edge_kinds: Sequence[EdgeKind] | None = None,
        first: int = 100,
        after: str | None = None,
    ) -> NeighborPage:
        """Raw edges (stored direction): ``downstream`` = out-edges, ``upstream`` = in-edges."""
        ...

    def lineage(
        self,
        node_id: str,
        direction: Direction = Direction.DOWNSTREAM,
        depth: int = 2,
        edge_kinds: Sequence[EdgeKind] | None = None,
        limit: int = DEFAULT_LINEAGE_LIMIT,
    ) -> Subgraph:
        """Walk the flow declaration -> execution -> logs (see ``EdgeKind.flow_reversed``) up to ``depth``
        hops; cycle-safe. Returns every reached node with its hop count and the traversed edges among them.
        An unknown start node gives an empty subgraph."""
        ...

    def path(
        self, src: str, dst: str, max_length: int = 6, edge_kinds: Sequence[EdgeKind] | None = None
    ) -> Subgraph | None:
        """A shortest path, ignoring edge direction, of at most ``max_length`` edges; None if none."""
        ...

    def search(
        self, text: str, kinds: Sequence[NodeKind] | None = None, first: int = 20, after: str | None = None
    ) -> NodePage:
        """Full-text search over ids and key properties; ``text`` is data, never query syntax."""
        ...

    def rejected(
        self, source: str | None = None, first: int = 100, after: str | None = None
    ) -> RejectedPage: ...

    def provenance(self, node_ids: Sequence[str]) -> dict[str, Provenance]:
        """Writer, per-key owners and claims of each stored node among ``node_ids``."""
        ...

    def restore_provenance(self, found: dict[str, Provenance]) -> None:
        """Set the writer and owners of stored nodes as given and add the given claims (``liubai migrate``
        copies them); nodes not stored are skipped."""
        ...

    def get_checkpoint(self, source: str, key: str) -> str | None: ...

    def checkpoints(self, source: str | None = None) -> dict[tuple[str, str], str]: ...

    def counts(self) -> dict[str, int]:
        """Node count per kind name, ``edges`` and ``rejected``."""
        ...

    def iter_nodes(self, batch_size: int = 5000) -> Iterator[list[Node]]: ...

    def iter_edges(self, batch_size: int = 5000) -> Iterator[list[Edge]]: ...

    def probe(self) -> None:
        """Raise ``StoreError`` unless the store can be read now; cheap at any size (a health check)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class RowStore(Protocol):
    """A store whose per-fact Python can run in another process: ``prepare_rows`` is a function of the
    batch alone (static, picklable) that makes the rows ``upsert_rows`` writes. ``upsert(b)`` is
    ``upsert_rows(prepare_rows(b), b)``; a reader process that calls ``prepare_rows`` itself leaves the
    writing process only the writes. ``upsert_rows`` takes the batch's rejected records and checkpoints
    from ``batch`` and nothing else from it."""

    @staticmethod
    def prepare_rows(batch: GraphBatch) -> Any: ...

    def upsert_rows(self, rows: Any, batch: GraphBatch) -> UpsertResult: ...


def row_preparer(store: LineageStore) -> Callable[[GraphBatch], Any] | None:
    """What a reader process calls to prepare rows for ``store``; None for a store that takes batches only."""
    return store.prepare_rows if isinstance(store, RowStore) else None


def write_batch(store: LineageStore, batch: GraphBatch, rows: Any = None) -> UpsertResult:
    """``batch`` into ``store``; with ``rows`` (from ``row_preparer(store)``), those rows and the batch's
    rejected records and checkpoints."""
    if rows is None:
        return store.upsert(batch)
    if not isinstance(store, RowStore):
        raise StoreError(f"rows were prepared for a store that cannot take them: {store.url}")
    return store.upsert_rows(rows, batch)
