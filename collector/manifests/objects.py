"""What a manifest document declares: the Kubernetes objects in it (a ``kind: List`` holds several), each
with its key and audit ids, or the reason it is rejected. Documents that are no Kubernetes object at all,
and kustomize configs, declare nothing."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from liubai.collector.manifests.scope import is_cluster_scoped
from liubai.collector.manifests.yaml_load import RAW_KEEP, Refused
from liubai.lineage.model import AUDIT_ID_ANNOTATION

__all__ = ["Declared", "ObjectKey", "Outcome", "Skipped", "audit_ids_of", "document_outcome"]


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """What identifies a declared object: enough to say "this object is gone" in a later version."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @property
    def identity(self) -> tuple[str, str, str]:
        """Who the object is, whatever its apiVersion: ``apps/v1beta2`` and ``apps/v1`` of one
        Deployment are one object, so an apiVersion bump is a change, not a removal."""
        return (self.kind, self.namespace, self.name)


def _snippet(value: Any) -> str:
    if isinstance(value, str):
        return value[:RAW_KEEP]
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000)
    except yaml.YAMLError:
        text = repr(value)
    return text[:RAW_KEEP].rstrip("\n")


def _annotation(meta: Any) -> str | None:
    if not isinstance(meta, Mapping):
        return None
    ann = meta.get("annotations")
    if not isinstance(ann, Mapping) or AUDIT_ID_ANNOTATION not in ann:
        return None
    value = ann[AUDIT_ID_ANNOTATION]
    return "" if value is None else str(value)


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def audit_ids_of(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """``x-gitops-audit-id`` values on the object, its pod template and a CronJob's job template."""
    found: list[str] = []
    for meta in (
        obj.get("metadata"),
        _dig(obj, "spec", "template", "metadata"),
        _dig(obj, "spec", "jobTemplate", "spec", "template", "metadata"),
    ):
        value = _annotation(meta)
        if value is not None and value not in found:
            found.append(value)
    return tuple(found)


_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
# Configs of tools that share the Kubernetes shape but are never applied to a cluster
_TOOL_API_PREFIXES = (
    "kustomize.config.k8s.io/",
    "config.kubernetes.io/",
    "skaffold/",
    "kind.x-k8s.io/",
    "k3d.io/",
    "kubeadm.k8s.io/",
    "ctlptl.dev/",
    "kubelet.config.k8s.io/",
    "kubeproxy.config.k8s.io/",
    "apiserver.config.k8s.io/",
    "audit.k8s.io/",
    "clientauthentication.k8s.io/",
)
_TOOL_KINDS = {("v1", "Config")}  # a kubeconfig


@dataclass(frozen=True, slots=True)
class Skipped:
    """A document that is no Kubernetes object (a Helm Chart.yaml, a JSON 6902 patch, a tool config):
    skipped quietly, and counted."""

    reason: str


@dataclass(frozen=True, slots=True)
class Declared:
    """What the collector keeps of a declared object beyond its key: audit ids, whether its name is a
    ``generateName`` prefix (the API server adds a suffix on every create), and ``${var}`` placeholders
    left in its name or namespace (a Flux ``postBuild.substitute`` fills them in at deploy time)."""

    audit_ids: tuple[str, ...] = ()
    generate_name: bool = False
    placeholders: tuple[str, ...] = ()


def _objects(doc: Mapping[str, Any]) -> list[Any]:
    """A ``kind: List`` (or ``*List``) carries its objects under ``items``."""
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        return list(doc["items"])
    return [doc]


def _not_kubernetes(obj: Any) -> Skipped | None:
    if isinstance(obj, list):
        return Skipped("a YAML list (e.g. a JSON 6902 patch), not a Kubernetes object")
    if not isinstance(obj, Mapping):
        return Skipped(f"a scalar ({type(obj).__name__}), not a Kubernetes object")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if kind is None and api_version is None:
        return Skipped("no apiVersion and kind: not a Kubernetes object")
    if kind is None and not isinstance(obj.get("metadata"), Mapping):
        return Skipped("no kind and no metadata: not a Kubernetes object (e.g. a Helm Chart.yaml)")
    if isinstance(api_version, str) and (kind is None or isinstance(kind, str)):
        if api_version.startswith(_TOOL_API_PREFIXES) or (api_version, kind) in _TOOL_KINDS:
            return Skipped(f"{api_version} {kind}: a tool's config, not a Kubernetes object")
    return None


def _check(obj: Any) -> tuple[ObjectKey, Declared] | str | Skipped:
    """The object's key and what is kept of it, a rejection reason, or why it is no Kubernetes object."""
    skipped = _not_kubernetes(obj)
    if skipped is not None:
        return skipped
    api_version = obj.get("apiVersion", "")
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind.strip():
        return "object has no kind"
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    generated = False
    if (name is None or name == "") and isinstance(meta, Mapping):
        prefix = meta.get("generateName")
        if isinstance(prefix, str) and prefix.strip():
            name, generated = f"{prefix.strip()}*", True  # one object per create; no real name has a *
    if not isinstance(name, str) or not name.strip():
        return f"{kind} has no metadata.name"
    namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
    if is_cluster_scoped(kind.strip()):
        namespace = ""  # the API server ignores it: the object has none
    elif namespace is None or namespace == "":
        namespace = "default"
    if not isinstance(namespace, str):
        return f"{kind}/{name} has a non-string metadata.namespace"
    found = tuple(dict.fromkeys(_PLACEHOLDER.findall(f"{namespace} {name}")))
    key = ObjectKey(str(api_version or ""), kind.strip(), namespace, name.strip())
    return key, Declared(audit_ids_of(obj), generated, found)


# What one document declares, per object: (key, Declared), (reason, snippet) for a bad one, or
# (Skipped, "") for one that is no Kubernetes object.
Outcome = tuple[tuple[ObjectKey | str | Skipped, Declared | str], ...]


def document_outcome(doc: Any) -> Outcome:
    if doc is None:
        return ()
    if isinstance(doc, Refused):
        return ((doc.reason, doc.raw),)
    out: list[tuple[ObjectKey | str | Skipped, Declared | str]] = []
    for obj in _objects(doc) if isinstance(doc, Mapping) else [doc]:
        checked = _check(obj)
        if isinstance(checked, Skipped):
            out.append((checked, ""))
        elif isinstance(checked, str):
            out.append((checked, _snippet(obj)))
        else:
            out.append(checked)
    return tuple(out)
