"""Render state across runs, for ``GitCollector`` reading with ``--render``.

A rendering read carries what each deployer rendered last from one commit to the next
(``rendered.DeployedState``). A run that starts after stored history gets that state back at its first
commit's parent (``deployed_state``): from the ``render-state`` checkpoint the last run left there, or
else from what the store says that commit declared. Each commit's items are then the renders plus the
raw parse of the files no deployer reads (``rendered_items``). Switching ``--render`` re-reads the whole
history (``render_switch``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import git

from liubai.collector.git.blobs import BlobReader
from liubai.collector.git.changes import SKIP_MODES
from liubai.collector.git.history import Change
from liubai.collector.git.render import Renderer
from liubai.collector.git.rendered import DeployedState
from liubai.collector.ingest import Item
from liubai.collector.manifests import ObjectKey, is_manifest_path
from liubai.lineage.declared import DeclaredObject
from liubai.lineage.records import ManifestObjectRecord

__all__ = ["deployed_state", "manifests_at", "render_switch", "rendered_items"]

Identity = tuple[str, str, str]
# the raw parse of a commit's files that no deployer reads, given what its renders declare
RawItems = Callable[[list[Change], set[Identity]], Iterable[Item]]


def deployed_state(
    repo: git.Repo,
    reader: BlobReader,
    where: tuple[str, str, str | None],
    parent: str | None,
    snapshot: str | None,
    declared_in_store: Callable[[str], list[DeclaredObject]] | None,
) -> tuple[DeployedState, str]:
    """The deployers and their last renders as they stood after ``parent``, and where that came from
    ("checkpoint", "store", or "" when nothing was read back). ``where`` is (repo id, source, cluster).
    Read before this run when this run starts after stored history (the first commit read has a
    parent), else empty."""
    repo_id, source, cluster = where
    state = DeployedState(Renderer(repo), repo_id, source, cluster)
    if parent is None or declared_in_store is None:
        return state, ""
    in_store = declared_in_store

    def last_rendered() -> dict[str, list[ObjectKey]]:
        """From the store (a walk of the first-parent history): when the snapshot does not fit."""
        last: dict[str, list[ObjectKey]] = {}
        for obj in in_store(parent):
            if obj.rendered_by:
                p = obj.node.props
                key = ObjectKey(*(str(p.get(k) or "") for k in ("api_version", "kind", "namespace", "name")))
                last.setdefault(obj.rendered_by, []).append(key)
        return last

    served = state.rebuild(parent, manifests_at(repo, reader, parent), snapshot, last_rendered)
    return state, "checkpoint" if served else "store"


def manifests_at(repo: git.Repo, reader: BlobReader, sha: str) -> Iterator[tuple[str, str]]:
    """(path, text) of the manifests in ``sha``'s tree that may declare a deployer."""
    out = repo.git.ls_tree("-r", "-z", "--full-tree", sha, stdout_as_string=False)
    blobs: dict[str, str] = {}
    for entry in out.split(b"\0"):
        meta, _, raw_path = entry.partition(b"\t")
        parts = meta.split()
        path = raw_path.decode("utf-8", "surrogateescape")
        if len(parts) == 3 and parts[1] == b"blob" and parts[0].decode() not in SKIP_MODES:
            if is_manifest_path(path):
                blobs[path] = parts[2].decode()
    found = reader.read_many(sorted(set(blobs.values())))
    for path, blob in blobs.items():
        data = found.get(blob)
        if data is not None:
            yield path, data.decode("utf-8", "replace")


def rendered_items(
    state: DeployedState,
    sha: str,
    changes: list[Change],
    text_of: Callable[[str], str | None],
    raw_items: RawItems,
) -> Iterator[Item]:
    """A commit's items in a rendering read: the raw parse of the files no deployer reads, then what
    its deployers render (less the removals of objects that raw parse still declares)."""
    rendered, declared = state.commit_items(sha, changes, text_of)
    own = [c for c in changes if not (state.is_input(c.path) or state.is_input(c.old_path))]
    raw = list(raw_items(own, declared))
    yield from raw
    raw_declared = {
        (i.kind, i.namespace, i.name) for i in raw if isinstance(i, ManifestObjectRecord) and not i.deleted
    }
    yield from state.removals(rendered, raw_declared)


def render_switch(checkpoints: Mapping[str, str], render: bool) -> str:
    """Why the whole history must be read again because ``--render`` was switched, or "". What one
    reading declared (base files on their own, or rendered objects) is no evidence for the other,
    and a later commit's render depends on every earlier one, so nothing short of the whole history
    gives the answer a single run would."""
    if not any(key.startswith("ref:") for key in checkpoints):
        return ""
    was = checkpoints.get("render") == "1"
    if was == render:
        return ""
    if render:
        return (
            "--render switched on: re-reading the whole history so that every commit declares what its "
            "Flux Kustomizations and Argo CD Applications render (pass --no-render to go back)"
        )
    return (
        "--no-render: re-reading the whole history file by file; rendered objects no longer count "
        "(pass --render to go back)"
    )
