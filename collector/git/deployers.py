"""What a repository deploys through a controller: Flux ``Kustomization`` and Argo CD ``Application``
objects found in its manifests, each with the path it renders and the namespace it deploys into.

Only what rendering needs is read: the path, Flux ``targetNamespace`` and ``postBuild.substitute``,
Argo CD ``destination.namespace`` and a local Helm source (``helm`` block, or a chart at the path).
An Application whose source is another repository (``repoURL`` not this one) is not rendered here.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["Deployer", "find_deployers", "substitute"]

_FLUX_GROUP = "kustomize.toolkit.fluxcd.io/"
_ARGO_GROUP = "argoproj.io/"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::=([^}]*))?\}")


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


def _argo(doc: Mapping[str, Any], ns: str, name: str, manifest: str) -> Deployer | None:
    spec = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    source = spec.get("source")
    if not isinstance(source, Mapping):
        sources = spec.get("sources")
        source = next((s for s in sources or [] if isinstance(s, Mapping) and "path" in s), None)
    if not isinstance(source, Mapping) or source.get("chart"):
        return None  # a chart from a Helm repository: not in this repository
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


def find_deployers(text: str, manifest: str) -> list[Deployer]:
    """The Flux Kustomizations and Argo CD Applications a manifest declares; a file that does not parse
    declares none (the manifest parser rejects it with the reason)."""
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
            d = _argo(doc, ns, meta["name"], manifest)
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
