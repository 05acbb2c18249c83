"""A repository's commits and the Kubernetes objects their manifests declare, as pipeline items.

Incremental reads: every ingested ref keeps a checkpoint ``ref:<refname>`` -> tip sha under the source
``git:<repo>``, plus ``resume`` -> the last commit stored. Everything reachable from a checkpoint is
already in the store, so a run reads ``<tips> --not <all known checkpoints>`` (``GitCollector.plan``). A
checkpoint that is no longer an ancestor of its ref means history was rewritten (force push): that is
reported as a ``Notice`` and the new commits are read from where the histories meet.

``render`` -> "1" or "0" says how the history was read (``--render`` or file by file). A run that
does not say keeps that reading; a run that switches it re-reads the whole history (``render_switch``).
Which refs are read lives in ``refs``; the render state a rendering read carries across commits and
runs in ``render_state`` (``render_switch`` is importable from here as before).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import git

from liubai.collector.git.blobs import CHUNK_BLOBS, BlobReader
from liubai.collector.git.branches import add_branches, membership
from liubai.collector.git.changes import Parsed, commit_manifest_items, reads_new, reads_old
from liubai.collector.git.history import Change, read_log
from liubai.collector.git.refs import selected_refs
from liubai.collector.git.render import RenderStats
from liubai.collector.git.render_state import deployed_state, render_switch, rendered_items
from liubai.collector.git.rendered import DeployedState
from liubai.collector.git.repository import default_cache_dir, open_repository, repo_identity
from liubai.collector.git.signatures import mark_signatures
from liubai.collector.git.supersede import IDENTITY_VERSION, reread_reason, supersede_stale_ids
from liubai.collector.ingest import Checkpoint, Flush, IngestSummary, Item, Notice, StoreSink, ingest_records
from liubai.collector.manifests import ManifestCache, ObjectKey, is_manifest_path, parse_manifest
from liubai.lineage.declared import DeclaredObject, declared_at
from liubai.lineage.model import RejectedRecord
from liubai.lineage.provenance import GIT_WRITER
from liubai.lineage.records import CommitRecord, ManifestObjectRecord
from liubai.lineage.store.base import LineageStore
from liubai.lineage.text import visible

__all__ = ["GitCollector", "GitPlan", "checkpoints_of", "ingest_git", "render_switch"]

_BLOB_KEYS_CACHE = 8192
_CHUNK_COMMITS = 500
_NULL_BLOB = "0" * 40
_LOOK_BACK = 20  # versions of a broken file searched for its last readable one


@dataclass(slots=True)
class GitPlan:
    """What one run will read: ref tips, the commits already stored, the count, and any rewrite notices."""

    refs: dict[str, str]
    exclude: list[str]
    total: int
    notices: list[Notice] = field(default_factory=list)
    old: dict[str, str] = field(default_factory=dict)  # the checkpoints the plan was made from
    gained: dict[str, set[str]] = field(default_factory=dict)  # stored commits -> refs now containing them


class GitCollector:
    """Commits and manifest objects of one repository, a local path (read in place) or a clone URL.

    ``branch`` selects one ref (a branch, remote branch or tag); the default is the checked-out branch
    (a mirror's default branch). ``all_refs`` reads every branch, remote branch and tag. ``cluster``
    names the cluster the repository deploys to (as ``ingest k8s --cluster`` names it), so that its
    objects meet that cluster's live ones and never another cluster's. ``verify_signatures`` checks
    each signed commit's signature (gpg / ssh-keygen through git); otherwise a signed commit is recorded
    as carrying an ``unverified`` signature. ``render`` renders what the repository's Flux
    Kustomizations and Argo CD Applications deploy (``rendered``) and declares that, with real
    namespaces, instead of the files they read; None keeps the reading the stored history was made
    with (``plan`` settles it).
    """

    def __init__(
        self,
        path_or_url: str,
        branch: str | None = None,
        all_refs: bool = False,
        cache_dir: str | Path | None = None,
        clone_attempts: int = 3,
        cluster: str | None = None,
        verify_signatures: bool = False,
        render: bool | None = False,
    ) -> None:
        self.location = path_or_url
        self.cluster = cluster or None
        self.verify_signatures = verify_signatures
        self.render = bool(render)
        self._render_asked = render
        self._deployed: DeployedState | None = None
        self._render_snapshot: str | None = None  # the render state the last run left (``plan``)
        self.render_state_from = ""  # where this run's render state came from (tests, benches)
        # what the store says a commit's tree declares (``lineage.declared.declared_at``), set by
        # ``ingest_git``: a rendering run that starts after stored history rebuilds its state from it
        self.declared_in_store: Callable[[str], list[DeclaredObject]] | None = None
        self.branch = branch
        self.all_refs = all_refs
        self.repo_id = repo_identity(path_or_url)
        self.source = f"git:{self.repo_id}"
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.clone_attempts = clone_attempts
        self._repo: git.Repo | None = None
        self._blob_keys: OrderedDict[str, list[ObjectKey]] = OrderedDict()
        self._blobs: dict[str, bytes | None] = {}
        self._cat_file: BlobReader | None = None
        self._manifests = ManifestCache()  # documents repeat across commits: each distinct text parsed once

    # ------------------------------------------------------------------ opening
    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self._repo = open_repository(self.location, self.repo_id, self.cache_dir, self.clone_attempts)
            self._repo.git.update_environment(GIT_TERMINAL_PROMPT="0", LC_ALL="C")
        return self._repo

    def close(self) -> None:
        if self._deployed is not None:
            self._deployed.renderer.close()
        if self._cat_file is not None:
            self._cat_file.close()
            self._cat_file = None
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    def __enter__(self) -> GitCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ refs and plan
    def refs(self) -> dict[str, str]:
        """Ref name -> commit sha for the refs this collector reads; names are only stored and shown
        from here on, so bytes in them that are not UTF-8 are escaped (``visible``)."""
        return {
            visible(name): sha
            for name, sha in selected_refs(self.repo, self.repo_id, self.branch, self.all_refs).items()
        }

    def _exists(self, sha: str) -> bool:
        try:
            kind: object = self.repo.git.get_object_header(sha)[1]  # bytes, despite the annotation
        except ValueError:
            return False
        return kind in (b"commit", "commit")

    def _is_ancestor(self, old: str, tip: str) -> bool:
        try:
            self.repo.git.merge_base("--is-ancestor", old, tip)
            return True
        except git.GitCommandError:
            return False

    def plan(self, checkpoints: Mapping[str, str]) -> GitPlan:
        """Decide what to read given the stored checkpoints (key -> sha) of this source."""
        refs = self.refs()
        exclude = sorted(
            {
                sha
                for sha in checkpoints.values()
                if re.fullmatch(r"[0-9a-f]{40,64}", sha) and self._exists(sha)
            }
        )
        notices: list[Notice] = []
        stored_render = checkpoints.get("render") == "1"
        self.render = stored_render if self._render_asked is None else self._render_asked
        self._render_snapshot = checkpoints.get("render-state")
        reread = reread_reason(checkpoints, self.cluster)
        switched = render_switch(checkpoints, self.render)
        if reread:
            notices.append(Notice(self.source, "identity", reread))
        elif switched:
            notices.append(Notice(self.source, "render", switched))
        if reread or switched:
            exclude = []
            reread = reread or switched
        for ref, tip in refs.items() if not reread else ():
            old = checkpoints.get(f"ref:{ref}")
            if not old or old == tip:  # "": a re-read cut short, resumed from ``resume``
                continue
            if old in exclude and self._is_ancestor(old, tip):
                continue
            notices.append(self._rewrite_notice(ref, old, tip, old in exclude))
        total = 0
        if refs:
            total = int(
                self.repo.git.rev_list("--count", *sorted(set(refs.values())), "--not", *exclude, "--")
            )
        return GitPlan(refs=refs, exclude=exclude, total=total, notices=notices, old=dict(checkpoints))

    def _rewrite_notice(self, ref: str, old: str, tip: str, old_exists: bool) -> Notice:
        base = ""
        if old_exists:
            try:
                base = str(self.repo.git.merge_base(old, tip))
            except git.GitCommandError:
                base = ""
        since = (
            f"re-reading from merge-base {base[:12]}"
            if base
            else "no common history: re-reading the whole ref"
        )
        message = (
            f"history rewritten: {ref} moved from {old[:12]} to {tip[:12]}, which does not contain it "
            f"(force push?); {since}"
        )
        return Notice(self.source, f"ref:{ref}", message, old)

    # ------------------------------------------------------------------ reading
    def items(self, plan: GitPlan) -> Iterator[Item]:
        """Notices, then per commit: its record, its manifest objects/rejects, a resume checkpoint;
        finally each ref's checkpoint at its tip."""
        yield from plan.notices
        if plan.refs:
            if any(n.location == "render" for n in plan.notices):
                # a re-read cut short must go on in the new reading, from where it stopped: the old
                # tips would exclude the history not yet re-read
                for key in plan.old:
                    if key.startswith("ref:") or key == "resume":
                        yield Checkpoint(self.source, key, "")
            # before any commit: a run cut short resumes (and its declared view reads) in this reading
            yield Checkpoint(self.source, "render", "1" if self.render else "0")
            branch = None
            if len(plan.refs) == 1:
                name = next(iter(plan.refs))
                branch = re.sub(r"^refs/(heads|remotes|tags)/", "", name)
            fresh, plan.gained = membership(self.repo.git, plan.refs, plan.exclude, plan.old)
            if plan.total:
                revs = [*sorted(set(plan.refs.values())), "--not", *plan.exclude]
                for chunk in self._chunks(read_log(self.repo.git, revs, self.repo_id)):
                    commits = [commit for commit, _ in chunk]
                    mark_signatures(self.repo, self._reader(), commits, verify=self.verify_signatures)
                    self._fetch_blobs(chunk)
                    for commit, changes in chunk:
                        commit.branches = tuple(sorted(fresh.get(commit.sha, ())))
                        yield from self._commit_items(commit, changes, branch)
                        yield Checkpoint(self.source, "resume", commit.sha)
                    if self._deployed is not None:  # the next run's render state, if it starts here
                        yield Checkpoint(
                            self.source, "render-state", self._deployed.snapshot(commits[-1].sha)
                        )
                    self._blobs.clear()
                    yield Flush()  # stored chunk by chunk: a later failure keeps what was read
            for ref, tip in plan.refs.items():
                yield Checkpoint(self.source, f"ref:{ref}", tip)
            yield Checkpoint(self.source, "identity", IDENTITY_VERSION)
            yield Checkpoint(self.source, "cluster", self.cluster or "")

    @staticmethod
    def _chunks(
        commits: Iterator[tuple[CommitRecord, list[Change]]],
    ) -> Iterator[list[tuple[CommitRecord, list[Change]]]]:
        """Groups of commits whose manifest blobs are fetched in one bulk request."""
        chunk: list[tuple[CommitRecord, list[Change]]] = []
        blobs = 0
        for commit, changes in commits:
            chunk.append((commit, changes))
            blobs += sum(2 for c in changes if is_manifest_path(c.path) or is_manifest_path(c.old_path))
            if len(chunk) >= _CHUNK_COMMITS or blobs >= CHUNK_BLOBS:
                yield chunk
                chunk, blobs = [], 0
        if chunk:
            yield chunk

    def _fetch_blobs(self, chunk: list[tuple[CommitRecord, list[Change]]]) -> None:
        """Read every manifest blob a group of commits needs (new versions, and old versions whose
        objects are not cached) in one pipelined ``cat-file --batch`` exchange."""
        wanted: dict[str, None] = {}
        for _, changes in chunk:
            for c in changes:
                if reads_new(c):
                    wanted[c.new_blob] = None
                if reads_old(c) and c.old_blob not in self._blob_keys:
                    wanted[c.old_blob] = None
        wanted.pop(_NULL_BLOB, None)
        if wanted:
            self._blobs.update(self._reader().read_many(list(wanted)))

    def _reader(self) -> BlobReader:
        if self._cat_file is None:
            self._cat_file = BlobReader(self.repo)
        return self._cat_file

    def _commit_items(
        self, commit: CommitRecord, changes: list[Change], branch: str | None
    ) -> Iterator[Item]:
        commit.changed_paths = tuple(c.path for c in changes)
        commit.branch = branch
        yield commit
        if not self.render:
            yield from commit_manifest_items(
                commit.sha, changes, self._parse_blob, self.repo_id, self.cluster, None, self._last_complete
            )
            return
        for item in self._rendered_items(commit, changes):
            if isinstance(item, ManifestObjectRecord):
                item.with_render = True
            yield item

    def _rendered_items(self, commit: CommitRecord, changes: list[Change]) -> Iterator[Item]:
        if self._deployed is None:  # this run's first commit: the state after its parent
            parent = commit.parents[0] if commit.parents else None
            where = (self.repo_id, self.source, self.cluster)
            self._deployed, self.render_state_from = deployed_state(
                self.repo, self._reader(), where, parent, self._render_snapshot, self.declared_in_store
            )

        def raw(own: list[Change], declared: set[tuple[str, str, str]]) -> Iterator[Item]:
            return commit_manifest_items(
                commit.sha, own, self._parse_blob, self.repo_id, self.cluster, declared, self._last_complete
            )

        yield from rendered_items(self._deployed, commit.sha, changes, self._text_of, raw)

    @property
    def render_stats(self) -> RenderStats | None:
        """What rendering cost in this run (None when rendering is off or nothing was rendered)."""
        return self._deployed.renderer.stats if self._deployed is not None else None

    def _last_complete(self, path: str, sha: str) -> list[ObjectKey]:
        """The keys of ``path``'s last version before ``sha`` (first-parent) that parsed whole; [] if
        none in the last ``_LOOK_BACK`` versions. Only asked for a file that was broken."""
        revs = str(self.repo.git.rev_list("--first-parent", "-n", str(_LOOK_BACK), f"{sha}^", "--", path))
        for rev in revs.split():
            try:
                blob = str(self.repo.git.rev_parse("--verify", "--quiet", f"{rev}:{path}"))
            except git.GitCommandError:
                return []  # the file did not exist there: nothing older counts
            parsed = self._parse_blob(blob, rev, path, False)
            if parsed.complete:
                return parsed.keys
        return []

    def _text_of(self, blob: str) -> str | None:
        data = self._blobs.get(blob)
        if data is None and blob not in self._blobs:
            data = self._reader().read_many([blob])[blob]
        return None if data is None else data.decode("utf-8", "replace")

    def _parse_blob(self, blob: str, sha: str, path: str, want_items: bool) -> Parsed:
        cached = None if want_items else self._blob_keys.get(blob)
        if cached is not None:
            return Parsed([], cached, True)
        data = self._blobs.get(blob)
        if data is None and blob not in self._blobs:
            data = self._reader().read_many([blob])[blob]
        if data is None:
            reject = RejectedRecord(
                self.source, f"{sha[:12]}:{path}", f"blob {blob[:12]} is missing from the repository"
            )
            return Parsed([reject] if want_items else [], [], False)
        items, keys = parse_manifest(data, repo=self.repo_id, commit=sha, path=path, cache=self._manifests)
        complete = not any(isinstance(i, RejectedRecord) for i in items)
        if complete:
            self._blob_keys[blob] = keys
            if len(self._blob_keys) > _BLOB_KEYS_CACHE:
                self._blob_keys.popitem(last=False)
        return Parsed(list(items) if want_items else [], keys, complete)


def ingest_git(
    store: LineageStore,
    collector: GitCollector,
    *,
    batch_size: int = 2000,
    progress: Callable[[IngestSummary], None] | None = None,
    plan: GitPlan | None = None,
) -> IngestSummary:
    """Read what is new in the collector's refs and store it in batches; checkpoints move with the data."""
    if plan is None:
        plan = collector.plan(checkpoints_of(store, collector.source))
    sink = StoreSink(store, GIT_WRITER)  # the run's writes outside its record stream go this way too
    if any(n.location == "identity" for n in plan.notices):
        supersede_stale_ids(store, sink, collector.repo_id, collector.cluster)
    collector.declared_in_store = lambda sha: declared_at(store, sha).objects
    items = collector.items(plan)
    summary = ingest_records(
        store, items, batch_size=batch_size, progress=progress, retry=sink.retry, writer=GIT_WRITER
    )
    add_branches(store, sink, plan.gained)  # stored commits a ref now contains: known once the run read it
    return summary


def checkpoints_of(store: LineageStore, source: str) -> dict[str, str]:
    return {key: value for (src, key), value in store.checkpoints(source).items() if src == source}
