"""What full-text search sees of a node: its id and the properties people search by.

Shared by every store so that a search answers the same everywhere. A log line is indexed by its
``source`` instead of its id: log ids end in a content hash or a shard cursor that nobody types (a whole
id still finds its node through the stores' exact-id match), and a token unique to every line made the
full-text index much larger and its writes a noticeable share of a log ingest (docs/performance.md).
"""

from __future__ import annotations

from typing import Any

from liubai.lineage.model import NodeKind

__all__ = ["SEARCH_PROPS", "SEARCH_TEXT_VERSION", "search_text", "search_text_kept_by_json"]

SEARCH_PROPS: dict[NodeKind, tuple[str, ...]] = {
    NodeKind.REPO: ("url",),
    NodeKind.COMMIT: ("sha", "subject", "author", "author_email", "committer", "pr"),
    NodeKind.WORKLOAD: ("kind", "namespace", "name", "manifest_path"),
    NodeKind.AUDIT_RECORD: ("canonical", "raw", "commit", "trace"),
    NodeKind.TRACE: ("trace_id",),
    NodeKind.LOG_EVENT: ("source", "service", "level", "message", "trace_id", "audit_id"),
    NodeKind.PIPELINE_RUN: ("command", "commit", "trace_id", "host"),
    NodeKind.PROCESS: ("comm", "binary", "argv", "pid"),
    NodeKind.FILE: ("path",),
    NodeKind.POD: ("name", "namespace", "uid", "node_name", "images"),
    NodeKind.ADMISSION: ("username", "kind", "namespace", "name", "decision", "audit_id"),
    NodeKind.CONTAINER: ("container_id", "name", "image", "pod_uid", "host"),
    NodeKind.RESOURCE: ("service",),
    NodeKind.SPAN: ("name", "service", "status", "status_message", "trace_id", "span_id", "audit_id"),
}

_MAX = 2000

# Raise with every change to what ``search_text`` returns for some node. SQLite's index keeps no texts and
# drops an entry only by the exact text it was made from, so it re-indexes every node when this moves.
SEARCH_TEXT_VERSION = 2


_LOG_EVENT = NodeKind.LOG_EVENT  # read once: an enum member looked up on its class costs a call

# Types whose ``str`` a JSON round trip of the properties keeps as it is: exact types, since a subclass (an
# enum) may be written otherwise. Integers past 64 bits too, as every store writes and reads them exactly.
_KEPT_BY_JSON = frozenset({str, int, bool, type(None)})


def search_text(node_id: str, kind: NodeKind, props: dict[str, Any]) -> str:
    """The words by which a node of ``kind`` with ``props`` is found."""
    return _search_text(node_id, kind, props, False) or ""  # never None here


def search_text_kept_by_json(node_id: str, kind: NodeKind, props: dict[str, Any]) -> str | None:
    """``search_text`` of ``props``, or None if a searched value is of a type a JSON round trip may change
    (a datetime, a float): then only the text of the properties read back from their JSON is the right one.
    Spares a store reading back the JSON it just wrote."""
    return _search_text(node_id, kind, props, True)


def _search_text(node_id: str, kind: NodeKind, props: dict[str, Any], only_kept_by_json: bool) -> str | None:
    parts = [] if kind is _LOG_EVENT else [node_id]
    for value in map(props.get, SEARCH_PROPS[kind]):
        if value is None:
            continue
        kind_of_value = type(value)
        if kind_of_value is str:  # the common case, without a str() call
            parts.append(value)
        elif isinstance(value, list):
            if only_kept_by_json and not (
                kind_of_value is list and _KEPT_BY_JSON.issuperset(map(type, value))
            ):
                return None
            parts.append(" ".join(map(str, value)))
        else:
            if only_kept_by_json and kind_of_value not in _KEPT_BY_JSON:
                return None
            parts.append(str(value))
    return " ".join(parts)[:_MAX]
