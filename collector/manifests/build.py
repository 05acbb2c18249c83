"""Only the parts of a document the collector reads, built from PyYAML's composed node tree: the pod spec
and the rest are never constructed, which halves the parse cost of a typical Deployment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

__all__ = ["light"]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_TEMPLATE_PATHS = (("spec", "template", "metadata"), ("spec", "jobTemplate", "spec", "template", "metadata"))
_MAX_DEPTH = 64


class _NeedsWholeDocument(Exception):
    """A merge key (``<<``) on the way: only the full constructor resolves it correctly."""


def _construct_fast(node: yaml.Node, builder: Any, depth: int = 0) -> Any:
    """``construct_document`` for the plain shapes (string scalars, string-keyed maps, sequences) without
    its per-node generator machinery; every other node goes to the constructor itself."""
    tag = node.tag
    cls = type(node)
    if cls is yaml.ScalarNode and tag == _STR_TAG:
        return node.value
    if depth < _MAX_DEPTH:
        if cls is yaml.MappingNode and tag == _MAP_TAG:
            out: dict[str, Any] = {}
            for k, v in node.value:
                if type(k) is not yaml.ScalarNode or k.tag != _STR_TAG:
                    return builder.construct_document(node)
                out[k.value] = _construct_fast(v, builder, depth + 1)
            return out
        if cls is yaml.SequenceNode and tag == _SEQ_TAG:
            return [_construct_fast(v, builder, depth + 1) for v in node.value]
    return builder.construct_document(node)


def _index(node: yaml.Node | None, memo: dict[int, dict[str, yaml.Node]]) -> dict[str, yaml.Node]:
    """A mapping node's children by scalar key, scanned once (the last duplicate wins, as in full
    construction); a merge key sends the whole document to the stock constructor."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    found = memo.get(id(node))
    if found is None:
        found = memo[id(node)] = {}
        for k, v in node.value:
            if k.tag == _MERGE_TAG:
                raise _NeedsWholeDocument
            if isinstance(k, yaml.ScalarNode):
                found[k.value] = v
    return found


def light(node: yaml.Node, builder: Any, *, fast: bool) -> Any:
    """The parts of a document the collector reads (apiVersion, kind, metadata, items, template
    metadata), built from the composed node tree; the pod spec and the rest are never constructed,
    which halves the parse cost of a typical Deployment. Each mapping on the way is scanned once;
    ``fast`` builds plain subtrees directly (``_construct_fast``) instead of with the stock constructor."""
    if not isinstance(node, yaml.MappingNode):
        return builder.construct_document(node)
    build: Callable[[yaml.Node], Any] = (
        (lambda n: _construct_fast(n, builder)) if fast else builder.construct_document
    )
    memo: dict[int, dict[str, yaml.Node]] = {}
    try:
        top = _index(node, memo)
        out: dict[str, Any] = {}
        for key in ("apiVersion", "kind", "metadata", "items"):
            child = top.get(key)
            if child is not None:
                out[key] = build(child)
        for path in _TEMPLATE_PATHS:
            target: yaml.Node | None = node
            for key in path:
                target = _index(target, memo).get(key)
            if target is not None:
                slot = out
                for key in path[:-1]:
                    slot = slot.setdefault(key, {})
                slot[path[-1]] = build(target)
        return out
    except _NeedsWholeDocument:
        return builder.construct_document(node)
