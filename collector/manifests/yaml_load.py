"""PyYAML's safe loader, bounded: a document whose aliases would expand it past ``MAX_ALIAS_NODES`` is
refused on its own while the rest of the file is still read, and (for the cached path) implicit tag
resolution is memoised."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from liubai.collector.manifests.build import light

__all__ = [
    "MAX_ALIAS_NODES",
    "RAW_KEEP",
    "UNREADABLE",
    "BoundedLoader",
    "RebindingLoader",
    "FastLoader",
    "Loader",
    "Refused",
    "documents",
]

# Nodes that aliases may add to a document beyond the ones its text writes out. Shared labels, env or
# resources blocks add tens to thousands; an object the API server stores (1.5 MiB in etcd) cannot hold
# much more once expanded. A "billion laughs" document adds billions, and walking them hangs the run.
MAX_ALIAS_NODES = 100_000
RAW_KEEP = 800
Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG_KEY_MAX = 128
_SIZE_CAP = 1 << 62  # keeps nested alias counts machine-sized; anything near it is refused anyway

# What reading a document can raise: the parser's errors, and the constructors' own for a value that
# does not fit its explicit tag ("!!int x", "!!bool maybe", "!!timestamp x"), or nesting too deep.
UNREADABLE = (yaml.YAMLError, ValueError, KeyError, AttributeError, TypeError, OverflowError, RecursionError)


@dataclass(frozen=True, slots=True)
class Refused:
    """A document the loader would not build, with why and its text."""

    reason: str
    raw: str


class _ExcessiveAliasing(Exception):
    def __init__(self, reason: str, raw: str) -> None:
        super().__init__(reason)
        self.raw = raw


def _alias_growth(root: yaml.Node) -> int | None:
    """How many nodes aliases add to a document once written out (each node counts 1 plus its
    children, an alias the whole node it names), or None for an alias inside the node it names, which
    never ends. Sizes are memoised per node, so the cost follows the composed tree, not the expansion."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, list[yaml.Node] | None]] = [(root, None)]  # children once expanded
    while stack:
        node, children = stack.pop()
        key = id(node)
        if children is not None:
            open_nodes.discard(key)
            sizes[key] = min(1 + sum(sizes[id(c)] for c in children), _SIZE_CAP)
        elif key not in sizes:
            if type(node) is yaml.ScalarNode:
                sizes[key] = 1
                continue
            if key in open_nodes:
                return None
            open_nodes.add(key)
            children = _children(node)
            stack.append((node, children))
            stack.extend((c, None) for c in children)
    return sizes[id(root)] - len(sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


class _Bounded:
    """Refuses each document whose aliases expand it past ``MAX_ALIAS_NODES`` (mixed into a loader).

    PyYAML composes an alias as a reference to the node it names, so a tiny "billion laughs" text
    composes quickly; the blow-up comes when the result is walked. Measuring the composed tree stops it
    there, and the parser stays at the next document, so the rest of the file is still read."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)  # type: ignore[call-arg]
        self._text = stream
        self._aliased = "&" in stream and "*" in stream  # no alias without both: nothing to expand

    def get_node(self) -> yaml.Node | None:
        node: yaml.Node | None = super().get_node()  # type: ignore[misc]
        if node is None or not self._aliased:
            return node
        growth = _alias_growth(node)
        if growth is None:
            reason = "YAML alias refers to a node that contains it, an endless expansion"
        elif growth > MAX_ALIAS_NODES:
            reason = f"YAML aliases expand the document by more than {MAX_ALIAS_NODES:,} nodes (excessive aliasing)"
        else:
            return node
        lines = self._text.splitlines()[node.start_mark.line : node.end_mark.line + 1]
        raise _ExcessiveAliasing(reason, "\n".join(lines)[:RAW_KEEP])


class BoundedLoader(_Bounded, Loader):  # type: ignore[valid-type,misc]
    """The safe loader (libyaml's where installed), bounded (``_Bounded``)."""


class RebindingLoader(_Bounded, yaml.SafeLoader):
    """The pure-Python safe loader, bounded, where an anchor defined again names the later node from
    there on, as YAML 1.2 says and kubectl accepts; PyYAML (YAML 1.1) refuses the file instead. Only
    files that fail with a duplicate anchor take this slower path."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        if not self.check_event(yaml.AliasEvent):
            anchor = self.peek_event().anchor  # type: ignore[no-untyped-call]
            if anchor is not None:
                self.anchors.pop(anchor, None)
        node: yaml.Node = super().compose_node(parent, index)  # type: ignore[arg-type,assignment]
        return node


def documents(loader: BoundedLoader | RebindingLoader, *, fast: bool) -> Iterator[Any]:
    """Each document of the loader's text, built by ``light`` with the loader itself as constructor,
    or ``Refused`` for one the loader would not build."""
    try:
        while loader.check_node():
            try:
                node = loader.get_node()
            except _ExcessiveAliasing as exc:
                yield Refused(str(exc), exc.raw)
                continue
            yield None if node is None else light(node, loader, fast=fast)
    finally:
        loader.dispose()


class FastLoader(BoundedLoader):
    """The safe loader with implicit tag resolution memoised: a manifest history resolves the same few
    thousand short scalars again and again (long ones, rarely repeated, are not kept). SafeLoader has
    no path resolvers, so descending and ascending the resolver path do nothing and are skipped."""

    def __init__(self, stream: str, resolve_short: Callable[[type, Any, Any], str]) -> None:
        super().__init__(stream)
        self._resolve_short = resolve_short

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if value is not None and len(value) > _TAG_KEY_MAX:
            return str(super().resolve(kind, value, implicit))
        return self._resolve_short(kind, value, implicit)

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None
