"""What full-text search sees of a node: its id and the properties people search by.

Shared by every store so that a search answers the same everywhere. A log line is indexed by its
``source`` instead of its id: log ids end in a content hash or a shard cursor that nobody types (a whole
id still finds its node through the stores' exact-id match), and a token unique to every line made the
full-text index much larger and its writes a noticeable share of a log ingest (docs/performance.md).
"""

from __future__ import annotations

from typing import Any

from liubai.lineage.model import NodeKind

__all__ = ["SEARCH_PROPS", "SEARCH_TEXT_VERSION", "search_text"]

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


def search_text(node_id: str, kind: NodeKind, props: dict[str, Any]) -> str:
    parts = [] if kind is NodeKind.LOG_EVENT else [node_id]
    for key in SEARCH_PROPS[kind]:
        value = props.get(key)
        if value is None:
            continue
        kind_of_value = type(value)
        if kind_of_value is str:  # the common case, without a str() call
            parts.append(value)
        elif isinstance(value, list):
            parts.append(" ".join(map(str, value)))
        else:
            parts.append(str(value))
    return " ".join(parts)[:_MAX]
