"""What a GraphQL document costs once its fragments are expanded, measured in one linear pass.

A fragment spread stands for the fragment's whole selection, so a small text can stand for a huge query
(fragment A spreads B ten times, B spreads C ten times, ...). Walking that expansion, as per-spread
validators do, costs as much as the expansion itself. Here each fragment is walked once, its cost kept,
and a spread adds the kept cost: the pass is linear in the document's size whatever it expands to.

Nothing here recurses on the document (a deeply nested text cannot exhaust the stack), and fragments
that spread themselves are reported instead of followed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    ExecutableDefinitionNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

__all__ = ["CAP", "Cost", "DocumentCost", "FragmentCycle", "measure"]

CAP = 10**9
"""Counts saturate here: a fan-out of fragments can stand for more selections than fit in memory."""


@dataclass(frozen=True, slots=True)
class Cost:
    """One selection set, expanded: its selections (fields, spreads and inline fragments), its aliased
    fields and its depth (fields nested below it; introspection fields ``__*`` do not add depth)."""

    selections: int = 0
    aliases: int = 0
    depth: int = 0


@dataclass(frozen=True, slots=True)
class DocumentCost:
    """A document's expanded cost: ``selections`` over the operations and the fragments nothing spreads
    (everything validation walks), ``aliases`` over the operations, ``depth`` per operation."""

    selections: int
    aliases: int
    depths: Mapping[OperationDefinitionNode, int]


@dataclass(frozen=True, slots=True)
class FragmentCycle:
    """Fragments that spread each other in a ring, starting and ending at ``path[0]``."""

    path: tuple[FragmentDefinitionNode, ...]

    @property
    def names(self) -> list[str]:
        return [f.name.value for f in self.path]


_NONE = Cost()


def _add(a: int, b: int) -> int:
    return min(a + b, CAP)


def _selection_sets(root: SelectionSetNode) -> list[SelectionSetNode]:
    """Every selection set under ``root`` (itself included), each after the set that holds it."""
    order: list[SelectionSetNode] = []
    stack = [root]
    while stack:
        current = stack.pop()
        order.append(current)
        stack.extend(
            s.selection_set
            for s in current.selections
            if isinstance(s, FieldNode | InlineFragmentNode) and s.selection_set is not None
        )
    return order


def _spreads(order: Iterable[SelectionSetNode]) -> list[str]:
    return [s.name.value for sets in order for s in sets.selections if isinstance(s, FragmentSpreadNode)]


def _cost(order: list[SelectionSetNode], fragments: Mapping[str, Cost]) -> Cost:
    """The cost of ``order[0]`` given the costs of the fragments it spreads (unknown ones cost nothing:
    graphql-core's validation reports them)."""
    costs: dict[int, Cost] = {}
    for current in reversed(order):  # every set after the sets it holds
        selections = aliases = depth = 0
        for node in current.selections:
            if isinstance(node, FragmentSpreadNode):
                inner = fragments.get(node.name.value, _NONE)
                nested = inner.depth
            elif isinstance(node, FieldNode | InlineFragmentNode):
                inner = costs[id(node.selection_set)] if node.selection_set is not None else _NONE
                nested = inner.depth
                if isinstance(node, FieldNode):
                    aliases += node.alias is not None
                    introspection = node.name.value.startswith("__")
                    nested = 0 if introspection or node.selection_set is None else inner.depth + 1
            else:  # graphql-core has no other kind of selection
                continue
            selections = _add(selections, 1 + inner.selections)
            aliases = _add(aliases, inner.aliases)
            depth = max(depth, nested)
        costs[id(current)] = Cost(selections, aliases, depth)
    return costs[id(order[0])]


def _fragment_order(
    fragments: Mapping[str, FragmentDefinitionNode], spreads: Mapping[str, list[str]]
) -> list[str] | FragmentCycle:
    """Fragment names, each after every fragment it spreads; or the first ring of spreads found."""
    done: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in fragments:
        if start in state:
            continue
        path = [start]
        pending = [iter(spreads[start])]
        state[start] = 1
        while pending:
            name = next(pending[-1], None)
            if name is None:
                pending.pop()
                finished = path.pop()
                state[finished] = 2
                done.append(finished)
            elif name in fragments and state.get(name) != 2:
                if state.get(name) == 1:
                    ring = path[path.index(name) :]
                    return FragmentCycle(tuple(fragments[n] for n in ring))
                state[name] = 1
                path.append(name)
                pending.append(iter(spreads[name]))
    return done


def measure(document: DocumentNode) -> DocumentCost | FragmentCycle:
    """The expanded cost of ``document``, each fragment walked once; a ``FragmentCycle`` if it has one."""
    definitions = [d for d in document.definitions if isinstance(d, ExecutableDefinitionNode)]
    fragments = {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}  # last wins
    orders = {id(d): _selection_sets(d.selection_set) for d in definitions}
    spreads = {name: _spreads(orders[id(f)]) for name, f in fragments.items()}
    ordered = _fragment_order(fragments, spreads)
    if isinstance(ordered, FragmentCycle):
        return ordered
    costs: dict[str, Cost] = {}
    for name in ordered:
        costs[name] = _cost(orders[id(fragments[name])], costs)
    operations = [d for d in definitions if isinstance(d, OperationDefinitionNode)]
    op_costs = {op: _cost(orders[id(op)], costs) for op in operations}
    spread = {name for names in spreads.values() for name in names}
    spread.update(name for op in operations for name in _spreads(orders[id(op)]))
    # Validation walks every definition: a fragment nothing spreads (or a second one of the same name)
    # costs its expansion even though no operation uses it.
    unused = [
        _cost(orders[id(d)], costs)
        for d in definitions
        if isinstance(d, FragmentDefinitionNode)
        and (d.name.value not in spread or fragments[d.name.value] is not d)
    ]
    selections = aliases = 0
    for cost in op_costs.values():
        selections = _add(selections, cost.selections)
        aliases = _add(aliases, cost.aliases)
    for cost in unused:
        selections = _add(selections, cost.selections)
    return DocumentCost(selections, aliases, {op: c.depth for op, c in op_costs.items()})
