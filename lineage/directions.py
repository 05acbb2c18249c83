"""Which way "auto" walks the lineage of a node, by the node's kind, and the walk itself.

Lineage follows the flow declaration -> execution -> logs (``EdgeKind.flow_reversed``). A node in the
middle of that flow (a workload, a process, a log line) is only understood with both its sides: where it
came from (its commit, its run, its trace) and what followed from it. So auto walks UPSTREAM and
DOWNSTREAM and joins the two answers. That is not ``Direction.BOTH``, which ignores edge direction at
every hop: from a log line it goes up to the trace and back down to every other line of that trace, from
a Pod up to its workload and down to every other Pod of it.

Read off the edges the joins write (README "The graph"), in flow order:

* ``Repo`` starts the flow: nothing leads to it, so DOWNSTREAM.
* ``Commit``: what leads to it is git history only (its repo, its parent commits), which the audit trail
  leaves out too (``TRAIL_EDGE_KINDS``); what follows is the change's lineage. DOWNSTREAM.
* every other kind has an upstream that explains it: a PipelineRun its triggering commit and audit record;
  a Workload its declaring commit, audit record, admission and owner; a Pod, Container, Process, Resource,
  Span, Trace, Admission and AuditRecord theirs. ``File`` and ``LogEvent`` end the flow today (no edge
  leads on from them), so their downstream walk finds nothing but costs one index probe, and stays right
  if the model grows an edge out of them.

The web UI keeps a copy of this table (``web/js/directions.js``; ``tests/unit/test_web_directions.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from liubai.lineage.kinds import Direction, EdgeKind, NodeKind
from liubai.lineage.store.base import LineageStore, Subgraph

__all__ = ["AUTO_DIRECTIONS", "auto_directions", "describe", "lineage_along"]

_DOWN = (Direction.DOWNSTREAM,)
_AROUND = (Direction.UPSTREAM, Direction.DOWNSTREAM)

AUTO_DIRECTIONS: dict[NodeKind, tuple[Direction, ...]] = {
    NodeKind.REPO: _DOWN,
    NodeKind.COMMIT: _DOWN,
    NodeKind.PIPELINE_RUN: _AROUND,
    NodeKind.AUDIT_RECORD: _AROUND,
    NodeKind.ADMISSION: _AROUND,
    NodeKind.WORKLOAD: _AROUND,
    NodeKind.POD: _AROUND,
    NodeKind.CONTAINER: _AROUND,
    NodeKind.PROCESS: _AROUND,
    NodeKind.FILE: _AROUND,
    NodeKind.TRACE: _AROUND,
    NodeKind.SPAN: _AROUND,
    NodeKind.RESOURCE: _AROUND,
    NodeKind.LOG_EVENT: _AROUND,
}


def auto_directions(kind: NodeKind) -> tuple[Direction, ...]:
    """The walks auto makes from a node of ``kind``."""
    return AUTO_DIRECTIONS.get(kind, _AROUND)


def describe(directions: Sequence[Direction]) -> str:
    """``upstream + downstream``: the walks made, as a status line says them."""
    return " + ".join(d.value for d in directions)


def lineage_along(
    store: LineageStore,
    node_id: str,
    directions: Sequence[Direction],
    depth: int,
    edge_kinds: Sequence[EdgeKind] | None,
    limit: int,
) -> Subgraph:
    """The union of one lineage walk per direction: every node at its fewest hops, every edge once.

    The walks share ``limit``: each later walk gets what the earlier ones left (the start node counted
    once), so the union never holds more than ``limit`` nodes."""
    union = Subgraph()
    seen_nodes: set[str] = set()
    seen_edges: set[tuple[str, str, str]] = set()
    for direction in directions:
        budget = max(1, limit - len(seen_nodes) + (1 if seen_nodes else 0))
        sub = store.lineage(node_id, direction, depth, edge_kinds, budget)
        for n in sub.nodes:
            if n.id not in seen_nodes:
                seen_nodes.add(n.id)
                union.nodes.append(n)
        for e in sub.edges:
            if e.key not in seen_edges:
                seen_edges.add(e.key)
                union.edges.append(e)
        for node, hops in sub.depth.items():
            union.depth[node] = min(hops, union.depth.get(node, hops))
        union.truncated = union.truncated or sub.truncated
    return union
