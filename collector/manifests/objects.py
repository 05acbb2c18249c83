"""What a manifest document declares: the Kubernetes objects in it (a ``kind: List`` holds several), each
with its key and audit ids, or the reason it is rejected. Documents that are no Kubernetes object at all,
and kustomize configs, declare nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from liubai.collector.manifests.scope import is_cluster_scoped
from liubai.collector.manifests.yaml_load import RAW_KEEP, Refused
from liubai.lineage.model import AUDIT_ID_ANNOTATION

__all__ = ["Outcome", "ObjectKey", "audit_ids_of", "document_outcome"]

_SKIP_API_GROUPS = ("kustomize.config.k8s.io/", "config.kubernetes.io/")


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


def _is_kubernetes_like(doc: Mapping[str, Any]) -> bool:
    return "kind" in doc or "apiVersion" in doc


def _objects(doc: Mapping[str, Any]) -> list[Any]:
    """A ``kind: List`` (or ``*List``) carries its objects under ``items``."""
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        return list(doc["items"])
    return [doc]


def _check(obj: Any) -> tuple[ObjectKey, Mapping[str, Any]] | str | None:
    """The object's key, a rejection reason, or None for a document that is no Kubernetes object."""
    if not isinstance(obj, Mapping):
        return f"document is a {type(obj).__name__}, not a Kubernetes object mapping"
    if not _is_kubernetes_like(obj):
        return None
    api_version = obj.get("apiVersion", "")
    if isinstance(api_version, str) and api_version.startswith(_SKIP_API_GROUPS):
        return None
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind.strip():
        return "object has no kind"
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name.strip():
        return f"{kind} has no metadata.name"
    namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
    if is_cluster_scoped(kind.strip()):
        namespace = ""  # the API server ignores it: the object has none
    elif namespace is None or namespace == "":
        namespace = "default"
    if not isinstance(namespace, str):
        return f"{kind}/{name} has a non-string metadata.namespace"
    return ObjectKey(str(api_version or ""), kind.strip(), namespace, name.strip()), obj


# What one document declares: (key, audit ids) per object, or (reason, snippet) per bad object.
Outcome = tuple[tuple[ObjectKey | str, tuple[str, ...] | str], ...]


def document_outcome(doc: Any) -> Outcome:
    if doc is None:
        return ()
    if isinstance(doc, Refused):
        return ((doc.reason, doc.raw),)
    out: list[tuple[ObjectKey | str, tuple[str, ...] | str]] = []
    for obj in _objects(doc) if isinstance(doc, Mapping) else [doc]:
        checked = _check(obj)
        if checked is None:
            continue
        if isinstance(checked, str):
            out.append((checked, _snippet(obj)))
        else:
            out.append((checked[0], audit_ids_of(checked[1])))
    return tuple(out)
