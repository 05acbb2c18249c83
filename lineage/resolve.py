"""What a user names, as a node: the one reading of a reference that GraphQL, the CLI and export share.

A reference is read by the first rule that matches (surrounding blanks are ignored):

1. empty: ``BadInput``.
2. ``audit:<id>``, or a raw audit id (it holds ``|`` or starts with ``git-sha256:``, ``git-sha1:`` or
   ``git:``): the audit record, its id parsed and written canonically, so any spelling of one audit id
   names one node. A malformed one: ``AuditIdError`` (code ``BAD_AUDIT_ID``).
3. ``commit:<hex>`` or bare hex, in any case: a full sha (40 or 64 digits) names its commit node; a
   shorter one of at least ``MIN_PREFIX`` digits is a prefix that must name one stored commit. Several
   matches: ``Ambiguous``, with candidates. None: ``NotFound``; except that 32 hex digits naming no commit
   name the trace with that (W3C) trace id if it is stored.
   ``commit:`` with anything but 4 to 64 hex digits: ``BadInput``.
4. ``trace:<id>``: the trace; a 32-digit hex trace id is lower-cased, as collectors store it.
5. any other ``<kind>:<key>`` node id: that node, as written.
6. anything else: ``BadInput``.

``reference_id`` stops at the node id (an audit id that was never stored still names its node id);
``resolve_reference`` also requires the node to be in the store (``NotFound``).
"""

from __future__ import annotations

import re

from liubai.lineage.errors import Ambiguous, BadInput, NotFound
from liubai.lineage.model import (
    Node,
    NodeKind,
    audit_node_id,
    commit_node_id,
    node_kind_of,
    parse_audit_id,
    trace_node_id,
)
from liubai.lineage.store.base import LineageStore
from liubai.lineage.text import clip

__all__ = ["MIN_PREFIX", "find_commit", "reference_id", "resolve_reference"]

MIN_PREFIX = 4
_HEX = re.compile(r"[0-9a-fA-F]+")
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_AUDIT_PREFIXES = ("git-sha256:", "git-sha1:", "git:")
_SHOWN = 5  # candidates an ambiguous prefix lists


def find_commit(store: LineageStore, sha: str) -> Node | None:
    """A commit by full sha or unique prefix (>= ``MIN_PREFIX`` hex digits, any case, ``commit:`` allowed);
    None if there is none, ``Ambiguous`` if the prefix names several, ``BadInput`` if it is not hex."""
    text = sha.strip().lower().removeprefix("commit:")
    if len(text) < MIN_PREFIX or not _HEX.fullmatch(text):
        raise BadInput(
            f"a commit is named by its sha or a prefix of at least {MIN_PREFIX} hex characters, not {clip(sha)!r}",
            argument="sha",
        )
    if len(text) in (40, 64):
        return store.get(commit_node_id(text))
    found = store.find_by_prefix(NodeKind.COMMIT, text, limit=_SHOWN + 1)
    if len(found) > 1:
        shown = [n.id.partition(":")[2][:12] for n in found[:_SHOWN]]
        more = ", ..." if len(found) > _SHOWN else ""
        raise Ambiguous(
            f"commit prefix {clip(text)!r} matches several commits ({', '.join(shown)}{more}); give more characters",
            candidates=[n.id for n in found[:_SHOWN]],
        )
    return found[0] if found else None


def _commit_id(store: LineageStore, text: str, ref: str) -> str:
    full = text.lower().removeprefix("commit:")
    if len(full) in (40, 64) and _HEX.fullmatch(full):
        return commit_node_id(full)  # a whole sha names its node; whether it is stored is the caller's check
    commit = find_commit(store, text)
    if commit is not None:
        return commit.id
    bare = text.removeprefix("commit:")
    if _TRACE_ID.fullmatch(bare) and not text.startswith("commit:"):
        trace = trace_node_id(bare.lower())
        if store.get(trace) is not None:
            return trace
    raise NotFound(f"no commit starting with {clip(bare.lower())!r} in the lineage store", ref=clip(ref))


def reference_id(store: LineageStore, ref: str) -> str:
    """The node id ``ref`` names, by the rules above; the node itself may be absent."""
    text = ref.strip()
    if not text:
        raise BadInput("an empty reference names no node", ref="")
    if text.startswith("audit:") or "|" in text or text.startswith(_AUDIT_PREFIXES):
        return audit_node_id(parse_audit_id(text.removeprefix("audit:")))
    if text.lower().startswith("commit:") or _HEX.fullmatch(text):
        return _commit_id(store, text, ref)
    if text.startswith("trace:"):
        key = text.removeprefix("trace:")
        return trace_node_id(key.lower() if _TRACE_ID.fullmatch(key) else key)
    try:
        node_kind_of(text)
    except ValueError:
        raise BadInput(
            f"{clip(ref)!r} is neither a node id (<kind>:<key>, e.g. commit:<sha>), a commit sha, nor an audit id",
            ref=clip(ref),
        ) from None
    return text


def resolve_reference(store: LineageStore, ref: str) -> Node:
    """The stored node ``ref`` names; ``NotFound`` if it names a node the store does not hold."""
    node_id = reference_id(store, ref)
    node = store.get(node_id)
    if node is None:
        raise NotFound(f"no node {clip(node_id)!r} in the lineage store", id=clip(node_id))
    return node
