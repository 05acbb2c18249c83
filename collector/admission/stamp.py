"""What a stamp writes into an object, as JSONPatch operations: pure, shared by the webhook and annotate.

A stamp sets ``x-gitops-audit-id`` on the object and on its pod template (so every Pod carries it) and
gives every container and init container ``X_GITOPS_AUDIT_ID`` (a downward-API reference to that
annotation) and the id as OpenTelemetry resource attributes, so logs and spans carry it without code
changes. An environment variable the user defined is left as it is.

``template_fingerprint`` is the pod template with any stamp taken out: two fingerprints differ exactly
when a rollout changed the template, which is when a new trace is due.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import orjson

from liubai.collector.admission.jsonpatch import pointer
from liubai.collector.admission.kinds import TemplatePath, dig
from liubai.collector.admission.otel import OTEL_ENV, merge_resource_attributes, strip_ours
from liubai.lineage.model import AUDIT_ID_ANNOTATION, AUDIT_ID_ENV, AuditId, AuditIdError, parse_audit_id

__all__ = [
    "AUDIT_FIELD_PATH",
    "COMMIT_ANNOTATION",
    "annotation_ops",
    "audit_env_entry",
    "existing_audit_id",
    "known_ids",
    "stamp_ops",
    "template_fingerprint",
]

COMMIT_ANNOTATION = "liubai.dev/commit"
"""The commit ``liubai annotate --commit-only`` leaves on an object for the webhook to stamp with."""

AUDIT_FIELD_PATH = f"metadata.annotations['{AUDIT_ID_ANNOTATION}']"
CONTAINER_FIELDS = ("initContainers", "containers")

Op = dict[str, Any]


def audit_env_entry() -> dict[str, Any]:
    """``X_GITOPS_AUDIT_ID`` from the Pod's own annotation; written as the API server stores it (with the
    fieldRef's defaulted ``apiVersion``), so a stored object and a rendered one do not differ."""
    return {
        "name": AUDIT_ID_ENV,
        "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": AUDIT_FIELD_PATH}},
    }


def _is_audit_env(entry: Any) -> bool:
    return (
        isinstance(entry, Mapping)
        and entry.get("name") == AUDIT_ID_ENV
        and dig(entry, ("valueFrom", "fieldRef", "fieldPath")) == AUDIT_FIELD_PATH
    )


def _template(obj: Any, path: TemplatePath) -> Any:
    return dig(obj, path) if path else obj


def existing_audit_id(obj: Any, path: TemplatePath) -> str | None:
    """The audit id the object carries: its own annotation, else its pod template's; None if neither."""
    for where in (obj, _template(obj, path)):
        value = dig(where, ("metadata", "annotations", AUDIT_ID_ANNOTATION))
        if value is not None:
            return str(value)
    return None


def known_ids(objs: Iterable[Any], path: TemplatePath) -> set[AuditId]:
    """Every valid audit id on these objects and their templates: what an earlier stamp may have written."""
    found: set[AuditId] = set()
    for obj in objs:
        for where in (obj, _template(obj, path)):
            value = dig(where, ("metadata", "annotations", AUDIT_ID_ANNOTATION))
            if value is not None:
                try:
                    found.add(parse_audit_id(str(value)))
                except AuditIdError:
                    pass
    return found


def stamp_ops(
    obj: Mapping[str, Any],
    path: TemplatePath,
    audit: AuditId,
    *,
    known: Collection[AuditId] = (),
    annotations: Mapping[str, str] | None = None,
) -> list[Op]:
    """The operations that stamp ``audit`` on ``obj`` (whose pod template is at ``path``); none for what is
    already in place. ``known``: ids of earlier stamps, whose OTel entries give way to this one.
    ``annotations``: more annotations for the object itself (not its template)."""
    ops: list[Op] = []
    value = audit.canonical
    _annotation_ops(ops, obj, (), {AUDIT_ID_ANNOTATION: value, **(annotations or {})})
    template = _template(obj, path)
    if not isinstance(template, Mapping):
        return ops
    if path:
        _annotation_ops(ops, template, path, {AUDIT_ID_ANNOTATION: value})
    spec = template.get("spec")
    if isinstance(spec, Mapping):
        for field in CONTAINER_FIELDS:
            containers = spec.get(field)
            if isinstance(containers, list):
                for i, container in enumerate(containers):
                    if isinstance(container, Mapping):
                        _env_ops(ops, container, (*path, "spec", field, i), audit, known)
    return ops


def annotation_ops(obj: Mapping[str, Any], wanted: Mapping[str, str]) -> list[Op]:
    """The operations that set ``wanted`` annotations on ``obj`` itself; none for those already set."""
    ops: list[Op] = []
    _annotation_ops(ops, obj, (), wanted)
    return ops


def _annotation_ops(
    ops: list[Op], holder: Mapping[str, Any], at: tuple[str | int, ...], wanted: Mapping[str, str]
) -> None:
    meta = holder.get("metadata")
    if not isinstance(meta, Mapping):
        ops.append({"op": "add", "path": pointer((*at, "metadata")), "value": {"annotations": dict(wanted)}})
        return
    current = meta.get("annotations")
    if not isinstance(current, Mapping):
        ops.append({"op": "add", "path": pointer((*at, "metadata", "annotations")), "value": dict(wanted)})
        return
    for key, value in wanted.items():
        if current.get(key) != value:
            op = "replace" if key in current else "add"
            ops.append({"op": op, "path": pointer((*at, "metadata", "annotations", key)), "value": value})


def _env_ops(
    ops: list[Op],
    container: Mapping[str, Any],
    at: tuple[str | int, ...],
    audit: AuditId,
    known: Collection[AuditId],
) -> None:
    env = container.get("env")
    fresh = merge_resource_attributes("", audit)
    if env is None:
        value = [audit_env_entry(), {"name": OTEL_ENV, "value": fresh}]
        ops.append({"op": "add", "path": pointer((*at, "env")), "value": value})
        return
    if not isinstance(env, list):
        return  # not a list: the API server refuses the object anyway; leave its error to it
    index = {e.get("name"): i for i, e in enumerate(env) if isinstance(e, Mapping)}  # the last one wins
    if AUDIT_ID_ENV not in index:
        ops.append({"op": "add", "path": pointer((*at, "env", "-")), "value": audit_env_entry()})
    if OTEL_ENV not in index:
        ops.append(
            {"op": "add", "path": pointer((*at, "env", "-")), "value": {"name": OTEL_ENV, "value": fresh}}
        )
        return
    i = index[OTEL_ENV]
    entry = env[i]
    if entry.get("valueFrom") is not None:
        return  # read from a ConfigMap, a Secret or a field: the user's choice, not text to merge into
    current = entry.get("value")
    merged = merge_resource_attributes(current if isinstance(current, str) else "", audit, known)
    if merged != current:
        ops.append({"op": "add", "path": pointer((*at, "env", i, "value")), "value": merged})


def template_fingerprint(obj: Any, path: TemplatePath, known: Collection[AuditId]) -> bytes:
    """The pod template (labels, annotations, spec) without any stamp of the ``known`` ids, as canonical
    JSON. For a bare Pod only its spec counts: its metadata changes with every apply."""
    template = _template(obj, path)
    if not isinstance(template, Mapping):
        return b"null"
    doc: dict[str, Any] = {"spec": _unstamped_spec(template.get("spec"), known)}
    if path:
        meta = template.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        annotations = meta.get("annotations")
        annotations = dict(annotations) if isinstance(annotations, Mapping) else {}
        annotations.pop(AUDIT_ID_ANNOTATION, None)
        doc["annotations"] = annotations
        doc["labels"] = meta.get("labels") or {}
    return orjson.dumps(doc, default=repr, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _unstamped_spec(spec: Any, known: Collection[AuditId]) -> Any:
    if not isinstance(spec, Mapping):
        return spec
    out = dict(spec)
    for field in CONTAINER_FIELDS:
        containers = out.get(field)
        if isinstance(containers, list):
            out[field] = [_unstamped_container(c, known) for c in containers]
    return out


def _unstamped_container(container: Any, known: Collection[AuditId]) -> Any:
    if not isinstance(container, Mapping) or not isinstance(container.get("env"), list):
        return container
    env: list[Any] = []
    for entry in container["env"]:
        if _is_audit_env(entry):
            continue
        if (
            isinstance(entry, Mapping)
            and entry.get("name") == OTEL_ENV
            and isinstance(entry.get("value"), str)
        ):
            rest = strip_ours(entry["value"], known)
            if not rest and entry.get("valueFrom") is None:
                continue  # only the stamp's attributes: the stamp made this variable
            entry = {**entry, "value": rest}
        env.append(entry)
    out = dict(container)
    if env:
        out["env"] = env
    else:
        out.pop("env", None)
    return out
