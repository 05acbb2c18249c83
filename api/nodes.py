"""How people name nodes and how nodes read to people; shared by the GraphQL API and the CLI.

A user names a node by its id (``commit:<sha>``), by a bare commit sha or unique prefix, or by a raw
audit id; ``resolve_ref`` turns any of these into a node id so every front end accepts the same input.
"""

from __future__ import annotations

import re
from typing import Any

from liubai.api.api_error import ApiError, ErrorCode
from liubai.lineage.model import (
    AuditIdError,
    Node,
    NodeKind,
    audit_node_id,
    commit_node_id,
    node_kind_of,
    parse_audit_id,
)
from liubai.lineage.store.base import LineageStore
from liubai.lineage.text import clip

__all__ = ["MIN_PREFIX", "find_commit", "node_label", "node_time", "resolve_ref"]

MIN_PREFIX = 4
_HEX = re.compile(r"[0-9a-fA-F]+")
_TIME_KEYS = ("committed_at", "time", "started_at", "first_seen")


def node_time(node: Node) -> str | None:
    """The node's main time: when it was committed, logged, started, or first seen."""
    for key in _TIME_KEYS:
        value = node.props.get(key)
        if value:
            return str(value)
    return None


def node_label(node: Node) -> str:
    """Short human text for a node (UI boxes, CLI trees)."""
    p: dict[str, Any] = node.props
    key = node.id.partition(":")[2]
    match node.kind:
        case NodeKind.COMMIT:
            sha = str(p.get("sha") or key)[:12]
            subject = p.get("subject")
            return f"{sha} {subject}" if subject else sha
        case NodeKind.WORKLOAD:
            return key
        case NodeKind.PROCESS:
            comm, pid = p.get("comm"), p.get("pid")
            return f"{comm} {pid}" if comm else f"pid {pid if pid is not None else key}"
        case NodeKind.FILE:
            return str(p.get("path") or key)
        case NodeKind.LOG_EVENT:
            level = p.get("level")
            message = str(p.get("message") or "")[:80]
            return f"{level} {message}" if level else message or key
        case NodeKind.TRACE:
            return str(p.get("trace_id") or key)
        case NodeKind.AUDIT_RECORD:
            return str(p.get("canonical") or key)
        case NodeKind.PIPELINE_RUN:
            command = p.get("command")
            if isinstance(command, list) and command:
                return " ".join(map(str, command))
            return str(command or key)
        case NodeKind.REPO:
            return str(p.get("url") or key)
    return key  # pragma: no cover - every kind is matched above


def find_commit(store: LineageStore, sha: str) -> Node | None:
    """A commit by full sha or unique prefix (>= 4 hex chars); AMBIGUOUS if the prefix names several."""
    text = sha.strip().lower().removeprefix("commit:")
    if len(text) < MIN_PREFIX or not _HEX.fullmatch(text):
        raise ApiError(
            ErrorCode.BAD_INPUT,
            f"a commit is named by its sha or a prefix of at least {MIN_PREFIX} hex characters, not {clip(sha)!r}",
            argument="sha",
        )
    if len(text) in (40, 64):
        return store.get(commit_node_id(text))
    found = store.find_by_prefix(NodeKind.COMMIT, text, limit=6)
    if len(found) > 1:
        shown = [n.id.partition(":")[2][:12] for n in found[:5]]
        raise ApiError(
            ErrorCode.AMBIGUOUS,
            f"commit prefix {clip(text)!r} matches several commits ({', '.join(shown)}{', ...' if len(found) > 5 else ''});"
            " give more characters",
            candidates=[n.id for n in found[:5]],
        )
    return found[0] if found else None


def resolve_ref(store: LineageStore, ref: str) -> str:
    """The node id a user means: a node id as-is, a commit sha/prefix, or a raw audit id."""
    text = ref.strip()
    if text.startswith("audit:"):
        return text
    if "|" not in text:  # a raw audit id may start with "trace:", which is also a node id prefix
        try:
            node_kind_of(text)
            return text
        except ValueError:
            pass
    if _HEX.fullmatch(text):
        commit = find_commit(store, text)
        if commit is None:
            what = "no commit" if len(text) in (40, 64) else "no commit starting with"
            raise ApiError(ErrorCode.NOT_FOUND, f"{what} {clip(text)!r} in the lineage store", ref=clip(ref))
        return commit.id
    if "|" in text or text.startswith(("git-sha256:", "git-sha1:", "git:")):
        try:
            return audit_node_id(parse_audit_id(text))
        except AuditIdError as exc:
            raise ApiError(ErrorCode.BAD_AUDIT_ID, str(exc), reason=exc.reason) from None
    raise ApiError(
        ErrorCode.BAD_INPUT,
        f"{clip(ref)!r} is neither a node id (<kind>:<key>, e.g. commit:<sha>), a commit sha, nor an audit id",
        ref=clip(ref),
    )
