"""What a repository deploys through a controller: Flux ``Kustomization`` and Argo CD ``Application``
objects found in its manifests, each with the path it renders and the namespace it deploys into.

Only what rendering needs is read: the path, Flux ``targetNamespace`` and ``postBuild.substitute``,
Argo CD ``destination.namespace`` and a local Helm source (``helm`` block, or a chart at the path).
An Application whose source is another repository (its ``repoURL`` is none of this repository's
remote URLs, compared by ``repository_key``) is not rendered here; where this repository has no URL
(a local clone without remotes) there is nothing to compare, and every Application is rendered.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = ["Deployer", "find_deployers", "repository_key", "substitute"]

_FLUX_GROUP = "kustomize.toolkit.fluxcd.io/"
_ARGO_GROUP = "argoproj.io/"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::=([^}]*))?\}")
_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?([^/:]+):(?!//)(.*)$")  # git@host:owner/repo.git


def repository_key(url: str) -> str:
    """What names one repository whatever the URL's form: host and path, lower-cased (as Argo CD
    compares them), without scheme, user, port, ``.git`` suffix or trailing slash, so
    ``git@github.com:Org/App.git``, ``ssh://git@github.com:22/org/app`` and
    ``https://github.com/org/app/`` are one repository."""
    text = url.strip()
    scp = None if "://" in text else _SCP_LIKE.match(text)
    if scp is not None:
        host, path = scp.group(1), scp.group(2)
    else:
        parts = urlsplit(text)
        host, path = parts.hostname or "", parts.path
    path = path.strip("/")
    path = path.removesuffix(".git").rstrip("/")
    return f"{host}/{path}".lower()


@dataclass(frozen=True, slots=True)
class Deployer:
    """One controller object that renders a path of this repository."""

    kind: str  # Kustomization (Flux) or Application (Argo CD)
    namespace: str
    name: str
    path: str  # repository-relative, normalised, "" for the root
    manifest: str  # the file that declares the deployer
    target_namespace: str = ""  # Flux targetNamespace: every namespaced object goes there
    default_namespace: str = ""  # Argo CD destination.namespace: objects that name none go there
    substitute: tuple[tuple[str, str], ...] = ()  # Flux postBuild.substitute
    helm: bool = False
    helm_release: str = ""
    value_files: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


def _path(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    norm = posixpath.normpath(value.strip().lstrip("/")) if value.strip() not in ("", ".", "./") else ""
    return "" if norm == "." else norm


def _flux(doc: Mapping[str, Any], ns: str, name: str, manifest: str) -> Deployer | None:
    spec = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    path = _path(spec.get("path", "./"))
    if path is None:
        return None
    post = spec.get("postBuild") if isinstance(spec.get("postBuild"), Mapping) else {}
    assert isinstance(post, Mapping)
    subs = post.get("substitute") if isinstance(post.get("substitute"), Mapping) else {}
    assert isinstance(subs, Mapping)
    target = spec.get("targetNamespace")
    return Deployer(
        "Kustomization",
        ns,
        name,
        path,
        manifest,
        target_namespace=target if isinstance(target, str) else "",
        substitute=tuple(sorted((str(k), str(v)) for k, v in subs.items())),
    )


def _is_own(source: Mapping[str, Any], own: Collection[str]) -> bool:
    """Whether a source is this repository: its ``repoURL`` is one of ``own`` (repository keys); with
    no key to compare (``own`` empty), any source is taken for this repository's."""
    url = source.get("repoURL")
    return not own or (isinstance(url, str) and repository_key(url) in own)


def _argo(doc: Mapping[str, Any], ns: str, name: str, manifest: str, own: Collection[str]) -> Deployer | None:
    spec = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    source = spec.get("source")
    if not isinstance(source, Mapping):
        sources = spec.get("sources")
        source = next(
            (s for s in sources or [] if isinstance(s, Mapping) and "path" in s and _is_own(s, own)), None
        )
    if not isinstance(source, Mapping) or source.get("chart") or not _is_own(source, own):
        return None  # a chart from a Helm repository, or another repository: not rendered from this one
    path = _path(source.get("path"))
    if path is None:
        return None
    dest = spec.get("destination") if isinstance(spec.get("destination"), Mapping) else {}
    assert isinstance(dest, Mapping)
    helm = source.get("helm") if isinstance(source.get("helm"), Mapping) else None
    value_files: tuple[str, ...] = ()
    release = name
    if isinstance(helm, Mapping):
        files = helm.get("valueFiles")
        value_files = tuple(str(f) for f in files) if isinstance(files, list) else ()
        release = str(helm.get("releaseName") or name)
    target = dest.get("namespace")
    return Deployer(
        "Application",
        ns,
        name,
        path,
        manifest,
        default_namespace=target if isinstance(target, str) else "",
        helm=helm is not None,
        helm_release=release,
        value_files=value_files,
    )


def find_deployers(text: str, manifest: str, own: Collection[str] = ()) -> list[Deployer]:
    """The Flux Kustomizations and Argo CD Applications a manifest declares; a file that does not parse
    declares none (the manifest parser rejects it with the reason). ``own``: this repository's
    ``repository_key``s; an Application whose source is none of them is left out (none given: kept)."""
    if _FLUX_GROUP not in text and _ARGO_GROUP not in text:
        return []
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return []
    found: list[Deployer] = []
    for doc in docs:
        if not isinstance(doc, Mapping):
            continue
        api, kind, meta = doc.get("apiVersion"), doc.get("kind"), doc.get("metadata")
        if not isinstance(api, str) or not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
            continue
        ns = str(meta.get("namespace") or "default")
        if api.startswith(_FLUX_GROUP) and kind == "Kustomization":
            d = _flux(doc, ns, meta["name"], manifest)
        elif api.startswith(_ARGO_GROUP) and kind == "Application":
            d = _argo(doc, ns, meta["name"], manifest, own)
        else:
            continue
        if d is not None:
            found.append(d)
    return found


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Flux ``postBuild.substitute``: ``${var}`` and ``${var:=default}`` replaced; a variable with no
    value and no default is left as written (and flagged by the manifest parser)."""

    def one(m: re.Match[str]) -> str:
        if m.group(1) in values:
            return values[m.group(1)]
        return m.group(2) if m.group(2) is not None else m.group(0)

    return _VAR.sub(one, text)
