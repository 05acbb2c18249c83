"""Kubernetes objects out of (multi-document) YAML manifest text.

A manifest file is untrusted input: one broken document must not hide the good ones around it, and
every problem becomes a ``RejectedRecord`` that names commit, file, document and reason. Documents
that are plainly not Kubernetes objects (CI workflows, Helm values, kustomize configs) are skipped
quietly, because GitOps repositories are full of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from lineage.model import AUDIT_ID_ANNOTATION, RejectedRecord
from lineage.records import ManifestObjectRecord

__all__ = [
    "MANIFEST_SUFFIXES",
    "ObjectKey",
    "audit_ids_of",
    "deleted_records",
    "is_manifest_path",
    "parse_manifest",
]

MANIFEST_SUFFIXES = (".yaml", ".yml")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_RAW_KEEP = 800
_SKIP_API_GROUPS = ("kustomize.config.k8s.io/", "config.kubernetes.io/")
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

ManifestItem = ManifestObjectRecord | RejectedRecord


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """What identifies a declared object: enough to say "this object is gone" in a later version."""

    api_version: str
    kind: str
    namespace: str
    name: str


def is_manifest_path(path: str) -> bool:
    return path.lower().endswith(MANIFEST_SUFFIXES)


def _location(commit: str, path: str, doc: int | None) -> str:
    base = f"{commit[:12]}:{path}"
    return base if doc is None else f"{base}#{doc}"


def _snippet(value: Any) -> str:
    if isinstance(value, str):
        return value[:_RAW_KEEP]
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000)
    except yaml.YAMLError:
        text = repr(value)
    return text[:_RAW_KEEP].rstrip("\n")


def _error_snippet(text: str, exc: yaml.YAMLError) -> str:
    """The lines around a YAML error, so the rejected record shows what was wrong without the file."""
    mark = getattr(exc, "problem_mark", None)
    lines = text.splitlines()
    if mark is None or not lines:
        return text[:_RAW_KEEP]
    lo, hi = max(0, mark.line - 2), min(len(lines), mark.line + 2)
    return "\n".join(lines[lo:hi])[:_RAW_KEEP]


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"


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


_MERGE_TAG = "tag:yaml.org,2002:merge"
_TEMPLATE_PATHS = (("spec", "template", "metadata"), ("spec", "jobTemplate", "spec", "template", "metadata"))


class _NeedsWholeDocument(Exception):
    """A merge key (``<<``) on the way: only the full constructor resolves it correctly."""


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    found = None
    for k, v in node.value:
        if k.tag == _MERGE_TAG:
            raise _NeedsWholeDocument
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            found = v  # the last duplicate wins, as in full construction
    return found


def _light(node: yaml.Node, builder: Any) -> Any:
    """The parts of a document the collector reads (apiVersion, kind, metadata, items, template
    metadata), built from the composed node tree; the pod spec and the rest are never constructed,
    which halves the parse cost of a typical Deployment."""
    if not isinstance(node, yaml.MappingNode):
        return builder.construct_document(node)
    try:
        out: dict[str, Any] = {}
        for key in ("apiVersion", "kind", "metadata", "items"):
            child = _child(node, key)
            if child is not None:
                out[key] = builder.construct_document(child)
        for path in _TEMPLATE_PATHS:
            target: yaml.Node | None = node
            for key in path:
                target = _child(target, key)
            if target is not None:
                slot = out
                for key in path[:-1]:
                    slot = slot.setdefault(key, {})
                slot[path[-1]] = builder.construct_document(target)
        return out
    except _NeedsWholeDocument:
        return builder.construct_document(node)


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
    if namespace is None or namespace == "":
        namespace = "default"
    if not isinstance(namespace, str):
        return f"{kind}/{name} has a non-string metadata.namespace"
    return ObjectKey(str(api_version or ""), kind.strip(), namespace, name.strip()), obj


def parse_manifest(
    data: bytes | str, *, repo: str, commit: str, path: str, deleted: bool = False
) -> tuple[list[ManifestItem], list[ObjectKey]]:
    """Records for every object a manifest declares, rejected records for what cannot be read, and the
    keys of the good objects (so a later version can tell which ones it dropped).

    With ``deleted=True`` the text is the file's last version before it was removed, and each object
    becomes a ``deleted`` record.
    """
    source = f"git:{repo}"
    if len(data) > MAX_MANIFEST_BYTES:
        reason = f"manifest is {len(data)} bytes, more than the {MAX_MANIFEST_BYTES} read"
        return [RejectedRecord(source, _location(commit, path, None), reason, "")], []
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"manifest is not UTF-8 text (byte {exc.start})"
            return [RejectedRecord(source, _location(commit, path, None), reason, "")], []
    else:
        text = data
    if "{{" in text and "/templates/" in f"/{path}":
        return [], []  # a Helm chart template: rendered YAML only exists after `helm template`
    items: list[ManifestItem] = []
    keys: list[ObjectKey] = []
    seen: set[ObjectKey] = set()
    index = -1
    builder = _Loader("")
    docs = yaml.compose_all(text, Loader=_Loader)
    while True:
        try:
            node = next(docs)
            doc = None if node is None else _light(node, builder)
        except StopIteration:
            break
        except yaml.YAMLError as exc:
            reason = f"invalid YAML{_where(exc)}: {getattr(exc, 'problem', None) or exc}"
            items.append(
                RejectedRecord(source, _location(commit, path, index + 1), reason, _error_snippet(text, exc))
            )
            break
        index += 1
        if doc is None:
            continue
        for obj in _objects(doc) if isinstance(doc, Mapping) else [doc]:
            checked = _check(obj)
            if checked is None:
                continue
            if isinstance(checked, str):
                items.append(RejectedRecord(source, _location(commit, path, index), checked, _snippet(obj)))
                continue
            key, body = checked
            if key in seen:
                continue
            seen.add(key)
            keys.append(key)
            items.append(
                ManifestObjectRecord(
                    repo=repo,
                    commit=commit,
                    path=path,
                    api_version=key.api_version,
                    kind=key.kind,
                    namespace=key.namespace,
                    name=key.name,
                    audit_ids=() if deleted else audit_ids_of(body),
                    document_index=index,
                    deleted=deleted,
                )
            )
    return items, keys


def deleted_records(
    keys: list[ObjectKey], *, repo: str, commit: str, path: str
) -> Iterator[ManifestObjectRecord]:
    """``deleted`` records for objects a previous version of a manifest declared and this one dropped."""
    for key in keys:
        yield ManifestObjectRecord(
            repo=repo,
            commit=commit,
            path=path,
            api_version=key.api_version,
            kind=key.kind,
            namespace=key.namespace,
            name=key.name,
            deleted=True,
        )
