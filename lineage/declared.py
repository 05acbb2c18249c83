"""What a commit's tree declares, answered from the stored graph alone.

The Git collector diffs every commit against its first parent and records, per commit, a ``DECLARES``
edge for each object its changed manifests declare and a ``deleted`` one for each object no manifest
declares any more (by identity, across the commit). The first-parent chain therefore replays the tree:
walking it back from a commit, the nearest edge of each object says whether the commit's tree still
declares it. Only the store protocol is used, so every store gives the same answer.

A repository's history is read either file by file or rendered (``ingest git --render``, kept in its
``render`` checkpoint); switching re-reads it, and edges carry ``with_render``, so the edges the other
reading left behind (the store deletes nothing) are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from liubai.lineage.errors import Ambiguous, BadInput, NotFound
from liubai.lineage.model import Direction, EdgeKind, Node, commit_node_id
from liubai.lineage.resolve import find_commit
from liubai.lineage.store.base import LineageStore
from liubai.lineage.text import clip

__all__ = ["DeclaredObject", "DeclaredView", "declared_at", "resolve_at"]

_SHA_LIKE = re.compile(r"(commit:)?[0-9a-fA-F]{4,64}")
_REF_FORMS = ("{}", "refs/heads/{}", "refs/remotes/origin/{}", "refs/tags/{}")

MAX_COMMITS = 100_000
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class DeclaredObject:
    """One object the tree declares: its Workload node, the manifest it lives in, and the commit that
    last changed it."""

    node: Node
    path: str
    since: str
    rendered_by: str = ""  # the deployer whose render declares it, "" for a manifest file


@dataclass(slots=True)
class DeclaredView:
    """``objects`` declared at ``commit`` (sorted by node id). ``complete`` is False when the walk met a
    commit the store holds only as a placeholder (history not ingested that far) or ran past
    ``MAX_COMMITS``; ``commits`` counts the commits walked."""

    commit: str
    objects: list[DeclaredObject]
    complete: bool
    commits: int


def declared_at(store: LineageStore, sha: str, max_commits: int = MAX_COMMITS) -> DeclaredView:
    """The objects ``sha``'s tree declares, by replaying its first-parent chain from the store."""
    nearest: dict[str, tuple[bool, str, str, str]] = {}  # workload id -> (declared?, path, commit, by)
    modes: dict[str, bool] = {}  # repository -> read with --render
    current: str | None = sha.lower()
    walked = 0
    complete = True
    while current is not None:
        if walked >= max_commits:
            complete = False
            break
        node = store.get(commit_node_id(current))
        if node is None or node.placeholder:
            complete = False
            break
        walked += 1
        repo = str(node.props.get("repo") or "")
        if repo not in modes:
            modes[repo] = store.get_checkpoint(f"git:{repo}", "render") == "1"
        mode = modes[repo]
        after: str | None = None
        while True:
            page = store.neighbors(
                node.id, Direction.DOWNSTREAM, [EdgeKind.DECLARES], first=_PAGE, after=after
            )
            for edge in page.edges:
                if edge.dst not in nearest and bool(edge.props.get("with_render")) == mode:
                    gone = bool(edge.props.get("deleted"))
                    path = str(edge.props.get("path") or "")
                    by = str(edge.props.get("rendered_by") or "") if mode else ""  # stale when not rendering
                    nearest[edge.dst] = (not gone, path, current, by)
            after = page.end_cursor
            if after is None:
                break
        parents = node.props.get("parents") or []
        current = str(parents[0]).lower() if parents else None
    live = sorted(wid for wid, (declared, *_) in nearest.items() if declared)
    nodes = {n.id: n for n in store.get_many(live)}
    objects = [
        DeclaredObject(nodes[wid], *nearest[wid][1:])
        for wid in live
        if wid in nodes and not nodes[wid].props.get("superseded_by")  # stored under an old id
    ]
    return DeclaredView(sha.lower(), objects, complete, walked)


def resolve_at(store: LineageStore, at: str | None, repo: str | None = None) -> str:
    """The commit sha ``at`` names: a sha or unique prefix, or a ref name (``main``, ``refs/tags/v1``)
    as the last Git ingest saw it; None names the tip of the only ingested ref. ``repo`` limits refs to
    one repository (its URL or path, as ``ingest git`` names it)."""
    if at is not None and _SHA_LIKE.fullmatch(at.strip()):
        node = find_commit(store, at)
        if node is not None and not node.placeholder:
            return str(node.props.get("sha") or node.id.partition(":")[2])
        if at.strip().lower().startswith("commit:"):
            raise NotFound(f"no commit {clip(at)!r} in the lineage store", ref=clip(at))
    tips: dict[str, str] = {}
    for (source, key), value in store.checkpoints().items():
        if not source.startswith("git:") or not key.startswith("ref:") or not value:
            continue  # "": a re-read of that repository is under way
        if repo is not None and source != f"git:{repo}":
            continue
        tips[f"{source.removeprefix('git:')} {key.removeprefix('ref:')}"] = value
    if at is None:
        distinct = set(tips.values())
        if len(distinct) == 1:
            return distinct.pop()
        if not tips:
            raise NotFound("no Git ref has been ingested: run `liubai ingest git` first", ref="")
        raise Ambiguous(
            f"several refs were ingested; name one with --at ({', '.join(sorted(tips)[:5])})",
            candidates=sorted(tips)[:5],
        )
    wanted = {form.format(at.strip()) for form in _REF_FORMS}
    found = {sha for name, sha in tips.items() if name.rpartition(" ")[2] in wanted}
    if len(found) == 1:
        return found.pop()
    if found:
        raise Ambiguous(f"ref {clip(at)!r} names different commits in several repositories; add --repo")
    raise BadInput(f"{clip(at)!r} is neither a stored commit nor an ingested ref", ref=clip(at))
