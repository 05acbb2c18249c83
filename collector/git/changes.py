"""What one commit changes in the set of declared objects, compared by object identity across the commit.

A commit's raw changes are read per file, but an object is not a file: it moves between files, its
apiVersion is bumped, its file is renamed. So every object the commit's changed files declared before
(old blobs) and declare after (new blobs) is gathered first, and an object counts as removed only when
its identity (kind, namespace, name; ``ObjectKey.identity``) is declared by none of the new versions. A
file whose new version cannot be read (invalid YAML, not UTF-8, too large, a missing blob) removes
nothing: its objects stay as last known, beside the reject that says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from liubai.collector.git.history import Change
from liubai.collector.ingest import Item
from liubai.collector.manifests import ObjectKey, deleted_records, is_manifest_path
from liubai.lineage.records import ManifestObjectRecord

__all__ = ["SKIP_MODES", "Parsed", "commit_manifest_items", "reads_new", "reads_old"]

SKIP_MODES = ("160000", "120000")  # submodules and symlinks carry no manifest text


@dataclass(slots=True)
class Parsed:
    """One blob's outcome: its records (objects and rejects), the keys of its good objects, and whether
    the whole file was read (False for a file-level failure or any rejected document)."""

    items: list[Item]
    keys: list[ObjectKey]
    complete: bool


# (blob id, commit sha, path, want_items) -> Parsed
ParseBlob = Callable[[str, str, str, bool], Parsed]


def reads_new(c: Change) -> bool:
    return c.status != "D" and is_manifest_path(c.path) and c.new_mode not in SKIP_MODES


def reads_old(c: Change) -> bool:
    return c.status in "DMRT" and is_manifest_path(c.old_path) and c.old_mode not in SKIP_MODES


def commit_manifest_items(
    sha: str,
    changes: list[Change],
    parse: ParseBlob,
    repo: str,
    cluster: str | None = None,
    also_declared: set[tuple[str, str, str]] | None = None,
    last_complete: Callable[[str, str], list[ObjectKey]] | None = None,
) -> Iterator[Item]:
    """The records of every object the commit's changed manifests declare, then a ``deleted`` record
    for each object that no new version declares any more (by identity, across all changed files);
    objects are ``cluster``'s when the repository names the cluster it deploys to. ``last_complete``
    gives the keys of a file's last readable version before a commit, for a file that was broken."""
    declared: set[tuple[str, str, str]] = set(also_declared or ())  # e.g. by a render in this commit
    kept: set[tuple[str, str, str]] = set()  # objects of files that did not parse: last known stays
    before: dict[tuple[str, str, str], tuple[ObjectKey, str]] = {}
    for c in changes:
        new_complete = True
        if reads_new(c):
            parsed = parse(c.new_blob, sha, c.path, True)
            for item in parsed.items:
                if cluster is not None and isinstance(item, ManifestObjectRecord):
                    item.cluster = cluster
                yield item
            declared.update(k.identity for k in parsed.keys)
            new_complete = parsed.complete
        if reads_old(c):
            old = parse(c.old_blob, sha, c.old_path, False)
            keys = old.keys
            if not old.complete and last_complete is not None:
                # the file was broken before this commit: what it declared is its last readable version's
                keys = [*keys, *last_complete(c.old_path, sha)]
            for key in keys:
                before.setdefault(key.identity, (key, c.old_path))
                if not new_complete:
                    kept.add(key.identity)
    gone = [
        (key, path) for ident, (key, path) in before.items() if ident not in declared and ident not in kept
    ]
    for key, path in gone:
        for record in deleted_records([key], repo=repo, commit=sha, path=path):
            record.cluster = cluster
            yield record
