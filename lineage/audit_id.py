"""The audit id (``x-gitops-audit-id``) that ties a commit to what ran and logged because of it.

``git-sha1:<sha>|trace:<32 hex>`` (or ``git-sha256:``): a commit, a trace, or both, in any order, plus
unknown parts kept as they are. Parsed here once, for collectors, the join, the API and the CLI; the W3C
``traceparent`` header, the other way a trace id arrives, is read here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.text import clip

__all__ = [
    "AUDIT_ID_ANNOTATION",
    "AUDIT_ID_ENV",
    "COMMIT_KEYS",
    "AuditId",
    "AuditIdError",
    "parse_audit_id",
    "parse_traceparent",
]

AUDIT_ID_ANNOTATION = "x-gitops-audit-id"
AUDIT_ID_ENV = "X_GITOPS_AUDIT_ID"
COMMIT_KEYS = ("git-sha256", "git-sha1", "git")
_HEX_COMMIT = re.compile(r"[0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?")
_W3C_TRACE = re.compile(r"[0-9a-fA-F]{32}")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


class AuditIdError(LiubaiError, ValueError):
    """A malformed audit id; ``reason`` says what is wrong in words a user can act on."""

    code = ErrorCode.BAD_AUDIT_ID

    def __init__(self, raw: str, reason: str) -> None:
        super().__init__(f"malformed audit id {clip(raw)!r}: {reason}", reason=reason)
        self.raw = raw
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AuditId:
    """A parsed ``x-gitops-audit-id``: a commit, a trace, or both, plus any unknown parts kept as-is."""

    commit: str | None = None
    commit_key: str = "git-sha256"
    trace: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def canonical(self) -> str:
        parts: list[str] = []
        if self.commit is not None:
            parts.append(f"{self.commit_key}:{self.commit}")
        if self.trace is not None:
            parts.append(f"trace:{self.trace}")
        parts.extend(f"{k}:{v}" for k, v in self.extra)
        return "|".join(parts)

    def __str__(self) -> str:
        return self.canonical


def parse_audit_id(raw: str, *, strict: bool = True) -> AuditId:
    """Parse ``git-sha256:<hex>|trace:<id>[|k:v...]``; part order does not matter.

    Strict (the default) rejects anything ambiguous: empty parts, a part without ``key:value``,
    duplicate keys, two commit parts, a commit that is not 40/64 hex, whitespace inside a part, and an
    id that names neither a commit nor a trace. Non-strict parsing skips bad parts instead of failing
    but still needs a commit or a trace. Commits and W3C (32-hex) trace ids are lower-cased.
    """
    if not isinstance(raw, str):
        raise AuditIdError(repr(raw), f"expected a string, got {type(raw).__name__}")
    text = raw.strip()
    if not text:
        raise AuditIdError(raw, "empty value")
    commit: str | None = None
    commit_key = "git-sha256"
    trace: str | None = None
    extra: list[tuple[str, str]] = []
    seen: set[str] = set()

    for part in text.split("|"):
        try:
            key, value = _split_part(part)
            if key in seen:
                raise ValueError(f"duplicate key {clip(key)!r}")
            if key in COMMIT_KEYS:
                if commit is not None:
                    raise ValueError(f"two commit parts ({commit_key!r} and {clip(key)!r})")
                if not _HEX_COMMIT.fullmatch(value):
                    raise ValueError(f"{key} must be 40 or 64 hex characters, got {clip(value)!r}")
                commit, commit_key = value.lower(), key
            elif key == "trace":
                trace = value.lower() if _W3C_TRACE.fullmatch(value) else value
            else:
                extra.append((key, value))
            seen.add(key)
        except ValueError as exc:
            if strict:
                raise AuditIdError(raw, str(exc)) from None
    if commit is None and trace is None:
        raise AuditIdError(raw, "names neither a commit (git-sha256:/git-sha1:/git:) nor a trace (trace:)")
    return AuditId(commit=commit, commit_key=commit_key, trace=trace, extra=tuple(extra))


def _split_part(part: str) -> tuple[str, str]:
    if not part:
        raise ValueError("empty part (stray '|')")
    key, sep, value = part.partition(":")
    if not sep:
        raise ValueError(f"part {clip(part)!r} is not key:value")
    if not _KEY.fullmatch(key):
        raise ValueError(f"bad key {clip(key)!r}")
    if not value:
        raise ValueError(f"empty value for key {clip(key)!r}")
    if any(c.isspace() for c in value):
        raise ValueError(f"whitespace in value of {clip(key)!r}")
    return key.lower(), value


def parse_traceparent(value: str) -> str | None:
    """The trace id of a W3C ``traceparent`` header, or None if it is not one."""
    m = _TRACEPARENT.fullmatch(value.strip().lower())
    if m is None or m.group(1) == "ff" or set(m.group(2)) == {"0"}:
        return None
    return m.group(2)
