"""Row building: a batch's nodes and edges as the SQLite store's rows, worked out from the batch alone.

A pure function of the batch (``prepare_rows``), so a reader process can run it while the writing
process only writes. Also the small SQL helpers every part of the store shares.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from liubai.lineage.model import (
    Edge,
    EdgeKind,
    GraphBatch,
    Node,
    NodeKind,
)
from liubai.lineage.store.common import (
    chunks,
    dumps_props,
    loads_props,
    prepare_batch,
)
from liubai.lineage.store.searchtext import search_text, search_text_kept_by_json

__all__ = ["SqliteRows", "prepare_rows", "row_texts"]

_CHUNK = 500  # ids per IN (...) list; well under SQLite's variable limit

_NODE_KINDS = {k.value: k for k in NodeKind}
_KIND_VALUES = {k: k.value for k in NodeKind}
_EDGE_KINDS = {k.value: k for k in EdgeKind}

# Edge kind -> the nodes column that holds a node's bare link of that kind. A link is put in the column
# only when its source node is created, so it never also sits in ``edges``; further links of the kind, and
# any such link that gains properties, are ordinary ``edges`` rows.
_LINKS: dict[str, str] = {EdgeKind.IN_TRACE.value: "trace", EdgeKind.CARRIES.value: "audit"}
_SLOT = {"trace": 3, "audit": 4}  # where _fetch_nodes puts each column


# rid, props, placeholder, links, stored kind, writer, owners
_Existing = tuple[
    int, dict[str, Any], bool, "str | None", "str | None", NodeKind, "str | None", dict[str, str]
]


@dataclass(slots=True)
class SqliteRows:
    """A batch's nodes and edges as ``SqliteStore`` writes them, worked out from the batch alone
    (``prepare_rows``), so that a reader process can do this part while the writing process only writes.

    Nodes come each once, in id order, with their JSON properties, their search texts (what a re-index
    would make of the JSON, see ``_search_text``) and the first bare ``IN_TRACE`` / ``CARRIES`` link of
    each: it goes on the node's row if the node is new."""

    ids: list[str]
    kinds: list[str]
    props: list[str]
    texts: list[str]
    placeholders: list[bool]
    traces: list[str | None]
    audits: list[str | None]
    bare: list[tuple[str, str, str]]  # every other edge without properties
    with_props: list[tuple[str, str, str, str]]  # (src, kind, dst, JSON properties)


def prepare_rows(batch: GraphBatch) -> SqliteRows:
    """The rows of ``batch``'s nodes and edges; its rejected records and checkpoints are not included."""
    nodes, edges = prepare_batch(batch)
    first: dict[str, dict[str, str]] = {column: {} for column in _LINKS.values()}
    bare: list[tuple[str, str, str]] = []
    with_props: list[tuple[str, str, str, str]] = []
    for key, e in edges.items():
        if e.props:
            with_props.append((*key, dumps_props(e.props)))
            continue
        column = _LINKS.get(key[1])
        if column is not None and e.src not in first[column]:
            first[column][e.src] = e.dst
            continue
        bare.append(key)
    ids = [n.id for n in nodes]
    props = [dumps_props(n.props) for n in nodes]
    traces, audits = first["trace"], first["audit"]
    return SqliteRows(
        ids=ids,
        kinds=[_KIND_VALUES[n.kind] for n in nodes],
        props=props,
        texts=[_search_text(n, text) for n, text in zip(nodes, props, strict=True)],
        placeholders=[n.placeholder for n in nodes],
        traces=[traces.get(i) for i in ids] if traces else [None] * len(ids),
        audits=[audits.get(i) for i in ids] if audits else [None] * len(ids),
        bare=bare,
        with_props=with_props,
    )


def _search_text(node: Node, props_json: str) -> str:
    """The search text of ``node``, whose properties are ``props_json``: what a re-index makes from the
    JSON, so that a value a JSON round trip changes (a datetime) can never leave stale words in the index.
    Made from the node's own properties when the round trip keeps every searched value (nearly always)."""
    text = search_text_kept_by_json(node.id, node.kind, node.props)
    return text if text is not None else search_text(node.id, node.kind, loads_props(props_json))


def row_texts(rows: SqliteRows) -> list[str]:
    """The search text of every node of ``rows``, as ``SqliteStore`` indexes it."""
    return rows.texts


def _links(kinds: Iterable[str]) -> list[tuple[str, str]]:
    """(edge kind, nodes column) of the given kinds that live on node rows."""
    return [(k, _LINKS[k]) for k in kinds if k in _LINKS]


def _edge(row: tuple[str, str, str, str]) -> Edge:
    return Edge(row[0], _EDGE_KINDS[row[1]], row[2], loads_props(row[3]))


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    return chunks(items, size)


def _qmarks(n: int) -> str:
    return ",".join("?" * n)


def _col(i: int) -> str:
    return f"json_extract(j.value, '$[{i}]')"


def _bulk(target: str, width: int, *extra: str) -> tuple[str, str]:
    """(one statement reading every row from a JSON array, the per-row form) for ``INSERT ... target``."""
    cols = ", ".join([*(_col(i) for i in range(width)), *extra])
    marks = ", ".join(["?"] * width + list(extra))
    return f"{target} SELECT {cols} FROM json_each(?) j", f"{target} VALUES ({marks})"
