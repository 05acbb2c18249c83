"""Objects a repository deploys through Flux Kustomizations and Argo CD Applications, per commit.

Deployers are learnt from the manifests as commits change them. At each commit that changes a
deployer or any directory its last render read, the deployer is rendered again (``render``) and what
it renders is declared with its real namespaces (``placement``): Flux ``targetNamespace`` for every
namespaced object, Argo CD ``destination.namespace`` for objects that name none. Objects a deployer no longer renders are
removed, by identity, unless something else in the commit declares them; a failed render removes
nothing and becomes a notice. Files under a rendered directory are inputs of the render, not
declarations of their own, so the raw parse skips them.

The state outlives a run: a run that starts after stored history rebuilds it at its first commit's
parent (``rebuild``): the deployers from that commit's tree; what each rendered last, and the
directories that render read, from the ``snapshot`` the last run checkpointed at that commit, or
else from the objects the store says each deployer declared there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import git

from liubai.collector.git.deployers import Deployer, find_deployers, repository_key
from liubai.collector.git.history import Change
from liubai.collector.git.placement import explicitly_default, place
from liubai.collector.git.render import Renderer
from liubai.collector.git.repository import is_url
from liubai.collector.ingest import Item, Notice
from liubai.collector.manifests import (
    ManifestCache,
    ObjectKey,
    deleted_records,
    is_manifest_path,
    parse_manifest,
)
from liubai.lineage.records import ManifestObjectRecord

__all__ = ["DeployedState"]

Identity = tuple[str, str, str]


def _under(path: str, folder: str) -> bool:
    return folder == "" or path == folder or path.startswith(folder + "/")


def own_repository_keys(repo: git.Repo, repo_id: str) -> frozenset[str]:
    """The ``repository_key``s this repository is known by: every URL of its remotes (a mirror's
    origin is the URL it was cloned from) and the URL it was ingested from."""
    urls = [repo_id] if is_url(repo_id) else []
    for remote in repo.remotes:
        try:
            urls.extend(remote.urls)
        except git.GitCommandError:
            continue  # a remote without a URL names no repository
    return frozenset(repository_key(u) for u in urls)


@dataclass(slots=True)
class DeployedState:
    """The deployers known so far and what each rendered last."""

    renderer: Renderer
    repo: str
    source: str
    cluster: str | None = None
    deployers: dict[str, Deployer] = field(default_factory=dict)
    inputs: dict[str, frozenset[str]] = field(default_factory=dict)
    rendered: dict[str, list[ObjectKey]] = field(default_factory=dict)
    cache: ManifestCache = field(default_factory=ManifestCache)
    own: frozenset[str] | None = None  # this repository's keys, read on first need

    def snapshot(self, sha: str) -> str:
        """What each deployer rendered last and read, after commit ``sha``: a checkpoint's value."""
        return json.dumps(
            {
                "at": sha,
                "rendered": {
                    label: [[k.api_version, k.kind, k.namespace, k.name] for k in keys]
                    for label, keys in sorted(self.rendered.items())
                },
                "inputs": {label: sorted(dirs) for label, dirs in sorted(self.inputs.items())},
            },
            separators=(",", ":"),
        )

    def rebuild(
        self,
        sha: str,
        manifests: Iterable[tuple[str, str]],
        snapshot: str | None,
        last_rendered: Callable[[], Mapping[str, list[ObjectKey]]],
    ) -> bool:
        """The state after commit ``sha``, as a run that had just read it would hold it: the deployers
        its ``manifests`` (path, text) declare; what each rendered last and read from ``snapshot``
        when it was taken at ``sha``, else ``last_rendered()`` (by deployer label) with the
        directories a render at ``sha`` reads. True when the snapshot served."""
        for path, text in manifests:
            for d in find_deployers(text, path):
                self.deployers[d.label] = d
        saved = _load(snapshot, sha)
        if saved is not None:
            rendered, inputs = saved
            self.rendered = {lb: keys for lb, keys in rendered.items() if lb in self.deployers}
            self.inputs = {lb: dirs for lb, dirs in inputs.items() if lb in self.deployers}
            return True
        for label, keys in last_rendered().items():
            deployer = self.deployers.get(label)
            if deployer is None:
                continue  # its deployer is gone: its objects were removed with it
            self.rendered[label] = list(keys)
            self.inputs[label] = self.renderer.inputs(sha, deployer.path)
        return False

    def is_input(self, path: str) -> bool:
        """A file some deployer renders: declared through the render, not parsed on its own."""
        for label, d in self.deployers.items():
            if _under(path, d.path) or any(_under(path, f) for f in self.inputs.get(label, ())):
                return True
        return False

    def commit_items(
        self, sha: str, changes: list[Change], text_of: Callable[[str], str | None]
    ) -> tuple[list[Item], set[Identity]]:
        """Records of what the commit's deployers render (re-rendered where the commit touched them),
        and the identities they declare."""
        changed = self._learn(changes, text_of)
        paths = [c.path for c in changes] + [c.old_path for c in changes if c.old_path != c.path]
        items: list[Item] = []
        declared: set[Identity] = set()
        for label, d in sorted(self.deployers.items()):
            touched = label in changed or any(
                _under(p, f) for p in paths for f in (self.inputs.get(label) or frozenset({d.path}))
            )
            if touched:
                items.extend(self._render(sha, label, d, declared))
        for label in [lb for lb in self.rendered if lb not in self.deployers]:  # deployer removed
            for key in self.rendered.pop(label):
                items.extend(self._gone(sha, label, key))
        return items, declared

    def removals(self, items: list[Item], declared_elsewhere: set[Identity]) -> list[Item]:
        """Drop the removals of objects the commit declares some other way (raw or another render)."""
        return [
            i
            for i in items
            if not (
                isinstance(i, ManifestObjectRecord)
                and i.deleted
                and (i.kind, i.namespace, i.name) in declared_elsewhere
            )
        ]

    def _learn(self, changes: list[Change], text_of: Callable[[str], str | None]) -> set[str]:
        changed: set[str] = set()
        for c in changes:
            if not (is_manifest_path(c.path) or is_manifest_path(c.old_path)):
                continue
            for label in [lb for lb, d in self.deployers.items() if d.manifest in (c.path, c.old_path)]:
                del self.deployers[label]
                changed.add(label)
            if c.status == "D" or not is_manifest_path(c.path):
                continue
            text = text_of(c.new_blob)
            if self.own is None:
                self.own = own_repository_keys(self.renderer.repo, self.repo)
            for d in find_deployers(text or "", c.path, self.own):
                if self.deployers.get(d.label) != d:
                    changed.add(d.label)
                self.deployers[d.label] = d
        return changed

    def _render(self, sha: str, label: str, d: Deployer, declared: set[Identity]) -> Iterator[Item]:
        result = self.renderer.render(sha, d)
        if result.text is None:
            yield Notice(self.source, f"{sha[:12]}:{d.manifest}", f"cannot render {result.problem}")
            return  # nothing removed: the objects stay as last rendered
        self.inputs[label] = result.inputs | {d.path}
        parsed, keys = parse_manifest(
            result.text, repo=self.repo, commit=sha, path=d.path or ".", cache=self.cache
        )
        new_keys: list[ObjectKey] = []
        explicit = (
            explicitly_default(result.text) if d.default_namespace and not d.target_namespace else set()
        )
        for item in parsed:
            if isinstance(item, ManifestObjectRecord):
                place(item, d, explicit)
                item.rendered_by = label
                item.cluster = self.cluster
                new_keys.append(ObjectKey(item.api_version, item.kind, item.namespace, item.name))
                declared.add((item.kind, item.namespace, item.name))
            yield item
        now = {k.identity for k in new_keys}
        for key in self.rendered.get(label, []):
            if key.identity not in now:
                yield from self._gone(sha, label, key)
        self.rendered[label] = new_keys

    def _gone(self, sha: str, label: str, key: ObjectKey) -> Iterator[ManifestObjectRecord]:
        d = self.deployers.get(label)
        for record in deleted_records([key], repo=self.repo, commit=sha, path=(d.path if d else "") or "."):
            record.rendered_by = label
            record.cluster = self.cluster
            yield record


def _load(
    snapshot: str | None, sha: str
) -> tuple[dict[str, list[ObjectKey]], dict[str, frozenset[str]]] | None:
    """A ``snapshot`` taken at ``sha``, or None (none, another commit's, or unreadable)."""
    if not snapshot:
        return None
    try:
        doc = json.loads(snapshot)
        if doc.get("at") != sha:
            return None
        rendered = {
            str(label): [ObjectKey(*(str(part) for part in key)) for key in keys]
            for label, keys in doc["rendered"].items()
        }
        inputs = {str(label): frozenset(str(d) for d in dirs) for label, dirs in doc["inputs"].items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return rendered, inputs
