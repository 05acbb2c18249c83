"""Which commit an object is being applied from: asked of the GitOps controller that applies it.

Argo CD marks what it applies with a ``argocd.argoproj.io/tracking-id`` annotation (or the
``app.kubernetes.io/instance`` label) naming its Application, whose status holds the revision being
synced. Flux labels objects with their Kustomization (``kustomize.toolkit.fluxcd.io/name`` and
``/namespace``) or HelmRelease (``helm.toolkit.fluxcd.io/*``). A Kustomization's
``status.lastAttemptedRevision`` is the revision being applied (``main@sha1:<sha>``). A HelmRelease's is
a chart version: for a chart built from a GitRepository with ``reconcileStrategy: Revision`` it is
``<version>+<first 12 hex of the commit>`` (source-controller shortens it for label length), and the
HelmChart the release names in ``status.helmChart`` holds the full ``observedSourceArtifactRevision``;
the commit is that one when its first 12 hex are the chart version's. Failing those, a
``liubai.dev/commit`` annotation that the request itself sets (``liubai annotate --commit-only``) names
the commit.

Nothing is linked by guesswork: a controller's revision counts only for a request the controller made
(its service account, ``controller_users``), since a person editing a labelled object by hand deploys no
commit; an OCI digest or a bare chart version is not a commit, nor is a HelmChart's source revision
that the chart being applied was not built from; and why no commit was found is kept as a note.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from liubai.collector.admission.kinds import dig
from liubai.collector.admission.stamp import COMMIT_ANNOTATION
from liubai.lineage.text import clip

__all__ = [
    "ARGOCD_APPLICATION",
    "DEFAULT_CONTROLLER_USERS",
    "FLUX_HELMCHART",
    "FLUX_HELMRELEASE",
    "FLUX_KUSTOMIZATION",
    "Commit",
    "GitOpsSettings",
    "ObjectReader",
    "ObjectRef",
    "ReadFailed",
    "Resolution",
    "parse_commit",
    "parse_flux_revision",
    "resolve_commit",
]

DEFAULT_CONTROLLER_USERS = (
    "system:serviceaccount:*:argocd-application-controller",
    "system:serviceaccount:*:kustomize-controller",
    "system:serviceaccount:*:helm-controller",
)
TRACKING_ID = "argocd.argoproj.io/tracking-id"
INSTANCE_LABEL = "app.kubernetes.io/instance"
_HEX = re.compile(r"[0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?")
_FLUX = re.compile(r"(?:.*@)?(sha1|sha256):([0-9a-fA-F]+)")
_FLUX_LEGACY = re.compile(r"[^@]*/([0-9a-fA-F]{40})")  # Flux before 2.0: "main/<sha>"
# a chart version with source-controller's build metadata: "+<12 hex>", then ".<generation>" with valuesFiles
_CHART_FROM_REVISION = re.compile(r"[^+]+\+([0-9a-fA-F]{12})(?:\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Commit:
    """A full commit id and the audit-id key that names its hash (``git-sha1`` or ``git-sha256``)."""

    sha: str
    key: str


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A GitOps controller object to read: its API group, version, plural, kind, namespace and name."""

    group: str
    version: str
    plural: str
    kind: str
    namespace: str
    name: str

    @property
    def label(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class _Kind:
    group: str
    version: str
    plural: str
    kind: str
    source: str  # the commit_source an admission record names

    def ref(self, namespace: str, name: str) -> ObjectRef:
        return ObjectRef(self.group, self.version, self.plural, self.kind, namespace, name)


ARGOCD_APPLICATION = _Kind("argoproj.io", "v1alpha1", "applications", "Application", "argocd")
FLUX_KUSTOMIZATION = _Kind(
    "kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization", "flux-kustomization"
)
FLUX_HELMRELEASE = _Kind("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease", "flux-helmrelease")
FLUX_HELMCHART = _Kind("source.toolkit.fluxcd.io", "v1", "helmcharts", "HelmChart", "flux-helmrelease")


class ReadFailed(Exception):
    """The object could not be read (API server unreachable, forbidden): says why in one line."""


class ObjectReader(Protocol):
    def get(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        """The object, or None if it does not exist; ``ReadFailed`` if it could not be read."""
        ...


@dataclass(frozen=True, slots=True)
class GitOpsSettings:
    """``argocd_namespace``: where Applications live unless a tracking id names another namespace.
    ``controller_users``: glob patterns of the users whose requests are a GitOps controller's."""

    argocd_namespace: str = "argocd"
    controller_users: tuple[str, ...] = DEFAULT_CONTROLLER_USERS

    def is_controller(self, username: str) -> bool:
        return any(fnmatch.fnmatchcase(username, pattern) for pattern in self.controller_users)


@dataclass(frozen=True, slots=True)
class Resolution:
    """The commit found (None if none) and its source; ``notes`` say what was tried and why it gave none."""

    commit: Commit | None = None
    source: str | None = None
    notes: tuple[str, ...] = field(default=())


def parse_commit(text: Any) -> Commit | None:
    """A bare 40- or 64-hex commit id (lower-cased), else None."""
    if not isinstance(text, str) or not _HEX.fullmatch(text.strip()):
        return None
    sha = text.strip().lower()
    return Commit(sha, "git-sha1" if len(sha) == 40 else "git-sha256")


def parse_flux_revision(text: Any, *, git_source: bool = True) -> Commit | None:
    """The commit of a Flux revision: ``<ref>@sha1:<sha>``, ``sha1:<sha>``, ``<ref>@sha256:<sha>`` (a
    SHA-256 Git repository, only when ``git_source``: from an OCI repository it is an artifact digest),
    the legacy ``<branch>/<sha>`` or a bare sha. None for anything else (a chart version)."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    m = _FLUX.fullmatch(text)
    if m is not None:
        algo, sha = m.group(1), m.group(2).lower()
        if algo == "sha1" and len(sha) == 40:
            return Commit(sha, "git-sha1")
        if algo == "sha256" and len(sha) == 64 and git_source:
            return Commit(sha, "git-sha256")
        return None
    m = _FLUX_LEGACY.fullmatch(text)
    if m is not None:
        return Commit(m.group(1).lower(), "git-sha1")
    return parse_commit(text)


def _meta(obj: Mapping[str, Any], key: str) -> dict[str, str]:
    value = dig(obj, ("metadata", key))
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def gitops_refs(obj: Mapping[str, Any], settings: GitOpsSettings) -> list[tuple[_Kind, ObjectRef]]:
    """The controller objects the object's labels and annotations name, in the order they are asked."""
    labels, annotations = _meta(obj, "labels"), _meta(obj, "annotations")
    refs: list[tuple[_Kind, ObjectRef]] = []
    tracking = annotations.get(TRACKING_ID)
    app = tracking.partition(":")[0] if tracking else labels.get(INSTANCE_LABEL)
    if app:
        namespace, sep, name = app.partition("_")  # apps in any namespace: "<namespace>_<name>"
        if not sep:
            namespace, name = settings.argocd_namespace, app
        refs.append((ARGOCD_APPLICATION, ARGOCD_APPLICATION.ref(namespace, name)))
    for kind, prefix in ((FLUX_KUSTOMIZATION, "kustomize"), (FLUX_HELMRELEASE, "helm")):
        flux_name = labels.get(f"{prefix}.toolkit.fluxcd.io/name")
        flux_namespace = labels.get(f"{prefix}.toolkit.fluxcd.io/namespace")
        if flux_name and flux_namespace:
            refs.append((kind, kind.ref(flux_namespace, flux_name)))
    return refs


def _revision(kind: _Kind, obj: Mapping[str, Any], ref: ObjectRef) -> tuple[Commit | None, str]:
    """The commit a controller object says it applies, or None and why not."""
    if kind is ARGOCD_APPLICATION:
        revision = dig(obj, ("status", "sync", "revision"))
        if dig(obj, ("status", "operationState", "phase")) == "Running":  # the revision being synced now
            revision = dig(obj, ("status", "operationState", "operation", "sync", "revision")) or revision
        commit = parse_commit(revision)
    else:
        revision = dig(obj, ("status", "lastAttemptedRevision"))
        source_kind = dig(obj, ("spec", "sourceRef", "kind"))
        commit = parse_flux_revision(revision, git_source=source_kind in (None, "GitRepository"))
    if commit is not None:
        return commit, ""
    if not revision:
        return None, f"{ref.label} reports no revision yet"
    return None, f"{ref.label} revision {clip(str(revision), 80)!r} is not a Git commit"


def _helm_chart_commit(
    release: Mapping[str, Any], ref: ObjectRef, reader: ObjectReader, why: str
) -> tuple[Commit | None, str]:
    """The commit a HelmRelease's chart was built from, through its HelmChart; else None and why not."""
    version = dig(release, ("status", "lastAttemptedRevision"))
    built = _CHART_FROM_REVISION.fullmatch(version) if isinstance(version, str) else None
    if built is None:
        return None, why  # a chart from a Helm repository, or not built per revision: no commit
    prefix = built.group(1).lower()
    chart_name = dig(release, ("status", "helmChart"))
    namespace, sep, name = chart_name.partition("/") if isinstance(chart_name, str) else ("", "", "")
    if not sep:
        return None, f"{why}; it names no HelmChart (status.helmChart) to read the full commit from"
    chart = FLUX_HELMCHART.ref(namespace, name)
    try:
        found = reader.get(chart)
    except ReadFailed as exc:
        return None, f"{why}; {chart.label}: {exc}"
    if found is None:
        return None, f"{why}; {chart.label} not found"
    if dig(found, ("spec", "sourceRef", "kind")) != "GitRepository":
        return None, f"{why}; {chart.label} is not built from a GitRepository"
    observed = dig(found, ("status", "observedSourceArtifactRevision"))
    commit = parse_flux_revision(observed)
    if commit is None or not commit.sha.startswith(prefix):
        # the HelmChart has moved on to (or not yet reached) the commit of the chart being applied
        return None, (
            f"{why}; {chart.label} source revision {clip(str(observed), 80)!r} is not the commit "
            f"{prefix} the chart was built from"
        )
    return commit, ""


def resolve_commit(
    obj: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    username: str,
    reader: ObjectReader | None,
    settings: GitOpsSettings,
) -> Resolution:
    """The commit ``obj`` is applied from, as its GitOps controller or the request itself says."""
    notes: list[str] = []
    refs = gitops_refs(obj, settings)
    if refs and not settings.is_controller(username):
        names = ", ".join(ref.label for _, ref in refs)
        notes.append(
            f"{names}: not asked, {clip(username, 80)} is not a GitOps controller (--controller-user)"
        )
    elif refs and reader is None:
        notes.append(f"{refs[0][1].label}: not read, the webhook has no access to the cluster")
    else:
        for kind, ref in refs:
            try:
                found = reader.get(ref) if reader is not None else None
            except ReadFailed as exc:
                notes.append(f"{ref.label}: {exc}")
                continue
            if found is None:
                notes.append(f"{ref.label} not found")
                continue
            commit, why = _revision(kind, found, ref)
            if commit is None and kind is FLUX_HELMRELEASE and reader is not None:
                commit, why = _helm_chart_commit(found, ref, reader, why)
            if commit is not None:
                return Resolution(commit, kind.source)
            notes.append(why)
    raw = _meta(obj, "annotations").get(COMMIT_ANNOTATION)
    if raw is not None and (old is None or _meta(old, "annotations").get(COMMIT_ANNOTATION) != raw):
        commit = parse_commit(raw)
        if commit is not None:
            return Resolution(commit, "annotation")
        notes.append(f"{COMMIT_ANNOTATION} {clip(raw, 80)!r} is not a 40- or 64-hex commit id")
    if not refs and raw is None:
        notes.append(f"no Argo CD or Flux labels and no {COMMIT_ANNOTATION} annotation")
    return Resolution(None, None, tuple(notes))
