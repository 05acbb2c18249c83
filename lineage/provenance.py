"""Who wrote each fact, and the merge rule that keeps one writer from overwriting another's facts.

Every batch is written by one **writer**: a local collector the operator runs against the store
(``git``, ``logs``, ``sls``, ``ebpf``, ``k8s``, or ``local``) or a remote sender through ``POST /v1/ingest``,
written as ``token:<token name>`` (``http:anonymous`` when the API runs without auth) whatever the
envelope says about itself. A node is **owned** by the writer of its first non-placeholder write; a key a
second writer added to it is that writer's (the node's ``owners`` map, kept only when such a key exists).

Merging ``new`` props from writer ``w`` into a stored node (``merge_owned``), per key:

* ``first_seen`` / ``last_seen`` combine (minimum / maximum) whoever writes them;
* a key the node lacks is added (and recorded as ``w``'s when ``w`` is not the node's owner);
* an equal value changes nothing;
* a different value replaces the stored one when ``w`` owns the key, or outranks its owner (local
  writers outrank remote ones), or turns the placeholder into a real node; the replaced value of
  another writer is kept as that writer's **claim**;
* otherwise the stored value stays and ``w``'s value is kept as ``w``'s claim, counted as a conflict.

So a remote token can never change what a local collector wrote, and a remote token that writes a node
first (a forged commit) loses it to the collector that writes the node later: the forged values stay
visible, as claims, but never as facts. Among writers of one rank the first keeps the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ANONYMOUS_WRITER",
    "EBPF_WRITER",
    "GIT_WRITER",
    "K8S_WRITER",
    "LOCAL_WRITER",
    "LOGS_WRITER",
    "SLS_WRITER",
    "Claim",
    "Merged",
    "Provenance",
    "is_remote",
    "merge_owned",
    "rank",
    "remote_writer",
]

LOCAL_WRITER = "local"
GIT_WRITER = "git"
LOGS_WRITER = "logs"
SLS_WRITER = "sls"
EBPF_WRITER = "ebpf"
K8S_WRITER = "k8s"
ANONYMOUS_WRITER = "http:anonymous"
_REMOTE_PREFIXES = ("token:", "http:")
_SEEN = ("first_seen", "last_seen")


def remote_writer(token_name: str | None) -> str:
    """The writer a batch received over HTTP is written as: its token's name, never what it claims."""
    return ANONYMOUS_WRITER if token_name is None else f"token:{token_name}"


def is_remote(writer: str) -> bool:
    return writer.startswith(_REMOTE_PREFIXES)


def rank(writer: str | None) -> int:
    """Local collectors (and facts written before writers were recorded, ``None``) 1, remote senders 0."""
    return 0 if writer is not None and is_remote(writer) else 1


@dataclass(frozen=True, slots=True)
class Claim:
    """A value ``writer`` gave for ``key`` that differs from the stored fact, kept beside it."""

    key: str
    writer: str
    value: Any


@dataclass(slots=True)
class Provenance:
    """Who wrote a node: its owner, the keys other writers added, and the claims that lost."""

    writer: str | None = None
    owners: dict[str, str] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)


@dataclass(slots=True)
class Merged:
    """``merge_owned``'s answer: the node's new props, owner and owners map, the claims to keep (``put``)
    and the claims that became the fact and so leave (``drop``, (key, writer) pairs)."""

    props: dict[str, Any]
    writer: str | None
    owners: dict[str, str]
    put: list[Claim] = field(default_factory=list)
    drop: list[tuple[str, str]] = field(default_factory=list)
    conflicts: int = 0


def merge_owned(
    old: Mapping[str, Any],
    old_writer: str | None,
    old_owners: Mapping[str, str],
    old_placeholder: bool,
    new: Mapping[str, Any],
    writer: str,
    placeholder: bool,
) -> Merged:
    """The module docstring's rule for ``writer`` writing ``new`` onto a stored node. ``old_writer`` None
    with ``old_placeholder`` False: a node written before writers were recorded, adopted by the first
    local writer that merges into it."""
    props = dict(old)
    owners = dict(old_owners)
    out = Merged(props, old_writer, owners)
    becomes_real = old_placeholder and not placeholder
    outranks = not placeholder and rank(writer) > rank(old_writer)
    adopts = (
        old_writer is None and not old_placeholder and rank(writer) > 0
    )  # written before writers were kept
    takes_over = old_writer != writer and (becomes_real or outranks or adopts)
    if takes_over:
        # keys the old owner wrote stay its own unless ``writer`` replaces them below
        if old_writer is not None:
            for k in props:
                owners.setdefault(k, old_writer)
        out.writer = writer
    elif old_writer is None and old_placeholder:
        out.writer = writer  # a placeholder records who wrote it first, until a real write takes over
    for k, v in new.items():
        if v is None:
            continue
        if k in _SEEN:
            cur = props.get(k)
            if cur is None or (v < cur if k == "first_seen" else v > cur):
                props[k] = v
            continue
        if k not in props:
            props[k] = v
            _own(owners, k, writer, out.writer)
            continue
        cur = props[k]
        if cur == v:
            continue
        holder = owners.get(k, out.writer if not takes_over else old_writer)
        if (
            holder == writer
            or becomes_real
            or rank(writer) > rank(holder)
            or (holder is None and rank(writer) > 0)
        ):
            if holder is not None and holder != writer:
                out.put.append(Claim(k, holder, cur))
            out.drop.append((k, writer))
            props[k] = v
            _own(owners, k, writer, out.writer)
        else:
            out.put.append(Claim(k, writer, v))
            out.conflicts += 1
    return out


def _own(owners: dict[str, str], key: str, writer: str, node_writer: str | None) -> None:
    if writer == node_writer:
        owners.pop(key, None)
    else:
        owners[key] = writer
