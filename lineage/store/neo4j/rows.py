"""Row building for the Neo4j store: node records, claim keys and rows, search words and the
Lucene query made from user text (escaped, so it is data, never syntax)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from liubai.lineage.model import (
    Node,
    NodeKind,
    node_kind_of,
)
from liubai.lineage.provenance import Claim
from liubai.lineage.store.common import (
    chunks,
    dumps_props,
)
from liubai.lineage.store.neo4j.props import from_neo4j
from liubai.lineage.store.neo4j.queries import ROWS_PER_STATEMENT
from liubai.lineage.store.searchtext import search_text

_T = TypeVar("_T")
_TOKEN = re.compile(r"\w+", re.UNICODE)
_LUCENE_SPECIAL = re.compile(r'([+\-!(){}\[\]^"~*?:\\/&|])')


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
    return Node(node_id, node_kind_of(node_id), from_neo4j(rec["props"]), bool(rec["placeholder"]))
