"""``liubai annotate``: the webhook's stamp, applied to rendered manifests in a pipeline.

Input is multi-document YAML (``kustomize build . | liubai annotate``, an Argo CD config-management
plugin) or a KRM ``ResourceList`` (a kustomize or kpt exec function); the output has the same form.

Rendering must be repeatable: Argo CD renders an application again on every refresh, and a KRM function
must give the same output for the same input. So the trace part of a stamp is derived from the commit,
the object and its pod template (unless the pipeline gives a ``traceparent``): the same render gives the
same id, a changed template a new one. An id already on an object is kept, so annotating twice changes
nothing.

``commit_only`` leaves just the ``liubai.dev/commit`` annotation on each workload, for a cluster where
the webhook stamps: the commit then reaches the pod template only when a rollout happens anyway. A full
stamp puts the commit into every pod template, so every commit restarts every workload.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from liubai.collector.admission.decide import OnMalformed
from liubai.collector.admission.jsonpatch import apply_patch
from liubai.collector.admission.kinds import dig, template_path
from liubai.collector.admission.revision import Commit, parse_commit
from liubai.collector.admission.stamp import (
    COMMIT_ANNOTATION,
    annotation_ops,
    existing_audit_id,
    known_ids,
    stamp_ops,
    template_fingerprint,
)
from liubai.collector.admission.yaml_io import dump_documents, load_documents
from liubai.lineage.model import AuditId, AuditIdError, parse_audit_id
from liubai.lineage.text import clip

__all__ = [
    "COMMIT_ENV_VARS",
    "AnnotateError",
    "AnnotateOptions",
    "AnnotateResult",
    "annotate_text",
    "render_commit",
]

COMMIT_ENV_VARS = ("ARGOCD_APP_REVISION", "GITHUB_SHA", "CI_COMMIT_SHA")
KRM_API_VERSIONS = ("config.kubernetes.io/v1", "config.kubernetes.io/v1alpha1")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


class AnnotateError(ValueError):
    """Input or settings annotate cannot work with; the message is one line saying what and where."""


@dataclass(frozen=True, slots=True)
class AnnotateOptions:
    """``commit``: None to take it from a KRM functionConfig, then ``render_commit``'s sources."""

    commit: str | None = None
    traceparent: str | None = None
    commit_only: bool = False
    on_malformed: OnMalformed = OnMalformed.REFUSE
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: str | None = None


@dataclass(slots=True)
class AnnotateResult:
    text: str
    commit: Commit
    commit_from: str
    stamped: int = 0
    kept: int = 0
    warnings: list[str] = field(default_factory=list)


def render_commit(explicit: str | None, env: Mapping[str, str], cwd: str | None) -> tuple[Commit, str]:
    """The commit being rendered and where it came from: ``explicit`` (``--commit`` or a functionConfig),
    else the first of ``COMMIT_ENV_VARS`` that is set, else ``git rev-parse HEAD``."""
    candidates: list[tuple[str, str]] = []
    if explicit is not None:
        candidates.append(("--commit", explicit))
    else:
        candidates.extend((name, env[name]) for name in COMMIT_ENV_VARS if env.get(name))
    for origin, value in candidates[:1]:
        commit = parse_commit(value)
        if commit is None:
            raise AnnotateError(f"{origin}={clip(value, 80)!r} is not a commit id (40 or 64 hex characters)")
        return commit, origin
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AnnotateError(f"no commit: give --commit or set {', '.join(COMMIT_ENV_VARS)} ({exc})") from None
    commit = parse_commit(done.stdout.strip()) if done.returncode == 0 else None
    if commit is None:
        why = done.stderr.strip().splitlines()[0] if done.stderr.strip() else "no git HEAD here"
        raise AnnotateError(f"no commit: give --commit or set {', '.join(COMMIT_ENV_VARS)} (git: {why})")
    return commit, "git rev-parse HEAD"


def _trace_of(traceparent: str | None) -> str | None:
    if traceparent is None:
        return None
    m = _TRACEPARENT.fullmatch(traceparent.strip().lower())
    if m is None or not m.group(1).strip("0"):
        raise AnnotateError(f"traceparent {clip(traceparent, 80)!r} is not a W3C traceparent")
    return m.group(1)


def derived_trace(commit: Commit, obj: Mapping[str, Any], path: tuple[str, ...]) -> str:
    """A trace id that is the same for the same commit, object and pod template, and differs otherwise."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    identity = f"{obj.get('apiVersion')}/{obj.get('kind')}/{dig(meta, ('namespace',))}/{dig(meta, ('name',))}"
    h = hashlib.sha256(b"liubai-annotate\0")
    h.update(f"{commit.sha}\0{identity}\0".encode())
    h.update(template_fingerprint(obj, path, ()))
    trace = h.hexdigest()[:32]
    return trace if trace.strip("0") else "1" + trace[1:]


def _describe(index: int, obj: Mapping[str, Any]) -> str:
    ns, name = dig(obj, ("metadata", "namespace")), dig(obj, ("metadata", "name"))
    return f"document {index + 1} ({obj.get('kind')} {f'{ns}/' if ns else ''}{name or '?'})"


class _Stamper:
    def __init__(self, options: AnnotateOptions, commit: Commit, trace: str | None) -> None:
        self.options, self.commit, self.trace = options, commit, trace
        self.stamped = self.kept = 0
        self.warnings: list[str] = []

    def stamp(self, index: int, obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        path = template_path(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""))
        if path is None:
            return
        if self.options.commit_only:
            apply_patch(obj, annotation_ops(obj, {COMMIT_ANNOTATION: self.commit.sha}))
            self.stamped += 1
            return
        raw = existing_audit_id(obj, path)
        extra: dict[str, str] = {}
        if raw is not None:
            try:
                audit = parse_audit_id(raw)
            except AuditIdError as exc:
                message = f"{_describe(index, obj)}: {exc.message}"
                if self.options.on_malformed is OnMalformed.REFUSE:
                    raise AnnotateError(f"{message}; correct it or remove it") from None
                self.warnings.append(f"{message}; left unchanged")
                return
            self.kept += 1
        else:
            trace = self.trace or derived_trace(self.commit, obj, path)
            audit = AuditId(commit=self.commit.sha, commit_key=self.commit.key, trace=trace)
            extra[COMMIT_ANNOTATION] = self.commit.sha
            self.stamped += 1
        apply_patch(obj, stamp_ops(obj, path, audit, known=known_ids([obj], path), annotations=extra))


def _function_config(resource_list: Mapping[str, Any]) -> Mapping[str, Any]:
    """A ConfigMap's ``data`` (or any functionConfig's ``spec``): ``commit``, ``traceparent``,
    ``commitOnly``."""
    config = resource_list.get("functionConfig")
    for key in ("data", "spec"):
        value = dig(config, (key,))
        if isinstance(value, Mapping):
            return value
    return {}


def annotate_text(text: str, options: AnnotateOptions) -> AnnotateResult:
    """Stamp every workload in ``text``; ``AnnotateError`` (and nothing written) for bad input."""
    try:
        docs = load_documents(text)
    except ValueError as exc:
        raise AnnotateError(str(exc)) from None
    krm = len(docs) == 1 and isinstance(docs[0], dict) and docs[0].get("kind") == "ResourceList"
    if krm and docs[0].get("apiVersion") not in KRM_API_VERSIONS:
        raise AnnotateError(
            f"ResourceList apiVersion {clip(str(docs[0].get('apiVersion')), 80)!r} is not one of {', '.join(KRM_API_VERSIONS)}"
        )
    config = _function_config(docs[0]) if krm else {}
    explicit = options.commit if options.commit is not None else _opt_str(config.get("commit"))
    commit, origin = render_commit(explicit, options.env, options.cwd)
    if options.commit is None and config.get("commit") is not None:
        origin = "functionConfig"
    traceparent = options.traceparent or _opt_str(config.get("traceparent")) or options.env.get("TRACEPARENT")
    if krm and str(config.get("commitOnly", "")).lower() == "true":
        options = replace(options, commit_only=True)
    stamper = _Stamper(options, commit, _trace_of(traceparent))
    items = docs[0].get("items") if krm else docs
    if krm and not isinstance(items, list):
        items = []
        docs[0]["items"] = items
    for i, obj in enumerate(items or []):
        stamper.stamp(i, obj)
    if krm and stamper.warnings:
        results = docs[0].setdefault("results", [])
        if isinstance(results, list):
            results.extend({"message": w, "severity": "warning"} for w in stamper.warnings)
    return AnnotateResult(
        dump_documents(docs), commit, origin, stamper.stamped, stamper.kept, stamper.warnings
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
