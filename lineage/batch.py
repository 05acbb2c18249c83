"""Graph batches: nodes, edges and rejects on their way to a store, with the one merge rule for repeats.

A batch is the unit of store work (applied atomically with the checkpoints it settles); it folds repeated
ids as they are added, with the same rule every store applies (``merge_props``), so a batch stays the size
of what it will store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from liubai.lineage.kinds import EdgeKind, NodeKind, node_kind_of
from liubai.lineage.provenance import LOCAL_WRITER

__all__ = [
    "Edge",
    "GraphBatch",
    "Node",
    "Props",
    "RejectedRecord",
    "dedupe_batch",
    "merge_into",
    "merge_props",
]

Props = dict[str, Any]


@dataclass(slots=True)
class Node:
    """A graph node. ``placeholder`` marks a node known only because another record named it."""

    id: str
    kind: NodeKind
    props: Props = field(default_factory=dict)
    placeholder: bool = False

    @classmethod
    def of(cls, node_id: str, props: Mapping[str, Any] | None = None, *, placeholder: bool = False) -> Node:
        return cls(node_id, node_kind_of(node_id), dict(props or {}), placeholder)


@dataclass(slots=True)
class Edge:
    src: str
    kind: EdgeKind
    dst: str
    props: Props = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.src, self.kind.value, self.dst)


@dataclass(slots=True)
class RejectedRecord:
    """Input that could not become graph facts, kept with where it came from and why."""

    source: str
    location: str
    reason: str
    raw: str = ""


@dataclass(slots=True)
class GraphBatch:
    """One unit of store work: facts, rejects and the checkpoints they settle, applied atomically.

    A checkpoint only moves together with the data it covers, so a crash between pulling and storing
    re-reads rather than loses.

    ``writer`` is who writes the batch (``liubai.lineage.provenance``): the store records it on every fact it
    creates and keeps it from overwriting other writers' facts. ``once`` names a checkpoint that must not
    exist yet: the store checks it inside the write transaction and applies nothing (``duplicate``) if
    it does, so concurrent writers of one batch apply it exactly once.
    """

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    checkpoints: dict[tuple[str, str], str] = field(default_factory=dict)
    writer: str = LOCAL_WRITER
    once: tuple[str, str] | None = None
    _node_at: dict[str, Node] = field(default_factory=dict, repr=False, compare=False)
    _edge_at: dict[tuple[str, str, str], Edge] = field(default_factory=dict, repr=False, compare=False)
    # node id -> the shared ``fixed`` props last merged into it by ``add_seen`` (see there)
    _fixed_at: dict[str, Props] = field(default_factory=dict, repr=False, compare=False)

    def add_node(
        self, node_id: str, props: Mapping[str, Any] | None = None, *, placeholder: bool = False
    ) -> None:
        """Add a node, folding a repeat of an id added here before into it with the store's merge rule.

        Thousands of log lines name the same trace and audit record; folding them as they arrive keeps a
        batch the size of what it will store.
        """
        cur = self._node_at.get(node_id)
        if cur is None:
            self._append(Node.of(node_id, props, placeholder=placeholder))
            return
        if props:
            merge_into(cur.props, props)  # the batch made cur.props: no copy needed
            self._fixed_at.pop(node_id, None)  # no longer only what ``add_seen`` merged
        cur.placeholder = cur.placeholder and placeholder

    def put_node(self, node_id: str, kind: NodeKind, props: Props) -> None:
        """``add_node`` for the join's hot path: ``props`` is handed over (kept, not copied) and ``kind`` is
        the one ``node_id`` names (the caller built the id)."""
        if node_id in self._node_at:
            self.add_node(node_id, props)
            return
        self._append(Node(node_id, kind, props))

    def add_seen(self, node_id: str, fixed: Props, seen_at: str | None, *, placeholder: bool = False) -> bool:
        """``add_node(node_id, {**fixed, "first_seen": seen_at, "last_seen": seen_at}, ...)`` (no times when
        ``seen_at`` is empty), where ``fixed`` is a shared dict that nobody changes.

        When the last props merged into the node were this very ``fixed``, merging them again changes
        nothing, so a repeat only moves the seen range: the cheap path for the trace or audit record that
        thousands of lines name. True for such a repeat.
        """
        cur = self._node_at.get(node_id)
        if cur is None or self._fixed_at.get(node_id) is not fixed:
            props = dict(fixed)
            if seen_at:
                props["first_seen"] = props["last_seen"] = seen_at
            if cur is None:
                self._append(Node(node_id, node_kind_of(node_id), props, placeholder))
            else:
                merge_into(cur.props, props)
                cur.placeholder = cur.placeholder and placeholder
            self._fixed_at[node_id] = fixed
            return False
        cur.placeholder = cur.placeholder and placeholder
        if seen_at:  # merge_into's rule for the two seen keys, skipping the writes that change nothing
            props = cur.props
            first = props.get("first_seen")
            if first is None or seen_at < first:
                props["first_seen"] = seen_at
            last = props.get("last_seen")
            if last is None or seen_at > last:
                props["last_seen"] = seen_at
        return True

    def _append(self, node: Node) -> None:
        self._node_at[node.id] = node
        self.nodes.append(node)

    def add_edge(self, src: str, kind: EdgeKind, dst: str, props: Mapping[str, Any] | None = None) -> None:
        """Add an edge, folding a repeat of one added here before (same src, kind, dst) into it."""
        key = (src, kind, dst)
        cur = self._edge_at.get(key)
        if cur is None:
            edge = Edge(src, kind, dst, dict(props) if props else {})
            self._edge_at[key] = edge
            self.edges.append(edge)
        elif props:
            merge_into(cur.props, props)

    def extend(self, other: GraphBatch) -> None:
        """Append ``other``'s facts as they are, without folding repeats into this batch's (the store
        folds them when it writes)."""
        self.nodes.extend(other.nodes)
        self.edges.extend(other.edges)
        self.rejected.extend(other.rejected)
        self.checkpoints.update(other.checkpoints)

    @property
    def fact_count(self) -> int:
        return len(self.nodes) + len(self.edges)

    @property
    def folded(self) -> bool:
        """Whether every node and edge came through ``add_*`` (which fold repeats), so no node id and no
        edge key occurs twice and a store need not fold them again."""
        return len(self._node_at) == len(self.nodes) and len(self._edge_at) == len(self.edges)

    def __bool__(self) -> bool:
        return bool(self.nodes or self.edges or self.rejected or self.checkpoints)


def merge_props(old: Mapping[str, Any], new: Mapping[str, Any]) -> Props:
    """Merge rule every store applies: new non-null values win; ``first_seen`` keeps the minimum and
    ``last_seen`` the maximum, so replaying a batch changes nothing."""
    out = dict(old)
    merge_into(out, new)
    return out


def merge_into(target: dict[str, Any], new: Mapping[str, Any]) -> None:
    """``merge_props`` in place, for a property dict the caller owns (a batch folding repeats)."""
    for k, v in new.items():
        if v is None:
            continue
        if k == "first_seen" or k == "last_seen":
            cur = target.get(k)
            if cur is not None:
                v = min(cur, v) if k == "first_seen" else max(cur, v)
        target[k] = v


def dedupe_batch(nodes: Iterable[Node]) -> list[Node]:
    """Collapse repeated ids within one batch with the store's merge rule (placeholder only if all are).
    The caller's nodes are never changed: a repeat makes a new merged node."""
    merged: dict[str, Node] = {}
    for n in nodes:
        cur = merged.get(n.id)
        merged[n.id] = (
            n
            if cur is None
            else Node(n.id, n.kind, merge_props(cur.props, n.props), cur.placeholder and n.placeholder)
        )
    return list(merged.values())
