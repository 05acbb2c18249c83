"""One admission decision: an AdmissionReview (``admission.k8s.io/v1``) in, its response and record out.

The audit id an object leaves with:

* an id the request carries is kept (``kept``) — unless it only came along from the stored object on an
  update that changed the pod template: that is a new rollout, which gets a new stamp;
* an update that leaves the pod template as it was keeps the stored id (a re-apply or a scale is no
  rollout), and puts it back where the request dropped it;
* otherwise (``patched``) the commit comes from the GitOps controller or the request
  (``revision.resolve_commit``) and the trace from a ``traceparent`` annotation the request set, else a
  new W3C trace id. Without a commit the stamp is the trace alone, and a warning says why.

A malformed id is refused with a message ``kubectl`` prints (``refused``) or let through unchanged with a
warning (``passed``), per ``on_malformed``. A kind that runs no pods, an object over ``max_object_bytes``
and any failure of the webhook's own are allowed unchanged (``skipped``): a deploy is never blocked for
want of a stamp. Dry runs are answered alike but not recorded.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from liubai.collector.admission.kinds import (
    IMMUTABLE_TEMPLATE_KINDS,
    TemplatePath,
    dig,
    owner_of,
    template_path,
)
from liubai.collector.admission.revision import GitOpsSettings, ObjectReader, resolve_commit
from liubai.collector.admission.stamp import existing_audit_id, known_ids, stamp_ops, template_fingerprint
from liubai.lineage.model import AUDIT_ID_ANNOTATION, AuditId, AuditIdError, parse_audit_id, parse_traceparent
from liubai.lineage.records import AdmissionRecord, iso_utc
from liubai.lineage.text import clip

__all__ = ["BadReview", "OnMalformed", "Outcome", "WebhookSettings", "admit", "new_trace_id"]

TRACEPARENT_ANNOTATION = "traceparent"
MAX_WARNING_CHARS = 240


class OnMalformed(StrEnum):
    REFUSE = "refuse"
    WARN = "warn"


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    on_malformed: OnMalformed = OnMalformed.REFUSE
    max_object_bytes: int = 1024 * 1024
    cluster: str | None = None
    gitops: GitOpsSettings = field(default_factory=GitOpsSettings)


class BadReview(ValueError):
    """A body that is no AdmissionReview request: answered 400, there is no uid to answer to."""


@dataclass(slots=True)
class Outcome:
    """The AdmissionReview to send back, the decision, and the record to keep (None: not recorded)."""

    review: dict[str, Any]
    decision: str
    record: AdmissionRecord | None
    patch: list[dict[str, Any]] = field(default_factory=list)


def new_trace_id() -> str:
    """A random W3C trace id (32 hex, never all zeros)."""
    while True:
        trace = secrets.token_hex(16)
        if trace.strip("0"):
            return trace


@dataclass(slots=True)
class _Request:
    uid: str
    group: str
    kind: str
    operation: str
    namespace: str
    name: str
    username: str
    groups: tuple[str, ...]
    dry_run: bool
    obj: Any
    old: Any


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _parse_request(review: Any) -> _Request:
    request = review.get("request") if isinstance(review, Mapping) else None
    if not isinstance(request, Mapping):
        raise BadReview("not an AdmissionReview: no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("not an AdmissionReview: the request has no uid")
    kind = _mapping(request.get("kind"))
    user = _mapping(request.get("userInfo"))
    obj, old = request.get("object"), request.get("oldObject")
    name = request.get("name") or dig(obj, ("metadata", "name")) or dig(obj, ("metadata", "generateName"))
    groups = user.get("groups")
    return _Request(
        uid=uid,
        group=str(kind.get("group") or ""),
        kind=str(kind.get("kind") or ""),
        operation=str(request.get("operation") or ""),
        namespace=str(request.get("namespace") or ""),
        name=str(name or ""),
        username=str(user.get("username") or ""),
        groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
        dry_run=request.get("dryRun") is True,
        obj=obj,
        old=old,
    )


class _Decider:
    def __init__(
        self,
        req: _Request,
        settings: WebhookSettings,
        reader: ObjectReader | None,
        now: Callable[[], float],
        new_trace: Callable[[], str],
    ) -> None:
        self.req, self.settings, self.reader = req, settings, reader
        self.now, self.new_trace = now, new_trace
        self.warnings: list[str] = []

    def _outcome(
        self,
        decision: str,
        *,
        allowed: bool = True,
        audit: str | None = None,
        ops: list[dict[str, Any]] | None = None,
        commit_source: str | None = None,
        trace_source: str | None = None,
        reason: str | None = None,
        message: str | None = None,
        record: bool = True,
    ) -> Outcome:
        req = self.req
        response: dict[str, Any] = {"uid": req.uid, "allowed": allowed}
        if ops:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(orjson.dumps(ops)).decode("ascii")
        if not allowed:
            response["status"] = {"code": 400, "reason": "BadRequest", "message": message or reason or ""}
        if self.warnings:
            response["warnings"] = [clip(f"liubai: {w}", MAX_WARNING_CHARS) for w in self.warnings]
        rec = None
        if record and not req.dry_run:
            rec = AdmissionRecord(
                request_uid=req.uid,
                cluster=self.settings.cluster,
                time=iso_utc(self.now()),
                username=req.username,
                operation=req.operation,
                kind=req.kind,
                namespace=req.namespace,
                name=req.name,
                decision=decision,
                audit_id=audit,
                commit_source=commit_source,
                trace_source=trace_source,
                reason=reason,
                groups=req.groups,
            )
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        return Outcome(review, decision, rec, ops or [])

    def skip(self, reason: str, *, warn: bool = False, record: bool = True) -> Outcome:
        if warn:
            self.warnings.append(f"not stamped: {reason}")
        return self._outcome("skipped", reason=reason, record=record)

    def decide(self, body_size: int | None) -> Outcome:
        req = self.req
        path = template_path(req.group, req.kind)
        if path is None:
            return self.skip(f"kind {req.group or 'core'}/{req.kind or '?'} runs no pods")
        if req.operation not in ("CREATE", "UPDATE") or not isinstance(req.obj, Mapping):
            return self.skip(f"{req.operation or 'an operation'} is not stamped")
        if req.kind == "Pod" and (owner := owner_of(req.obj)) is not None:
            # stamped through its owner's template; recording every replica would only repeat the owner
            return self.skip(f"owned by {owner}", record=False)
        limit = self.settings.max_object_bytes
        if body_size is not None and body_size > limit:
            size = len(orjson.dumps(req.obj, option=orjson.OPT_NON_STR_KEYS))
            if size > limit:
                return self.skip(f"object of {size} bytes is over the {limit}-byte limit", warn=True)
        return self._stamp(path)

    def _stamp(self, path: TemplatePath) -> Outcome:
        req, obj, old = self.req, self.req.obj, self.req.old if self.req.operation == "UPDATE" else None
        old = old if isinstance(old, Mapping) else None
        raw = existing_audit_id(obj, path)
        raw_old = existing_audit_id(old, path) if old is not None else None
        known = known_ids([obj, old] if old is not None else [obj], path)
        same_template = old is not None and (
            template_fingerprint(obj, path, known) == template_fingerprint(old, path, known)
        )
        if raw is not None:
            try:
                audit = parse_audit_id(raw)
            except AuditIdError as exc:
                return self._malformed(raw, exc, inherited=old is not None and raw == raw_old)
            if old is None or raw != raw_old or same_template:
                return self._apply(path, audit, known, "kept", "existing", "existing")
        elif old is not None and raw_old is not None and same_template:
            try:
                audit = parse_audit_id(raw_old)
            except AuditIdError:
                pass
            else:  # the request dropped the stamp (an apply that does not own it): put it back
                return self._apply(path, audit, known, "kept", "existing", "existing")
        if old is not None and req.kind in IMMUTABLE_TEMPLATE_KINDS:
            return self.skip(f"a {req.kind}'s pod template cannot change after creation")
        return self._new_stamp(path, obj, old, known)

    def _new_stamp(
        self, path: TemplatePath, obj: Mapping[str, Any], old: Any, known: set[AuditId]
    ) -> Outcome:
        req = self.req
        found = resolve_commit(obj, old, req.username, self.reader, self.settings.gitops)
        trace, trace_source = None, "new"
        parent = dig(obj, ("metadata", "annotations", TRACEPARENT_ANNOTATION))
        if isinstance(parent, str) and (
            old is None or dig(old, ("metadata", "annotations", TRACEPARENT_ANNOTATION)) != parent
        ):
            trace = parse_traceparent(parent)
            trace_source = "traceparent" if trace else "new"
        audit = AuditId(
            commit=found.commit.sha if found.commit else None,
            commit_key=found.commit.key if found.commit else "git-sha1",
            trace=trace or self.new_trace(),
        )
        reason = "; ".join(found.notes) or None
        if found.commit is None:
            self.warnings.append(f"no commit known, stamped {audit.canonical}: {reason}")
        return self._apply(path, audit, known, "patched", found.source, trace_source, reason)

    def _apply(
        self,
        path: TemplatePath,
        audit: AuditId,
        known: set[AuditId],
        decision: str,
        commit_source: str | None,
        trace_source: str,
        reason: str | None = None,
    ) -> Outcome:
        ops = stamp_ops(self.req.obj, path, audit, known=known)
        return self._outcome(
            decision,
            audit=audit.canonical,
            ops=ops,
            commit_source=commit_source,
            trace_source=trace_source,
            reason=reason,
        )

    def _malformed(self, raw: str, exc: AuditIdError, inherited: bool) -> Outcome:
        req = self.req
        what = f"{req.kind} {req.namespace + '/' if req.namespace else ''}{req.name}"
        message = f"{AUDIT_ID_ANNOTATION} on {what}: {exc.message}"
        if self.settings.on_malformed is OnMalformed.REFUSE:
            if inherited:  # the stored object carries it, not the manifest
                fix = "remove it from the live object (its annotations and its pod template's)"
            else:
                fix = "correct it or remove it from the manifest"
            return self._outcome(
                "refused", allowed=False, audit=raw, reason=exc.reason, message=f"{message}; {fix}"
            )
        self.warnings.append(f"{message}; passed unchanged (--on-malformed=warn)")
        return self._outcome("passed", audit=raw, reason=exc.reason)


def admit(
    review: Any,
    settings: WebhookSettings,
    reader: ObjectReader | None = None,
    *,
    body_size: int | None = None,
    now: Callable[[], float] = time.time,
    new_trace: Callable[[], str] = new_trace_id,
) -> Outcome:
    """Decide one AdmissionReview. ``BadReview`` for a body that is none; any other failure of the
    webhook's own allows the object unchanged, says so in a warning and records it as ``skipped``."""
    req = _parse_request(review)
    decider = _Decider(req, settings, reader, now, new_trace)
    try:
        return decider.decide(body_size)
    except Exception as exc:  # never block a deploy on a bug here: the object goes through unstamped
        decider.warnings.clear()
        return decider.skip(f"internal error {type(exc).__name__}: {clip(str(exc), 120)}", warn=True)
