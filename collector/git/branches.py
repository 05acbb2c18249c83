"""Which of the refs a run reads contain each commit: ``branches`` follows the refs, so a commit first
read from a feature branch also lists ``main`` once main contains it (after a merge or fast-forward),
whatever run saw it first.

For a run, every ref's new commits are listed once (``git rev-list <tip> --not <its last tip>``):
commits the run reads get the list on their record; commits already stored that a ref now contains
get the ref added to what the store holds (``add_branches``), written through the pipeline's ``Sink``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping

import git

from liubai.collector.ingest import Sink
from liubai.lineage.model import GraphBatch, commit_node_id
from liubai.lineage.store.base import LineageStore

__all__ = ["add_branches", "membership", "short_ref"]

_PAGE = 500


def short_ref(ref: str) -> str:
    return re.sub(r"^refs/(heads|remotes|tags)/", "", ref)


def membership(
    g: git.Git, refs: Mapping[str, str], exclude: list[str], old: Mapping[str, str]
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(commits this run reads -> refs containing them, stored commits -> refs that now contain them).
    ``old`` holds the checkpoints (``ref:<name>`` -> the tip the last run stored)."""
    fresh: dict[str, set[str]] = defaultdict(set)
    gained: dict[str, set[str]] = defaultdict(set)
    for ref, tip in refs.items():
        name = short_ref(ref)
        for sha in _rev_list(g, tip, exclude):
            fresh[sha].add(name)
    for ref, tip in refs.items():
        prev = old.get(f"ref:{ref}")
        if prev == tip:
            continue
        name = short_ref(ref)
        base = [prev] if prev and prev in exclude else []
        for sha in _rev_list(g, tip, base):
            if sha not in fresh:
                gained[sha].add(name)
    return fresh, gained


def _rev_list(g: git.Git, tip: str, exclude: list[str]) -> list[str]:
    out = g.rev_list(tip, *(["--not", *exclude] if exclude else []), "--")
    return str(out).split()


def add_branches(store: LineageStore, sink: Sink, gained: Mapping[str, set[str]]) -> int:
    """Add refs to the ``branches`` of commits read from ``store``, written through ``sink``; returns
    how many commits changed."""
    shas = sorted(gained)
    changed = 0
    for start in range(0, len(shas), _PAGE):
        part = shas[start : start + _PAGE]
        batch = GraphBatch()
        for node in store.get_many([commit_node_id(s) for s in part]):
            if node.placeholder:
                continue
            sha = node.id.partition(":")[2]
            had = node.props.get("branches")
            known = (
                set(had)
                if isinstance(had, list)
                else ({node.props["branch"]} if node.props.get("branch") else set())
            )
            now = sorted(known | gained.get(sha, set()))
            if now != had:
                batch.add_node(node.id, {"branches": now})
                changed += 1
        if batch.nodes:
            sink.write(batch)
    return changed
