"""Halving a graph batch the API refused as too large (413) when its records are no longer at hand.

A batch the agent builds itself is split by records (``liubai.collector.agent``). A batch already encoded, one
waiting in the spool, only has its facts: those are halved as one list (nodes, edges, rejects), and
each half names the far ends of its edges as placeholders. The store never turns a real node back into
a placeholder and merges placeholders into the real node whenever it lands, so the halves, applied in
any order, give the graph the whole batch would have.
"""

from __future__ import annotations

from liubai.lineage.model import Edge, GraphBatch, Node, RejectedRecord

__all__ = ["fact_count", "halve"]

Fact = Node | Edge | RejectedRecord


def fact_count(batch: GraphBatch) -> int:
    return len(batch.nodes) + len(batch.edges) + len(batch.rejected)


def halve(batch: GraphBatch) -> tuple[GraphBatch, GraphBatch]:
    """Two batches holding ``batch``'s facts between them; ``batch`` must hold two facts or more."""
    facts: list[Fact] = [*batch.nodes, *batch.edges, *batch.rejected]
    if len(facts) < 2:
        raise ValueError("a batch of one fact cannot be halved")
    mid = len(facts) // 2
    return _batch_of(facts[:mid]), _batch_of(facts[mid:])


def _batch_of(facts: list[Fact]) -> GraphBatch:
    out = GraphBatch()
    for fact in facts:
        if isinstance(fact, Node):
            out.add_node(fact.id, fact.props, placeholder=fact.placeholder)
    named = {n.id for n in out.nodes}
    for fact in facts:
        if isinstance(fact, Edge):
            for end in (fact.src, fact.dst):
                if end not in named:
                    out.add_node(end, {}, placeholder=True)
                    named.add(end)
            out.add_edge(fact.src, fact.kind, fact.dst, fact.props)
        elif isinstance(fact, RejectedRecord):
            out.rejected.append(fact)
    return out
