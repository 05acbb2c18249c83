"""The kinds that run pods, and where each keeps the pod template the stamp goes into."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["IMMUTABLE_TEMPLATE_KINDS", "TemplatePath", "dig", "owner_of", "template_path"]

TemplatePath = tuple[str, ...]
"""Keys from the object to its pod template; empty for a bare Pod, which is its own template."""

_TEMPLATES: dict[tuple[str, str], TemplatePath] = {
    ("apps", "Deployment"): ("spec", "template"),
    ("apps", "StatefulSet"): ("spec", "template"),
    ("apps", "DaemonSet"): ("spec", "template"),
    ("batch", "Job"): ("spec", "template"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
    ("", "Pod"): (),
}

IMMUTABLE_TEMPLATE_KINDS = frozenset({"Pod", "Job"})
"""Kinds whose pod template the API server refuses to change after creation: an update of one is never
given a new stamp (only its old one restored), or the update would fail."""


def template_path(api_version_or_group: str, kind: str) -> TemplatePath | None:
    """The template path of ``kind`` in ``group`` (or an ``apiVersion`` such as ``apps/v1``); None for a
    kind that runs no pods of its own."""
    group = api_version_or_group.partition("/")[0] if "/" in api_version_or_group else api_version_or_group
    if group == "v1":  # the core group's apiVersion is a bare "v1"
        group = ""
    return _TEMPLATES.get((group, kind))


def dig(obj: Any, path: TemplatePath) -> Any:
    """The value at ``path`` in nested mappings, or None where a step is missing or not a mapping."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def owner_of(obj: Mapping[str, Any]) -> str | None:
    """``Kind/name`` of the object's controlling owner (a ReplicaSet's Pod), or None."""
    refs = dig(obj, ("metadata", "ownerReferences"))
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return f"{ref.get('kind', '?')}/{ref.get('name', '?')}"
    return None
